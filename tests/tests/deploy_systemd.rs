//! The node installer's restart path for real: a node whose containerd (1.6) runs under systemd
//! (the systemd-nspawn machine of `dockerish_tests::systemd_env`). The installer image runs
//! there as the DaemonSet runs it: privileged, the node's `/` at `/host`, in the node's PID
//! namespace (`hostPID`), with its defaults for every node path except the prefix (the
//! machine's /usr/local/bin holds the test build, bound read-only: /usr/local/sbin comes first on
//! systemd's PATH). It must restart containerd through the node's systemd (a new main PID), the
//! handler must then serve a CRI pod through the installed binary, a container started before
//! must survive both restarts and stay manageable, and uninstall must restore the config byte
//! for byte. Skipped, saying why, where the machine cannot boot (see tests/tests/systemd.rs).

use std::time::Duration;

use dockerish_tests::cri::{kubelet_namespaces, pause_image_tarball, Cri, CNI_CONFLIST, PAUSE_IMAGE};
use dockerish_tests::systemd_env::{self, BootOptions, SystemdEnv};
use dockerish_tests::{image, unique_name, wait_until, IMAGE};
use k8s_cri::v1::*;
use sha2::{Digest, Sha256};

const K8S_NS: &str = "k8s.io";
const PREFIX_IN_MACHINE: &str = "/usr/local/sbin";

