//! `dockerish-bench-pod [--containerd 1.6|1.7|2.3] [--rounds N] [--json FILE]`: the CRI part of
//! tests/bench (started by tests/bench/bench.py). A private containerd with the CRI plugin and two
//! runtime handlers, `runc` (the Go shim `io.containerd.runc.v2` of that containerd) and
//! `dockerish`; per round and handler (alternating which goes first), what a kubelet does for a
//! pod of 10 containers: RunPodSandbox, then CreateContainer + StartContainer for each (timed:
//! "up"), then StopContainer for each and StopPodSandbox (timed: "down"); RemoveContainer and
//! RemovePodSandbox are not timed. One shim serves the whole pod on both handlers. Prints and
//! writes medians (ms). The first round of each handler is a warm-up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dockerish_tests::cri::{kubelet_namespaces, node_cri_config, pause_image_tarball, Cri, CNI_CONFLIST, PAUSE_IMAGE};
use dockerish_tests::{wait_until, Containerd, Options, Version, IMAGE};
use k8s_cri::v1::*;

const K8S_NS: &str = "k8s.io";
const HANDLERS: [&str; 2] = ["runc", "dockerish"];
const CONTAINERS: usize = 10;

/// The node's CRI config the tests use, plus both handlers (the Go shim named explicitly, so that
/// `runc` is the same runtime on every version) with dockerish reading the repository's config.
fn config(dir: &Path, v: Version) -> String {
    let shim_config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dockerish.toml");
    let shim_config = std::fs::canonicalize(&shim_config).unwrap_or(shim_config);
    let runtimes = if v.is_2x() { "plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes" } else { "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes" };
    format!(
        "{node}\n[{runtimes}.runc]\n  runtime_type = 'io.containerd.runc.v2'\n[{runtimes}.dockerish]\n  runtime_type = 'io.containerd.dockerish.v2'\n  [{runtimes}.dockerish.options]\n    ConfigPath = '{cfg}'\n",
        node = node_cri_config(v, &dir.join("cni")),
        cfg = shim_config.display()
    )
}

struct Pod {
    sandbox: String,
    containers: Vec<String>,
}

fn run_pod(cri: &Cri, c: &Containerd, handler: &str, round: usize, parent: &str, logs: &Path) -> (Pod, f64, f64) {
    let uid = format!("dkbp{}x{round}x{handler}", std::process::id());
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: format!("bench-{handler}-{round}"), uid, namespace: "default".into(), attempt: 0 }),
        hostname: "bench".into(),
        log_directory: logs.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext { namespace_options: Some(kubelet_namespaces()), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    let sandbox = cri
        .call(cri.rs().run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: handler.into() }))
        .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}"))
        .pod_sandbox_id;
    c.track(K8S_NS, &sandbox);
    let mut containers = Vec::new();
    for k in 0..CONTAINERS {
        let id = cri.create_container(&sandbox, &sandbox_config, &format!("app{k}")).unwrap_or_else(|e| panic!("CreateContainer ({handler}): {e}"));
        c.track(K8S_NS, &id);
        cri.start_container(&id).unwrap_or_else(|e| panic!("StartContainer ({handler}): {e}"));
        containers.push(id);
    }
    let up = t0.elapsed();
    let shims = c.shims().len();
    assert_eq!(shims, 1, "{handler}: one shim must serve the pod, found {shims}");
    let t1 = Instant::now();
    for id in &containers {
        cri.call(cri.rs().stop_container(StopContainerRequest { container_id: id.clone(), timeout: 10 })).unwrap_or_else(|e| panic!("StopContainer ({handler}): {e}"));
    }
    cri.call(cri.rs().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap_or_else(|e| panic!("StopPodSandbox ({handler}): {e}"));
    let down = t1.elapsed();
    (Pod { sandbox, containers }, up.as_secs_f64() * 1e3, down.as_secs_f64() * 1e3)
}

