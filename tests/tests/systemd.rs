//! The systemd cgroup driver for real (issue 16) and the cgroup-driver choice on a host where
//! systemd runs (issue 12 item 3), in a systemd machine booted once for this test binary
//! (`dockerish_tests::systemd_env`: systemd-nspawn, Debian bookworm, containerd 1.6, runc).
//!
//! Every scenario runs against the Go shim `io.containerd.runc.v2` with `SystemdCgroup = true`
//! (`ctr --runc-systemd-cgroup`, or the CRI handler's option) as the reference, then ours.
//! The machine is shut down after the last test, also when tests fail (own harness: libtest has
//! no end-of-binary hook). When the host cannot boot it (not root, no systemd-nspawn or
//! debootstrap, read-only cgroups, the mirror unreachable) the tests are reported as ignored
//! and the reason is printed.

use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dockerish_tests::systemd_env::{self, BootOptions, SystemdEnv, GRPC_IN_MACHINE};
use dockerish_tests::{image, procs, unique_name, wait_until, Events, Runtime, IMAGE};
use k8s_cri::v1::*;
use libtest_mimic::{Arguments, Failed, Trial};

use dockerish_tests::cri::{kubelet_namespaces, pause_image_tarball, Cri, CNI_CONFLIST, PAUSE_IMAGE};

const T: Duration = Duration::from_secs(30);
const PREFIX: &str = "io.containerd.dockerish/";
const K8S_NS: &str = "k8s.io";

/// dockerish.toml files under /etc/dkt in the machine.
const DAEMON_SYSTEMD: &str = "/etc/dkt/systemd-driver.toml";
const DEFAULTS: &str = "/etc/dkt/default.toml";
const RUNC_OFF: &str = "/etc/dkt/runc-off.toml";
const RUNC_ON: &str = "/etc/dkt/runc-on.toml";
const BAD_PARENT: &str = "/etc/dkt/bad-parent.toml";

fn boot_options() -> BootOptions {
    let handler = |name: &str, ty: &str, options: &str| {
        let t = format!(r#"plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}"#);
        let mut s = format!("[{t}]\n  runtime_type = \"{ty}\"\n");
        if !options.is_empty() {
            s.push_str(&format!("  [{t}.options]\n    {options}\n"));
        }
        s
    };
    let containerd_config = [
        format!(
            r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The machine runs inside this host's container sandbox, which may not lower OOM scores.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
"#
        ),
        // The Go shim with and without SystemdCgroup; ours with systemd-cgroup = true in its
        // ConfigPath file (containerd 1.6 sends nothing else) and with the defaults ("auto").
        handler("runc", "io.containerd.runc.v2", "SystemdCgroup = true"),
        handler("runc-cgroupfs", "io.containerd.runc.v2", ""),
        handler("dockerish", "io.containerd.dockerish.v2", &format!("ConfigPath = \"{RUNC_ON}\"")),
        handler("dockerish-auto", "io.containerd.dockerish.v2", &format!("ConfigPath = \"{DEFAULTS}\"")),
    ]
    .join("\n");
    let file = |p: &str, text: &str| (p.trim_start_matches("/etc/dkt/").to_string(), text.to_string());
    BootOptions {
        containerd_config,
        files: vec![
            file(DAEMON_SYSTEMD, "exec-opts = [\"native.cgroupdriver=systemd\"]\n"),
            file(DEFAULTS, "# every key at its default\n"),
            file(RUNC_OFF, "systemd-cgroup = false\n"),
            file(RUNC_ON, "systemd-cgroup = true\n"),
            file(BAD_PARENT, "exec-opts = [\"native.cgroupdriver=systemd\"]\ncgroup-parent = \"notaslice\"\n"),
        ],
        cni: vec![("10-dockerish-test-lo.conflist".into(), CNI_CONFLIST.into())],
    }
}

/// The booted machine, shared by every test. Tests take `shared` (read) around their work; the
/// containerd restart takes it exclusively, so that no other test's ctr call meets a daemon
/// that is restarting.
struct Machine {
    env: SystemdEnv,
    lock: RwLock<()>,
}

impl Machine {
    fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.lock.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh containerd namespace (unique on the machine) with the test image.
    fn namespace(&self) -> String {
        let ns = unique_name("sd");
        self.env.host_ctr(&ns, &["images", "import", "--all-platforms", &image::image_tarball().to_string_lossy()]).expect_ok();
        ns
    }
}

// ---------------------------------------------------------------------------------------------
// Facts inside the machine.

/// `(controllers, path)` lines of `/proc/<pid>/cgroup` inside the machine.
fn cgroup_lines(m: &Machine, pid: i32) -> Vec<(String, String)> {
    let text = m.env.exec(&["cat", &format!("/proc/{pid}/cgroup")]).expect_ok().stdout;
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            Some((c.to_string(), p.to_string()))
        })
        .collect()
}