fn sha(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn main_pid(m: &SystemdEnv) -> String {
    m.exec(&["systemctl", "show", "-p", "MainPID", "--value", "containerd.service"]).stdout.trim().to_string()
}

/// Runs the installer image in the machine (detached: it restarts the containerd that runs
/// it) and returns its output once it has exited.
fn run_installer(m: &SystemdEnv, ns: &str, built: &xtask::Built, args: &[&str], host_pid: bool) -> String {
    let id = unique_name("inst");
    let log = format!("/tmp/{id}.log");
    let mut cmd: Vec<String> = vec!["run", "-d", "--privileged", "--mount", "type=bind,src=/,dst=/host,options=rbind:rw"].into_iter().map(String::from).collect();
    if host_pid {
        cmd.extend(["--with-ns".to_string(), "pid:/proc/1/ns/pid".to_string()]);
    }
    for e in ["NODE_NAME=node-a", "LABEL=dry-run", &format!("INSTALL_PREFIX={PREFIX_IN_MACHINE}")] {
        cmd.extend(["--env".to_string(), e.to_string()]);
    }
    cmd.extend(["--log-uri".into(), format!("file://{log}"), built.name.clone(), id.clone()]);
    if !args.is_empty() {
        cmd.push(format!("/{}", xtask::INSTALLER_IN_IMAGE));
        cmd.extend(args.iter().map(|s| s.to_string()));
    }
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    m.ctr(ns, &cmd).expect_ok();
    let stopped = wait_until(Duration::from_secs(120), || m.host_ctr(ns, &["task", "ls"]).stdout.lines().any(|l| l.starts_with(&id) && l.contains("STOPPED")));
    let out = m.exec(&["cat", &log]).stdout;
    assert!(stopped, "the installer did not finish:\n{out}\n{}", m.journal("containerd"));
    let _ = m.host_ctr(ns, &["task", "rm", &id]);
    let _ = m.host_ctr(ns, &["container", "rm", &id]);
    eprintln!("--- installer {args:?} ---\n{out}");
    out
}

#[test]
fn installer_restarts_containerd_through_systemd_and_containers_survive() {
    let rootfs = match systemd_env::preflight().and_then(|()| systemd_env::ensure_rootfs()) {
        Ok((r, _)) => r,
        Err(systemd_env::Unavailable(why)) => {
            eprintln!("\ndeploy_systemd SKIPPED: {why}\n");
            return;
        }
    };
    let built = xtask::build_installer_image(&xtask::Options { binaries: xtask::Binaries::Build, out: None, verbose: false }).unwrap_or_else(|e| panic!("cargo xtask installer-image: {e}"));
    let original = format!(
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  restrict_oom_score_adj = true\n  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/usr/lib/cni\"\n    conf_dir = \"/etc/cni/net.d\"\n"
    );
    let opts = BootOptions { containerd_config: original.clone(), files: vec![], cni: vec![("10-dockerish-test-lo.conflist".into(), CNI_CONFLIST.into())] };
    let m = SystemdEnv::boot(&rootfs, &opts).unwrap_or_else(|e| panic!("the systemd machine did not boot: {e}"));
    let config_on_host = m.run_dir.join("etc-containerd/config.toml");
    let ns = unique_name("sdinst");
    let tmp = tempfile::tempdir().unwrap();
    for (n, tar) in [(ns.as_str(), built.path.clone()), (ns.as_str(), image::image_tarball().to_path_buf()), (K8S_NS, image::image_tarball().to_path_buf()), (K8S_NS, pause_image_tarball(tmp.path()))] {
        m.host_ctr(n, &["images", "import", "--all-platforms", &tar.to_string_lossy()]).expect_ok();
    }
    let before = unique_name("before");
    m.ctr(&ns, &["run", "-d", IMAGE, &before, "sleep", "100000"]).expect_ok();

    // --- without the node's PID namespace the installer cannot reach systemd: it refuses -------
    let pid0 = main_pid(&m);
    let out = run_installer(&m, &ns, &built, &[], false);
    assert!(out.contains("needs the node's PID namespace (hostPID: true)") && out.contains("Nothing was changed"), "{out}");
    assert_eq!(std::fs::read_to_string(&config_on_host).unwrap(), original);
    assert_eq!(main_pid(&m), pid0);

    // --- install: config edited, containerd restarted by systemd -----------------------------
    let out = run_installer(&m, &ns, &built, &[], true);
    assert!(out.contains("restarted containerd.service") && out.contains("dockerish-node-installer: installed on node node-a"), "{out}");
    assert!(out.contains("registered runtime handler 'dockerish' in /etc/containerd/config.toml (config version 2)"), "{out}");
    assert!(out.contains("label request (dry run, not sent): PATCH /api/v1/nodes/node-a"), "{out}");
    let pid1 = main_pid(&m);
    assert_ne!(pid1, pid0, "containerd was not restarted");
    assert_eq!(m.exec(&["systemctl", "is-active", "containerd.service"]).stdout.trim(), "active");
    let installed = m.exec(&["sha256sum", &format!("{PREFIX_IN_MACHINE}/containerd-shim-dockerish-v2")]).stdout;
    assert!(installed.starts_with(&sha(&std::fs::read(&built.shim).unwrap())), "{installed}");
    // The container started before the restart.
    assert!(m.host_ctr(&ns, &["task", "ls"]).stdout.lines().any(|l| l.starts_with(&before) && l.contains("RUNNING")));
    let o = m.ctr(&ns, &["task", "exec", "--exec-id", "x", &before, "echo", "alive"]).expect_ok();
    assert_eq!(o.stdout.trim(), "alive");

    // --- a CRI pod of the handler, through the installed binary --------------------------------
    let cri = Cri::connect(&m.grpc);
    assert!(wait_until(Duration::from_secs(30), || cri.ready().is_ok()), "CRI not ready: {:?}", cri.ready());
    let uid = unique_name("sdpod");
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: "sdpod".into(), uid, namespace: "default".into(), attempt: 0 }),
        hostname: "sdpod".into(),
        log_directory: "/tmp".into(),
        linux: Some(LinuxPodSandboxConfig { security_context: Some(LinuxSandboxSecurityContext { namespace_options: Some(kubelet_namespaces()), ..Default::default() }), ..Default::default() }),
        ..Default::default()
    };
    let sandbox = cri
        .call(cri.rs().run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: "dockerish".into() }))
        .unwrap_or_else(|e| panic!("RunPodSandbox with the installed handler: {e}"))
        .pod_sandbox_id;
    let app = cri.create_container(&sandbox, &sandbox_config, "app").unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    cri.start_container(&app).unwrap_or_else(|e| panic!("StartContainer: {e}"));
    let (code, out, err) = cri.exec(&app, &["echo", "pod-ok"]);
    assert_eq!((code, out.trim()), (0, "pod-ok"), "{err}");
    let shim = dockerish_tests::procs::all().into_iter().find(|p| p.arg_after("-id") == Some(sandbox.as_str())).expect("the pod's shim");
    assert_eq!(std::fs::read_link(format!("/proc/{}/exe", shim.pid)).unwrap().display().to_string(), format!("{PREFIX_IN_MACHINE}/containerd-shim-dockerish-v2"));
    cri.call(cri.rs().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    cri.call(cri.rs().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    drop(cri);

    // --- uninstall: config back byte for byte, containerd restarted again --------------------
    let out = run_installer(&m, &ns, &built, &["uninstall"], true);
    assert!(out.contains("removed the 'dockerish' runtime handler") && out.contains("restarted containerd.service"), "{out}");
    assert_ne!(main_pid(&m), pid1, "containerd was not restarted by uninstall");
    assert!(std::fs::read_to_string(&config_on_host).unwrap() == original, "the config after uninstall:\n{}", std::fs::read_to_string(&config_on_host).unwrap());
    assert!(!m.exec(&["test", "-e", &format!("{PREFIX_IN_MACHINE}/containerd-shim-dockerish-v2")]).ok(), "binary left");
    assert!(m.host_ctr(&ns, &["task", "ls"]).stdout.lines().any(|l| l.starts_with(&before) && l.contains("RUNNING")), "the first container did not survive the second restart");
    let _ = m.host_ctr(&ns, &["task", "kill", "-s", "SIGKILL", &before]);
    wait_until(Duration::from_secs(10), || !m.host_ctr(&ns, &["task", "ls"]).stdout.contains("RUNNING"));
    m.host_ctr(&ns, &["task", "rm", &before]).expect_ok();
    m.host_ctr(&ns, &["container", "rm", &before]).expect_ok();
    drop(m);
}
