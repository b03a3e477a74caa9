//! Kubernetes path: containerd's CRI plugin drives the shim through a `dockerish` runtime
//! handler, exactly as a kubelet would (a Rust CRI v1 client over containerd's unix socket).
//!
//! One private containerd per version of the matrix (1.6, 1.7, 2.3: `<test>::<version>`) with the
//! CRI plugin enabled (no kubelet, no crictl on this machine):
//! - the CRI config is the distribution's `config.toml` edited by `deploy/install.sh`: runtime
//!   handler `dockerish` = `io.containerd.dockerish.v2`, `pod_annotations =
//!   ["io.containerd.dockerish/*"]`, `options.ConfigPath` = the shipped `deploy/dockerish.toml`
//!   (CRI policy `explicit`, `annotation-policy cri = unprivileged-only`);
//! - a pause-like sandbox image derived from the local busybox image;
//! - CNI from Debian's containernetworking-plugins, loopback only: the pod network namespace has
//!   nothing but `lo`. containerd 1.6 refuses a sandbox whose CNI result has no address on `eth0`
//!   ("failed to find network info for sandbox"), so the chain ends with the `static` IPAM plugin
//!   run as a plugin: it only *reports* a TEST-NET-1 address and creates no interface, route or
//!   host-side state.
//!
//! What it proves: RunPodSandbox → CreateContainer → StartContainer → ExecSync →
//! ContainerStats → StopContainer → RemoveContainer → StopPodSandbox → RemovePodSandbox work
//! through the shim; the containers land in the pod cgroup CRI chose and share the sandbox's
//! net/ipc/uts namespaces; one shim serves the whole pod; allowlisted pod annotations change app
//! containers (pod-wide and per-container keys) but never the sandbox; a privilege-raising one is
//! refused with an error naming the key; nothing is left behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockerish_tests::cri::{kubelet_namespaces, pause_image_tarball, Cri, PodCgroup, CNI_CONFLIST, PAUSE_IMAGE};
use dockerish_tests::{matrix_tests, procs, wait_until, Containerd, Options, Version, IMAGE};
use k8s_cri::v1::*;
use serde_json::Value;

/// The namespace the CRI plugin always uses.
const K8S_NS: &str = "k8s.io";
const HANDLER: &str = "dockerish";
const PREFIX: &str = "io.containerd.dockerish/";

// ---------------------------------------------------------------------------------------------
// Facts read from /proc and /sys.

fn pid_of(info: &Value) -> i32 {
    let pid = info["pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0, "no pid in verbose status info: {info}");
    pid
}

fn ns_link(pid: i32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).map(|p| p.display().to_string()).unwrap_or_else(|e| format!("({e})"))
}

/// The cgroup v1 path of `pid` for `controller`, from `/proc/<pid>/cgroup`.
fn cgroup_of(pid: i32, controller: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} line in /proc/{pid}/cgroup:\n{text}"))
}

/// `Max open files` soft limit of `pid`.
fn nofile_of(limits: &str) -> String {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no 'Max open files' in:\n{limits}"))
        .to_string()
}

