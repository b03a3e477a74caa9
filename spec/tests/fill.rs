//! Rule-by-rule tests of `fill` on realistic producer specs (fixtures/), with a fake host.
//! Test names carry the rule ids of DOCKER-RULES.md §1.

#![allow(clippy::field_reassign_with_default)]

use dockerish_spec::testing::FakeHost;
use dockerish_spec::*;
use serde_json::json;

const NS: &str = "default";
const ID: &str = "test";

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("fixture json")
}

fn with_ann(mut spec: Value, ann: &[(&str, &str)]) -> Value {
    let a = spec.as_object_mut().unwrap().entry("annotations").or_insert(json!({}));
    for (k, v) in ann {
        a[format!("io.containerd.dockerish/{k}")] = json!(v);
    }
    spec
}

fn run_cfg(spec: Value, cfg: &DaemonConfig, host: &FakeHost) -> Result<Filled, SpecError> {
    fill(spec, &Inputs { id: ID, namespace: NS, config: cfg, runc_systemd_cgroup: None }, host)
}

fn run(spec: Value, host: &FakeHost) -> Result<Filled, SpecError> {
    run_cfg(spec, &DaemonConfig::default(), host)
}

fn ctr(ann: &[(&str, &str)]) -> Filled {
    run(with_ann(fixture("ctr_default"), ann), &FakeHost::default()).expect("fill")
}

fn err(spec: Value, host: &FakeHost) -> String {
    run(spec, host).expect_err("must fail").to_string()
}

fn mount<'a>(spec: &'a Value, dest: &str) -> Option<&'a Value> {
    spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == dest)
}

fn ns_types(spec: &Value) -> Vec<String> {
    spec["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap().to_string()).collect()
}

fn shm_actions(f: &Filled) -> Vec<HostAction> {
    f.actions.iter().filter(|a| matches!(a, HostAction::ShmTmpfs { .. })).cloned().collect()
}

fn rules(f: &Filled) -> Vec<&'static str> {
    f.applied.iter().map(|a| a.rule).collect()
}

// ---- §0.4 producers and policy ----

#[test]
fn policy_per_producer() {
    let h = FakeHost::default();
    let f = run(fixture("ctr_default"), &h).unwrap();
    assert_eq!((f.origin, f.policy), (Origin::Ctr, Policy::Fill));
    let f = run(fixture("nerdctl_default"), &h).unwrap();
    assert_eq!((f.origin, f.policy), (Origin::Nerdctl, Policy::Explicit));
    assert_eq!(f.spec, fixture("nerdctl_default"), "explicit without annotations is a no-op");
    assert!(f.applied.is_empty());
    let f = run(fixture("cri_container"), &h).unwrap();
    assert_eq!((f.origin, f.policy), (Origin::Cri { sandbox: false }, Policy::Explicit));
    assert_eq!(f.spec, fixture("cri_container"));
    let f = fill(fixture("ctr_default"), &Inputs { id: ID, namespace: "moby", config: &DaemonConfig::default(), runc_systemd_cgroup: None }, &h).unwrap();
    assert_eq!((f.origin, f.policy), (Origin::Moby, Policy::Off));
    assert_eq!(f.spec, fixture("ctr_default"));
}

#[test]
fn cri_sandbox_never_touched_even_with_annotations() {
    let s = with_ann(fixture("cri_sandbox"), &[("privileged", "true"), ("bogus", "x")]);
    let f = run(s.clone(), &FakeHost::default()).unwrap();
    assert_eq!(f.policy, Policy::Off);
    assert_eq!(f.spec, s);
}

#[test]
fn cri_container_unprivileged_annotation_and_per_container_key() {
    let mut s = fixture("cri_container");
    s["annotations"]["io.containerd.dockerish/ulimits"] = json!("nofile=100:200");
    s["annotations"]["io.containerd.dockerish/web.shm-size"] = json!("1m");
    s["annotations"]["io.containerd.dockerish/db.ulimits"] = json!("nproc=1");
    let f = run(s, &FakeHost::default()).unwrap();
    assert_eq!(f.spec["process"]["rlimits"], json!([{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}]));
    // CRI's /dev/shm is a bind from the sandbox: shm-size has no base tmpfs to resize (IPC-8).
    assert_eq!(mount(&f.spec, "/dev/shm").unwrap()["type"], "bind");
    let mut s = fixture("cri_container");
    s["annotations"]["io.containerd.dockerish/cap-add"] = json!("SYS_ADMIN");
    assert!(err(s, &FakeHost::default()).contains("raises privileges; not allowed for cri containers"));
}

#[test]
fn policy_annotation_only_when_allowed() {
    let mut cfg = DaemonConfig::default();
    cfg.allow_policy_annotation = true;
    let f = run_cfg(with_ann(fixture("ctr_default"), &[("policy", "off")]), &cfg, &FakeHost::default()).unwrap();
    assert_eq!(f.policy, Policy::Off);
    assert!(f.applied.is_empty());
    let e = err(with_ann(fixture("ctr_default"), &[("policy", "off")]), &FakeHost::default());
    assert!(e.contains("allow-policy-annotation"), "{e}");
}

// ---- table 4.10: the fill checklist for ctr specs ----

