//! Docker's rules seen from inside real containers (issue 3, items 4 and 5).
//!
//! Every test runs `ctr run` against a private containerd 1.6 with the busybox test image and
//! reads the effect of one rule group where a user would see it: `/proc/self/status`,
//! `ulimit`, `id`, `/proc/mounts`, `/proc/self/mountinfo`, `/proc/self/cgroup`, namespace
//! inodes, `/proc/sys`. Test names carry the rule ids of DOCKER-RULES.md §1. Annotations use the
//! §2 schema (`io.containerd.dockerish/<key>`); `ctr run` specs get policy `fill` (§0.4).
//! Where it makes the point, the Go shim (`io.containerd.runc.v2`, containerd's default spec
//! untouched) runs the same command as the contrast.
//!
//! Item 5: bad annotation or config values are refused at Create with an error that names the
//! key and the value, and the failed attempt leaves nothing behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dockerish_tests::{procs, Containerd, RunOpts, Runtime};

const P: &str = "io.containerd.dockerish/";
const D: Runtime = Runtime::Dockerish;
const GO: Runtime = Runtime::RuncV2;

// ---------------------------------------------------------------------------------------------
// helpers

/// `ctr run --rm` options with `--annotation io.containerd.dockerish/<k>=<v>` for each pair.
fn ann(pairs: &[(&str, &str)]) -> RunOpts {
    pairs.iter().fold(RunOpts::rm(), |o, (k, v)| o.flag("--annotation").flag(format!("{P}{k}={v}")))
}

/// Runs `sh -c script` in a fresh container (removed afterwards), returns its stdout, and checks
/// that the container left nothing behind.
#[track_caller]
fn sh(c: &Containerd, rt: Runtime, base: &str, opts: RunOpts, script: &str) -> String {
    let id = c.id(base);
    let o = c.run(rt, id, &["sh", "-c", script], opts);
    assert_eq!(o.code(), 0, "{} container {id}: `{script}` failed\nstdout: {}\nstderr: {}", rt.name(), o.stdout, o.stderr);
    c.assert_no_leftovers(id);
    o.stdout
}

/// The value of `Field:` in `/proc/self/status` output.
#[track_caller]
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name}: in\n{status}"))
}

/// A capability set from `/proc/self/status` (hex).
#[track_caller]
fn caps(status: &str, name: &str) -> u64 {
    u64::from_str_radix(field(status, name), 16).unwrap_or_else(|e| panic!("{name}: {e}\n{status}"))
}

/// Bit mask of capabilities by name (the ones these tests use).
fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| {
            let bit = match *n {
                "CHOWN" => 0,
                "DAC_OVERRIDE" => 1,
                "FOWNER" => 3,
                "FSETID" => 4,
                "KILL" => 5,
                "SETGID" => 6,
                "SETUID" => 7,
                "SETPCAP" => 8,
                "NET_BIND_SERVICE" => 10,
                "NET_ADMIN" => 12,
                "NET_RAW" => 13,
                "SYS_CHROOT" => 18,
                "SYS_TIME" => 25,
                "MKNOD" => 27,
                "AUDIT_WRITE" => 29,
                "SETFCAP" => 31,
                other => panic!("cap_mask: add {other}"),
            };
            1u64 << bit
        })
        .fold(0, |a, b| a | b)
}

/// Docker's 14 default capabilities (table 4.1).
const DOCKER_CAPS: &[&str] = &[
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
];

/// Options of the mount at `dest` in `/proc/mounts` output (the last one: what the process sees).
#[track_caller]
fn mount_opts(mounts: &str, dest: &str) -> Vec<String> {
    mounts
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest} in\n{mounts}"))
        .split(' ')
        .nth(3)
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Lines between `==name==` and the next marker: lets one container print several sections.
#[track_caller]
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let marker = format!("=={name}==\n");
    let start = out.find(&marker).unwrap_or_else(|| panic!("no section {name} in\n{out}")) + marker.len();
    let rest = &out[start..];
    &rest[..rest.find("\n==").map(|i| i + 1).unwrap_or(rest.len())]
}

/// A limit (soft, hard) of a host process from `/proc/<pid>/limits` (`Max open files`…), as
/// `ulimit` prints them.
fn limit_of(pid: i32, name: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let l = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{limits}"));
    let f: Vec<&str> = l[name.len()..].split_whitespace().collect();
    (f[0].to_string(), f[1].to_string())
}

/// Runs a container that must be refused at Create; returns ctr's error text after checking
/// that nothing of it remains (task, container, shim, socket, runc state, mounts, cgroups, bundle).
#[track_caller]
fn refused(c: &Containerd, base: &str, opts: RunOpts) -> String {
    let id = c.id(base);
    let o = c.run(D, id, &["sh", "-c", "echo must-not-run"], opts);
    assert!(!o.stdout.contains("must-not-run"), "container ran: {}", o.stdout);
    let msg = o.expect_err();
    eprintln!("{base}: {}", msg.trim());
    for crash in ["ttrpc: closed", "transport is closing", "connection reset", "panicked"] {
        assert!(!msg.contains(crash), "error looks like a shim crash: {msg}");
    }
    assert!(c.task_status(id).is_none(), "task {id} still listed");
    let ls = c.ctr(&["container", "ls", "-q"]).expect_ok().stdout;
    assert!(!ls.lines().any(|l| l == id), "container {id} still listed (ctr run --rm after a failed create)");
    c.assert_no_leftovers(id);
    msg
}