fn cap_eff(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    u64::from_str_radix(hex, 16).unwrap()
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

fn bundle_spec(c: &Containerd, id: &str) -> Value {
    let p = c.bundle(K8S_NS, id).join("config.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

// ---------------------------------------------------------------------------------------------

/// The CRI part of the daemon's config, made the way a node admin would: the distribution's
/// config (for 1.x Debian 12's `/etc/containerd/config.toml`, a version 2 file that declares no
/// runtime; for 2.3 a version 4 file in 2.x's CRI plugin layout) with this test's sandbox image
/// and CNI directory, then `deploy/install.sh` (run with that containerd on `PATH`) registers
/// the `dockerish` handler in it. The harness puts its own root, state and sockets on top.
fn cri_config(dir: &Path, v: Version) -> String {
    let node = dir.join("node");
    std::fs::create_dir_all(&node).unwrap();
    let cni = dir.join("cni");
    let base = dockerish_tests::cri::node_cri_config(v, &cni);
    std::fs::write(node.join("config.toml"), base).unwrap();
    let o = dockerish_tests::install_script(v)
        .arg("--binary")
        .arg(dockerish_tests::shim_path())
        .arg("--prefix")
        .arg(node.join("bin"))
        .arg("--config")
        .arg(node.join("config.toml"))
        .arg("--shim-config")
        .arg(node.join("dockerish.toml"))
        .arg("--no-restart")
        .output()
        .unwrap();
    assert!(o.status.success(), "install.sh: {}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(node.join("config.toml")).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("install.sh wrote invalid TOML ({e}):\n{text}"));
    let plugin = if v.is_2x() { "io.containerd.cri.v1.runtime" } else { "io.containerd.grpc.v1.cri" };
    let handler = &t["plugins"][plugin]["containerd"]["runtimes"][HANDLER];
    assert_eq!(handler["pod_annotations"].as_array().map(|a| a.len()), Some(1), "{text}");
    assert_eq!(handler["pod_annotations"][0].as_str(), Some(format!("{PREFIX}*").as_str()), "{text}");
    text
}

matrix_tests!(versions_only: pod_lifecycle_through_the_cri_plugin);

fn pod_lifecycle_through_the_cri_plugin(v: Version) {
    let started = std::time::Instant::now();
    let tmp = tempfile::Builder::new().prefix("dkcri-").tempdir_in("/tmp").unwrap();
    let dir = tmp.path().to_path_buf();
    let uid = format!("dkcri{}x{}", std::process::id(), started.elapsed().as_nanos() % 1_000_000);
    let pod_cgroup = PodCgroup { parent: format!("/kubepods/besteffort/pod{uid}") };
    let (c, cri) = start_cri(&dir, v);

    // --- RunPodSandbox -----------------------------------------------------------------------
    let annotations: HashMap<String, String> = [
        // Pod-wide, unprivileged (a positive OOM score only makes the OOM killer prefer us).
        (format!("{PREFIX}oom-score-adj"), "500".to_string()),
        // Per container, unprivileged.
        (format!("{PREFIX}app.ulimits"), "nofile=1234:1234".to_string()),
        // Per container, privilege-raising: must be refused for CRI pods.
        (format!("{PREFIX}bad.cap-add"), "SYS_ADMIN".to_string()),
    ]
    .into_iter()
    .collect();
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: "dkpod".into(), uid: uid.clone(), namespace: "default".into(), attempt: 0 }),
        hostname: "dkpod".into(),
        log_directory: dir.join("logs").display().to_string(),
        annotations: annotations.clone(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: pod_cgroup.parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = cri
        .call(cri.rs().run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: HANDLER.into() }))
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"))
        .pod_sandbox_id;
    c.track(K8S_NS, &sandbox);
    let (sb_status, sb_info) = cri.sandbox_info(&sandbox);
    assert_eq!(sb_status.state, PodSandboxState::SandboxReady as i32, "{sb_status:?}");
    assert_eq!(sb_info["runtimeType"], "io.containerd.dockerish.v2", "{sb_info}");
    // The status field, which every version fills (2.x dropped `runtimeHandler` from the info).
    assert_eq!(sb_status.runtime_handler, HANDLER, "{sb_status:?}");
    assert_eq!(sb_status.network.as_ref().map(|n| n.ip.as_str()), Some("192.0.2.10"));
    let sb_pid = pid_of(&sb_info);

    // --- CreateContainer + StartContainer ----------------------------------------------------
    let app = cri.create_container(&sandbox, &sandbox_config, "app").unwrap_or_else(|e| panic!("CreateContainer app: {e}"));
    c.track(K8S_NS, &app);
    cri.start_container(&app).unwrap_or_else(|e| panic!("StartContainer app: {e}"));
    let plain = cri.create_container(&sandbox, &sandbox_config, "plain").unwrap_or_else(|e| panic!("CreateContainer plain: {e}"));
    c.track(K8S_NS, &plain);
    cri.start_container(&plain).unwrap_or_else(|e| panic!("StartContainer plain: {e}"));
    let (app_status, app_info) = cri.container_info(&app);
    assert_eq!(app_status.state, ContainerState::ContainerRunning as i32, "{app_status:?}");
    let app_pid = pid_of(&app_info);
    let plain_pid = pid_of(&cri.container_info(&plain).1);

    // One shim (ours) serves the whole pod: the containers joined the sandbox's group.
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "expected one shim for the pod: {shims:?}");
    assert!(shims[0].cmdline[0].ends_with("containerd-shim-dockerish-v2"), "{:?}", shims[0].cmdline);
    assert_eq!(shims[0].arg_after("-id"), Some(sandbox.as_str()));
    assert_eq!(shims[0].arg_after("-namespace"), Some(K8S_NS));

    // --- The pod cgroup CRI wrote ------------------------------------------------------------
    for (id, pid) in [(&sandbox, sb_pid), (&app, app_pid), (&plain, plain_pid)] {
        let want = format!("{}/{id}", pod_cgroup.parent);
        assert_eq!(bundle_spec(&c, id)["linux"]["cgroupsPath"], want, "cgroupsPath of {id} changed");
        for ctrl in ["memory", "cpu", "pids"] {
            assert_eq!(cgroup_of(pid, ctrl), want, "{ctrl} cgroup of {id} (pid {pid})");
        }
        let procs_file = format!("/sys/fs/cgroup/memory{want}/cgroup.procs");
        let members = std::fs::read_to_string(&procs_file).unwrap_or_else(|e| panic!("{procs_file}: {e}"));
        assert!(members.lines().any(|l| l.trim() == pid.to_string()), "{pid} not in {procs_file}: {members}");
    }

    // --- Namespaces shared with the sandbox --------------------------------------------------
    for pid in [app_pid, plain_pid] {
        for ns in ["net", "ipc", "uts"] {
            assert_eq!(ns_link(pid, ns), ns_link(sb_pid, ns), "{ns} namespace of {pid} vs sandbox {sb_pid}");
            assert_ne!(ns_link(pid, ns), ns_link(1, ns), "{ns} namespace of {pid} is the host's");
        }
        // pid: CONTAINER (CRI's default), mnt: always private.
        assert_ne!(ns_link(pid, "pid"), ns_link(sb_pid, "pid"));
        assert_ne!(ns_link(pid, "mnt"), ns_link(sb_pid, "mnt"));
    }
    let (code, out, err) = cri.exec(&app, &["sh", "-c", "hostname; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "dkpod\nlo\n", "the pod network has loopback only and the pod's hostname");

    // --- Allowed pod annotations change the app containers, not the sandbox -------------------
    let limits = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let oom = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap().trim().to_string();
    // Per-container key: only `app`.
    let (code, out, err) = cri.exec(&app, &["cat", "/proc/1/limits"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(nofile_of(&out), "1234", "app's init through ExecSync");
    // An ExecSync process follows its container, as `docker exec` does: CRI builds it from the
    // stored (unfilled) spec and the shim carries the container's filled rlimits over.
    let (code, out, err) = cri.exec(&app, &["sh", "-c", "ulimit -n"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1234", "an exec in app gets app's rlimits");
    assert_eq!(nofile_of(&limits(app_pid)), "1234", "app's init from the host");
    // CRI writes no rlimits: the others inherit containerd's.
    let inherited = nofile_of(&limits(c.pid()));
    assert_ne!(inherited, "1234");
    assert_eq!(nofile_of(&limits(plain_pid)), inherited, "plain is untouched (the key names app only)");
    assert_eq!(nofile_of(&limits(sb_pid)), inherited, "sandbox is never modified");
    assert!(bundle_spec(&c, &sandbox)["process"]["rlimits"].is_null(), "sandbox spec got rlimits");
    // Pod-wide key: every app container.
    assert_eq!(oom(app_pid), "500");
    assert_eq!(oom(plain_pid), "500");
    let sb_spec = bundle_spec(&c, &sandbox);
    let sb_oom = sb_spec["process"]["oomScoreAdj"].as_i64().expect("CRI sets the sandbox's oomScoreAdj");
    assert_eq!(oom(sb_pid), sb_oom.to_string(), "sandbox keeps CRI's OOM score");
    // The annotations did reach the sandbox's spec (pod_annotations), and the shim left it alone.
    assert_eq!(sb_spec["annotations"][format!("{PREFIX}oom-score-adj")], "500", "CRI passed the pod annotation to the sandbox");
    assert_eq!(sb_spec["annotations"]["io.kubernetes.cri.container-type"], "sandbox");
    let app_spec = bundle_spec(&c, &app);
    assert_eq!(app_spec["process"]["oomScoreAdj"], 500);
    assert!(cap_eff(app_pid) & CAP_SYS_ADMIN == 0, "app must not have CAP_SYS_ADMIN");
    assert!(cap_eff(plain_pid) & CAP_SYS_ADMIN == 0, "plain must not have CAP_SYS_ADMIN");

    // --- A privilege-raising annotation is refused, naming the key ---------------------------
    let bad = cri.create_container(&sandbox, &sandbox_config, "bad").unwrap_or_else(|e| panic!("CreateContainer bad: {e}"));
    c.track(K8S_NS, &bad);
    let err = cri.start_container(&bad).expect_err("a cap-add pod annotation must not start a CRI container");
    let msg = err.message().to_string();
    assert!(
        msg.contains(&format!("annotation \"{PREFIX}bad.cap-add\"")) && msg.contains("raises privileges") && msg.contains("unprivileged-only"),
        "unexpected refusal: {msg}"
    );
    let (bad_status, _) = cri.container_info(&bad);
    assert_ne!(bad_status.state, ContainerState::ContainerRunning as i32);
    assert!(!procs::runc_state(K8S_NS, &bad).exists(), "refused container left runc state");
    cri.call(cri.rs().remove_container(RemoveContainerRequest { container_id: bad.clone() })).unwrap();

    // --- ContainerStats ----------------------------------------------------------------------
    let stats = cri.call(cri.rs().container_stats(ContainerStatsRequest { container_id: app.clone() })).unwrap().stats.expect("stats");
    assert_eq!(stats.attributes.as_ref().map(|a| a.id.as_str()), Some(app.as_str()));
    let cpu = stats.cpu.and_then(|c| c.usage_core_nano_seconds).map(|v| v.value).unwrap_or(0);
    let mem = stats.memory.and_then(|m| m.working_set_bytes).map(|v| v.value).unwrap_or(0);
    assert!(cpu > 0, "cpu usage from the shim's Stats: {cpu}");
    assert!(mem > 0, "memory working set from the shim's Stats: {mem}");

    // --- StopContainer, RemoveContainer ------------------------------------------------------
    for id in [&app, &plain] {
        cri.call(cri.rs().stop_container(StopContainerRequest { container_id: id.clone(), timeout: 10 })).unwrap();
        let (st, _) = cri.container_info(id);
        assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
        assert_eq!(st.exit_code, 0, "SIGTERM trap exits 0: {st:?}");
        cri.call(cri.rs().remove_container(RemoveContainerRequest { container_id: id.clone() })).unwrap();
    }

    // --- StopPodSandbox, RemovePodSandbox ----------------------------------------------------
    cri.call(cri.rs().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    cri.call(cri.rs().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    let listed = cri.call(cri.rs().list_pod_sandbox(ListPodSandboxRequest { filter: None })).unwrap().items;
    assert!(listed.is_empty(), "{listed:?}");

    // --- Nothing left behind -----------------------------------------------------------------
    assert!(wait_until(Duration::from_secs(15), || c.shims().is_empty()), "shim still running: {:?}", c.shims());
    for id in [&sandbox, &app, &plain, &bad] {
        assert!(!procs::runc_state(K8S_NS, id).exists(), "runc state of {id} left");
        assert!(!c.bundle(K8S_NS, id).exists(), "bundle of {id} left");
        let m = procs::mounts_containing(id);
        assert!(m.is_empty(), "mounts of {id} left: {m:?}");
        for d in pod_cgroup.dirs() {
            assert!(!d.join(id).exists(), "cgroup {} left", d.join(id).display());
        }
    }
    assert!(!procs::shim_socket(&c.grpc, K8S_NS, &sandbox).exists(), "shim socket left");
    let netns: Vec<PathBuf> = procs::mounts_under(&c.dir).into_iter().filter(|m| m.to_string_lossy().contains("netns")).collect();
    assert!(netns.is_empty(), "pod network namespace still mounted: {netns:?}");
    for p in [app_pid, plain_pid, sb_pid] {
        assert!(!procs::alive(p), "container process {p} still alive");
    }
    eprintln!("CRI pod lifecycle took {:?}", started.elapsed());
    drop(cri);
    drop(c);
    drop(pod_cgroup);
    assert!(procs::mounts_under(&dir).is_empty(), "mounts left under {}", dir.display());
}

/// A private containerd of version `v` with the CRI plugin (config from [`cri_config`]), the
/// test images imported and CRI ready. `dir` must stay alive (and be removed) by the caller.
fn start_cri(dir: &Path, v: Version) -> (Containerd, Cri) {
    for plugin in ["loopback", "static"] {
        assert!(
            Path::new("/usr/lib/cni").join(plugin).is_file(),
            "/usr/lib/cni/{plugin} missing: apt-get install containernetworking-plugins"
        );
    }
    std::fs::create_dir_all(dir.join("cni")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("cni/10-dockerish-test-lo.conflist"), CNI_CONFLIST).unwrap();
    let c = Containerd::start_with(Options {
        version: v,
        cri: true,
        import_image: false,
        dir: Some(dir.join("c")),
        extra_config: cri_config(dir, v),
        ..Options::default()
    });
    c.import_image(K8S_NS);
    let pause = pause_image_tarball(dir);
    c.ctr_in(K8S_NS, &["images", "import", "--all-platforms", &pause.to_string_lossy()]).expect_ok();
    let cri = Cri::connect(&c.grpc);
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || match cri.ready() {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        }),
        "CRI runtime/network never became ready: {last}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || cri.image_present(PAUSE_IMAGE) && cri.image_present(IMAGE)),
        "CRI does not see the imported images"
    );
    (c, cri)
}

/// Cgroup directories under `/sys/fs/cgroup` (any depth up to 6) whose name ends with `suffix`.
fn cgroup_dirs_ending_with(suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut level = vec![PathBuf::from("/sys/fs/cgroup")];
    for _ in 0..6 {
        let mut next = Vec::new();
        for d in &level {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if e.file_name().to_string_lossy().ends_with(suffix) {
                        found.push(e.path());
                    }
                    next.push(e.path());
                }
            }
        }
        level = next;
    }
    found
}

matrix_tests!(versions_only: slice_cgroup_parent_without_systemd_runs_like_the_go_shim);

/// Issue 12 item 3: the kubelet with the systemd cgroup driver names the pod's cgroup parent
/// `…pod<uid>.slice`, and CRI then writes `<parent>:cri-containerd:<id>`. On a host without
/// systemd the Go shim (SystemdCgroup absent = false) runs such a pod with runc's cgroupfs
/// driver, which takes the path literally. With the shipped `dockerish.toml` our shim must do
/// the same (CRI containers follow SystemdCgroup exactly) and log why, not fail RunPodSandbox
/// with "systemd not running on this host".
fn slice_cgroup_parent_without_systemd_runs_like_the_go_shim(v: Version) {
    assert!(!Path::new("/run/systemd/system").exists(), "this test is about a host without systemd (see tests/tests/systemd.rs for one with)");
    let tmp = tempfile::Builder::new().prefix("dkcri-").tempdir_in("/tmp").unwrap();
    let dir = tmp.path().to_path_buf();
    // install.sh keeps (or adds) the Go shim's `runc` handler without an `options` table: CRI
    // sends it nothing, so its SystemdCgroup is false. That is the reference.
    let (c, cri) = start_cri(&dir, v);
    let mut pids = Vec::new();
    let mut ids = Vec::new();
    for handler in ["runc", HANDLER] {
        let uid = format!("dkslice{}x{handler}", std::process::id());
        let parent = format!("kubepods-besteffort-pod{uid}.slice");
        let sandbox_config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata { name: format!("slice-{handler}"), uid, namespace: "default".into(), attempt: 0 }),
            hostname: "slicepod".into(),
            log_directory: dir.join("logs").display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext { namespace_options: Some(kubelet_namespaces()), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sandbox = cri
            .call(cri.rs().run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: handler.into() }))
            .unwrap_or_else(|e| panic!("RunPodSandbox with handler {handler}: {e}"));
        let sandbox = sandbox.pod_sandbox_id;
        c.track(K8S_NS, &sandbox);
        let app = cri.create_container(&sandbox, &sandbox_config, "app").unwrap_or_else(|e| panic!("CreateContainer ({handler}): {e}"));
        c.track(K8S_NS, &app);
        cri.start_container(&app).unwrap_or_else(|e| panic!("StartContainer ({handler}): {e}"));
        for id in [&sandbox, &app] {
            let path = format!("{parent}:cri-containerd:{id}");
            assert_eq!(bundle_spec(&c, id)["linux"]["cgroupsPath"], path.as_str(), "CRI's cgroupsPath of {id} ({handler})");
            let pid = if id == &sandbox { pid_of(&cri.sandbox_info(id).1) } else { pid_of(&cri.container_info(id).1) };
            // runc's cgroupfs driver: the path is one relative cgroup name, placed under the
            // cgroup of runc itself (the shim's).
            for ctrl in ["memory", "pids"] {
                let cg = cgroup_of(pid, ctrl);
                assert!(cg.ends_with(&format!("/{path}")), "{ctrl} cgroup of {id} ({handler}, pid {pid}): {cg}");
            }
            pids.push(pid);
        }
        ids.push((handler, sandbox, app, parent));
    }
    // Ours says why the systemd-looking path went to cgroupfs, naming the setting.
    let log = c.log();
    let warned = log.lines().any(|l| l.contains("cri-containerd:") && l.contains("SystemdCgroup") && l.contains("cgroupfs"));
    assert!(warned, "no warning about the systemd-form cgroupsPath in containerd's log");
    for (handler, sandbox, app, _) in &ids {
        cri.call(cri.rs().stop_container(StopContainerRequest { container_id: app.clone(), timeout: 10 })).unwrap();
        cri.call(cri.rs().remove_container(RemoveContainerRequest { container_id: app.clone() })).unwrap();
        cri.call(cri.rs().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap_or_else(|e| panic!("StopPodSandbox ({handler}): {e}"));
        cri.call(cri.rs().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    }
    assert!(wait_until(Duration::from_secs(15), || c.shims().is_empty()), "shim still running: {:?}", c.shims());
    for (handler, sandbox, app, _) in &ids {
        for id in [sandbox, app] {
            assert!(!procs::runc_state(K8S_NS, id).exists(), "runc state of {id} ({handler}) left");
            let left = cgroup_dirs_ending_with(&format!(":cri-containerd:{id}"));
            assert!(left.is_empty(), "cgroups of {id} ({handler}) left: {left:?}");
        }
    }
    for p in pids {
        assert!(!procs::alive(p), "container process {p} still alive");
    }
    drop(cri);
    drop(c);
    let _ = std::fs::remove_dir(procs::runc_state(K8S_NS, ""));
    assert!(procs::mounts_under(&dir).is_empty(), "mounts left under {}", dir.display());
}