fn remove_pod(cri: &Cri, p: &Pod) {
    for id in &p.containers {
        let _ = cri.call(cri.rs().remove_container(RemoveContainerRequest { container_id: id.clone() }));
    }
    let _ = cri.call(cri.rs().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: p.sandbox.clone() }));
}

/// The spec each handler's runc got for the first app container, ids and bundle paths made
/// neutral: whether both shims ran the same spec.
fn spec_of(c: &Containerd, p: &Pod) -> serde_json::Value {
    let id = &p.containers[0];
    let b = c.bundle(K8S_NS, id);
    let text = std::fs::read_to_string(b.join("config.json")).unwrap_or_default();
    let text = text.replace(id.as_str(), "ID").replace(p.sandbox.as_str(), "SANDBOX").replace(&b.display().to_string(), "BUNDLE");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut version, mut rounds, mut json) = (Version::V1_6, 5usize, None::<PathBuf>);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--containerd" => version = args.next().and_then(|v| Version::parse(&v)).expect("--containerd 1.6|1.7|2.3"),
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--json" => json = args.next().map(PathBuf::from),
            _ => {
                eprintln!("usage: dockerish-bench-pod [--containerd 1.6|1.7|2.3] [--rounds N] [--json FILE]");
                std::process::exit(2)
            }
        }
    }
    let tmp = tempfile::Builder::new().prefix("dkbpod-").tempdir_in("/tmp").unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("cni")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("cni/10-dockerish-bench-lo.conflist"), CNI_CONFLIST).unwrap();
    let parent = format!("/dkbench-pods-{}", std::process::id());
    let c = Containerd::start_with(Options { version, cri: true, import_image: false, dir: Some(dir.join("c")), extra_config: config(&dir, version), log_level: "info".into(), ..Options::default() });
    c.import_image(K8S_NS);
    let pause = pause_image_tarball(&dir);
    c.ctr_in(K8S_NS, &["images", "import", "--all-platforms", &pause.to_string_lossy()]).expect_ok();
    let cri = Cri::connect(&c.grpc);
    assert!(wait_until(Duration::from_secs(30), || cri.ready().is_ok() && cri.image_present(PAUSE_IMAGE) && cri.image_present(IMAGE)), "CRI not ready");

    let mut times: HashMap<&str, (Vec<f64>, Vec<f64>)> = HashMap::new();
    let mut specs: HashMap<&str, serde_json::Value> = HashMap::new();
    for round in 0..=rounds {
        let order: Vec<&str> = if round % 2 == 0 { HANDLERS.to_vec() } else { HANDLERS.iter().rev().copied().collect() };
        for handler in order {
            let (pod, up, down) = run_pod(&cri, &c, handler, round, &parent, &dir.join("logs"));
            if round == 0 {
                eprintln!("  pod warm-up {handler}: up {up:.0} ms, down {down:.0} ms");
            } else {
                let t = times.entry(handler).or_default();
                t.0.push(up);
                t.1.push(down);
            }
            specs.entry(handler).or_insert_with(|| spec_of(&c, &pod));
            remove_pod(&cri, &pod);
            assert!(wait_until(Duration::from_secs(15), || c.shims().is_empty()), "{handler}: shim still running after RemovePodSandbox");
        }
    }
    let same = specs.get("runc") == specs.get("dockerish");
    let mut out = serde_json::json!({"containerd": version.label(), "rounds": rounds, "containers": CONTAINERS, "same_spec": same});
    for h in HANDLERS {
        let (up, down) = times.remove(h).unwrap_or_default();
        let total: Vec<f64> = up.iter().zip(&down).map(|(a, b)| a + b).collect();
        out[h] = serde_json::json!({"up_ms": median(up), "down_ms": median(down), "total_ms": median(total)});
    }
    drop(cri);
    drop(c);
    for ctrl in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(ctrl.path().join(parent.trim_start_matches('/')));
    }
    let text = serde_json::to_string_pretty(&out).unwrap();
    println!("{text}");
    if let Some(p) = json {
        std::fs::write(p, text).unwrap();
    }
}