/// Removes a directory tree of (empty) cgroups under every hierarchy on drop, deepest first.
struct CgroupDirs(Vec<PathBuf>);

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        for rel in &self.0 {
            let mut dirs: Vec<PathBuf> = Vec::new();
            if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
                for e in rd.flatten() {
                    dirs.push(e.path().join(rel));
                }
            }
            dirs.push(Path::new("/sys/fs/cgroup").join(rel));
            for d in dirs {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CP: capabilities

/// CP-1: Docker's 14 caps in bounding/permitted/effective, no inheritable or ambient. CP-2/CP-3:
/// names are case-insensitive without `CAP_`; defaults minus drop plus add; drop ALL keeps only add.
#[test]
fn cp_1_cp_3_cap_add_and_drop_seen_in_proc_status() {
    let c = Containerd::start();
    let st = sh(&c, D, "capdef", RunOpts::rm(), "cat /proc/self/status");
    let def = cap_mask(DOCKER_CAPS);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(caps(&st, set), def, "{set} of a default container: {st}");
    }
    assert_eq!(caps(&st, "CapInh"), 0, "CP-1: no inheritable caps");
    assert_eq!(caps(&st, "CapAmb"), 0);

    let st = sh(
        &c,
        D,
        "capadd",
        ann(&[("cap-add", r#"["NET_ADMIN","sys_time"]"#), ("cap-drop", "CHOWN")]),
        "cat /proc/self/status",
    );
    let want = (def & !cap_mask(&["CHOWN"])) | cap_mask(&["NET_ADMIN", "SYS_TIME"]);
    assert_eq!(caps(&st, "CapBnd"), want, "bounding after cap-add/cap-drop: {:x}", caps(&st, "CapBnd"));
    assert_eq!(caps(&st, "CapEff"), want);

    let st = sh(&c, D, "capall", ann(&[("cap-drop", "ALL"), ("cap-add", "cap_net_bind_service")]), "cat /proc/self/status");
    assert_eq!(caps(&st, "CapBnd"), cap_mask(&["NET_BIND_SERVICE"]), "CP-3 step 4: drop ALL → exactly the added caps");
    assert_eq!(caps(&st, "CapEff"), cap_mask(&["NET_BIND_SERVICE"]));
}

/// PV-1: privileged = every capability the shim has (here: all of ours, as root), no seccomp
/// filter, /sys read-write, no masked /proc paths.
#[test]
fn pv_1_privileged_all_caps_no_seccomp_sys_rw() {
    let c = Containerd::start();
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let out = sh(
        &c,
        D,
        "priv",
        ann(&[("privileged", "true")]),
        "echo ==status==; cat /proc/self/status; echo ==mounts==; cat /proc/mounts",
    );
    let st = section(&out, "status");
    assert_eq!(caps(st, "CapEff"), caps(&ours, "CapEff"), "privileged CapEff must be the shim's (= ours)");
    assert_eq!(caps(st, "CapBnd"), caps(&ours, "CapEff"));
    assert_eq!(field(st, "Seccomp"), "0", "privileged: no seccomp");
    let m = section(&out, "mounts");
    assert!(mount_opts(m, "/sys").contains(&"rw".to_string()), "privileged: /sys rw\n{m}");
    assert!(!m.lines().any(|l| l.split(' ').nth(1) == Some("/proc/keys")), "privileged: masked paths cleared\n{m}");
}

// ---------------------------------------------------------------------------------------------
// RL: rlimits

/// RL-1: no ulimits → `process.rlimits` absent, the container inherits containerd's limits (the Go
/// shim keeps containerd's default spec: NOFILE 1024/1024); `ulimits` replaces them.
#[test]
fn rl_1_ulimit_nofile() {
    let c = Containerd::start();
    let (soft, hard) = limit_of(c.pid(), "Max open files");
    let script = "ulimit -n; ulimit -Hn";
    let out = sh(&c, D, "ulim", RunOpts::rm(), script);
    assert_eq!(out, format!("{soft}\n{hard}\n"), "dockerish: inherited from containerd ({soft}/{hard})");
    let out = sh(&c, GO, "ulimgo", RunOpts::rm(), script);
    assert_eq!(out, "1024\n1024\n", "runc.v2: containerd's default spec");
    if soft == "1024" && hard == "1024" {
        eprintln!("note: containerd's own NOFILE is 1024/1024 here, the contrast with runc.v2 is not visible");
    }
    // nproc counts every process of the uid on the host: stay high, but not above containerd's
    // hard limit (runc cannot raise it).
    let nproc = match limit_of(c.pid(), "Max processes").1.as_str() {
        "unlimited" => 50000,
        h => h.parse::<u64>().unwrap_or(50000).min(50000),
    };
    let out = sh(
        &c,
        D,
        "ulimset",
        ann(&[("ulimits", &format!(r#"["nofile=1024:2048","nproc={nproc}","nofile=1500:2048"]"#))]),
        "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu",
    );
    assert_eq!(out, format!("1500\n2048\n{nproc}\n{nproc}\n"), "RL-2: last value per name wins, hard defaults to soft");
}

// ---------------------------------------------------------------------------------------------
// US: user and groups

fn ids(out: &str) -> (String, String, BTreeSet<String>) {
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 3, "id output: {out}");
    (l[0].into(), l[1].into(), l[2].split_whitespace().map(String::from).collect())
}

/// US-1: names resolved in the image's /etc/passwd and /etc/group; a numeric uid without an
/// entry gets gid 0; an explicit group replaces supplementary groups. US-2/US-3: the primary gid,
/// the user's supplementary groups (testgrp lists tester) and `group-add` names and gids.
#[test]
fn us_1_us_3_user_and_group_add_from_rootfs() {
    let c = Containerd::start();
    let script = "id -u; id -g; id -G";
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let out = sh(&c, D, "user", ann(&[("user", "tester"), ("group-add", r#"["nogroup","3000"]"#)]), script);
    assert_eq!(ids(&out), ("1000".into(), "1000".into(), set(&["1000", "2000", "65534", "3000"])), "{out}");
    let out = sh(&c, D, "usernum", ann(&[("user", "1234")]), script);
    assert_eq!(ids(&out), ("1234".into(), "0".into(), set(&["0"])), "uid without passwd entry → gid 0: {out}");
    let out = sh(&c, D, "usergrp", ann(&[("user", "tester:testgrp")]), script);
    assert_eq!(ids(&out), ("1000".into(), "2000".into(), set(&["2000"])), "{out}");
}

// ---------------------------------------------------------------------------------------------
// RO, MT, IPC: mounts

/// RO-1: read-only rootfs; base mounts other than /proc, /dev* stay as they are or become ro;
/// a user tmpfs at /run (Docker's `--read-only --tmpfs /run` pattern) stays writable.
#[test]
fn ro_1_read_only_rootfs() {
    let c = Containerd::start();
    let out = sh(
        &c,
        D,
        "ro",
        ann(&[("read-only", "true"), ("tmpfs", "/run")]),
        "touch /rootfile 2>&1; echo root=$?; touch /tmp/x 2>&1; echo tmp=$?; touch /run/x && echo run=ok; \
         touch /dev/shm/x && echo shm=ok; echo ==mounts==; cat /proc/mounts",
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("root=1") && out.contains("tmp=1"), "rootfs must be read-only: {out}");
    assert!(out.contains("run=ok") && out.contains("shm=ok"), "user tmpfs and /dev/shm stay writable: {out}");
    let m = section(&out, "mounts");
    assert!(mount_opts(m, "/").contains(&"ro".into()), "{m}");
    assert!(mount_opts(m, "/run").contains(&"rw".into()), "{m}");
    assert!(mount_opts(m, "/sys").contains(&"ro".into()), "{m}");
    assert!(mount_opts(m, "/proc").contains(&"rw".into()), "{m}");
}

/// MT-4: `--tmpfs` gets Docker's defaults (noexec, nosuid, nodev) merged with the user's
/// options, the last of a colliding pair winning (`exec`); size and mode reach the kernel.
/// IPC-2: `shm-size` replaces containerd's size of /dev/shm.
#[test]
fn mt_4_ipc_2_tmpfs_and_shm_options_in_proc_mounts() {
    let c = Containerd::start();
    let out = sh(
        &c,
        D,
        "tmpfs",
        ann(&[("tmpfs", r#"["/scratch:size=1m,mode=1770","/run:exec"]"#), ("shm-size", "128m")]),
        "stat -c %a /scratch; echo ==mounts==; cat /proc/mounts",
    );
    assert!(out.starts_with("1770\n"), "mode of /scratch: {out}");
    let m = section(&out, "mounts");
    let s = mount_opts(m, "/scratch");
    for o in ["rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=1770"] {
        assert!(s.contains(&o.to_string()), "/scratch lacks {o}: {s:?}");
    }
    let r = mount_opts(m, "/run");
    assert!(r.contains(&"nosuid".into()) && r.contains(&"nodev".into()) && !r.contains(&"noexec".into()), "/run:exec → {r:?}");
    let shm = mount_opts(m, "/dev/shm");
    assert!(shm.contains(&"size=131072k".into()), "shm-size=128m: {shm:?}");
}

/// Optional fields (`shared:N`, `master:N`) of the mount at `dest` in mountinfo text.
fn optional_fields(mountinfo: &str, dest: &str) -> Vec<String> {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(dest))
        .map(|l| l.split(' ').skip(6).take_while(|f| *f != "-").map(String::from).collect())
        .unwrap_or_default()
}

/// A tmpfs mounted by the test with a chosen propagation (`MS_PRIVATE`, `MS_SHARED`), so that
/// the test does not depend on how the host's own mounts propagate; lazily unmounted on drop.
struct TestTmpfs(PathBuf);

impl TestTmpfs {
    fn new(dir: PathBuf, propagation: libc::c_ulong) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let target = c(dir.to_str().unwrap());
        let r = unsafe { libc::mount(c("tmpfs").as_ptr(), target.as_ptr(), c("tmpfs").as_ptr(), 0, c("size=1m").as_ptr().cast()) };
        assert_eq!(r, 0, "mount tmpfs on {}: {}", dir.display(), std::io::Error::last_os_error());
        let g = TestTmpfs(dir);
        let r = unsafe { libc::mount(std::ptr::null(), target.as_ptr(), std::ptr::null(), propagation, std::ptr::null()) };
        assert_eq!(r, 0, "set propagation of {}: {}", g.0.display(), std::io::Error::last_os_error());
        g
    }
}

impl Drop for TestTmpfs {
    fn drop(&mut self) {
        procs::unmount_all_under(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// MT-7: a bind with `rshared` needs a shared source mount, `rslave` a shared or slave one;
/// Docker's exact text comes back through ctr and nothing is left. The Go shim does not check.
/// With a shared source the container's mount is in the host's peer group.
#[test]
fn mt_7_propagation_error_for_private_source() {
    let c = Containerd::start();
    let private = TestTmpfs::new(c.dir.join("private-mnt"), libc::MS_PRIVATE);
    let src_dir = private.0.join("src");
    std::fs::create_dir(&src_dir).unwrap();
    let src = src_dir.display().to_string();
    let mp = private.0.display().to_string();
    let bind = |src: &str, prop: &str| RunOpts::rm().flag("--mount").flag(format!("type=bind,src={src},dst=/x,options=rbind:{prop}"));

    let msg = refused(&c, "rshared", bind(&src, "rshared"));
    let want = format!("path {src} is mounted on {mp} but it is not a shared mount");
    assert!(msg.contains(&want), "expected Docker's text {want:?} in: {msg}");
    let msg = refused(&c, "rslave", bind(&src, "rslave"));
    let want = format!("path {src} is mounted on {mp} but it is not a shared or slave mount");
    assert!(msg.contains(&want), "expected Docker's text {want:?} in: {msg}");

    // The Go shim runs the same request (runc makes the container's copy shared).
    sh(&c, GO, "rsharedgo", bind(&src, "rshared"), "true");

    // A shared source: accepted, and the container's /x joins the host mount's peer group.
    let shared = TestTmpfs::new(c.dir.join("shared-mnt"), libc::MS_SHARED);
    let host = optional_fields(&std::fs::read_to_string("/proc/self/mountinfo").unwrap(), shared.0.to_str().unwrap());
    let peer = host.iter().find(|f| f.starts_with("shared:")).unwrap_or_else(|| panic!("our tmpfs is not shared: {host:?}")).clone();
    let out = sh(&c, D, "sharedok", bind(shared.0.to_str().unwrap(), "rshared"), "cat /proc/self/mountinfo");
    let inside = optional_fields(&out, "/x");
    assert!(inside.contains(&peer), "/x inside has {inside:?}, the host mount has {peer}\n{out}");
}

// ---------------------------------------------------------------------------------------------
// NS: namespaces

/// NS-2 + NS-10: `network=container:<id>` joins the running target's network namespace (same
/// inode) and nothing else; a missing target is Docker's error and leaves nothing.
#[test]
fn ns_2_network_join_shares_netns_inode() {
    let c = Containerd::start();
    let target = c.id("nettgt");
    c.run_sleeper(D, target);
    let t = c.ctr(&["task", "exec", "--exec-id", "ns", target, "sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc"]).expect_ok();
    let tl: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(tl.len(), 2, "{}", t.stdout);

    let script = "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc";
    let out = sh(&c, D, "netjoin", ann(&[("network", &format!("container:{target}"))]), script);
    let jl: Vec<&str> = out.lines().collect();
    assert_eq!(jl[0], tl[0], "joined netns differs from the target's");
    assert_ne!(jl[1], tl[1], "only the network namespace is joined");

    let out = sh(&c, D, "netown", RunOpts::rm(), script);
    assert_ne!(out.lines().next().unwrap(), tl[0], "without the annotation a container has its own netns");

    let missing = format!("nosuch-{}", c.ns);
    let msg = refused(&c, "netmissing", ann(&[("network", &format!("container:{missing}"))]));
    assert!(msg.contains(&format!("annotation \"{P}network\"")), "{msg}");
    assert!(msg.contains(&format!("joining network namespace of container: No such container: {missing}")), "{msg}");

    c.remove(target);
    c.assert_no_leftovers(target);
}

// ---------------------------------------------------------------------------------------------
// CG: cgroups

/// CG-1: the cgroup is `/docker/<ns>--<id>` outside the namespace `default` (Docker's
/// `/docker/<id>` there: `isolation.rs`; the Go shim: containerd's `/<ns>/<id>`); the host
/// directories exist while the container runs and are gone after removal; `cgroup-parent`
/// moves it under the given parent.
#[test]
fn cg_1_cgroup_path_docker_style() {
    let mut parent_cleanup = CgroupDirs(Vec::new()); // dropped after `c`: the container is gone by then
    let c = Containerd::start();
    let id = c.id("cgdocker");
    c.run(D, id, &["sleep", "100000"], RunOpts::detach()).expect_ok();
    let inside = c.ctr(&["task", "exec", "--exec-id", "cg", id, "cat", "/proc/self/cgroup"]).expect_ok().stdout;
    let want = format!("/docker/{}--{id}", c.ns);
    for l in inside.lines() {
        let path = l.splitn(3, ':').nth(2).unwrap_or_default();
        assert_eq!(path, want, "cgroup line {l:?}\n{inside}");
    }
    let dirs = procs::cgroups_named(id);
    assert!(!dirs.is_empty(), "no host cgroup directory named {id}");
    for d in &dirs {
        assert!(d.parent().is_some_and(|p| p.ends_with("docker")), "host cgroup {} is not under docker/", d.display());
    }
    c.remove(id);
    c.assert_no_leftovers(id); // includes: no cgroup directory named after the id
    for d in &dirs {
        assert!(!d.exists(), "{} still exists after removal", d.display());
    }

    let out = sh(&c, GO, "cggo", RunOpts::rm(), "cat /proc/self/cgroup");
    assert!(out.lines().all(|l| l.ends_with(&format!("/{}/cggo-{}", c.ns, c.ns))), "runc.v2: /<ns>/<id>\n{out}");

    let parent = format!("{}-parent", c.ns);
    parent_cleanup.0.push(PathBuf::from(&parent));
    let out = sh(&c, D, "cgparent", ann(&[("cgroup-parent", &format!("/{parent}"))]), "cat /proc/self/cgroup");
    let want = format!("/{parent}/{0}--cgparent-{0}", c.ns);
    assert!(out.lines().all(|l| l.ends_with(&want)), "cgroup-parent: want {want}\n{out}");
}

// ---------------------------------------------------------------------------------------------
// SC, NNP: seccomp and no_new_privs

/// SC-1/SC-3: Docker's default profile is loaded (seccomp mode 2) and refuses `unshare` to a
/// container without CAP_SYS_ADMIN, while the Go shim (no profile) allows `unshare -U`. SC-2:
/// the profile is filtered by the bounding set, so `cap-add=SYS_ADMIN` allows it again;
/// `security-opt=seccomp=unconfined` removes the filter.
#[test]
fn sc_1_default_seccomp_blocks_unshare() {
    let c = Containerd::start();
    let script = "grep '^Seccomp:' /proc/self/status; unshare -U true 2>&1; echo unshare=$?";
    let go = sh(&c, GO, "scgo", RunOpts::rm(), script);
    assert!(go.contains("Seccomp:\t0"), "runc.v2 without seccomp: {go}");
    let userns_ok = go.contains("unshare=0");
    if !userns_ok {
        eprintln!("note: this kernel refuses user namespaces even without seccomp; only the filter mode is checked: {go}");
    }

    let out = sh(&c, D, "scdef", RunOpts::rm(), script);
    assert!(out.contains("Seccomp:\t2"), "default profile loaded: {out}");
    assert!(out.contains("unshare=1") && out.contains("Operation not permitted"), "unshare must be refused (EPERM): {out}");

    let out = sh(&c, D, "scadmin", ann(&[("cap-add", "SYS_ADMIN")]), script);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    if userns_ok {
        assert!(out.contains("unshare=0"), "with CAP_SYS_ADMIN the profile allows unshare: {out}");
    }

    let out = sh(&c, D, "scunconf", ann(&[("security-opt", "seccomp=unconfined")]), script);
    assert!(out.contains("Seccomp:\t0"), "seccomp=unconfined: {out}");
}

/// NNP-1: Docker leaves no_new_privs off (containerd's default spec, kept by the Go shim, has it
/// on); `security-opt=no-new-privileges` turns it on.
#[test]
fn nnp_1_no_new_privs_off_by_default() {
    let c = Containerd::start();
    let script = "grep '^NoNewPrivs:' /proc/self/status";
    assert_eq!(sh(&c, D, "nnp", RunOpts::rm(), script), "NoNewPrivs:\t0\n");
    assert_eq!(sh(&c, GO, "nnpgo", RunOpts::rm(), script), "NoNewPrivs:\t1\n");
    assert_eq!(sh(&c, D, "nnpon", ann(&[("security-opt", r#"["no-new-privileges"]"#)]), script), "NoNewPrivs:\t1\n");
}

// ---------------------------------------------------------------------------------------------
// SY: sysctls

/// SY-1: a private network namespace gets `ip_unprivileged_port_start=0` and the full
/// `ping_group_range` (the Go shim: kernel defaults); SY-3: annotation sysctls are applied.
/// A new network namespace takes `ip_forward` from the host's (`devconf_inherit_init_net`), so
/// the Go shim's value is compared with the host's own, not with the kernel default (issue 11
/// item 12: the test failed on hosts with forwarding on, e.g. after a Docker install).
#[test]
fn sy_1_sy_3_default_and_annotation_sysctls() {
    let c = Containerd::start();
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim().to_string();
    let script = "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_forward";
    let out = sh(&c, D, "sysctl", ann(&[("sysctls", r#"["net.ipv4.ip_forward=1"]"#)]), script);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0", "2147483647", "1"], "{out}");
    let out = sh(&c, GO, "sysctlgo", RunOpts::rm(), script);
    let v: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(v[0], "1024", "runc.v2 keeps the kernel default: {out}");
    assert_eq!(v[3], host_forward, "runc.v2: ip_forward as the host's: {out}");
}

// ---------------------------------------------------------------------------------------------
// Item 5: bad values

/// Bad annotation values: refused at Create with `annotation "<key>": <Docker's text>` naming the
/// value; the container is not created and nothing leaks. The daemon keeps working.
#[test]
fn bad_annotations_name_key_and_value_and_leave_nothing() {
    let c = Containerd::start();
    let cases: &[(&str, &str, &str)] = &[
        ("cap-add", "CAP_BOGUS", r#"invalid CapAdd: unknown capability: "CAP_BOGUS""#),
        ("cap-drop", r#"["chown","nope"]"#, r#"invalid CapDrop: unknown capability: "CAP_NOPE""#),
        ("ulimits", "nofile=2048:1024", "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"),
        ("ulimits", "nofile=abc", r#"strconv.ParseInt: parsing "abc": invalid syntax"#),
        ("ulimits", "as=10", "invalid ulimit type: as"),
        ("tmpfs", "/scratch:huge=1", r#"invalid tmpfs option "huge""#),
        ("tmpfs", "scratch", "invalid mount path: 'scratch' mount path must be absolute"),
        ("read-only", "maybe", r#"strconv.ParseBool: parsing "maybe": invalid syntax"#),
        ("bogus-key", "1", "unknown key"),
        ("user", "nosuchuser", "unable to find user nosuchuser: no matching entries in passwd file"),
        ("sysctls", "kernel.panic=1", "sysctl 'kernel.panic=1' is not allowed"),
        ("network", "container:", "invalid network mode: invalid container format container:<name|id>"),
    ];
    for (i, (key, value, docker_text)) in cases.iter().enumerate() {
        let msg = refused(&c, &format!("bad{i}"), ann(&[(key, value)]));
        let want = format!("annotation \"{P}{key}\": {docker_text}");
        assert!(msg.contains(&want), "{key}={value}: expected {want:?} in: {msg}");
    }
    assert!(c.shims().is_empty(), "shims left: {:?}", c.shims());
    sh(&c, D, "stillgood", RunOpts::rm(), "true");
}

/// A bad dockerish.toml given with `ctr run --runtime-config-path`: the error names the file,
/// the key and the value. A valid one is honoured: `annotation-policy` `unprivileged-only`
/// refuses privilege-raising keys (naming the key) and accepts the others.
#[test]
fn bad_config_names_key_and_annotation_policy_refuses_privileged_keys() {
    let c = Containerd::start();
    let write = |name: &str, text: &str| {
        let p = c.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let cfg = |path: &str| RunOpts::rm().flag("--runtime-config-path").flag(path);
    for (name, text, want) in [
        ("bad-size.toml", "default-shm-size = \"64x\"\n", "config \"default-shm-size\": invalid suffix: 'x'"),
        ("bad-key.toml", "no-such-key = true\n", "config \"no-such-key\": unknown key"),
        ("bad-policy.toml", "[policy]\nctr = \"sometimes\"\n", "config \"policy.ctr\": invalid policy \"sometimes\""),
        ("bad-syntax.json", "{\"init\": \"yes\"}", "config \"init\": strconv.ParseBool: parsing \"yes\": invalid syntax"),
    ] {
        let path = write(name, text);
        let msg = refused(&c, &format!("badcfg-{}", name.replace('.', "-")), cfg(&path));
        assert!(msg.contains(&format!("config file {path}: {want}")), "{name}: expected {want:?} in: {msg}");
    }

    let path = write("unpriv.toml", "[annotation-policy]\nctr = \"unprivileged-only\"\n");
    for (key, value) in [("privileged", "true"), ("cap-add", "NET_ADMIN"), ("cgroup-parent", "/elsewhere")] {
        let msg = refused(&c, &format!("unpriv-{key}"), cfg(&path).flag("--annotation").flag(format!("{P}{key}={value}")));
        let want = format!("annotation \"{P}{key}\": raises privileges; not allowed for ctr containers by config \"annotation-policy\"");
        assert!(msg.contains(&want), "{key}: expected {want:?} in: {msg}");
    }
    let out = sh(&c, D, "unprivok", cfg(&path).flag("--annotation").flag(format!("{P}read-only=true")), "touch /x 2>&1; echo rc=$?");
    assert!(out.contains("rc=1"), "read-only is allowed under unprivileged-only: {out}");
    assert!(c.shims().is_empty(), "shims left: {:?}", c.shims());
}

// ---------------------------------------------------------------------------------------------
// Issue 11: where the shim still differed from Docker

/// Options of every cgroup hierarchy mounted in the container (`cgroup` per controller on v1,
/// `cgroup2` on v2; runc's v1 tmpfs at /sys/fs/cgroup is only their parent).
fn cgroup_mount_opts(mounts: &str) -> Vec<(String, Vec<String>)> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 3 && f[1].starts_with("/sys/fs/cgroup") && (f[2] == "cgroup" || f[2] == "cgroup2")).then(|| (f[1].to_string(), f[3].split(',').map(str::to_string).collect()))
        })
        .collect()
}

/// MT-11 after RO-1 (issue 11 item 1): privileged + read-only and `writable-cgroups` + read-only
/// leave the cgroup hierarchies writable while the rootfs is read-only; read-only alone keeps
/// them read-only.
#[test]
fn mt_11_cgroup_mount_writable_with_read_only_rootfs() {
    let c = Containerd::start();
    let script = "touch /rootfile 2>/dev/null; echo root=$?; cat /proc/mounts";
    // `writable-cgroups` bare: the grammar's `[=bool]` form (issue 11 item 10).
    for (base, extra, want) in [("cgrwpriv", Some(("privileged", "true")), "rw"), ("cgrwopt", Some(("security-opt", "writable-cgroups")), "rw"), ("cgro", None, "ro")] {
        let mut pairs = vec![("read-only", "true")];
        pairs.extend(extra);
        let out = sh(&c, D, base, ann(&pairs), script);
        assert!(out.contains("root=1"), "{base}: rootfs must stay read-only: {out}");
        let cg = cgroup_mount_opts(&out);
        assert!(!cg.is_empty(), "{base}: no cgroup mount\n{out}");
        for (dest, o) in cg {
            assert!(o.contains(&want.to_string()), "{base}: {dest} must be {want}, got {o:?}");
        }
    }
}

/// `ctr run -d` options with annotations.
fn ann_detached(pairs: &[(&str, &str)]) -> RunOpts {
    pairs.iter().fold(RunOpts::detach(), |o, (k, v)| o.flag("--annotation").flag(format!("{P}{k}={v}")))
}

/// The host's own hostname, as the shim sees it.
fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

/// What Docker starts from for a container's resolv.conf (`resolvconf.Path()`): the host's
/// `/etc/resolv.conf`, or systemd-resolved's upstream list when that file only names the stub.
fn host_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let ns: Vec<&str> = etc.lines().filter_map(|l| l.trim().strip_prefix("nameserver")).map(str::trim).collect();
    if ns == ["127.0.0.53"] {
        if let Ok(up) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return up;
        }
    }
    etc
}

fn nameservers(resolv: &str) -> Vec<String> {
    resolv.lines().filter_map(|l| l.trim().strip_prefix("nameserver ")).map(|s| s.trim().to_string()).collect()
}

/// GEN-3 + MT-13 (issue 11 items 2 and 3): a ctr container gets Docker's `/etc/hostname`
/// (its hostname, not the image's), `/etc/hosts` (localhost lines and the hostname) and
/// `/etc/resolv.conf` (the host's minus loopback and IPv6 nameservers, Google's if none is
/// left), each a writable bind; the Go shim leaves the image's files. The `hostname` annotation
/// sets hostname, `HOSTNAME` and the files; `dns`, `dns-search`, `dns-option`, `add-host` shape
/// them; read-only makes them read-only.
#[test]
fn gen_3_mt_13_hostname_and_the_files_docker_writes() {
    let c = Containerd::start();
    let script = "hostname; echo env=$(env | sed -n 's/^HOSTNAME=//p'); echo ==hostname==; cat /etc/hostname; echo ==hosts==; cat /etc/hosts; echo ==resolv==; cat /etc/resolv.conf; echo ==mounts==; cat /proc/mounts";
    let id = c.id("files");
    let out = sh(&c, D, "files", RunOpts::rm(), script);
    let short: String = id.chars().take(12).collect();
    assert!(out.starts_with(&format!("{short}\nenv={short}\n")), "{out}");
    assert_eq!(section(&out, "hostname"), format!("{short}\n"));
    let hosts = section(&out, "hosts");
    assert!(hosts.lines().any(|l| l == "127.0.0.1\tlocalhost") && hosts.lines().any(|l| l == format!("127.0.0.1\t{short}")), "{hosts}");
    let resolv = section(&out, "resolv");
    let usable: Vec<String> = nameservers(&host_resolv_conf()).into_iter().filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback())).collect();
    let want = if usable.is_empty() { vec!["8.8.8.8".to_string(), "8.8.4.4".to_string()] } else { usable };
    assert_eq!(nameservers(resolv), want, "container resolv.conf:\n{resolv}\nhost's:\n{}", host_resolv_conf());
    let m = section(&out, "mounts");
    for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
        assert!(mount_opts(m, f).contains(&"rw".to_string()), "{f} must be a writable mount\n{m}");
    }
    let go = sh(&c, GO, "filesgo", RunOpts::rm(), "cat /etc/hostname");
    assert_eq!(go, "busybox\n", "runc.v2: the image's /etc/hostname");
    let user = sh(&c, D, "filesuser", ann(&[("user", "tester")]), "id -u; cat /etc/hostname /etc/hosts /etc/resolv.conf >/dev/null && echo readable");
    assert_eq!(user, "1000\nreadable\n", "a non-root user reads the files");

    let out = sh(
        &c,
        D,
        "filesann",
        ann(&[("hostname", "web"), ("dns", "[\"1.1.1.1\",\"9.9.9.9\"]"), ("dns-search", "example.com"), ("dns-option", "ndots:3"), ("add-host", "db:10.0.0.2"), ("read-only", "true")]),
        &format!("{script}; echo x >> /etc/hosts 2>/dev/null; echo write=$?"),
    );
    assert!(out.starts_with("web\nenv=web\n"), "{out}");
    assert_eq!(section(&out, "hostname"), "web\n");
    let hosts = section(&out, "hosts");
    assert!(hosts.contains("10.0.0.2\tdb\n") && hosts.contains("127.0.0.1\tweb\n"), "{hosts}");
    assert_eq!(section(&out, "resolv"), "search example.com\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions ndots:3\n");
    assert!(mount_opts(section(&out, "mounts"), "/etc/hosts").contains(&"ro".to_string()), "read-only rootfs: read-only files");
    assert!(out.contains("write=1"), "{out}");
}

/// GEN-3 (issue 11 item 2): `network=container:X` copies X's hostname into the hostname and
/// `HOSTNAME` and shares X's files; host networking and the host's UTS namespace still set
/// `HOSTNAME` (the host's name, and Docker's short id), where the Go shim leaves it unset.
#[test]
fn gen_3_hostname_with_container_host_network_and_uts_host() {
    let c = Containerd::start();
    let donor = c.id("hndonor");
    c.run(D, donor, &["sleep", "100000"], ann_detached(&[("hostname", "donorhost"), ("add-host", "marker:10.9.9.9")])).expect_ok();
    let script = "hostname; echo env=$(env | sed -n 's/^HOSTNAME=//p'); cat /etc/hostname; grep marker /etc/hosts";
    let out = sh(&c, D, "hnjoin", ann(&[("network", &format!("container:{donor}"))]), script);
    assert_eq!(out, "donorhost\nenv=donorhost\ndonorhost\n10.9.9.9\tmarker\n", "joiner sees the donor's name and files");
    let msg = refused(&c, "hnjoinbad", ann(&[("network", &format!("container:{donor}")), ("hostname", "mine")]));
    assert!(msg.contains(&format!("annotation \"{P}hostname\": conflicting options: hostname and the network mode")), "{msg}");
    c.remove(donor);
    c.assert_no_leftovers(donor);

    let me = host_hostname();
    let out = sh(&c, D, "hnhost", ann(&[("network", "host")]), "echo env=$(env | sed -n 's/^HOSTNAME=//p'); cat /etc/hostname; cat /etc/hosts");
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert_eq!(out, format!("env={me}\n{me}\n{host_hosts}"), "host network: the host's name and /etc/hosts");
    let go = sh(&c, GO, "hnhostgo", RunOpts::rm(), "echo env=$(env | sed -n 's/^HOSTNAME=//p')");
    assert_eq!(go, "env=\n", "runc.v2 (ctr without --net-host): no HOSTNAME");

    let id = c.id("hnuts");
    let short: String = id.chars().take(12).collect();
    let out = sh(&c, D, "hnuts", ann(&[("uts", "host")]), "hostname; echo env=$(env | sed -n 's/^HOSTNAME=//p')");
    assert_eq!(out, format!("{me}\nenv={short}\n"), "uts=host: the host's name, Docker's Config.Hostname in HOSTNAME");
}

/// MT-6 (issue 11 item 4): a `ctr run --mount type=bind` without a propagation option gets
/// Docker's `rprivate`: a mount made on the host under a shared source after the container
/// started does not appear in the container, while with the Go shim (runc's default, a slave of
/// the shared source) it does.
#[test]
fn mt_6_bind_from_shared_source_is_rprivate() {
    let c = Containerd::start();
    let shared = TestTmpfs::new(c.dir.join("prop-src"), libc::MS_SHARED);
    let sub = shared.0.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let bind = RunOpts::detach().flag("--mount").flag(format!("type=bind,src={},dst=/x,options=rbind", shared.0.display()));
    let (d, go) = (c.id("propd"), c.id("propgo"));
    c.run(D, d, &["sleep", "100000"], bind.clone()).expect_ok();
    c.run(GO, go, &["sleep", "100000"], bind).expect_ok();
    // A new mount on the host, under the shared source, after both containers started.
    let cs = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let tmpfs = std::ffi::CString::new("tmpfs").unwrap();
    // SAFETY: valid NUL-terminated strings; null data.
    let r = unsafe { libc::mount(tmpfs.as_ptr(), cs(&sub).as_ptr(), tmpfs.as_ptr(), 0, std::ptr::null()) };
    assert_eq!(r, 0, "mount tmpfs on {}: {}", sub.display(), std::io::Error::last_os_error());
    let seen = |id: &str| {
        let out = c.ctr(&["task", "exec", "--exec-id", "m", id, "cat", "/proc/mounts"]).expect_ok().stdout;
        out.lines().any(|l| l.split(' ').nth(1) == Some("/x/sub"))
    };
    assert!(!seen(d), "dockerish: the host's new mount must not propagate into an rprivate bind");
    assert!(seen(go), "runc.v2: the bind is a slave of the shared source and receives the mount");
    for id in [d, go] {
        c.remove(id);
        c.assert_no_leftovers(id);
    }
}

/// CG-7 (issue 11 item 5): `blkio-weight` where the kernel has no `blkio.weight` (cgroup v1
/// with BFQ only or no weight at all; v2 without the `io` controller) is discarded as Docker
/// does, and the container starts; where the host has it, the weight is applied.
#[test]
fn cg_7_blkio_weight_follows_the_hosts_support() {
    let c = Containerd::start();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let supported = if v2 {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default().split_whitespace().any(|x| x == "io")
    } else {
        Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
    };
    let out = sh(&c, D, "blkio", ann(&[("blkio-weight", "500")]), "cat /sys/fs/cgroup/blkio/blkio.weight /sys/fs/cgroup/blkio/blkio.bfq.weight /sys/fs/cgroup/io.weight /sys/fs/cgroup/io.bfq.weight 2>/dev/null; true");
    if supported {
        assert!(out.contains("500"), "the host has block I/O weights: 500 applied\n{out}");
    } else {
        assert!(!out.contains("500"), "the host has no blkio.weight: Docker discards the setting\n{out}");
    }
}

/// A static probe (C, built with the host's `cc -static`): `socket(family, SOCK_STREAM, 0)` for
/// each family argument, printing `family=errno` (0 when a socket was created).
const SOCKET_PROBE_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int fd = socket(atoi(argv[i]), SOCK_STREAM, 0);
        printf("%s=%d\n", argv[i], fd < 0 ? errno : 0);
        if (fd >= 0) close(fd);
    }
    return 0;
}
"#;

/// SC-3 (issue 11 item 6): inside the default profile, `socket()` is refused with EPERM for
/// exactly AF_ALG (38) and AF_VSOCK (40); families the old profile also refused (12, 23, 37,
/// above 45) reach the kernel, which answers for itself (EAFNOSUPPORT where it lacks them).
/// The Go shim (no seccomp) refuses none with EPERM.
#[test]
fn sc_3_socket_families_refused_by_seccomp() {
    let c = Containerd::start();
    let src = c.dir.join("socket_probe.c");
    let bin = c.dir.join("socket_probe");
    std::fs::write(&src, SOCKET_PROBE_C).unwrap();
    let o = std::process::Command::new("cc").args(["-static", "-O2", "-o"]).arg(&bin).arg(&src).output().expect("run cc (a C compiler is needed to build Rust too)");
    assert!(o.status.success(), "cc: {}", String::from_utf8_lossy(&o.stderr));
    let families = ["12", "23", "37", "38", "40", "46", "50"];
    let mount = format!("type=bind,src={},dst=/probe,options=rbind:ro", bin.display());
    let run = |rt: Runtime, base: &str| -> Vec<(String, i32)> {
        let id = c.id(base);
        let mut args = vec!["/probe"];
        args.extend(families);
        let o = c.run(rt, id, &args, RunOpts::rm().flag("--mount").flag(mount.clone()));
        assert_eq!(o.code(), 0, "{}: {}", rt.name(), o.stderr);
        c.assert_no_leftovers(id);
        o.stdout.lines().filter_map(|l| l.split_once('=')).map(|(f, e)| (f.to_string(), e.parse().unwrap())).collect()
    };
    let eperm = |r: &[(String, i32)]| r.iter().filter(|(_, e)| *e == libc::EPERM).map(|(f, _)| f.clone()).collect::<Vec<_>>();
    let ours = run(D, "sockfam");
    assert_eq!(ours.len(), families.len(), "{ours:?}");
    assert_eq!(eperm(&ours), ["38", "40"], "dockerish: {ours:?}");
    let go = run(GO, "sockfamgo");
    assert!(eperm(&go).is_empty(), "runc.v2 has no seccomp filter: {go:?}");
}

/// CG-5 (issue 11 item 7): ctr writes `cpu.shares` 1024 into every spec; Docker sets none, so
/// runc gets none (on cgroup v2 the container keeps the kernel's cpu.weight 100 instead of the
/// 39 that 1024 shares convert to, which the Go shim's container gets).
#[test]
fn cg_5_ctr_default_cpu_shares_removed() {
    let c = Containerd::start();
    let id = c.id("shares");
    c.run(D, id, &["sleep", "100000"], RunOpts::detach()).expect_ok();
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(c.bundle(&c.ns, id).join("config.json")).unwrap()).unwrap();
    let orig: serde_json::Value = serde_json::from_slice(&std::fs::read(c.bundle(&c.ns, id).join("config.json.orig")).unwrap()).unwrap();
    assert_eq!(orig["linux"]["resources"]["cpu"]["shares"], 1024, "ctr writes its default");
    assert!(spec["linux"]["resources"]["cpu"].get("shares").is_none(), "runc gets no shares: {}", spec["linux"]["resources"]);
    c.remove(id);
    c.assert_no_leftovers(id);
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let ours = sh(&c, D, "sharesw", RunOpts::rm(), "cat /sys/fs/cgroup/cpu.weight");
        let go = sh(&c, GO, "shareswgo", RunOpts::rm(), "cat /sys/fs/cgroup/cpu.weight");
        assert_eq!((ours.trim(), go.trim()), ("100", "39"));
    }
}

/// CP-1 (issue 11 item 8): `default-capabilities` in dockerish.toml is the container's set even
/// without any cap annotation.
#[test]
fn cp_1_default_capabilities_from_config_apply() {
    let c = Containerd::start();
    let cfg = c.dir.join("caps.toml");
    std::fs::write(&cfg, "default-capabilities = [\"CAP_CHOWN\", \"CAP_KILL\"]\n").unwrap();
    let st = sh(&c, D, "defcaps", RunOpts::rm().flag("--runtime-config-path").flag(cfg.display().to_string()), "cat /proc/self/status");
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(caps(&st, set), cap_mask(&["CHOWN", "KILL"]), "{set}: {st}");
    }
}

/// NAME-1 (issue 11 item 9): a `name` another container of the namespace holds is refused with
/// Docker's text and leaves nothing; once that container is removed the name is free. Two
/// creates racing for one name: exactly one wins (the name is claimed, not just looked up).
#[test]
fn name_1_duplicate_names_refused_and_race_has_one_winner() {
    let c = Containerd::start();
    let name = format!("web-{}", c.ns);
    let first = c.id("nameone");
    c.run(D, first, &["sleep", "100000"], ann_detached(&[("name", &name)])).expect_ok();
    let msg = refused(&c, "nametwo", ann(&[("name", &name)]));
    let want = format!("annotation \"{P}name\": Conflict. The container name \"/{name}\" is already in use by container \"{first}\". You have to remove (or rename) that container to be able to reuse that name.");
    assert!(msg.contains(&want), "expected {want:?} in: {msg}");
    c.remove(first);
    c.assert_no_leftovers(first);
    sh(&c, D, "namethree", ann(&[("name", &name)]), "true");

    for round in 0..3 {
        let race = format!("race{round}-{}", c.ns);
        let ids = [c.id(&format!("racea{round}")), c.id(&format!("raceb{round}"))];
        let results: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = ids.iter().map(|id| s.spawn(|| c.run(D, id, &["sleep", "100000"], ann_detached(&[("name", &race)])).ok())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "round {round}: {results:?}");
        for id in ids {
            if c.task_status(id).is_some() {
                c.remove(id);
            } else {
                let _ = c.ctr(&["container", "rm", id]);
            }
            c.assert_no_leftovers(id);
        }
    }
}

/// CG-5 (issue 11 item 10): a `cpu-rt-runtime` the parent cgroup cannot grant is refused at
/// create with the annotation and the numbers (runc's own error is a bare "invalid argument"),
/// leaving nothing; without the real-time scheduler (cgroup v2) Docker's "kernel does not
/// support" text. Compared with the host's own budget of /docker.
#[test]
fn cg_5_cpu_rt_runtime_refused_with_dockers_error() {
    let c = Containerd::start();
    let rt_files = Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let parent_runtime: i64 = std::fs::read_to_string("/sys/fs/cgroup/cpu/docker/cpu.rt_runtime_us").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let key = format!("annotation \"{P}cpu-rt-runtime\": ");
    if !rt_files {
        let msg = refused(&c, "rtnone", ann(&[("cpu-rt-runtime", "950000")]));
        assert!(msg.contains(&format!("{key}kernel does not support CPU real-time scheduler")), "{msg}");
    } else if parent_runtime < 950000 {
        let msg = refused(&c, "rtbudget", ann(&[("cpu-rt-runtime", "950000")]));
        assert!(msg.contains(&format!("{key}cpu real-time runtime 950000 is more than the parent cgroup /docker has left")), "{msg}");
        assert!(!msg.contains("invalid argument: unknown"), "refused before runc: {msg}");
    } else {
        sh(&c, D, "rtok", ann(&[("cpu-rt-runtime", "950000")]), "true");
    }
}

/// US-1/US-2 for execs (issue 11 item 10): `ctr task exec --user 1000` runs with the user's
/// supplementary groups from the container's /etc/group (tester is in testgrp, 2000) and the
/// container's `group-add` groups, as Docker resolves exec users; an exec that names a group
/// gets no supplementary groups (US-1).
#[test]
fn us_2_exec_user_gets_supplementary_groups() {
    let c = Containerd::start();
    let id = c.id("execgrp");
    c.run(D, id, &["sleep", "100000"], ann_detached(&[("group-add", "3000")])).expect_ok();
    let exec = |eid: &str, user: &str| c.ctr(&["task", "exec", "--exec-id", eid, "--user", user, id, "sh", "-c", "id -u; id -g; id -G"]).expect_ok().stdout;
    let out = exec("u1", "1000");
    assert_eq!(ids(&out), ("1000".into(), "1000".into(), ["1000", "2000", "3000"].iter().map(|s| s.to_string()).collect()), "{out}");
    let out = exec("u2", "1000:2000");
    assert_eq!(ids(&out), ("1000".into(), "2000".into(), ["2000", "3000"].iter().map(|s| s.to_string()).collect()), "{out}");
    let out = c.ctr(&["task", "exec", "--exec-id", "u3", id, "id", "-G"]).expect_ok().stdout;
    assert_eq!(out.split_whitespace().collect::<BTreeSet<_>>(), ["0", "3000"].into_iter().collect(), "no --user: the container's groups");
    c.remove(id);
    c.assert_no_leftovers(id);
}

/// SY-1 with user namespaces (issue 11 item 11, containerd's TestUserNamespaces): a ctr
/// container with uid/gid mappings starts (it failed at runc create writing ping_group_range)
/// and runs as the mapped root; the Go shim runs it too.
#[test]
fn sy_1_user_namespace_container_starts() {
    let c = Containerd::start();
    let userns = RunOpts::rm().flag("--uidmap").flag("0:100000:65536").flag("--gidmap").flag("0:100000:65536");
    let script = "id -u; cat /proc/self/uid_map; cat /proc/sys/net/ipv4/ip_unprivileged_port_start";
    for (rt, base) in [(D, "userns"), (GO, "usernsgo")] {
        let out = sh(&c, rt, base, userns.clone(), script);
        let l: Vec<&str> = out.lines().collect();
        assert_eq!(l[0], "0", "{}: {out}", rt.name());
        assert_eq!(l[1].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"], "{}: {out}", rt.name());
        if rt == D {
            assert_eq!(l[2], "0", "SY-1 ip_unprivileged_port_start still set: {out}");
        }
    }
}

/// The claim file of a container name (host/src/claims.rs layout, `CLAIMS_DIR`: the scope is
/// the namespace directory of the bundles).
fn name_claim(c: &Containerd, name: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let ns_dir = std::fs::canonicalize(c.bundle(&c.ns, "x").parent().unwrap()).unwrap();
    Path::new("/run/containerd-shim-dockerish/claims").join(format!("ns-{}", hex(ns_dir.as_os_str().as_encoded_bytes()))).join("name").join(hex(name.as_bytes()))
}

/// NAME-1 and MT-13 undo: the name claim and the files are host actions, undone by `shim
/// delete` when the shim was SIGKILLed; the name is then free again.
#[test]
fn name_1_claim_released_by_shim_delete_after_a_crash() {
    let c = Containerd::start();
    let name = format!("crash-{}", c.ns);
    let id = c.id("claimcrash");
    c.run(D, id, &["sleep", "100000"], ann_detached(&[("name", &name)])).expect_ok();
    let claim = name_claim(&c, &name);
    assert!(claim.is_file(), "claim {} while the container runs", claim.display());
    let bundle = c.bundle(&c.ns, id);
    assert!(bundle.join("etc/hosts").is_file());
    procs::kill(c.shim_pid(id).expect("shim"), libc::SIGKILL);
    assert!(dockerish_tests::wait_until(std::time::Duration::from_secs(20), || !claim.exists()), "claim {} left after shim delete", claim.display());
    let _ = c.ctr(&["task", "rm", "-f", id]);
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_no_leftovers(id);
    sh(&c, D, "claimagain", ann(&[("name", &name)]), "true");
    assert!(!claim.exists(), "claim left after ctr run --rm");
}