#[test]
fn table_4_10_ctr_fill_checklist() {
    let f = ctr(&[]);
    let s = &f.spec;
    assert_eq!(s["process"]["noNewPrivileges"], false, "NNP-1");
    assert!(s["process"].get("rlimits").is_none(), "RL-1: no ulimits and no defaults → absent");
    assert_eq!(s["process"]["oomScoreAdj"], 0, "OOM-1");
    assert!(s["process"].get("apparmorProfile").is_none(), "AA-1: host has no AppArmor");
    assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO", "SC-1");
    assert_eq!(s["linux"]["seccomp"]["architectures"][0], "SCMP_ARCH_X86_64");
    assert_eq!(s["hostname"], "test", "GEN-3");
    assert!(s["process"]["env"].as_array().unwrap().contains(&json!("HOSTNAME=test")), "GEN-1");
    assert!(mount(s, "/run").is_none(), "/run dropped");
    assert_eq!(mount(s, "/sys/fs/cgroup").unwrap()["options"], json!(["ro", "nosuid", "noexec", "nodev"]));
    assert!(mount(s, "/dev/shm").unwrap()["options"].as_array().unwrap().contains(&json!("size=67108864")), "IPC-2");
    assert!(!mount(s, "/dev/shm").unwrap()["options"].as_array().unwrap().contains(&json!("size=65536k")));
    assert_eq!(s["linux"]["maskedPaths"].as_array().unwrap().len(), 12, "MP-1");
    assert!(s["linux"]["maskedPaths"].as_array().unwrap().contains(&json!("/proc/interrupts")));
    assert_eq!(s["linux"]["readonlyPaths"].as_array().unwrap().len(), 5);
    let dev = s["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(dev.len(), 8, "DV-1");
    assert_eq!(dev[7], json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
    assert_eq!(s["linux"]["sysctl"], json!({"net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0"}), "SY-1");
    assert_eq!(s["linux"]["cgroupsPath"], "/docker/test", "CG-1");
    assert_eq!(s["linux"]["resources"]["memory"], json!({"disableOOMKiller": false}), "CG-4 on cgroup v1");
    assert_eq!(s["linux"]["resources"]["blockIO"], json!({}), "CG-6");
    // NS-6: v1 → cgroupns host; NS-7: runc 1.1 lacks the time namespace.
    assert_eq!(ns_types(s), vec!["pid", "ipc", "uts", "mount", "network"]);
    assert!(!f.systemd_cgroup);
    // MT-13: Docker's three files, written into the bundle and bound.
    let files: Vec<&str> = f.actions.iter().filter_map(|a| match a { HostAction::EtcFile { path, .. } => Some(path.rsplit('/').next().unwrap_or("")), _ => None }).collect();
    assert_eq!(files, ["hostname", "hosts", "resolv.conf"]);
    assert_eq!(f.actions.last(), Some(&HostAction::Claim { scope: ClaimScope::Host, class: "cgroup".into(), key: "/docker/test".into() }), "CG-1 claim");
    assert_eq!(f.actions.len(), 4, "{:?}", f.actions);
}

#[test]
fn fill_is_idempotent_on_every_fixture() {
    let h = FakeHost::default();
    let anns: &[&[(&str, &str)]] = &[
        &[],
        &[("ipc", "shareable"), ("tmpfs", "[\"/tmp:size=1m\",\"/run:exec\"]"), ("ulimits", "nofile=10:20"), ("cap-add", "NET_ADMIN"), ("devices", "/dev/fuse"), ("device-cgroup-rules", "c 42:* rwm"), ("user", "app"), ("group-add", "audio"), ("init", "true"), ("read-only", "true")],
        &[("privileged", "true"), ("sysctls", "{\"net.core.somaxconn\":\"1024\"}"), ("memory", "64m"), ("cpus", "1.5"), ("pids-limit", "100"), ("oom-score-adj", "-5")],
    ];
    let mut h2 = h.clone();
    h2.devices.push(FakeHost::chardev("/dev/fuse", 10, 229));
    h2.devices.push(FakeHost::chardev("/dev/kmsg", 1, 11));
    h2.rootfs.insert("/etc/passwd".into(), b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n".to_vec());
    h2.rootfs.insert("/etc/group".into(), b"root:x:0:\naudio:x:29:app\napp:x:1000:\n".to_vec());
    h2.paths.insert("/usr/bin/docker-init".into());
    for fx in ["ctr_default", "ctr_privileged", "nerdctl_default", "cri_container"] {
        for a in anns {
            if fx == "cri_container" && !a.is_empty() {
                continue;
            }
            let once = run(with_ann(fixture(fx), a), &h2).unwrap_or_else(|e| panic!("{fx} {a:?}: {e}"));
            let twice = run(once.spec.clone(), &h2).unwrap_or_else(|e| panic!("{fx} {a:?} (2nd): {e}"));
            assert_eq!(once.spec, twice.spec, "{fx} {a:?} not idempotent; second pass applied {:?}", twice.applied);
            assert_eq!(once.actions, twice.actions, "{fx} {a:?}");
        }
    }
}

// ---- CG ----

/// A host booted with systemd (cgroup v1 hybrid, like the test machine's nspawn environment).
fn systemd_host() -> FakeHost {
    FakeHost { systemd_running: true, ..FakeHost::default() }
}

#[test]
fn cg_1_systemd_parent_from_config() {
    let mut cfg = DaemonConfig::from_json(r#"{"exec-opts":["native.cgroupdriver=systemd"],"cgroup-parent":"machine.slice"}"#).unwrap();
    let f = run_cfg(fixture("ctr_default"), &cfg, &systemd_host()).unwrap();
    assert_eq!(f.spec["linux"]["cgroupsPath"], "machine.slice:docker:test");
    assert!(f.systemd_cgroup);
    cfg.cgroup_parent.clear();
    cfg.cgroup_scope_prefix = "dockerish".into();
    let f = run_cfg(fixture("ctr_default"), &cfg, &systemd_host()).unwrap();
    assert_eq!(f.spec["linux"]["cgroupsPath"], "system.slice:dockerish:test");
}

#[test]
fn cg_2_exec_opts_systemd_without_systemd_is_an_error_naming_the_setting() {
    let cfg = DaemonConfig::from_json(r#"{"exec-opts":["native.cgroupdriver=systemd"]}"#).unwrap();
    let e = run_cfg(fixture("ctr_default"), &cfg, &FakeHost::default()).unwrap_err().to_string();
    assert_eq!(e, "config \"exec-opts\": native.cgroupdriver=systemd, but systemd is not running on this host: use native.cgroupdriver=cgroupfs (or no exec-opts) here");
    // Specs whose path the rule leaves alone do not use Docker's driver.
    assert!(!run_cfg(fixture("nerdctl_default"), &cfg, &FakeHost::default()).unwrap().systemd_cgroup);
}

#[test]
fn cg_2_an_explicit_runc_driver_decides_the_path_cg_1_writes() {
    // runc options from the client win over exec-opts and the auto rule, so that the path and
    // --systemd-cgroup agree.
    let cfg = DaemonConfig::from_json(r#"{"exec-opts":["native.cgroupdriver=systemd"]}"#).unwrap();
    let f = fill(fixture("ctr_default"), &Inputs { id: ID, namespace: NS, config: &cfg, runc_systemd_cgroup: Some(false) }, &systemd_host()).unwrap();
    assert_eq!((f.spec["linux"]["cgroupsPath"].as_str(), f.systemd_cgroup), (Some("/docker/test"), false));
    let f = fill(fixture("ctr_default"), &Inputs { id: ID, namespace: NS, config: &DaemonConfig::default(), runc_systemd_cgroup: Some(true) }, &systemd_host()).unwrap();
    assert_eq!((f.spec["linux"]["cgroupsPath"].as_str(), f.systemd_cgroup), (Some("system.slice:docker:test"), true));
    let cfg = DaemonConfig::from_json(r#"{"systemd-cgroup":true}"#).unwrap();
    let f = run_cfg(fixture("ctr_default"), &cfg, &systemd_host()).unwrap();
    assert_eq!((f.spec["linux"]["cgroupsPath"].as_str(), f.systemd_cgroup), (Some("system.slice:docker:test"), true));
    // ... and where systemd does not run, the setting is named.
    let e = run_cfg(fixture("ctr_default"), &cfg, &FakeHost::default()).unwrap_err().to_string();
    assert!(e.starts_with("config \"systemd-cgroup\": true selects runc's systemd cgroup driver, but systemd is not running on this host"), "{e}");
}

#[test]
fn cg_2_cri_follows_systemd_cgroup_whatever_the_path() {
    let mut s = fixture("cri_container");
    s["linux"]["cgroupsPath"] = json!("kubepods-besteffort-pod1.slice:cri-containerd:test");
    for host in [FakeHost::default(), systemd_host()] {
        let f = run(s.clone(), &host).unwrap();
        assert!(!f.systemd_cgroup, "unset SystemdCgroup = false, as with io.containerd.runc.v2");
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(f.warnings[0].contains("SystemdCgroup is not set"), "{:?}", f.warnings);
        assert_eq!(f.spec, s, "the spec is CRI's");
    }
    let cfg = DaemonConfig::from_toml("SystemdCgroup = true").unwrap();
    let f = run_cfg(s.clone(), &cfg, &systemd_host()).unwrap();
    assert!(f.systemd_cgroup && f.warnings.is_empty());
}

#[test]
fn cg_1_cgroupfs_parent_from_annotation_and_cleaning() {
    let cases = [("/mygroup", "/mygroup/test"), ("a/../b/", "b/test"), ("/x/", "/x/test")];
    for (parent, want) in cases {
        let f = ctr(&[("cgroup-parent", parent)]);
        assert_eq!(f.spec["linux"]["cgroupsPath"], want, "{parent}");
    }
    // explicit mode: nerdctl's path is kept unless asked
    let f = run(with_ann(fixture("nerdctl_default"), &[("cgroup-parent", "/web")]), &FakeHost::default()).unwrap();
    assert!(f.spec["linux"]["cgroupsPath"].as_str().unwrap().starts_with("/web/"));
}

/// CG-1 (issue 13): Docker's `/docker/<id>` in the namespace `default`; `<ns>--<id>` in every
/// other one, for cgroupfs paths, systemd scopes and a cgroup-parent alike.
#[test]
fn cg_1_the_cgroup_name_carries_the_namespace_outside_default() {
    let in_ns = |ns: &str, spec: Value, cfg: &DaemonConfig, host: &FakeHost| fill(spec, &Inputs { id: ID, namespace: ns, config: cfg, runc_systemd_cgroup: None }, host).unwrap();
    let mut s = fixture("ctr_default");
    s["linux"]["cgroupsPath"] = json!("/team-a/test");
    let cfg = DaemonConfig::default();
    let f = in_ns("team-a", s.clone(), &cfg, &FakeHost::default());
    assert_eq!(f.spec["linux"]["cgroupsPath"], "/docker/team-a--test");
    let f = in_ns("team-a", with_ann(s.clone(), &[("cgroup-parent", "/batch")]), &cfg, &FakeHost::default());
    assert_eq!(f.spec["linux"]["cgroupsPath"], "/batch/team-a--test");
    let sd = DaemonConfig::from_json(r#"{"exec-opts":["native.cgroupdriver=systemd"]}"#).unwrap();
    let f = in_ns("team-a", s.clone(), &sd, &systemd_host());
    assert_eq!(f.spec["linux"]["cgroupsPath"], "system.slice:docker:team-a--test");
    assert_eq!(f.actions.last(), Some(&HostAction::Claim { scope: ClaimScope::Host, class: "systemd-unit".into(), key: "docker-team-a--test.scope".into() }));
    // No two (namespace, id) pairs share a name: containerd's identifiers never hold `--`.
    assert_ne!(cgroup_leaf("a", "b-c"), cgroup_leaf("a-b", "c"));
    assert_ne!(cgroup_leaf("a", "b.c"), cgroup_leaf("a.b", "c"));
    assert_ne!(cgroup_leaf("default", "a-b"), cgroup_leaf("a", "b"));
    assert_eq!(cgroup_leaf("default", "web"), "web");
}

/// CG-1 (issue 13): the final cgroup is claimed host-wide whoever chose it (the rules, the
/// client, CRI), cleaned; relative and empty paths are runc's to resolve and not claimed.
#[test]
fn cg_1_the_final_cgroup_is_claimed_whoever_chose_it() {
    let claim = |class: &str, key: &str| vec![HostAction::Claim { scope: ClaimScope::Host, class: class.into(), key: key.into() }];
    assert_eq!(cgroup_claims("/a//b/./c/", false), claim("cgroup", "/a/b/c"));
    assert_eq!(cgroup_claims("/a/../b", false), claim("cgroup", "/b"));
    assert_eq!(cgroup_claims("kubepods-besteffort-pod1.slice:cri-containerd:abc", true), claim("systemd-unit", "cri-containerd-abc.scope"));
    assert_eq!(cgroup_claims("system.slice:x:my.slice", true), claim("systemd-unit", "my.slice"));
    for (p, systemd) in [("rel/ative", false), ("", false), ("/", false), ("", true), ("a:b", true)] {
        assert_eq!(cgroup_claims(p, systemd), vec![], "{p:?} {systemd}");
    }
    let cri = run(fixture("cri_container"), &FakeHost::default()).unwrap();
    let path = fixture("cri_container")["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    assert_eq!(cri.actions, claim("cgroup", &path), "CRI's own path, claimed");
    let mut s = fixture("ctr_default");
    s["linux"]["cgroupsPath"] = json!("/shared/by/client");
    assert_eq!(run(s, &FakeHost::default()).unwrap().actions.last(), claim("cgroup", "/shared/by/client").last(), "a client's path, claimed");
}

#[test]
fn cg_1_refuses_a_cgroup_that_holds_another_containers_processes() {
    let mut h = FakeHost::default();
    h.cgroup_procs.insert("/docker/test".into(), vec![4242]);
    let e = err(fixture("ctr_default"), &h);
    assert!(e.contains("cgroup \"/docker/test\" already holds the processes of another container"), "{e}");
    // An existing but empty cgroup (a container that exited) is fine.
    h.cgroup_procs.insert("/docker/test".into(), vec![]);
    assert!(run(fixture("ctr_default"), &h).is_ok());
    // Our own init in there (dry-run of a running container's bundle) is not "another container".
    h.cgroup_procs.insert("/docker/test".into(), vec![4242, 4243]);
    h.own_init_pid = Some(4242);
    assert!(run(fixture("ctr_default"), &h).is_ok());
    h.own_init_pid = Some(999);
    assert!(err(fixture("ctr_default"), &h).contains("already holds"));
}

#[test]
fn cg_2_auto_systemd_on_v2_with_systemd() {
    let mut h = systemd_host();
    h.cgroup_v2 = true;
    let f = run(fixture("ctr_default"), &h).unwrap();
    assert_eq!(f.spec["linux"]["cgroupsPath"], "system.slice:docker:test");
    assert!(f.systemd_cgroup);
    // NS-6: v2 → private cgroupns; CG-7: no disableOOMKiller on v2
    assert!(ns_types(&f.spec).contains(&"cgroup".to_string()));
    assert!(f.spec["linux"]["resources"].get("memory").is_none());
}

#[test]
fn cg_2_systemd_cgroup_inferred_from_path_for_nerdctl() {
    let mut s = fixture("nerdctl_default");
    s["linux"]["cgroupsPath"] = json!("system.slice:nerdctl:abc");
    let f = run(s.clone(), &systemd_host()).unwrap();
    assert!(f.systemd_cgroup && f.warnings.is_empty());
    // Only where systemd runs; elsewhere runc takes the path literally, and the shim says so.
    let f = run(s.clone(), &FakeHost::default()).unwrap();
    assert!(!f.systemd_cgroup);
    assert!(f.warnings.iter().any(|w| w.contains("systemd is not running")), "{:?}", f.warnings);
    let mut cfg = DaemonConfig::default();
    cfg.systemd_cgroup = SystemdCgroup::Off;
    assert!(!run_cfg(s, &cfg, &systemd_host()).unwrap().systemd_cgroup);
}

#[test]
fn cg_3_systemd_parent_must_be_a_slice() {
    let cfg = DaemonConfig::from_json(r#"{"exec-opts":["native.cgroupdriver=systemd"]}"#).unwrap();
    let e = run_cfg(with_ann(fixture("ctr_default"), &[("cgroup-parent", "foo")]), &cfg, &FakeHost::default()).unwrap_err().to_string();
    assert_eq!(e, "annotation \"io.containerd.dockerish/cgroup-parent\": cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\"");
}

#[test]
fn cg_4_memory_rules() {
    let f = ctr(&[("memory", "64m")]);
    assert_eq!(f.spec["linux"]["resources"]["memory"], json!({"limit": 67108864, "swap": 134217728, "disableOOMKiller": false}));
    let f = ctr(&[("memory", "64m"), ("memory-swap", "-1"), ("memory-swappiness", "10"), ("memory-reservation", "32m")]);
    assert_eq!(f.spec["linux"]["resources"]["memory"], json!({"limit": 67108864, "reservation": 33554432, "swap": -1, "swappiness": 10, "disableOOMKiller": false}));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("memory", "1m")], "Minimum memory limit allowed is 6MB"),
        (&[("memory-swap", "1g")], "You should always set the Memory limit when using Memoryswap limit, see usage"),
        (&[("memory", "1g"), ("memory-swap", "512m")], "Minimum memoryswap limit should be larger than memory limit, see usage"),
        (&[("memory-reservation", "1m")], "Minimum memory reservation allowed is 6MB"),
        (&[("memory", "64m"), ("memory-reservation", "128m")], "Minimum memory limit can not be less than memory reservation limit, see usage"),
        (&[("memory-swappiness", "101")], "invalid value: 101. Valid memory swappiness range is 0-100"),
    ];
    for (a, want) in cases {
        let e = err(with_ann(fixture("ctr_default"), a), &FakeHost::default());
        assert!(e.ends_with(want), "{a:?}: {e}");
    }
}

#[test]
fn cg_5_cpu_rules_and_cpu_1_nano_cpus() {
    let f = ctr(&[("cpus", "1.5"), ("cpu-shares", "512"), ("cpuset-cpus", "0-1")]);
    assert_eq!(f.spec["linux"]["resources"]["cpu"], json!({"period": 100000, "quota": 150000, "shares": 512, "cpus": "0-1"}));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("cpus", "1"), ("cpu-period", "50000")], "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
        (&[("cpus", "1"), ("cpu-quota", "50000")], "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
        (&[("cpus", "3")], "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        (&[("cpu-period", "10")], "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
        (&[("cpu-quota", "10")], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (&[("cpu-shares", "-1")], "invalid CPU shares (-1): value must be a positive integer"),
        (&[("cpuset-cpus", "0-7")], "Requested CPUs are not available - requested 0-7, available: 0-1"),
        (&[("cpuset-mems", "x")], "Invalid value x for cpuset mems: invalid format: x"),
        (&[("cpu-rt-period", "1000"), ("cpu-rt-runtime", "2000")], "cpu real-time runtime cannot be higher than cpu real-time period"),
        (&[("blkio-weight", "5")], "Range of blkio weight is from 10 to 1000"),
    ];
    for (a, want) in cases {
        let e = err(with_ann(fixture("ctr_default"), a), &FakeHost::default());
        assert!(e.ends_with(want), "{a:?}: {e}");
    }
}

#[test]
fn pid_1_pids_limit() {
    assert_eq!(ctr(&[("pids-limit", "100")]).spec["linux"]["resources"]["pids"], json!({"limit": 100}));
    assert!(ctr(&[("pids-limit", "0")]).spec["linux"]["resources"].get("pids").is_none());
}

#[test]
fn cg_9_resources_merged_not_replaced_in_explicit_mode() {
    let mut s = fixture("nerdctl_default");
    s["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 1}]);
    s["linux"]["resources"]["memory"] = json!({"limit": 1073741824, "swap": 1073741824});
    let f = run(with_ann(s, &[("memory-swappiness", "0")]), &FakeHost::default()).unwrap();
    assert_eq!(f.spec["linux"]["resources"]["memory"], json!({"limit": 1073741824, "swap": 1073741824, "swappiness": 0}));
    assert!(f.spec["linux"]["resources"].get("hugepageLimits").is_some());
}

// ---- DV ----

#[test]
fn dv_3_device_mapping_and_errors() {
    let mut h = FakeHost::default();
    h.devices.push(FakeHost::chardev("/dev/fuse", 10, 229));
    h.devices.push(FakeHost::chardev("/dev/snd/timer", 116, 33));
    h.devices.push(FakeHost::chardev("/dev/snd/seq", 116, 1));
    let f = run(with_ann(fixture("ctr_default"), &[("devices", "[\"/dev/fuse:/dev/f:rw\",\"/dev/snd:/dev/sound\"]")]), &h).unwrap();
    let devs = f.spec["linux"]["devices"].as_array().unwrap();
    assert_eq!(devs[0]["path"], "/dev/f");
    assert_eq!(devs.len(), 3);
    assert!(devs.iter().any(|d| d["path"] == "/dev/sound/timer"));
    let rules = f.spec["linux"]["resources"]["devices"].as_array().unwrap();
    assert!(rules.contains(&json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"})));
    let e = err(with_ann(fixture("ctr_default"), &[("devices", "/dev/nope")]), &h);
    assert_eq!(e, "annotation \"io.containerd.dockerish/devices\": error gathering device information while adding custom device \"/dev/nope\": lstat /dev/nope: no such file or directory");
    h.paths.insert("/etc".into());
    let e = err(with_ann(fixture("ctr_default"), &[("devices", "/etc")]), &h);
    assert!(e.ends_with("custom device \"/etc\": not a device node"), "{e}");
}

#[test]
fn dv_5_cgroup_rules_ignored_when_privileged() {
    let f = ctr(&[("device-cgroup-rules", "[\"c 42:* rmw\",\"b *:* m\"]")]);
    let rules = f.spec["linux"]["resources"]["devices"].as_array().unwrap();
    assert!(rules.contains(&json!({"allow": true, "type": "c", "major": 42, "minor": -1, "access": "rmw"})));
    assert_eq!(rules.len(), 10);
    let f = ctr(&[("device-cgroup-rules", "c 42:* rmw"), ("privileged", "true")]);
    let rules = f.spec["linux"]["resources"]["devices"].as_array().unwrap();
    assert!(!rules.iter().any(|r| r["major"] == 42));
}

#[test]
fn dv_6_and_pv_1_privileged_annotation() {
    let mut h = FakeHost::default();
    h.devices.push(FakeHost::chardev("/dev/kmsg", 1, 11));
    let f = run(with_ann(fixture("ctr_default"), &[("privileged", "true")]), &h).unwrap();
    let s = &f.spec;
    assert_eq!(s["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 41, "CP-3 all caps");
    assert!(s["linux"]["devices"].as_array().unwrap().iter().any(|d| d["path"] == "/dev/kmsg"));
    assert_eq!(s["linux"]["resources"]["devices"].as_array().unwrap().last().unwrap(), &json!({"allow": true, "access": "rwm"}));
    assert!(s["linux"].get("seccomp").is_none(), "SC-1 privileged → none");
    assert!(s["linux"].get("maskedPaths").is_none() && s["linux"].get("readonlyPaths").is_none(), "MP-4");
    assert_eq!(mount(s, "/sys").unwrap()["options"], json!(["nosuid", "noexec", "nodev"]));
    assert_eq!(mount(s, "/sys/fs/cgroup").unwrap()["options"], json!(["nosuid", "noexec", "nodev"]), "MT-11");
    assert_eq!(s["process"]["noNewPrivileges"], false, "PV-2: NNP follows the daemon default");
}

#[test]
fn pv_1_ctr_privileged_spec_stays_privileged() {
    let f = run(fixture("ctr_privileged"), &FakeHost::default()).unwrap();
    let s = &f.spec;
    assert!(s["linux"].get("maskedPaths").is_none(), "not re-masked");
    assert!(s["linux"].get("seccomp").is_none());
    assert!(s["linux"]["resources"]["devices"].as_array().unwrap().contains(&json!({"allow": true, "access": "rwm"})));
    assert_eq!(s["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 41);
}

#[test]
fn mp_2_explicit_lists_after_privileged_and_mp_3_systempaths() {
    let f = ctr(&[("privileged", "true"), ("masked-paths", "[\"/proc/kcore\"]")]);
    assert_eq!(f.spec["linux"]["maskedPaths"], json!(["/proc/kcore"]));
    assert!(f.spec["linux"].get("readonlyPaths").is_none());
    let f = ctr(&[("security-opt", "systempaths=unconfined")]);
    assert_eq!((f.spec["linux"]["maskedPaths"].clone(), f.spec["linux"]["readonlyPaths"].clone()), (json!([]), json!([])));
    let mut s = fixture("cri_container");
    s["annotations"]["io.containerd.dockerish/masked-paths"] = json!("/x");
    let mut cfg = DaemonConfig::default();
    cfg.annotation_policy.insert("cri".into(), AnnotationPolicy::All);
    let e = run_cfg(s, &cfg, &FakeHost::default()).unwrap_err().to_string();
    assert!(e.contains("not supported for CRI containers"), "{e}");
}

#[test]
fn mp_1_thermal_throttle_paths() {
    let mut h = FakeHost::default();
    h.thermal_cpus = vec![1];
    let f = run(fixture("ctr_default"), &h).unwrap();
    let m = f.spec["linux"]["maskedPaths"].as_array().unwrap();
    assert_eq!(m.last().unwrap(), "/sys/devices/system/cpu/cpu1/thermal_throttle");
    assert_eq!(m.len(), 13);
}

// ---- RL ----

#[test]
fn rl_1_fill_replaces_explicit_merges() {
    let mut cfg = DaemonConfig::from_json(r#"{"default-ulimits":{"nproc":{"Name":"nproc","Soft":100,"Hard":200},"nofile":{"Name":"nofile","Soft":1,"Hard":2}}}"#).unwrap();
    let f = run_cfg(with_ann(fixture("ctr_default"), &[("ulimits", "nofile=10:20")]), &cfg, &FakeHost::default()).unwrap();
    let r = f.spec["process"]["rlimits"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert!(r.contains(&json!({"type": "RLIMIT_NOFILE", "hard": 20, "soft": 10})));
    assert!(r.contains(&json!({"type": "RLIMIT_NPROC", "hard": 200, "soft": 100})));
    cfg.default_ulimits.clear();
    let mut s = fixture("nerdctl_default");
    s["process"]["rlimits"] = json!([{"type": "RLIMIT_NPROC", "hard": 5, "soft": 5}]);
    let f = run_cfg(with_ann(s, &[("ulimits", "[\"core=-1\"]")]), &cfg, &FakeHost::default()).unwrap();
    assert_eq!(f.spec["process"]["rlimits"], json!([{"type": "RLIMIT_NPROC", "hard": 5, "soft": 5}, {"type": "RLIMIT_CORE", "hard": u64::MAX, "soft": u64::MAX}]));
}

// ---- US ----

#[test]
fn us_1_us_2_us_3_user_resolution() {
    let mut h = FakeHost::default();
    h.rootfs.insert("/etc/passwd".into(), b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n".to_vec());
    h.rootfs.insert("/etc/group".into(), b"root:x:0:\nwheel:x:10:app\naudio:x:29:\napp:x:1000:\n".to_vec());
    let f = run(with_ann(fixture("ctr_default"), &[("user", "app"), ("group-add", "[\"audio\",\"4000\"]")]), &h).unwrap();
    assert_eq!(f.spec["process"]["user"], json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 29, 4000]}));
    let e = err(with_ann(fixture("ctr_default"), &[("user", "ghost")]), &h);
    assert_eq!(e, "annotation \"io.containerd.dockerish/user\": unable to find user ghost: no matching entries in passwd file");
    let e = err(with_ann(fixture("ctr_default"), &[("group-add", "nogroup")]), &h);
    assert!(e.ends_with("unable to find group nogroup: no matching entries in group file"));
    // no passwd in the rootfs: numeric IDs still work
    let f = run(with_ann(fixture("ctr_default"), &[("user", "5:6")]), &FakeHost::default()).unwrap();
    assert_eq!(f.spec["process"]["user"], json!({"uid": 5, "gid": 6, "additionalGids": [6]}));
}

// ---- NS ----

fn donor(id: &str, running: bool, shm: Option<&str>) -> SiblingTask {
    SiblingTask { id: id.into(), pid: if running { 4321 } else { 0 }, running, shm_path: shm.map(str::to_string), ..Default::default() }
}

#[test]
fn ns_2_network_modes_for_ctr() {
    let mut h = FakeHost::default();
    h.siblings.push(donor("db", true, None));
    let f = run(with_ann(fixture("ctr_default"), &[("network", "host")]), &h).unwrap();
    assert!(!ns_types(&f.spec).contains(&"network".into()));
    assert_eq!(f.spec["hostname"], "fakehost", "GEN-3: host network gets the host's name");
    assert!(f.spec["process"]["env"].as_array().unwrap().contains(&json!("HOSTNAME=fakehost")), "GEN-1");
    assert!(f.spec["linux"]["sysctl"].get("net.ipv4.ping_group_range").is_none(), "SY-1 only for private netns");
    let f = run(with_ann(fixture("ctr_default"), &[("network", "container:db")]), &h).unwrap();
    let n = f.spec["linux"]["namespaces"].as_array().unwrap().iter().find(|n| n["type"] == "network").unwrap().clone();
    assert_eq!(n["path"], "/proc/4321/ns/net");
    let e = err(with_ann(fixture("ctr_default"), &[("network", "container:nope")]), &h);
    assert!(e.ends_with("joining network namespace of container: No such container: nope"), "{e}");
    let e = err(with_ann(fixture("nerdctl_default"), &[("network", "host")]), &h);
    assert!(e.contains("not supported for nerdctl containers"), "{e}");
}

#[test]
fn ns_3_ipc_join_requires_shareable_donor() {
    let mut h = FakeHost::default();
    h.siblings.push(donor("shared1", true, Some("/run/b/shared1/shm")));
    h.siblings.push(donor("private1", true, None));
    h.siblings.push(donor("stopped1", false, Some("/x")));
    let f = run(with_ann(fixture("ctr_default"), &[("ipc", "container:shared1")]), &h).unwrap();
    assert_eq!(mount(&f.spec, "/dev/shm").unwrap()["source"], "/run/b/shared1/shm");
    assert!(f.spec["linux"]["namespaces"].as_array().unwrap().contains(&json!({"type": "ipc", "path": "/proc/4321/ns/ipc"})));
    let e = err(with_ann(fixture("ctr_default"), &[("ipc", "container:private1")]), &h);
    assert!(e.ends_with("failed to join IPC namespace: container private1: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"), "{e}");
    let e = err(with_ann(fixture("ctr_default"), &[("ipc", "container:stopped1")]), &h);
    assert!(e.ends_with("failed to join IPC namespace: container stopped1 is not running"), "{e}");
    let e = err(with_ann(fixture("ctr_default"), &[("ipc", "container:test")]), &{
        let mut h = h.clone();
        h.siblings.push(donor("test", true, Some("/x")));
        h
    });
    assert!(e.ends_with("cannot join own IPC namespace"), "{e}");
}

#[test]
fn ns_4_pid_modes_and_ns_10_prefix() {
    let mut h = FakeHost::default();
    h.siblings.push(donor("abc123", true, None));
    h.siblings.push(donor("abc456", true, None));
    let f = run(with_ann(fixture("ctr_default"), &[("pid", "container:abc1")]), &h).unwrap();
    assert!(f.spec["linux"]["namespaces"].as_array().unwrap().contains(&json!({"type": "pid", "path": "/proc/4321/ns/pid"})));
    let e = err(with_ann(fixture("ctr_default"), &[("pid", "container:abc")]), &h);
    assert!(e.ends_with("multiple IDs found with provided prefix: abc"), "{e}");
    let f = run(with_ann(fixture("ctr_default"), &[("pid", "host")]), &h).unwrap();
    assert!(!ns_types(&f.spec).contains(&"pid".into()));
}

#[test]
fn ns_10_cri_joins_stay_in_the_sandbox() {
    let mut h = FakeHost::default();
    let mut t = donor("other", true, Some("/x"));
    t.sandbox_id = Some("different-pod".into());
    h.siblings.push(t);
    let mut cfg = DaemonConfig::default();
    cfg.annotation_policy.insert("cri".into(), AnnotationPolicy::All);
    let mut s = fixture("cri_container");
    s["annotations"]["io.containerd.dockerish/pid"] = json!("container:other");
    let e = run_cfg(s, &cfg, &h).unwrap_err().to_string();
    assert!(e.ends_with("No such container: other"), "{e}");
}

#[test]
fn ns_5_uts_host_and_conflict() {
    let mut s = fixture("ctr_default");
    s["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]);
    let f = run(with_ann(s.clone(), &[("uts", "host")]), &FakeHost::default()).unwrap();
    assert!(!ns_types(&f.spec).contains(&"uts".into()));
    assert!(f.spec.get("hostname").is_none());
    s["hostname"] = json!("box");
    let e = err(with_ann(s, &[("uts", "host")]), &FakeHost::default());
    assert!(e.ends_with("conflicting options: hostname and the UTS mode"));
}

#[test]
fn ns_6_cgroupns_default_and_explicit() {
    let f = ctr(&[("cgroupns", "private")]);
    assert!(ns_types(&f.spec).contains(&"cgroup".into()));
    let cfg = DaemonConfig::from_json(r#"{"default-cgroupns-mode":"private"}"#).unwrap();
    let f = run_cfg(fixture("ctr_default"), &cfg, &FakeHost::default()).unwrap();
    assert!(ns_types(&f.spec).contains(&"cgroup".into()));
    // privileged on v1 → host even with a private default
    let f = run_cfg(with_ann(fixture("ctr_default"), &[("privileged", "true")]), &cfg, &FakeHost::default()).unwrap();
    assert!(!ns_types(&f.spec).contains(&"cgroup".into()));
}

#[test]
fn ns_7_time_namespace_gated_on_runc_features() {
    let mut h = FakeHost::default();
    assert!(!ns_types(&run(fixture("ctr_default"), &h).unwrap().spec).contains(&"time".into()));
    h.runc_features = Some(json!({"linux": {"namespaces": ["time", "pid"]}}));
    assert!(ns_types(&run(fixture("ctr_default"), &h).unwrap().spec).contains(&"time".into()));
    let cfg = DaemonConfig::from_json(r#"{"features":{"time-namespaces":false}}"#).unwrap();
    assert!(!ns_types(&run_cfg(fixture("ctr_default"), &cfg, &h).unwrap().spec).contains(&"time".into()));
    h.time_ns = false;
    assert!(!ns_types(&run(fixture("ctr_default"), &h).unwrap().spec).contains(&"time".into()));
}

#[test]
fn ns_1_userns_remap_and_ns_11_conflicts() {
    let mut h = FakeHost::default();
    h.host_files.insert(HostFile::Passwd, "root:x:0:0::/:/bin/sh\ndockremap:x:999:999::/:/bin/false\n".into());
    h.host_files.insert(HostFile::Group, "root:x:0:\ndockremap:x:999:\n".into());
    h.host_files.insert(HostFile::Subuid, "dockremap:100000:65536\n999:300000:10\n".into());
    h.host_files.insert(HostFile::Subgid, "dockremap:200000:65536\n".into());
    let cfg = DaemonConfig::from_json(r#"{"userns-remap":"default"}"#).unwrap();
    let f = run_cfg(fixture("ctr_default"), &cfg, &h).unwrap();
    assert!(ns_types(&f.spec).contains(&"user".into()));
    assert_eq!(f.spec["linux"]["uidMappings"], json!([{"containerID": 0, "hostID": 100000, "size": 65536}, {"containerID": 65536, "hostID": 300000, "size": 10}]));
    assert!(f.spec["linux"]["sysctl"].get("net.ipv4.ping_group_range").is_none(), "SY-1 no ping with userns");
    assert!(!mount(&f.spec, "/sys/fs/cgroup").unwrap()["options"].as_array().unwrap().contains(&json!("ro")), "MT-11");
    let e = run_cfg(with_ann(fixture("ctr_default"), &[("privileged", "true")]), &cfg, &h).unwrap_err().to_string();
    assert!(e.ends_with("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode"));
    let e = run_cfg(with_ann(fixture("ctr_default"), &[("pid", "host")]), &cfg, &h).unwrap_err().to_string();
    assert!(e.ends_with("cannot share the host PID namespace when user namespaces are enabled"));
    let f = run_cfg(with_ann(fixture("ctr_default"), &[("userns", "host")]), &cfg, &h).unwrap();
    assert!(!ns_types(&f.spec).contains(&"user".into()));
}

// ---- CP / SC ----

#[test]
fn cp_3_tweak_from_docker_defaults_in_fill_and_from_spec_in_explicit() {
    let f = ctr(&[("cap-add", "[\"NET_ADMIN\"]"), ("cap-drop", "[\"MKNOD\"]")]);
    let b = f.spec["process"]["capabilities"]["bounding"].as_array().unwrap();
    assert_eq!(b.len(), 14);
    assert_eq!(b.last().unwrap(), "CAP_NET_ADMIN");
    assert!(!b.contains(&json!("CAP_MKNOD")));
    assert_eq!(f.spec["process"]["capabilities"]["effective"], f.spec["process"]["capabilities"]["bounding"]);
    let f = ctr(&[("cap-drop", "ALL"), ("cap-add", "CHOWN")]);
    assert_eq!(f.spec["process"]["capabilities"]["bounding"], json!(["CAP_CHOWN"]));
    let mut h = FakeHost::default();
    h.caps.retain(|c| c != "CAP_BPF");
    let e = err(with_ann(fixture("ctr_default"), &[("cap-add", "BPF")]), &h);
    assert!(e.ends_with("invalid CapAdd: capability not supported by your kernel or not available in the current environment: \"CAP_BPF\""), "{e}");
    // explicit mode: from the producer's set, no duplicates
    let f = run(with_ann(fixture("nerdctl_default"), &[("cap-add", "CHOWN")]), &FakeHost::default()).unwrap();
    assert_eq!(f.spec["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
}

#[test]
fn sc_1_profile_choice() {
    // seccomp after capabilities: CAP_SYS_ADMIN unlocks mount
    let f = ctr(&[("cap-add", "SYS_ADMIN")]);
    let names: Vec<&Value> = f.spec["linux"]["seccomp"]["syscalls"].as_array().unwrap().iter().flat_map(|s| s["names"].as_array().unwrap()).collect();
    assert!(names.contains(&&json!("mount")));
    assert!(ctr(&[("security-opt", "seccomp=unconfined")]).spec["linux"].get("seccomp").is_none());
    let f = ctr(&[("privileged", "true"), ("security-opt", "seccomp=builtin")]);
    assert!(f.spec["linux"].get("seccomp").is_some(), "SC-1 step 2: builtin = default (documented divergence)");
    let f = ctr(&[("security-opt", "[\"seccomp={\\\"defaultAction\\\":\\\"SCMP_ACT_LOG\\\"}\"]")]);
    assert_eq!(f.spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
    let cfg = DaemonConfig::from_json(r#"{"seccomp-profile":"unconfined"}"#).unwrap();
    assert!(run_cfg(fixture("ctr_default"), &cfg, &FakeHost::default()).unwrap().spec["linux"].get("seccomp").is_none());
    let mut h = FakeHost::default();
    h.config_files.insert("/etc/containerd-shim-dockerish/seccomp/log.json".into(), "{\"defaultAction\":\"SCMP_ACT_LOG\"}".into());
    let f = run(with_ann(fixture("ctr_default"), &[("security-opt", "seccomp=file:log.json")]), &h).unwrap();
    assert_eq!(f.spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
    let e = err(with_ann(fixture("ctr_default"), &[("security-opt", "seccomp=file:../../etc/shadow")]), &h);
    assert!(e.contains("must be a file name under seccomp-profile-root"), "{e}");
    let e = err(with_ann(fixture("ctr_default"), &[("security-opt", "seccomp={bad")]), &h);
    assert!(e.contains("Decoding seccomp profile failed"), "{e}");
    // explicit mode keeps nerdctl's own profile unless asked
    let f = run(fixture("nerdctl_default"), &FakeHost::default()).unwrap();
    assert_eq!(f.spec["linux"]["seccomp"], fixture("nerdctl_default")["linux"]["seccomp"]);
}

// ---- MT / IPC / RO ----

#[test]
fn mt_4_tmpfs_replaces_default_and_mt_12_duplicates() {
    let f = ctr(&[("tmpfs", "[\"/run:exec,size=1g\",\"/tmp\"]")]);
    assert_eq!(mount(&f.spec, "/run").unwrap(), &json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "rprivate", "exec", "size=1g"]}));
    let e = err(with_ann(fixture("nerdctl_default"), &[("tmpfs", "/etc/hosts")]), &FakeHost::default());
    assert!(e.ends_with("Duplicate mount point: /etc/hosts"), "{e}");
    // MT-2: a /dev tmpfs drops the base mounts under /dev/
    let f = ctr(&[("tmpfs", "/dev")]);
    assert!(mount(&f.spec, "/dev/pts").is_none() && mount(&f.spec, "/dev/shm").is_none());
}

#[test]
fn mt_3_user_mounts_sorted_by_depth() {
    let f = ctr(&[("tmpfs", "[\"/a/b/c\",\"/a\",\"/x/y\"]")]);
    let dests: Vec<&str> = f.spec["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
    let pos = |d: &str| dests.iter().position(|x| *x == d).unwrap();
    assert!(pos("/a") < pos("/x/y") && pos("/x/y") < pos("/a/b/c"));
}

#[test]
fn mt_7_propagation_checks_source_mount() {
    let bind = |src: &str, prop: &str| {
        let mut s = fixture("ctr_default");
        s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", prop]}));
        s
    };
    let h = FakeHost::default();
    let f = run(bind("/var/lib/x", "rshared"), &h).unwrap();
    assert_eq!(f.spec["linux"]["rootfsPropagation"], "shared");
    let f = run(bind("/srv/slave/d", "rslave"), &h).unwrap();
    assert_eq!(f.spec["linux"]["rootfsPropagation"], "rslave");
    assert_eq!(err(bind("/srv/private/d", "rshared"), &h), "path /srv/private/d is mounted on /srv/private but it is not a shared mount");
    assert_eq!(err(bind("/srv/private/d", "rslave"), &h), "path /srv/private/d is mounted on /srv/private but it is not a shared or slave mount");
    assert_eq!(err(bind("/srv/slave/d", "shared"), &h), "path /srv/slave/d is mounted on /srv/slave but it is not a shared mount");
    // symlinks are resolved before the lookup
    let mut h2 = h.clone();
    h2.links.insert("/link".into(), "/srv/private/d".into());
    assert!(err(bind("/link", "rshared"), &h2).starts_with("path /link is mounted on /srv/private"));
    assert!(run(bind("/srv/private/d", "rprivate"), &h).is_ok());
}

#[test]
fn mt_8_rro_when_kernel_and_runc_support_it() {
    let mut s = fixture("ctr_default");
    s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]}));
    let f = run(s.clone(), &FakeHost::default()).unwrap();
    assert_eq!(mount(&f.spec, "/data").unwrap()["options"], json!(["rbind", "rro", "rprivate"]));
    let mut h = FakeHost::default();
    h.kernel = Some((5, 10));
    assert_eq!(mount(&run(s, &h).unwrap().spec, "/data").unwrap()["options"], json!(["rbind", "ro", "rprivate"]));
}

#[test]
fn ipc_4_shareable_creates_action_and_bind() {
    let f = ctr(&[("ipc", "shareable"), ("shm-size", "1m")]);
    let dir = "/run/containerd/io.containerd.runtime.v2.task/default/test/shm";
    assert_eq!(shm_actions(&f), vec![HostAction::ShmTmpfs { path: dir.into(), size: 1048576 }]);
    assert_eq!(mount(&f.spec, "/dev/shm").unwrap(), &json!({"destination": "/dev/shm", "type": "bind", "source": dir, "options": ["rbind", "rprivate"]}));
    let cfg = DaemonConfig::from_json(r#"{"default-ipc-mode":"shareable","shm-root":"/run/dockerish"}"#).unwrap();
    let f = run_cfg(fixture("ctr_default"), &cfg, &FakeHost::default()).unwrap();
    assert_eq!(shm_actions(&f), vec![HostAction::ShmTmpfs { path: "/run/dockerish/default/test/shm".into(), size: 67108864 }]);
}

#[test]
fn ipc_3_none_ipc_6_host_ipc_8_user_mount_wins() {
    let f = ctr(&[("ipc", "none")]);
    assert!(mount(&f.spec, "/dev/shm").is_none());
    assert!(ns_types(&f.spec).contains(&"ipc".into()));
    let f = ctr(&[("ipc", "host")]);
    assert_eq!(mount(&f.spec, "/dev/shm").unwrap()["source"], "/dev/shm");
    assert!(!ns_types(&f.spec).contains(&"ipc".into()));
    let mut h = FakeHost::default();
    h.mountinfo.retain(|m| m.mount_point() != "/dev/shm");
    let e = err(with_ann(fixture("ctr_default"), &[("ipc", "host")]), &h);
    assert!(e.ends_with("/dev/shm is not mounted, but must be for --ipc=host"));
    let f = ctr(&[("ipc", "shareable"), ("tmpfs", "/dev/shm:size=2m")]);
    assert!(shm_actions(&f).is_empty());
    assert_eq!(mount(&f.spec, "/dev/shm").unwrap()["source"], "tmpfs");
}

#[test]
fn ipc_2_shm_size_explicit_on_nerdctl() {
    let f = run(with_ann(fixture("nerdctl_default"), &[("shm-size", "128m")]), &FakeHost::default()).unwrap();
    let o = mount(&f.spec, "/dev/shm").unwrap()["options"].as_array().unwrap().clone();
    assert!(o.contains(&json!("size=134217728")) && !o.contains(&json!("size=65536k")));
}

#[test]
fn ro_1_read_only_rootfs() {
    let f = ctr(&[("read-only", "true"), ("tmpfs", "/tmp")]);
    assert_eq!(f.spec["root"]["readonly"], true);
    assert!(!mount(&f.spec, "/proc").unwrap()["options"].as_array().unwrap().contains(&json!("ro")));
    assert!(!mount(&f.spec, "/dev/shm").unwrap()["options"].as_array().unwrap().contains(&json!("ro")));
    assert!(!mount(&f.spec, "/tmp").unwrap()["options"].as_array().unwrap().contains(&json!("ro")), "user tmpfs keeps its mode");
    // privileged + read-only: /sys ends rw (PV-1 after RO-1)
    let f = ctr(&[("read-only", "true"), ("privileged", "true")]);
    assert!(!mount(&f.spec, "/sys").unwrap()["options"].as_array().unwrap().contains(&json!("ro")));
}

#[test]
fn ro_1_read_only_keeps_user_tmpfs_at_run_writable() {
    // `--read-only --tmpfs /run`: the user's /run looks like containerd's base /run tmpfs by
    // (destination, type) but is a user mount: RO-1 must not make it ro.
    let f = ctr(&[("read-only", "true"), ("tmpfs", "[\"/run:exec\",\"/tmp\"]")]);
    let run = mount(&f.spec, "/run").expect("/run tmpfs");
    let o = run["options"].as_array().unwrap();
    assert!(!o.contains(&json!("ro")), "user /run tmpfs became ro: {run}");
    assert!(o.contains(&json!("exec")) && !o.contains(&json!("noexec")), "{run}");
    assert!(mount(&f.spec, "/sys").unwrap()["options"].as_array().unwrap().contains(&json!("ro")));
    // MT-3: user mounts after the base ones, by depth.
    let dests: Vec<&str> = f.spec["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
    assert_eq!(&dests[dests.len() - 5..], ["/run", "/tmp", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"], "{dests:?}");
}

#[test]
fn init_1_docker_init() {
    let mut h = FakeHost::default();
    h.paths.insert("/usr/libexec/docker/docker-init".into());
    let f = run(with_ann(fixture("ctr_default"), &[("init", "true")]), &h).unwrap();
    assert_eq!(f.spec["process"]["args"], json!(["/sbin/docker-init", "--", "sh"]));
    assert_eq!(mount(&f.spec, "/sbin/docker-init").unwrap()["source"], "/usr/libexec/docker/docker-init");
    let e = err(with_ann(fixture("ctr_default"), &[("init", "true")]), &FakeHost::default());
    assert!(e.ends_with("exec: \"docker-init\": executable file not found in $PATH"), "{e}");
    // host pid → no init
    let f = run(with_ann(fixture("ctr_default"), &[("init", "true"), ("pid", "host")]), &h).unwrap();
    assert_eq!(f.spec["process"]["args"], json!(["sh"]));
}

// ---- AA / OOM / NNP / SY ----

#[test]
fn aa_1_apparmor_only_when_host_has_it() {
    let mut h = FakeHost::default();
    assert!(run(with_ann(fixture("ctr_default"), &[("security-opt", "apparmor=foo")]), &h).unwrap().spec["process"].get("apparmorProfile").is_none());
    h.apparmor = true;
    let f = run(fixture("ctr_default"), &h).unwrap();
    assert!(f.spec["process"].get("apparmorProfile").is_none(), "AA-2 not loaded → not set");
    assert!(rules(&f).contains(&"AA-2"));
    h.apparmor_loaded.insert("docker-default".into());
    assert_eq!(run(fixture("ctr_default"), &h).unwrap().spec["process"]["apparmorProfile"], "docker-default");
    assert_eq!(run(with_ann(fixture("ctr_default"), &[("privileged", "true")]), &h).unwrap().spec["process"]["apparmorProfile"], "unconfined");
    assert_eq!(run(with_ann(fixture("ctr_default"), &[("security-opt", "apparmor=custom")]), &h).unwrap().spec["process"]["apparmorProfile"], "custom");
}

#[test]
fn oom_1_and_nnp_1() {
    assert_eq!(ctr(&[("oom-score-adj", "-500")]).spec["process"]["oomScoreAdj"], -500);
    assert_eq!(ctr(&[("security-opt", "no-new-privileges")]).spec["process"]["noNewPrivileges"], true);
    let cfg = DaemonConfig::from_json(r#"{"no-new-privileges":true}"#).unwrap();
    assert_eq!(run_cfg(fixture("ctr_default"), &cfg, &FakeHost::default()).unwrap().spec["process"]["noNewPrivileges"], true);
    assert_eq!(run_cfg(with_ann(fixture("ctr_default"), &[("security-opt", "no-new-privileges=false")]), &cfg, &FakeHost::default()).unwrap().spec["process"]["noNewPrivileges"], false);
}

#[test]
fn sy_3_user_sysctls_win_and_sy_5_namespace_checks() {
    let f = ctr(&[("sysctls", "{\"net.ipv4.ip_unprivileged_port_start\":\"1024\"}"), ("domainname", "example.org")]);
    assert_eq!(f.spec["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"], "1024");
    assert_eq!(f.spec["linux"]["sysctl"]["kernel.domainname"], "example.org");
    let e = err(with_ann(fixture("ctr_default"), &[("sysctls", "net.core.somaxconn=1"), ("network", "host")]), &FakeHost::default());
    assert!(e.ends_with("sysctl \"net.core.somaxconn\" not allowed in host network namespace"), "{e}");
    let e = err(with_ann(fixture("ctr_default"), &[("sysctls", "kernel.shmmax=1"), ("ipc", "host")]), &FakeHost::default());
    assert!(e.ends_with("sysctl \"kernel.shmmax\" is not allowed in the hosts ipc namespace"), "{e}");
}

#[test]
fn hostconfig_annotation_applies_docker_fields() {
    let f = ctr(&[("hostconfig", "{\"Memory\": 67108864, \"CapAdd\": [\"NET_ADMIN\"], \"Tmpfs\": {\"/scratch\": \"size=1m\"}, \"PidsLimit\": 50}")]);
    assert_eq!(f.spec["linux"]["resources"]["memory"]["limit"], 67108864);
    assert_eq!(f.spec["linux"]["resources"]["pids"]["limit"], 50);
    assert!(mount(&f.spec, "/scratch").is_some());
    // per-key annotation wins over hostconfig
    let f = ctr(&[("hostconfig", "{\"PidsLimit\": 50}"), ("pids-limit", "7")]);
    assert_eq!(f.spec["linux"]["resources"]["pids"]["limit"], 7);
}

#[test]
fn malformed_specs_are_errors_not_panics() {
    let h = FakeHost::default();
    for bad in [json!([]), json!({"linux": 5}), json!({"process": "x"}), json!({"mounts": {}, "linux": {"namespaces": 3}}), json!({"annotations": {"io.containerd.dockerish/ipc": 5}})] {
        let r = run(bad.clone(), &h);
        // either a clean error or a successful fill; never a panic
        if let Err(e) = r {
            assert!(!e.to_string().is_empty());
        }
    }
    assert!(run(json!({"linux": 5}), &h).unwrap_err().to_string().contains("config.json field \"linux\""));
}

#[test]
fn fill_is_fast() {
    // Realistic bundle + a 300-line mountinfo; budget checked loosely here (debug build), see
    // the report for release timings.
    let mut h = FakeHost::default();
    let mut mi = String::new();
    for i in 0..300 {
        mi.push_str(&format!("{} 22 0:{} / /mnt/m{} rw,relatime shared:{} - tmpfs tmpfs rw\n", 100 + i, 50 + i, i, i));
    }
    h.mountinfo = parse_mountinfo(&mi).unwrap();
    let mut s = fixture("ctr_default");
    s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": "/mnt/m150/x", "options": ["rbind", "rshared"]}));
    let spec = with_ann(s, &[("ulimits", "nofile=1:2"), ("tmpfs", "/tmp"), ("cap-add", "NET_ADMIN")]);
    let n = 200;
    let t = std::time::Instant::now();
    for _ in 0..n {
        run(spec.clone(), &h).unwrap();
    }
    let per = t.elapsed() / n;
    eprintln!("fill: {per:?} per call");
    assert!(per < std::time::Duration::from_millis(20), "{per:?}");
}

/// deploy/dockerish.toml documents every key at its default value: parsing it must give the
/// defaults, and every key the parser knows must appear in it (commented out where a value
/// cannot state the default).
#[test]
fn deploy_example_config_is_complete_and_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dockerish.toml");
    let text = std::fs::read_to_string(path).expect("deploy/dockerish.toml");
    let parsed = dockerish_spec::DaemonConfig::from_toml(&text).expect("example parses");
    assert_eq!(parsed, dockerish_spec::DaemonConfig::default());
    for key in dockerish_spec::CONFIG_KEYS {
        let set = text.lines().any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} =")));
        assert!(set, "deploy/dockerish.toml does not document {key:?}");
    }
}

/// Fields the shim does not know pass through untouched at every level it edits: the document,
/// `process`, `process.user`, `process.capabilities`, `root`, `linux`, `linux.resources` and its
/// `memory`/`cpu`/`pids`/`blockIO`, a mount, a namespace entry, `hooks`, other annotations.
#[test]
fn unknown_fields_pass_through_at_every_level() {
    let mut s = fixture("ctr_default");
    let x = json!({"vendor": ["kept", 1, {"deep": true}]});
    s["x-top"] = x.clone();
    s["hooks"] = json!({"createRuntime": [{"path": "/bin/true", "x-hook": 1}]});
    s["process"]["x-process"] = x.clone();
    s["process"]["user"]["umask"] = json!(18);
    s["process"]["user"]["x-user"] = x.clone();
    s["process"]["capabilities"]["x-caps"] = x.clone();
    s["process"]["capabilities"]["ambient"] = json!(["CAP_CHOWN"]);
    s["root"]["x-root"] = x.clone();
    s["linux"]["x-linux"] = x.clone();
    s["linux"]["intelRdt"] = json!({"closID": "x"});
    s["linux"]["resources"]["x-res"] = x.clone();
    s["linux"]["resources"]["unified"] = json!({"io.max": "8:0 rbps=1"});
    s["linux"]["resources"]["memory"] = json!({"x-mem": 1});
    s["linux"]["resources"]["cpu"] = json!({"x-cpu": 1});
    s["linux"]["resources"]["pids"] = json!({"x-pids": 1});
    s["linux"]["resources"]["blockIO"] = json!({"x-bio": 1});
    s["mounts"][0]["x-mount"] = x.clone();
    s["mounts"][0]["uidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 1}]);
    let mount_ns = s["linux"]["namespaces"].as_array_mut().unwrap().iter_mut().find(|n| n["type"] == "mount").unwrap();
    mount_ns["x-ns"] = x.clone();
    s["annotations"] = json!({"org.example/keep": "yes"});
    let s = with_ann(
        s,
        &[("memory", "64m"), ("cpus", "1"), ("pids-limit", "10"), ("blkio-weight", "100"), ("cap-add", "NET_ADMIN"), ("user", "0"), ("read-only", "true"), ("sysctls", "net.core.somaxconn=1")],
    );
    let f = run(s, &FakeHost::default()).unwrap();
    let o = &f.spec;
    assert_eq!(o["x-top"], x);
    assert_eq!(o["hooks"]["createRuntime"][0]["x-hook"], 1);
    assert_eq!(o["process"]["x-process"], x);
    assert_eq!((o["process"]["user"]["umask"].clone(), o["process"]["user"]["x-user"].clone()), (json!(18), x.clone()));
    assert_eq!(o["process"]["capabilities"]["x-caps"], x);
    assert_eq!(o["process"]["capabilities"]["ambient"], json!(["CAP_CHOWN"]), "CP-4: ambient untouched");
    assert_eq!(o["root"]["x-root"], x);
    assert_eq!(o["linux"]["x-linux"], x);
    assert_eq!(o["linux"]["intelRdt"], json!({"closID": "x"}));
    let r = &o["linux"]["resources"];
    assert_eq!((r["x-res"].clone(), r["unified"].clone()), (x.clone(), json!({"io.max": "8:0 rbps=1"})));
    assert_eq!((r["memory"]["x-mem"].clone(), r["memory"]["limit"].clone()), (json!(1), json!(67108864)));
    assert_eq!((r["cpu"]["x-cpu"].clone(), r["cpu"]["quota"].clone()), (json!(1), json!(100000)));
    assert_eq!((r["pids"]["x-pids"].clone(), r["pids"]["limit"].clone()), (json!(1), json!(10)));
    assert_eq!((r["blockIO"]["x-bio"].clone(), r["blockIO"]["weight"].clone()), (json!(1), json!(100)));
    let proc_mount = mount(o, "/proc").unwrap();
    assert_eq!((proc_mount["x-mount"].clone(), proc_mount["uidMappings"][0]["hostID"].clone()), (x.clone(), json!(1)));
    let mount_ns = o["linux"]["namespaces"].as_array().unwrap().iter().find(|n| n["type"] == "mount").unwrap();
    assert_eq!(mount_ns["x-ns"], x);
    assert_eq!(o["annotations"]["org.example/keep"], "yes");
}

/// MT-11 runs after RO-1 (issue 11 item 1): privileged or `writable-cgroups` with a read-only
/// rootfs ends with a writable cgroup mount, as Docker; `writable-cgroups=false` keeps it ro.
#[test]
fn mt_11_cgroup_mount_rw_after_ro_1() {
    let cg_ro = |f: &Filled| mount(&f.spec, "/sys/fs/cgroup").unwrap()["options"].as_array().unwrap().contains(&json!("ro"));
    let f = ctr(&[("read-only", "true"), ("privileged", "true")]);
    assert!(!cg_ro(&f), "privileged + read-only: {}", mount(&f.spec, "/sys/fs/cgroup").unwrap());
    let f = ctr(&[("read-only", "true"), ("security-opt", "writable-cgroups=true")]);
    assert!(!cg_ro(&f), "writable-cgroups + read-only");
    let f = ctr(&[("read-only", "true"), ("privileged", "true"), ("security-opt", "writable-cgroups=false")]);
    assert!(cg_ro(&f), "writable-cgroups=false wins over privileged");
    assert!(cg_ro(&ctr(&[("read-only", "true")])));
}

// ---- GEN-3, MT-13: the hostname and the files Docker writes (issue 11 items 2 and 3) ----

fn env_of(f: &Filled) -> Vec<String> {
    f.spec["process"]["env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect()
}

/// The content of the EtcFile action for a bundle file name, if any.
fn etc_file(f: &Filled, name: &str) -> Option<String> {
    f.actions.iter().find_map(|a| match a {
        HostAction::EtcFile { path, content, .. } if path.ends_with(&format!("/{name}")) => Some(content.clone()),
        _ => None,
    })
}

fn named_donor(id: &str, hostname: &str, files: &[(&str, &str)]) -> SiblingTask {
    SiblingTask {
        id: id.into(),
        pid: 4321,
        running: true,
        hostname: Some(hostname.into()),
        etc_files: files.iter().map(|(d, s)| (d.to_string(), s.to_string())).collect(),
        ..Default::default()
    }
}

#[test]
fn gen_3_hostname_annotation_sets_hostname_env_and_file() {
    let f = ctr(&[("hostname", "web.example.org")]);
    assert_eq!(f.spec["hostname"], "web.example.org");
    assert!(env_of(&f).contains(&"HOSTNAME=web.example.org".to_string()), "{:?}", env_of(&f));
    assert_eq!(etc_file(&f, "hostname").as_deref(), Some("web.example.org\n"));
    assert!(etc_file(&f, "hosts").unwrap().ends_with("127.0.0.1\tweb.example.org web\n"), "{}", etc_file(&f, "hosts").unwrap());
    // with a domainname: the files carry the FQDN (SY-2 still sets kernel.domainname)
    let f = ctr(&[("hostname", "web"), ("domainname", "example.org")]);
    assert_eq!(etc_file(&f, "hostname").as_deref(), Some("web.example.org\n"));
    let long = "h".repeat(65);
    let e = err(with_ann(fixture("ctr_default"), &[("hostname", &long)]), &FakeHost::default());
    assert_eq!(e, format!("annotation \"io.containerd.dockerish/hostname\": hostname \"{long}\" is too long (maximum 64 bytes)"));
}

#[test]
fn gen_3_hostname_conflicts_with_uts_host_and_container_network() {
    let e = err(with_ann(fixture("ctr_default"), &[("hostname", "web"), ("uts", "host")]), &FakeHost::default());
    assert_eq!(e, "annotation \"io.containerd.dockerish/hostname\": conflicting options: hostname and the UTS mode");
    let mut h = FakeHost::default();
    h.siblings.push(named_donor("db", "dbhost", &[]));
    let e = err(with_ann(fixture("ctr_default"), &[("hostname", "web"), ("network", "container:db")]), &h);
    assert_eq!(e, "annotation \"io.containerd.dockerish/hostname\": conflicting options: hostname and the network mode");
    let e = err(with_ann(fixture("ctr_default"), &[("dns", "1.1.1.1"), ("network", "container:db")]), &h);
    assert_eq!(e, "annotation \"io.containerd.dockerish/dns\": conflicting options: dns and the network mode");
    let e = err(with_ann(fixture("ctr_default"), &[("add-host", "a:1.2.3.4"), ("network", "container:db")]), &h);
    assert_eq!(e, "annotation \"io.containerd.dockerish/add-host\": conflicting options: custom host-to-IP mapping and the network mode");
}

/// `network=container:X`: X's hostname in `hostname` and `HOSTNAME`, X's files bound.
#[test]
fn gen_3_container_network_copies_the_donors_hostname_and_files() {
    let mut h = FakeHost::default();
    let files = [("/etc/hostname", "/b/db/hostname"), ("/etc/hosts", "/b/db/hosts"), ("/etc/resolv.conf", "/b/db/resolv.conf")];
    h.siblings.push(named_donor("db", "dbhost", &files));
    let f = run(with_ann(fixture("ctr_default"), &[("network", "container:db")]), &h).unwrap();
    assert_eq!(f.spec["hostname"], "dbhost");
    assert!(env_of(&f).contains(&"HOSTNAME=dbhost".to_string()));
    for (dest, src) in files {
        assert_eq!(mount(&f.spec, dest).unwrap()["source"], src, "{dest}");
    }
    assert!(f.actions.iter().all(|a| !matches!(a, HostAction::EtcFile { .. })), "{:?}", f.actions);
    // A donor without files of its own (not started by this shim): files written here.
    let mut h = FakeHost::default();
    h.siblings.push(named_donor("db", "dbhost", &[]));
    let f = run(with_ann(fixture("ctr_default"), &[("network", "container:db")]), &h).unwrap();
    assert_eq!(etc_file(&f, "hostname").as_deref(), Some("dbhost\n"));
}

/// Host network and the host's UTS namespace: `HOSTNAME` is always set (GEN-1/GEN-3).
#[test]
fn gen_3_host_network_and_uts_host_always_set_hostname_env() {
    let mut h = FakeHost::default();
    h.host_files.insert(HostFile::Hosts, "127.0.0.1 localhost\n10.1.1.1 fakehost\n".into());
    h.host_files.insert(HostFile::ResolvConf, "nameserver 127.0.0.53\nsearch lan\n".into());
    let f = run(with_ann(fixture("ctr_default"), &[("network", "host"), ("add-host", "db:10.0.0.2")]), &h).unwrap();
    assert_eq!(f.spec["hostname"], "fakehost");
    assert!(env_of(&f).contains(&"HOSTNAME=fakehost".to_string()));
    assert_eq!(etc_file(&f, "hosts").as_deref(), Some("127.0.0.1 localhost\n10.1.1.1 fakehost\n10.0.0.2\tdb\n"), "host network: the host's hosts + add-host");
    assert_eq!(etc_file(&f, "resolv.conf").as_deref(), Some("nameserver 127.0.0.53\nsearch lan\n"), "host network: the host's resolv.conf, loopback kept");
    let mut s = fixture("ctr_default");
    s["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]);
    let f = run(with_ann(s, &[("uts", "host")]), &FakeHost::default()).unwrap();
    assert!(f.spec.get("hostname").is_none(), "NS-5");
    assert!(env_of(&f).contains(&"HOSTNAME=test".to_string()), "Docker's Config.Hostname is the short id: {:?}", env_of(&f));
    assert_eq!(etc_file(&f, "hostname").as_deref(), Some("test\n"));
}

/// MT-13 resolv.conf for a private network namespace: loopback and IPv6 nameservers dropped,
/// Google's when none remain, systemd-resolved's upstream list instead of its stub; `dns`,
/// `dns-search`, `dns-option` replace their part.
#[test]
fn mt_13_resolv_conf_filtering_and_dns_annotations() {
    let mut h = FakeHost::default();
    h.host_files.insert(HostFile::ResolvConf, "# host file\nnameserver 127.0.0.1\nnameserver 10.0.0.53\nnameserver fd00::1\nsearch corp.example\noptions ndots:2\n".into());
    let f = run(fixture("ctr_default"), &h).unwrap();
    assert_eq!(etc_file(&f, "resolv.conf").unwrap(), "# host file\nnameserver 10.0.0.53\nsearch corp.example\noptions ndots:2\n");
    h.host_files.insert(HostFile::ResolvConf, "nameserver 127.0.0.11\nsearch lan\n".into());
    let f = run(fixture("ctr_default"), &h).unwrap();
    assert_eq!(etc_file(&f, "resolv.conf").unwrap(), "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    h.host_files.insert(HostFile::ResolvConf, "nameserver 127.0.0.53\noptions edns0\n".into());
    h.host_files.insert(HostFile::SystemdResolvConf, "nameserver 192.168.1.1\n".into());
    let f = run(fixture("ctr_default"), &h).unwrap();
    assert_eq!(etc_file(&f, "resolv.conf").unwrap(), "nameserver 192.168.1.1\n", "systemd-resolved upstream list");
    let f = run(with_ann(fixture("ctr_default"), &[("dns", "[\"1.1.1.1\",\" 9.9.9.9 \"]"), ("dns-search", "example.com"), ("dns-option", "[\"ndots:3\",\"rotate\"]")]), &h).unwrap();
    assert_eq!(etc_file(&f, "resolv.conf").unwrap(), "search example.com\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions ndots:3 rotate\n");
    let f = run(with_ann(fixture("ctr_default"), &[("dns-search", ".")]), &h).unwrap();
    assert_eq!(etc_file(&f, "resolv.conf").unwrap(), "nameserver 192.168.1.1\n", "dns-search . = no search line; nameservers from the host");
    for (k, v, want) in [("dns", "8.8.8", "IP address is not correctly formatted: 8.8.8"), ("dns-search", "-x.com", "-x.com is not a valid domain"), ("add-host", "db", "bad format for add-host: \"db\"")] {
        let e = err(with_ann(fixture("ctr_default"), &[(k, v)]), &FakeHost::default());
        assert_eq!(e, format!("annotation \"io.containerd.dockerish/{k}\": {want}"));
    }
}

/// MT-13 hosts: localhost lines, add-host entries, the hostname.
#[test]
fn mt_13_hosts_file() {
    let f = ctr(&[("add-host", "[\"db:10.0.0.2\",\"v6=[fd00::2]\"]")]);
    assert_eq!(
        etc_file(&f, "hosts").unwrap(),
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n10.0.0.2\tdb\nfd00::2\tv6\n127.0.0.1\ttest\n"
    );
}

/// MT-13 mounts: bound from the bundle like Docker's (`rbind`, `rprivate`, read-only with a
/// read-only rootfs, then `rro` where supported), owned by the container's root in a user
/// namespace; never over a mount the producer already has (nerdctl, CRI, ctr --net-host).
#[test]
fn mt_13_bind_mounts_and_producers_files_left_alone() {
    let f = ctr(&[]);
    let bundle = FakeHost::default().bundle;
    assert_eq!(mount(&f.spec, "/etc/hosts").unwrap(), &json!({"destination": "/etc/hosts", "type": "bind", "source": format!("{bundle}/etc/hosts"), "options": ["rbind", "rprivate"]}));
    let f = ctr(&[("read-only", "true")]);
    assert_eq!(mount(&f.spec, "/etc/resolv.conf").unwrap()["options"], json!(["rbind", "rro", "rprivate"]));
    let mut s = fixture("ctr_default");
    s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let f = run(s, &FakeHost::default()).unwrap();
    assert!(f.actions.iter().filter(|a| !matches!(a, HostAction::Claim { .. })).all(|a| matches!(a, HostAction::EtcFile { uid: 100000, gid: 200000, .. })), "{:?}", f.actions);
    // nerdctl provides its own files: nothing written even in fill mode
    let cfg = DaemonConfig::from_json(r#"{"policy":{"nerdctl":"fill"}}"#).unwrap();
    let f = run_cfg(fixture("nerdctl_default"), &cfg, &FakeHost::default()).unwrap();
    assert!(f.actions.iter().all(|a| !matches!(a, HostAction::EtcFile { .. })));
    assert_eq!(mount(&f.spec, "/etc/hosts").unwrap()["source"], fixture("nerdctl_default")["mounts"][7]["source"]);
    let e = err(with_ann(fixture("nerdctl_default"), &[("dns", "1.1.1.1")]), &FakeHost::default());
    assert!(e.contains("not supported for nerdctl containers: the client writes /etc/hostname"), "{e}");
    // ctr --net-host binds the host's resolv.conf: kept, and a dns annotation cannot apply
    let mut s = fixture("ctr_default");
    s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf", "options": ["rbind", "ro"]}));
    let f = run(s.clone(), &FakeHost::default()).unwrap();
    assert_eq!(mount(&f.spec, "/etc/resolv.conf").unwrap()["source"], "/etc/resolv.conf");
    assert!(etc_file(&f, "resolv.conf").is_none() && etc_file(&f, "hosts").is_some());
    let e = err(with_ann(s, &[("dns", "1.1.1.1")]), &FakeHost::default());
    assert_eq!(e, "annotation \"io.containerd.dockerish/dns\": cannot be applied: /etc/resolv.conf is already mounted from /etc/resolv.conf by the container's spec");
}

/// MT-6 (issue 11 item 4): a producer's bind mount without a propagation option gets Docker's
/// default `rprivate`; an explicit propagation, the base mounts and the init bind are kept.
#[test]
fn mt_6_binds_get_rprivate_by_default() {
    let mut s = fixture("ctr_default");
    for (dest, opts) in [("/data", json!(["rbind", "ro"])), ("/shared", json!(["rbind", "rshared"])), ("/plain", json!(["bind"]))] {
        s["mounts"].as_array_mut().unwrap().push(json!({"destination": dest, "type": "bind", "source": "/var/lib/x", "options": opts}));
    }
    let mut h = FakeHost::default();
    h.paths.insert("/usr/bin/docker-init".into());
    let f = run(with_ann(s, &[("init", "true")]), &h).unwrap();
    assert_eq!(mount(&f.spec, "/data").unwrap()["options"], json!(["rbind", "rro", "rprivate"]));
    assert_eq!(mount(&f.spec, "/plain").unwrap()["options"], json!(["bind", "rprivate"]));
    assert_eq!(mount(&f.spec, "/shared").unwrap()["options"], json!(["rbind", "rshared"]));
    assert_eq!(mount(&f.spec, "/sbin/docker-init").unwrap()["options"], json!(["bind", "ro"]), "INIT-1 bind as Docker's");
    assert!(rules(&f).contains(&"MT-6"));
    // explicit mode (nerdctl) leaves binds alone
    let mut s = fixture("nerdctl_default");
    s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": "/var/lib/x", "options": ["rbind"]}));
    let f = run(s, &FakeHost::default()).unwrap();
    assert_eq!(mount(&f.spec, "/data").unwrap()["options"], json!(["rbind"]));
}

/// CG-7 (issue 11 item 5): without the kernel's `blkio.weight` (cgroup v1 with only BFQ's
/// `blkio.bfq.weight`, or no `io` controller on v2) Docker discards `blkio-weight`, even an out
/// of range one; `blockIO` stays present (CG-6).
#[test]
fn cg_7_blkio_weight_discarded_without_kernel_support() {
    let mut h = FakeHost::default();
    h.blkio_weight = false;
    for w in ["500", "5"] {
        let f = run(with_ann(fixture("ctr_default"), &[("blkio-weight", w)]), &h).unwrap();
        assert_eq!(f.spec["linux"]["resources"]["blockIO"], json!({}), "{w}");
        assert!(f.applied.iter().any(|a| a.rule == "CG-7" && a.change.contains("blkio-weight")), "{:?}", f.applied);
    }
    assert_eq!(ctr(&[("blkio-weight", "500")]).spec["linux"]["resources"]["blockIO"], json!({"weight": 500}));
}

/// CG-5 (issue 11 item 7): Docker sets no `cpu.shares` unless asked; ctr always writes its
/// default 1024 (on cgroup v2 runc turns it into cpu.weight 39 instead of the kernel's 100), so
/// fill mode removes exactly that default. A chosen value and explicit mode are kept.
#[test]
fn cg_5_no_cpu_shares_unless_asked() {
    let with_shares = |n: i64| {
        let mut s = fixture("ctr_default");
        s["linux"]["resources"]["cpu"] = json!({"shares": n});
        s
    };
    let f = run(with_shares(1024), &FakeHost::default()).unwrap();
    assert!(f.spec["linux"]["resources"].get("cpu").is_none(), "{}", f.spec["linux"]["resources"]);
    let f = run(with_ann(with_shares(1024), &[("cpu-shares", "512"), ("cpus", "1")]), &FakeHost::default()).unwrap();
    assert_eq!(f.spec["linux"]["resources"]["cpu"], json!({"shares": 512, "period": 100000, "quota": 100000}));
    let f = run(with_ann(with_shares(1024), &[("cpus", "1")]), &FakeHost::default()).unwrap();
    assert_eq!(f.spec["linux"]["resources"]["cpu"], json!({"period": 100000, "quota": 100000}));
    assert_eq!(run(with_shares(2048), &FakeHost::default()).unwrap().spec["linux"]["resources"]["cpu"], json!({"shares": 2048}), "a chosen value stays");
    let mut s = fixture("nerdctl_default");
    s["linux"]["resources"]["cpu"] = json!({"shares": 1024});
    assert_eq!(run(s, &FakeHost::default()).unwrap().spec["linux"]["resources"]["cpu"], json!({"shares": 1024}), "explicit mode");
}

/// CP-1 (issue 11 item 8): config `default-capabilities` is Docker's base in fill mode, also
/// without any cap-add/cap-drop/privileged annotation; explicit mode keeps the producer's set.
#[test]
fn cp_1_default_capabilities_apply_without_annotations() {
    let cfg = DaemonConfig::from_json(r#"{"default-capabilities":["CAP_CHOWN","CAP_KILL"]}"#).unwrap();
    let f = run_cfg(fixture("ctr_default"), &cfg, &FakeHost::default()).unwrap();
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(f.spec["process"]["capabilities"][set], json!(["CAP_CHOWN", "CAP_KILL"]), "{set}");
    }
    let f = run_cfg(with_ann(fixture("ctr_default"), &[("cap-add", "NET_ADMIN")]), &cfg, &FakeHost::default()).unwrap();
    assert_eq!(f.spec["process"]["capabilities"]["bounding"], json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"]));
    let f = run_cfg(fixture("nerdctl_default"), &cfg, &FakeHost::default()).unwrap();
    assert_eq!(f.spec["process"]["capabilities"], fixture("nerdctl_default")["process"]["capabilities"]);
}

/// NAME-1 (issue 11 item 9): a `name` another container of the namespace already holds (as its
/// name or its id) is refused with Docker's text; a free name is claimed by a host action so
/// that two creates racing for it cannot both win.
#[test]
fn name_1_names_are_unique_in_the_namespace() {
    let mut h = FakeHost::default();
    h.named.push(("web".into(), "abc123".into()));
    let e = err(with_ann(fixture("ctr_default"), &[("name", "web")]), &h);
    assert_eq!(e, "annotation \"io.containerd.dockerish/name\": Conflict. The container name \"/web\" is already in use by container \"abc123\". You have to remove (or rename) that container to be able to reuse that name.");
    let f = run(with_ann(fixture("ctr_default"), &[("name", "db")]), &h).unwrap();
    assert_eq!(f.actions[0], HostAction::Claim { scope: ClaimScope::Namespace, class: "name".into(), key: "db".into() });
    let e = err(with_ann(fixture("ctr_default"), &[("name", "-bad")]), &h);
    assert!(e.ends_with("Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"), "{e}");
}

/// CG-5 (issue 11 item 10): a real-time runtime the parent cgroup cannot grant is refused with
/// a clear error naming the annotation (runc would fail with a bare "invalid argument"); one
/// that fits passes.
#[test]
fn cg_5_cpu_rt_runtime_checked_against_the_parent_budget() {
    let mut h = FakeHost::default();
    h.rt_budget = Some(RtBudget { period: 1_000_000, runtime: 0, children: vec![] });
    let e = err(with_ann(fixture("ctr_default"), &[("cpu-rt-runtime", "950000")]), &h);
    assert_eq!(e, "annotation \"io.containerd.dockerish/cpu-rt-runtime\": cpu real-time runtime 950000 is more than the parent cgroup /docker has left (0µs per 1000000µs): the sum of all runtimes across containers cannot exceed the amount allotted to the parent cgroup (Docker's daemon sets it with --cpu-rt-runtime)");
    h.rt_budget = Some(RtBudget { period: 1_000_000, runtime: 950_000, children: vec![(1_000_000, 500_000)] });
    assert!(err(with_ann(fixture("ctr_default"), &[("cpu-rt-runtime", "500000")]), &h).contains("has left (450000µs per 1000000µs)"));
    let f = run(with_ann(fixture("ctr_default"), &[("cpu-rt-runtime", "400000")]), &h).unwrap();
    assert_eq!(f.spec["linux"]["resources"]["cpu"]["realtimeRuntime"], 400000);
    let f = run(with_ann(fixture("ctr_default"), &[("cpu-rt-runtime", "40000"), ("cpu-rt-period", "100000")]), &h).unwrap();
    assert_eq!(f.spec["linux"]["resources"]["cpu"]["realtimePeriod"], 100000, "ratio 0.4 of 0.45 left");
    h.rt_budget = None; // unknown (systemd driver, unreadable): left to runc
    assert!(run(with_ann(fixture("ctr_default"), &[("cpu-rt-runtime", "950000")]), &h).is_ok());
}

/// SY-1 (issue 11 item 11): a spec with its own user namespace (ctr --uidmap, containerd's
/// TestUserNamespaces) gets no `ping_group_range`: the full range is not mapped there and the
/// kernel refuses it; Docker skips it with user namespaces.
#[test]
fn sy_1_no_ping_group_range_in_a_user_namespace() {
    let mut s = fixture("ctr_default");
    s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let f = run(s, &FakeHost::default()).unwrap();
    assert!(f.spec["linux"]["sysctl"].get("net.ipv4.ping_group_range").is_none(), "{}", f.spec["linux"]["sysctl"]);
    assert_eq!(f.spec["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"], "0");
}