fn cgroup_of(m: &Machine, pid: i32, controller: &str) -> String {
    cgroup_lines(m, pid)
        .into_iter()
        .find(|(c, _)| c.split(',').any(|x| x == controller))
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no {controller} cgroup for pid {pid}"))
}

/// A systemd unit property (`systemctl show -p P --value U`).
fn unit_prop(m: &Machine, unit: &str, prop: &str) -> String {
    m.env.exec(&["systemctl", "show", "-p", prop, "--value", unit]).stdout.trim().to_string()
}

/// A file of the cgroup `path` (as the machine sees it) in hierarchy `ctl`.
fn cgroup_file(m: &Machine, ctl: &str, path: &str, file: &str) -> String {
    m.env.exec(&["cat", &format!("/sys/fs/cgroup/{ctl}{path}/{file}")]).expect_ok().stdout.trim().to_string()
}

/// `ctr task ls` PID of `id` (the machine's PID namespace).
fn task_pid(m: &Machine, ns: &str, id: &str) -> Option<i32> {
    task_row(m, ns, id).map(|r| r.0)
}

fn task_status(m: &Machine, ns: &str, id: &str) -> Option<String> {
    task_row(m, ns, id).map(|r| r.1)
}

fn task_row(m: &Machine, ns: &str, id: &str) -> Option<(i32, String)> {
    let o = m.env.host_ctr(ns, &["task", "ls"]);
    o.stdout.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
    })
}

/// The shim processes (host view) serving container `id` of namespace `ns`.
fn shims_for(ns: &str, id: &str) -> Vec<procs::Proc> {
    procs::all()
        .into_iter()
        .filter(|p| p.cmdline.first().is_some_and(|a| a.contains("containerd-shim")) && p.arg_after("-namespace") == Some(ns) && p.arg_after("-id") == Some(id))
        .collect()
}

/// `ctr run -d` arguments: the Go shim gets `--runc-systemd-cgroup` when `systemd`; ours gets
/// `config` (a dockerish.toml) through `--runtime-config-path`.
fn run_args<'a>(rt: Runtime, config: &'a str, systemd_ref: bool, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "-d", "--runtime", rt.name()];
    match rt {
        Runtime::RuncV2 if systemd_ref => v.push("--runc-systemd-cgroup"),
        Runtime::RuncV2 => {}
        Runtime::Dockerish => v.extend(["--runtime-config-path", config]),
    }
    v.extend_from_slice(extra);
    v
}

/// The scope of a container with Docker's systemd layout: `docker-<id>.scope` as the Go shim
/// gets it from the explicit `system.slice:docker:<id>` path; ours names it after the
/// namespace too outside `default` (CG-1): `docker-<ns>--<id>.scope`.
fn docker_unit(rt: Runtime, ns: &str, id: &str) -> String {
    match rt {
        Runtime::RuncV2 => format!("docker-{id}.scope"),
        Runtime::Dockerish => format!("docker-{}.scope", dockerish_spec::cgroup_leaf(ns, id)),
    }
}

/// Kills, deletes and removes a container (ignoring errors).
fn remove(m: &Machine, ns: &str, id: &str) {
    let _ = m.env.host_ctr(ns, &["task", "kill", "-a", "-s", "SIGKILL", id]);
    wait_until(T, || !matches!(task_status(m, ns, id).as_deref(), Some("RUNNING") | Some("CREATED")));
    let _ = m.env.host_ctr(ns, &["task", "rm", "-f", id]);
    let _ = m.env.host_ctr(ns, &["container", "rm", id]);
}

/// Everything container `id` could leave behind: shim, socket, runc state, bundle, mounts,
/// its systemd unit and any cgroup named after it.
fn leftovers(m: &Machine, ns: &str, id: &str, unit: Option<&str>) -> Vec<String> {
    let mut v = Vec::new();
    for s in shims_for(ns, id) {
        v.push(format!("shim {} still running", s.pid));
    }
    let sock = m.env.run_containerd(&procs::shim_socket(GRPC_IN_MACHINE, ns, id).to_string_lossy());
    if sock.exists() {
        v.push(format!("shim socket {} left", sock.display()));
    }
    for p in [format!("/run/containerd/runc/{ns}/{id}"), format!("/run/containerd/io.containerd.runtime.v2.task/{ns}/{id}")] {
        if m.env.run_containerd(&p).exists() {
            v.push(format!("{p} left"));
        }
    }
    let mounts = m.env.exec(&["cat", "/proc/self/mountinfo"]).stdout;
    for l in mounts.lines().filter(|l| l.contains(id)) {
        v.push(format!("mount left: {l}"));
    }
    if let Some(unit) = unit {
        let state = unit_prop(m, unit, "LoadState");
        if state != "not-found" {
            v.push(format!("unit {unit} is {state} ({})", unit_prop(m, unit, "ActiveState")));
        }
        for c in m.env.cgroups_named(unit) {
            v.push(format!("cgroup {} left", c.display()));
        }
    }
    for c in m.env.cgroups_named(id) {
        v.push(format!("cgroup {} left", c.display()));
    }
    v
}

#[track_caller]
fn assert_nothing_left(m: &Machine, ns: &str, id: &str, unit: Option<&str>) {
    let mut left = Vec::new();
    wait_until(Duration::from_secs(10), || {
        left = leftovers(m, ns, id, unit);
        left.is_empty()
    });
    assert!(left.is_empty(), "container {id} left:\n  {}", left.join("\n  "));
}

/// containerd's journal has a line matching `pred` (journald may take a moment to get it).
fn journal_has(m: &Machine, pred: impl Fn(&str) -> bool) -> bool {
    wait_until(Duration::from_secs(10), || m.env.journal("containerd").lines().any(&pred))
}

/// The test image's OOM loop: doubles a shell string until the memory limit kills it.
const OOM_LOOP: &str = "x=a; while :; do x=$x$x; done";

// ---------------------------------------------------------------------------------------------
// 1. ctr with the daemon config's systemd driver.

/// Docker's layout with `native.cgroupdriver=systemd`: `system.slice/docker-<id>.scope` in every
/// hierarchy, resources applied by runc through systemd, `ctr task metrics` reads them, OOM gives
/// TaskOOM + 137, and the unit is gone after delete.
fn ctr_systemd_driver(m: &Machine, rt: Runtime) {
    let _g = m.shared();
    let ns = m.namespace();
    let id = format!("sd1-{ns}");
    let unit = docker_unit(rt, &ns, &id);
    let cg = format!("system.slice:docker:{id}");
    let mut extra = vec!["--memory-limit", "67108864", "--cpus", "0.5"];
    match rt {
        Runtime::RuncV2 => extra.extend(["--cgroup", &cg]),
        // Ours writes system.slice:docker:<id> itself (CG-1 with the systemd driver).
        Runtime::Dockerish => extra.extend(["--annotation", "io.containerd.dockerish/pids-limit=64"]),
    }
    extra.extend([IMAGE, &id, "sleep", "100000"]);
    m.env.ctr(&ns, &run_args(rt, DAEMON_SYSTEMD, true, &extra)).expect_ok();
    let pid = task_pid(m, &ns, &id).expect("task listed");
    let want = format!("/system.slice/{unit}");
    for (ctrls, path) in cgroup_lines(m, pid) {
        assert_eq!(path, want, "cgroup of the container ({ctrls})");
    }
    assert_eq!(unit_prop(m, &unit, "ActiveState"), "active");
    assert_eq!(unit_prop(m, &unit, "ControlGroup"), want);
    // Resources, as runc set them through systemd.
    assert_eq!(cgroup_file(m, "memory", &want, "memory.limit_in_bytes"), "67108864");
    assert_eq!(cgroup_file(m, "cpu", &want, "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file(m, "cpu", &want, "cpu.cfs_period_us"), "100000");
    let pids_max = if rt.is_dockerish() { "64" } else { "max" };
    assert_eq!(cgroup_file(m, "pids", &want, "pids.max"), pids_max);
    // The shim's Stats read the same cgroup.
    let metrics = m.env.host_ctr(&ns, &["task", "metrics", &id]).expect_ok().stdout;
    let metric = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
    assert_eq!(metric("memory.limit_in_bytes").as_deref(), Some("67108864"), "{metrics}");
    assert!(metric("memory.usage_in_bytes").is_some_and(|v| v.parse::<u64>().unwrap_or(0) > 0), "{metrics}");
    if rt.is_dockerish() {
        assert_eq!(metric("pids.limit").as_deref(), Some("64"), "{metrics}");
    }
    assert_eq!(metric("pids.current").as_deref(), Some("1"), "{metrics}");

    // OOM kill in a scope of its own.
    let ev = Events::watch_address(&m.env.grpc, &ns);
    let oom = format!("sd1oom-{ns}");
    let oom_cg = format!("system.slice:docker:{oom}");
    let mut extra = vec!["--rm", "--memory-limit", "8388608"];
    if rt == Runtime::RuncV2 {
        extra.extend(["--cgroup", &oom_cg]);
    }
    extra.extend([IMAGE, &oom, "sh", "-c", OOM_LOOP]);
    let mut args = run_args(rt, DAEMON_SYSTEMD, true, &extra);
    args.retain(|a| *a != "-d");
    let o = m.env.ctr(&ns, &args);
    assert_eq!(o.code(), 137, "exit code of the OOM-killed container; stderr: {}", o.stderr);
    ev.expect("/tasks/oom", &oom, T);
    assert_eq!(ev.expect("/tasks/exit", &oom, T).num("exit_status"), 137);
    assert_nothing_left(m, &ns, &oom, Some(&docker_unit(rt, &ns, &oom)));

    // Delete: the unit goes with the container.
    m.env.host_ctr(&ns, &["task", "kill", "-s", "SIGKILL", &id]).expect_ok();
    assert_eq!(ev.expect("/tasks/exit", &id, T).num("exit_status"), 137);
    m.env.host_ctr(&ns, &["task", "rm", &id]).expect_ok();
    m.env.host_ctr(&ns, &["container", "rm", &id]).expect_ok();
    assert_nothing_left(m, &ns, &id, Some(&unit));
}

// ---------------------------------------------------------------------------------------------
// 2. cgroup-parent with a .slice parent; Docker's errors for bad slice names.

fn cgroup_parent_slice(m: &Machine, rt: Runtime) {
    let _g = m.shared();
    let ns = m.namespace();
    let id = format!("sd2-{ns}");
    // A dash makes systemd nest the slice: dkt.slice/dkt-p<n>.slice.
    let n: String = ns.chars().filter(char::is_ascii_alphanumeric).collect();
    let parent = format!("dkt-p{n}.slice");
    let unit = docker_unit(rt, &ns, &id);
    let cg = format!("{parent}:docker:{id}");
    let ann = format!("{PREFIX}cgroup-parent={parent}");
    let mut extra = vec![];
    match rt {
        Runtime::RuncV2 => extra.extend(["--cgroup", &cg]),
        Runtime::Dockerish => extra.extend(["--annotation", &ann]),
    }
    extra.extend([IMAGE, &id, "sleep", "100000"]);
    m.env.ctr(&ns, &run_args(rt, DAEMON_SYSTEMD, true, &extra)).expect_ok();
    let pid = task_pid(m, &ns, &id).expect("task listed");
    let want = format!("/dkt.slice/{parent}/{unit}");
    for (ctrls, path) in cgroup_lines(m, pid) {
        assert_eq!(path, want, "cgroup of the container ({ctrls})");
    }
    assert_eq!(unit_prop(m, &unit, "Slice"), parent);
    remove(m, &ns, &id);
    assert_nothing_left(m, &ns, &id, Some(&unit));
}

/// CG-3: with the systemd driver a cgroup parent must be `*.slice` (longer than ".slice"), from
/// an annotation or from the daemon config; the error is Docker's text, nothing is created.
fn cgroup_parent_invalid_slices_are_refused(m: &Machine, _rt: Runtime) {
    let _g = m.shared();
    let ns = m.namespace();
    const CG3: &str = "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\"";
    for (i, parent) in ["notaslice", ".slice", "/docker"].iter().enumerate() {
        let id = format!("sd2bad{i}-{ns}");
        let ann = format!("{PREFIX}cgroup-parent={parent}");
        let err = m.env.ctr(&ns, &run_args(Runtime::Dockerish, DAEMON_SYSTEMD, true, &["--annotation", &ann, IMAGE, &id, "true"])).expect_err();
        assert!(err.contains(&format!("annotation \"{PREFIX}cgroup-parent\": {CG3}")), "parent {parent:?}: {err}");
        let _ = m.env.host_ctr(&ns, &["container", "rm", &id]);
        assert_nothing_left(m, &ns, &id, Some(&docker_unit(Runtime::Dockerish, &ns, &id)));
    }
    let id = format!("sd2badcfg-{ns}");
    let err = m.env.ctr(&ns, &run_args(Runtime::Dockerish, BAD_PARENT, true, &[IMAGE, &id, "true"])).expect_err();
    assert!(err.contains(&format!("config \"cgroup-parent\": {CG3}")) && err.contains(BAD_PARENT), "{err}");
    let _ = m.env.host_ctr(&ns, &["container", "rm", &id]);
    assert_nothing_left(m, &ns, &id, Some(&docker_unit(Runtime::Dockerish, &ns, &id)));
}

// ---------------------------------------------------------------------------------------------
// 3 and 4 (CRI): a pod through the CRI plugin.

/// A pod with a kubelet-style systemd cgroup parent and one app container, through `handler`.
/// With `systemd`, pod and containers are `cri-containerd-<id>.scope` units in the pod's slice;
/// without (SystemdCgroup unset), runc's cgroupfs driver takes CRI's path literally.
fn cri_pod(m: &Machine, rt: Runtime, systemd: bool) {
    let _g = m.shared();
    let handler = match (rt, systemd) {
        (Runtime::RuncV2, true) => "runc",
        (Runtime::RuncV2, false) => "runc-cgroupfs",
        (Runtime::Dockerish, true) => "dockerish",
        (Runtime::Dockerish, false) => "dockerish-auto",
    };
    let cri = Cri::connect(&m.env.grpc);
    let mut last = String::new();
    assert!(
        wait_until(T, || match cri.ready() {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        }),
        "CRI not ready: {last}"
    );
    let uid = unique_name("pod").replace('-', "x");
    let slice = format!("kubepods-besteffort-pod{uid}.slice");
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: format!("sd-{handler}"), uid: uid.clone(), namespace: "default".into(), attempt: 0 }),
        hostname: "sdpod".into(),
        log_directory: "/tmp".into(),
        linux: Some(LinuxPodSandboxConfig {
            // What a kubelet with cgroupDriver: systemd sends.
            cgroup_parent: format!("/kubepods.slice/kubepods-besteffort.slice/{slice}"),
            security_context: Some(LinuxSandboxSecurityContext { namespace_options: Some(kubelet_namespaces()), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = cri
        .call(cri.rs().run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: handler.into() }))
        .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}"))
        .pod_sandbox_id;
    let app = cri.create_container(&sandbox, &sandbox_config, "app").unwrap_or_else(|e| panic!("CreateContainer ({handler}): {e}"));
    cri.start_container(&app).unwrap_or_else(|e| panic!("StartContainer ({handler}): {e}"));

    for (id, pid) in [(&sandbox, cri_pid(&cri.sandbox_info(&sandbox).1)), (&app, cri_pid(&cri.container_info(&app).1))] {
        let bundle = m.env.run_containerd(&format!("/run/containerd/io.containerd.runtime.v2.task/{K8S_NS}/{id}/config.json"));
        let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
        let path = format!("{slice}:cri-containerd:{id}");
        assert_eq!(spec["linux"]["cgroupsPath"], path.as_str(), "CRI's cgroupsPath, untouched");
        // The verbose status pid is containerd's view: the machine's PID namespace, which
        // nsenter joins.
        let memory = cgroup_of(m, pid, "memory");
        if systemd {
            let unit = format!("cri-containerd-{id}.scope");
            assert_eq!(memory, format!("/kubepods.slice/kubepods-besteffort.slice/{slice}/{unit}"), "{handler}: cgroup of {id}");
            assert_eq!(unit_prop(m, &unit, "ActiveState"), "active");
        } else {
            assert!(memory.ends_with(&format!("/{path}")), "{handler}: cgroup of {id}: {memory}");
        }
    }
    if rt.is_dockerish() && !systemd {
        assert!(
            journal_has(m, |l| l.contains(&sandbox) && l.contains("SystemdCgroup is not set") && l.contains("cgroupfs")),
            "no warning about the systemd-form path of {sandbox} in containerd's journal"
        );
    }
    // One shim for the pod.
    assert_eq!(shims_for(K8S_NS, &sandbox).len(), 1, "one shim per pod");
    assert!(shims_for(K8S_NS, &app).is_empty(), "the app container joined the pod's shim");
    // Stats from the shim, read from the container's cgroup.
    let stats = cri.call(cri.rs().container_stats(ContainerStatsRequest { container_id: app.clone() })).unwrap().stats.expect("stats");
    let cpu = stats.cpu.and_then(|c| c.usage_core_nano_seconds).map(|v| v.value).unwrap_or(0);
    let mem = stats.memory.and_then(|m| m.working_set_bytes).map(|v| v.value).unwrap_or(0);
    assert!(cpu > 0 && mem > 0, "{handler}: stats cpu {cpu} memory {mem}");

    cri.call(cri.rs().stop_container(StopContainerRequest { container_id: app.clone(), timeout: 10 })).unwrap();
    cri.call(cri.rs().remove_container(RemoveContainerRequest { container_id: app.clone() })).unwrap();
    cri.call(cri.rs().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    cri.call(cri.rs().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    for id in [&sandbox, &app] {
        let unit = systemd.then(|| format!("cri-containerd-{id}.scope"));
        assert_nothing_left(m, K8S_NS, id, unit.as_deref());
        let literal = m.env.cgroups_named(&format!("{slice}:cri-containerd:{id}"));
        assert!(literal.is_empty(), "{literal:?}");
    }
}

fn cri_pid(info: &serde_json::Value) -> i32 {
    let pid = info["pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0, "no pid in verbose status info: {info}");
    pid
}

fn cri_pod_systemd_cgroup(m: &Machine, rt: Runtime) {
    cri_pod(m, rt, true)
}

/// CRI follows SystemdCgroup exactly, also where systemd runs: unset = cgroupfs, as the Go shim.
fn cri_pod_without_systemd_cgroup(m: &Machine, rt: Runtime) {
    cri_pod(m, rt, false)
}

// ---------------------------------------------------------------------------------------------
// 4. The cgroup-driver choice (ctr).

/// A client that writes a `slice:prefix:name` path but sends no runc options (nerdctl's case):
/// ours picks systemd because systemd runs here, as the Go shim does when told to.
fn driver_auto_picks_systemd_for_a_client_slice_path(m: &Machine, rt: Runtime) {
    let _g = m.shared();
    let ns = m.namespace();
    let id = format!("sd4a-{ns}");
    let cg = format!("system.slice:dkt:{id}");
    m.env.ctr(&ns, &run_args(rt, DEFAULTS, true, &["--cgroup", &cg, IMAGE, &id, "sleep", "100000"])).expect_ok();
    let pid = task_pid(m, &ns, &id).expect("task");
    let unit = format!("dkt-{id}.scope");
    assert_eq!(cgroup_of(m, pid, "memory"), format!("/system.slice/{unit}"));
    assert_eq!(unit_prop(m, &unit, "ActiveState"), "active");
    remove(m, &ns, &id);
    assert_nothing_left(m, &ns, &id, Some(&unit));
    if rt.is_dockerish() {
        // containerd's default path (no --cgroup) is not the client's decision: on this cgroup v1
        // host Docker's auto rule (CG-2) picks cgroupfs and CG-1 writes /docker/<ns>--<id>.
        let id = format!("sd4b-{ns}");
        m.env.ctr(&ns, &run_args(rt, DEFAULTS, false, &[IMAGE, &id, "sleep", "100000"])).expect_ok();
        let pid = task_pid(m, &ns, &id).expect("task");
        assert_eq!(cgroup_of(m, pid, "memory"), format!("/docker/{ns}--{id}"));
        remove(m, &ns, &id);
        assert_nothing_left(m, &ns, &id, None);
    }
}

/// `systemd-cgroup = false` (the Go shim without the option): a slice path is a literal
/// cgroupfs path, and ours logs why.
fn driver_explicit_false_takes_a_slice_path_literally(m: &Machine, rt: Runtime) {
    let _g = m.shared();
    let ns = m.namespace();
    let id = format!("sd4c-{ns}");
    let cg = format!("system.slice:dkt:{id}");
    m.env.ctr(&ns, &run_args(rt, RUNC_OFF, false, &["--cgroup", &cg, IMAGE, &id, "sleep", "100000"])).expect_ok();
    let pid = task_pid(m, &ns, &id).expect("task");
    let memory = cgroup_of(m, pid, "memory");
    assert!(memory.ends_with(&format!("/{cg}")), "{memory}");
    assert_eq!(unit_prop(m, &format!("dkt-{id}.scope"), "LoadState"), "not-found");
    if rt.is_dockerish() {
        assert!(
            journal_has(m, |l| l.contains(&cg) && l.contains("config systemd-cgroup (SystemdCgroup) = false") && l.contains("cgroupfs")),
            "no warning naming systemd-cgroup for {cg} in containerd's journal"
        );
    }
    remove(m, &ns, &id);
    assert_nothing_left(m, &ns, &id, None);
    assert!(m.env.cgroups_named(&cg).is_empty(), "literal cgroup {cg} left");
}

/// `systemd-cgroup = true` with a plain path: runc cannot do it; ours refuses with the setting
/// and the value (the Go shim's runc fails with runc's own text).
fn driver_explicit_true_refuses_a_plain_path(m: &Machine, rt: Runtime) {
    let _g = m.shared();
    let ns = m.namespace();
    let id = format!("sd4d-{ns}");
    let cg = format!("/dkt/{id}");
    let err = m.env.ctr(&ns, &run_args(rt, RUNC_ON, true, &["--cgroup", &cg, IMAGE, &id, "true"])).expect_err();
    let want = match rt {
        Runtime::RuncV2 => "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups".to_string(),
        Runtime::Dockerish => format!(
            "config \"systemd-cgroup\": true selects runc's systemd cgroup driver, which needs linux.cgroupsPath of the form \"slice:prefix:name\", got \"{cg}\""
        ),
    };
    assert!(err.contains(&want), "{err}");
    let _ = m.env.host_ctr(&ns, &["container", "rm", &id]);
    assert_nothing_left(m, &ns, &id, None);
}

// ---------------------------------------------------------------------------------------------
// 5. containerd restarts while a systemd-scoped container runs.

fn containerd_restart_keeps_a_scoped_container_managed(m: &Machine, rt: Runtime) {
    let _g = m.lock.write().unwrap_or_else(|e| e.into_inner());
    let ns = m.namespace();
    let id = format!("sd5-{ns}");
    let unit = docker_unit(rt, &ns, &id);
    let cg = format!("system.slice:docker:{id}");
    let mut extra = vec![];
    if rt == Runtime::RuncV2 {
        extra.extend(["--cgroup", cg.as_str()]);
    }
    extra.extend([IMAGE, &id, "sleep", "100000"]);
    m.env.ctr(&ns, &run_args(rt, DAEMON_SYSTEMD, true, &extra)).expect_ok();
    let pid = task_pid(m, &ns, &id).expect("task");
    let shim = shims_for(&ns, &id).first().map(|p| p.pid).expect("shim");

    m.env.exec(&["systemctl", "restart", "containerd"]).expect_ok();
    assert!(wait_until(T, || m.env.exec(&["ctr", "version"]).ok()), "containerd did not come back");
    assert!(procs::alive(shim), "the shim died with containerd");
    assert_eq!(unit_prop(m, &unit, "ActiveState"), "active", "the scope after the restart");
    assert!(wait_until(T, || task_status(m, &ns, &id).as_deref() == Some("RUNNING")), "{:?}", task_status(m, &ns, &id));
    assert_eq!(task_pid(m, &ns, &id), Some(pid));
    let o = m.env.ctr(&ns, &["task", "exec", "--exec-id", "after", &id, "sh", "-c", "cat /proc/self/cgroup | grep memory"]).expect_ok();
    assert!(o.stdout.trim().ends_with(&format!(":/system.slice/{unit}")), "an exec after the restart joins the scope: {}", o.stdout);
    let ev = Events::watch_address(&m.env.grpc, &ns);
    m.env.host_ctr(&ns, &["task", "kill", "-s", "SIGKILL", &id]).expect_ok();
    assert_eq!(ev.expect("/tasks/exit", &id, T).num("exit_status"), 137);
    m.env.host_ctr(&ns, &["task", "rm", &id]).expect_ok();
    ev.expect("/tasks/delete", &id, T);
    m.env.host_ctr(&ns, &["container", "rm", &id]).expect_ok();
    assert_nothing_left(m, &ns, &id, Some(&unit));
}

// ---------------------------------------------------------------------------------------------
// 6. Scope names never collide (issue 13, CG-1).

/// The same id in the namespace `default` and in another one gets two scopes,
/// `docker-<id>.scope` and `docker-<ns>--<id>.scope`, each holding its own container only; two
/// creates racing for one client-given scope: exactly one wins, the other fails naming the unit.
fn scope_names_never_collide_across_namespaces(m: &Machine, rt: Runtime) {
    let _g = m.shared();
    let ns = m.namespace();
    m.env.host_ctr("default", &["images", "import", "--all-platforms", &image::image_tarball().to_string_lossy()]).expect_ok();
    let id = unique_name("sd6");
    let spaces = ["default".to_string(), ns.clone()];
    let mut pids = Vec::new();
    for n in &spaces {
        m.env.ctr(n, &run_args(rt, DAEMON_SYSTEMD, true, &[IMAGE, &id, "sleep", "100000"])).expect_ok();
        pids.push(task_pid(m, n, &id).expect("task listed"));
    }
    let units = [format!("docker-{id}.scope"), format!("docker-{ns}--{id}.scope")];
    for (unit, pid) in units.iter().zip(&pids) {
        assert_eq!(unit_prop(m, unit, "ActiveState"), "active", "{unit}");
        assert_eq!(cgroup_of(m, *pid, "pids"), format!("/system.slice/{unit}"));
        assert_eq!(cgroup_file(m, "pids", &format!("/system.slice/{unit}"), "cgroup.procs"), pid.to_string(), "{unit} holds one container");
    }
    // Both first: the leftover check looks for the id in every mount.
    for n in &spaces {
        remove(m, n, &id);
    }
    for (n, unit) in spaces.iter().zip(&units) {
        assert_nothing_left(m, n, &id, Some(unit));
    }

    // Two namespaces ask for one scope at the same time (a client-given path).
    let ns2 = m.namespace();
    let id = unique_name("sd6r");
    let cg = format!("system.slice:dkt:{id}");
    let outcomes: Vec<(String, dockerish_tests::Out)> = std::thread::scope(|s| {
        let hs: Vec<_> = [&ns, &ns2]
            .into_iter()
            .map(|n| {
                let (cg, id) = (&cg, &id);
                s.spawn(move || (n.clone(), m.env.ctr(n, &run_args(rt, DEFAULTS, true, &["--cgroup", cg, IMAGE, id, "sleep", "100000"]))))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("ctr thread")).collect()
    });
    let winners: Vec<&String> = outcomes.iter().filter(|(_, o)| o.ok()).map(|(n, _)| n).collect();
    assert_eq!(winners.len(), 1, "exactly one create may get dkt-{id}.scope: {outcomes:?}");
    for (n, o) in &outcomes {
        if !o.ok() {
            let err = format!("{}{}", o.stderr, o.stdout);
            assert!(err.contains(&format!("systemd unit \"dkt-{id}.scope\" is already in use by container \"{id}\" of namespace \"{}\"", winners[0])), "{n}: {err}");
            let _ = m.env.host_ctr(n, &["container", "rm", &id]);
        }
    }
    let unit = format!("dkt-{id}.scope");
    for n in [&ns, &ns2] {
        remove(m, n, &id);
    }
    for n in [&ns, &ns2] {
        assert_nothing_left(m, n, &id, Some(&unit));
    }
}

// ---------------------------------------------------------------------------------------------

type Case = fn(&Machine, Runtime);

/// Every scenario with the runtimes it runs against.
fn cases() -> Vec<(&'static str, Case, &'static [Runtime])> {
    const BOTH: &[Runtime] = &[Runtime::RuncV2, Runtime::Dockerish];
    const OURS: &[Runtime] = &[Runtime::Dockerish];
    vec![
        ("ctr_systemd_driver", ctr_systemd_driver, BOTH),
        ("cgroup_parent_slice", cgroup_parent_slice, BOTH),
        ("cgroup_parent_invalid_slices_are_refused", cgroup_parent_invalid_slices_are_refused, OURS),
        ("cri_pod_systemd_cgroup", cri_pod_systemd_cgroup, BOTH),
        ("cri_pod_without_systemd_cgroup", cri_pod_without_systemd_cgroup, BOTH),
        ("driver_auto_picks_systemd_for_a_client_slice_path", driver_auto_picks_systemd_for_a_client_slice_path, BOTH),
        ("driver_explicit_false_takes_a_slice_path_literally", driver_explicit_false_takes_a_slice_path_literally, BOTH),
        ("driver_explicit_true_refuses_a_plain_path", driver_explicit_true_refuses_a_plain_path, BOTH),
        ("containerd_restart_keeps_a_scoped_container_managed", containerd_restart_keeps_a_scoped_container_managed, BOTH),
        ("scope_names_never_collide_across_namespaces", scope_names_never_collide_across_namespaces, OURS),
    ]
}

fn trial_name(case: &str, rt: Runtime) -> String {
    format!("{case}::{}", if rt.is_dockerish() { "dockerish" } else { "runc_v2" })
}

/// libtest's selection: a substring (or `--exact`) filter and `--skip`s.
fn selected(args: &Arguments, name: &str) -> bool {
    let hit = |f: &str| if args.exact { name == f } else { name.contains(f) };
    args.filter.as_deref().is_none_or(hit) && !args.skip.iter().any(|s| hit(s))
}

/// Boots the machine and imports the CRI images (k8s.io). `Err(Unavailable)` = skip.
fn start() -> Result<Result<Machine, String>, systemd_env::Unavailable> {
    systemd_env::preflight()?;
    let (rootfs, built) = systemd_env::ensure_rootfs()?;
    match built {
        Some(d) => eprintln!("systemd env: rootfs built in {:.1} s ({})", d.as_secs_f64(), rootfs.display()),
        None => eprintln!("systemd env: cached rootfs {}", rootfs.display()),
    }
    let env = match SystemdEnv::boot(&rootfs, &boot_options()) {
        Ok(env) => env,
        Err(e) => return Ok(Err(e)),
    };
    eprintln!("systemd env: machine booted in {:.1} s", env.boot_time.as_secs_f64());
    let m = Machine { env, lock: RwLock::new(()) };
    let dir = tempfile::Builder::new().prefix("dkt-sdimg-").tempdir().map_err(|e| systemd_env::Unavailable(e.to_string()))?;
    let pause = pause_image_tarball(dir.path());
    for tar in [pause.as_path(), image::image_tarball()] {
        let o = m.env.host_ctr(K8S_NS, &["images", "import", "--all-platforms", &tar.to_string_lossy()]);
        if !o.ok() {
            return Ok(Err(format!("import {} into the machine: {}", tar.display(), o.stderr)));
        }
    }
    Ok(Ok(m))
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let cases = cases();
    let names: Vec<(String, Case, Runtime)> =
        cases.iter().flat_map(|(n, f, rts)| rts.iter().map(move |rt| (trial_name(n, *rt), *f, *rt))).collect();
    let wanted = !args.list && names.iter().any(|(n, _, _)| selected(&args, n));
    let started = Instant::now();
    // Some(Ok) booted; Some(Err) could not boot (tests fail); None: skipped or nothing to run.
    let machine: Option<Result<Arc<Machine>, String>> = if !wanted {
        None
    } else {
        match start() {
            Ok(Ok(m)) => Some(Ok(Arc::new(m))),
            Ok(Err(e)) => Some(Err(e)),
            Err(systemd_env::Unavailable(why)) => {
                eprintln!("\nsystemd tests SKIPPED: {why}\n");
                None
            }
        }
    };
    let trials = names
        .into_iter()
        .map(|(name, f, rt)| match &machine {
            Some(Ok(m)) => {
                let m = m.clone();
                Trial::test(name, move || {
                    f(&m, rt);
                    Ok(())
                })
            }
            Some(Err(e)) => {
                let e = e.clone();
                Trial::test(name, move || Err(Failed::from(format!("the systemd machine did not boot: {e}"))))
            }
            None => Trial::test(name, || Err(Failed::from("the systemd environment is not available here (see the SKIPPED line)"))).with_ignored_flag(true),
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(Ok(m)) = machine {
        match Arc::try_unwrap(m) {
            Ok(mut m) => match m.env.shutdown() {
                Ok(d) => eprintln!("systemd env: shut down in {:.1} s; {:.1} s in all", d.as_secs_f64(), started.elapsed().as_secs_f64()),
                Err(e) => {
                    eprintln!("systemd env: shutdown left something behind: {e}");
                    return ExitCode::FAILURE;
                }
            },
            Err(_) => {
                eprintln!("systemd env: a test still holds the machine; not shut down cleanly");
                return ExitCode::FAILURE;
            }
        }
    }
    conclusion.exit_code()
}
