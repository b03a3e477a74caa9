//! Tests of the real host and the bundle file handling (no root needed unless noted).

use dockerish_host::*;
use dockerish_spec::{Host, Policy, Value};
use serde_json::json;
use std::fs;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> Value {
    let p = format!("{}/../spec/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

/// `<tmp>/<ns>/<id>/` with config.json and an empty rootfs, like containerd's task dir.
fn bundle(tmp: &Path, id: &str, spec: &Value) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let b = tmp.join("default").join(id);
    fs::create_dir_all(b.join("rootfs/etc")).unwrap();
    fs::write(b.join("config.json"), serde_json::to_vec(spec).unwrap()).unwrap();
    // containerd writes it 0644.
    fs::set_permissions(b.join("config.json"), fs::Permissions::from_mode(0o644)).unwrap();
    b
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".tmp")).collect()
}

#[test]
fn prepare_commit_and_retry_start_from_original() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path(), "test", &fixture("ctr_default"));
    let cfg = DaemonConfig::default();
    let f = prepare(&b, "test", "default", &cfg, "runc", None).unwrap();
    assert_eq!(f.policy, Policy::Fill);
    assert_eq!(f.spec["linux"]["cgroupsPath"], "/docker/test");
    commit(&b, &f).unwrap();
    let orig: Value = serde_json::from_slice(&fs::read(b.join("config.json.orig")).unwrap()).unwrap();
    assert_eq!(orig, fixture("ctr_default"));
    let now: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(now, f.spec);
    // Both owner-only (issue 13: the original spec holds the same environment).
    use std::os::unix::fs::PermissionsExt;
    for name in ["config.json", "config.json.orig"] {
        assert_eq!(fs::metadata(b.join(name)).unwrap().permissions().mode() & 0o777, 0o600, "{name}");
    }
    assert!(leftovers(&b).is_empty());
    // A retried Create starts again from the original, and the original is kept as it was.
    let f2 = prepare(&b, "test", "default", &cfg, "runc", None).unwrap();
    assert_eq!(f2.spec, f.spec);
    commit(&b, &f2).unwrap();
    let orig2: Value = serde_json::from_slice(&fs::read(b.join("config.json.orig")).unwrap()).unwrap();
    assert_eq!(orig2, fixture("ctr_default"));
}

#[test]
fn commit_failure_leaves_original_and_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path(), "test", &fixture("ctr_default"));
    let f = prepare(&b, "test", "default", &DaemonConfig::default(), "runc", None).unwrap();
    // Make the final rename fail: config.json.orig already there, config.json a non-empty dir.
    fs::rename(b.join("config.json"), b.join("config.json.orig")).unwrap();
    fs::create_dir(b.join("config.json")).unwrap();
    fs::write(b.join("config.json/x"), b"keep").unwrap();
    let e = commit(&b, &f).unwrap_err().to_string();
    assert!(e.starts_with(&format!("rename {}", b.join("config.json").display())), "{e}");
    assert!(e.contains("directory"), "errno text: {e}");
    assert!(!e.contains("os error"), "Go-style errno text: {e}");
    assert!(leftovers(&b).is_empty(), "temp file removed");
    assert_eq!(fs::read(b.join("config.json/x")).unwrap(), b"keep");
    // Bundle that does not exist: error names the path.
    let e = commit(&tmp.path().join("nope"), &f).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn prepare_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("default/x");
    fs::create_dir_all(&b).unwrap();
    let e = prepare(&b, "x", "default", &DaemonConfig::default(), "runc", None).unwrap_err().to_string();
    assert!(e.starts_with("read ") && e.contains("config.json") && e.contains("no such file"), "{e}");
    fs::write(b.join("config.json"), b"{").unwrap();
    let e = prepare(&b, "x", "default", &DaemonConfig::default(), "runc", None).unwrap_err().to_string();
    assert!(e.contains("config.json: invalid JSON"), "{e}");
    let spec = fixture("ctr_default");
    let mut spec = spec.clone();
    spec["annotations"] = json!({"io.containerd.dockerish/ipc": "bogus"});
    fs::write(b.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    let e = prepare(&b, "x", "default", &DaemonConfig::default(), "runc", None).unwrap_err().to_string();
    assert_eq!(e, "annotation \"io.containerd.dockerish/ipc\": invalid IPC mode: bogus");
}

#[test]
fn us_1_rootfs_symlinks_cannot_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/group"), b"root:x:0:\n").unwrap();
    let h = RealHost::new(tmp.path(), &rootfs, "runc");
    // absolute link to a host file that does not exist inside the rootfs
    symlink("/etc/shadow", rootfs.join("etc/passwd")).unwrap();
    assert_eq!(h.rootfs_file("/etc/passwd").unwrap(), None);
    fs::remove_file(rootfs.join("etc/passwd")).unwrap();
    // relative link climbing out: clamped at the rootfs, ends on itself → a loop, an error
    symlink("../../../../../../etc/passwd", rootfs.join("etc/passwd")).unwrap();
    let e = h.rootfs_file("/etc/passwd").unwrap_err().to_string();
    assert_eq!(e, format!("open {}/etc/passwd: too many levels of symbolic links", rootfs.display()));
    // a link to /etc/group resolves to the rootfs's own file, not the host's
    symlink("/etc/group", rootfs.join("etc/alias")).unwrap();
    assert_eq!(h.rootfs_file("/etc/alias").unwrap().unwrap(), b"root:x:0:\n");
    symlink("../../../../etc/group", rootfs.join("etc/alias2")).unwrap();
    assert_eq!(h.rootfs_file("etc/alias2").unwrap().unwrap(), b"root:x:0:\n");
    // missing files (or a missing directory on the way) are "absent"
    assert_eq!(h.rootfs_file("/nope/x").unwrap(), None);
    assert_eq!(h.rootfs_file("/etc/group/x").unwrap(), None);
}

/// US-1 (issue 13): the image decides what `/etc/passwd` is. Only a regular file is opened for
/// reading; anything else is an error naming the file, and is never opened: a device node
/// would reach its driver on the host, a FIFO would wait for a writer.
#[test]
fn us_1_rootfs_reads_open_only_regular_files() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    let h = RealHost::new(tmp.path(), &rootfs, "runc");
    let passwd = rootfs.join("etc/passwd");
    let refused = |kind: &str| format!("{}: refused: not a regular file ({kind})", passwd.display());

    // A FIFO with a writer waiting for a reader: opening it would release the writer.
    nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = passwd.clone();
    let writer = std::thread::spawn(move || {
        let f = fs::OpenOptions::new().write(true).open(&p);
        let _ = tx.send(());
        f.map(|_| ())
    });
    assert_eq!(h.rootfs_file("/etc/passwd").unwrap_err().to_string(), refused("a FIFO"));
    assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(), "the FIFO was opened for reading: its writer got through");
    // Release the writer ourselves.
    let release = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&passwd).unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("writer released");
    writer.join().unwrap().unwrap();
    drop(release);
    fs::remove_file(&passwd).unwrap();

    let sock = std::os::unix::net::UnixListener::bind(&passwd).unwrap();
    assert!(fs::symlink_metadata(&passwd).unwrap().file_type().is_socket());
    assert_eq!(h.rootfs_file("/etc/passwd").unwrap_err().to_string(), refused("a socket"));
    drop(sock);
    fs::remove_file(&passwd).unwrap();

    fs::create_dir(&passwd).unwrap();
    assert_eq!(h.rootfs_file("/etc/passwd").unwrap_err().to_string(), refused("a directory"));
    fs::remove_dir(&passwd).unwrap();

    if nix::unistd::geteuid().is_root() {
        // An unassigned major: opening it would fail with ENXIO, so the text tells whether it was.
        nix::sys::stat::mknod(&passwd, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o644), nix::sys::stat::makedev(240, 0)).unwrap();
        assert_eq!(h.rootfs_file("/etc/passwd").unwrap_err().to_string(), refused("a character device"));
        fs::remove_file(&passwd).unwrap();
        nix::sys::stat::mknod(&passwd, nix::sys::stat::SFlag::S_IFBLK, nix::sys::stat::Mode::from_bits_truncate(0o644), nix::sys::stat::makedev(240, 0)).unwrap();
        assert_eq!(h.rootfs_file("/etc/passwd").unwrap_err().to_string(), refused("a block device"));
        fs::remove_file(&passwd).unwrap();
    } else {
        eprintln!("device nodes skipped: needs root");
    }
    // A link to a device of the host is resolved in the rootfs (absent here), never on the host.
    symlink("/dev/null", &passwd).unwrap();
    assert_eq!(h.rootfs_file("/etc/passwd").unwrap(), None);
}

/// US-1 through `fill`: the error names the annotation that made the shim read the file, and
/// the file.
#[test]
fn us_1_a_device_node_as_passwd_is_an_error_naming_the_annotation_and_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = fixture("ctr_default");
    spec["annotations"] = json!({"io.containerd.dockerish/user": "app"});
    let b = bundle(tmp.path(), "test", &spec);
    fs::write(b.join("rootfs/etc/group"), "app:x:1000:\n").unwrap();
    nix::unistd::mkfifo(&b.join("rootfs/etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let e = prepare(&b, "test", "default", &DaemonConfig::default(), "runc", None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("annotation \"io.containerd.dockerish/user\": reading /etc/passwd of the container's rootfs: {}/rootfs/etc/passwd: refused: not a regular file (a FIFO)", b.display())
    );
    // group-add alone reads /etc/group: its error names group-add.
    spec["annotations"] = json!({"io.containerd.dockerish/group-add": "audio"});
    fs::write(b.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    fs::remove_file(b.join("rootfs/etc/group")).unwrap();
    fs::create_dir(b.join("rootfs/etc/group")).unwrap();
    let e = prepare(&b, "test", "default", &DaemonConfig::default(), "runc", None).unwrap_err().to_string();
    assert!(e.starts_with("annotation \"io.containerd.dockerish/group-add\": reading /etc/group of the container's rootfs: ") && e.ends_with("refused: not a regular file (a directory)"), "{e}");
}

#[test]
fn us_1_rootfs_read_is_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/passwd"), vec![b'a'; 11 * 1024 * 1024]).unwrap();
    let h = RealHost::new(tmp.path(), &rootfs, "runc");
    assert_eq!(h.rootfs_file("/etc/passwd").unwrap().unwrap().len(), 10 * 1024 * 1024 + 1);
}

fn sibling(tmp: &Path, id: &str, ann: Value, pid: Option<u32>) -> PathBuf {
    let mut spec = fixture("ctr_default");
    spec["annotations"] = ann;
    let b = bundle(tmp, id, &spec);
    if let Some(p) = pid {
        fs::write(b.join("init.pid"), p.to_string()).unwrap();
    }
    b
}

#[test]
fn ns_10_sibling_lookup_by_id_name_prefix_and_pid_reuse_guard() {
    let tmp = tempfile::tempdir().unwrap();
    let me = std::process::id();
    let own = sibling(tmp.path(), "self", json!({}), None);
    sibling(tmp.path(), "abc111", json!({"nerdctl/name": "web"}), Some(me));
    sibling(tmp.path(), "abc222", json!({"io.containerd.dockerish/name": "db"}), Some(999_999_999));
    let old = sibling(tmp.path(), "def333", json!({}), Some(me));
    // init.pid written "before" this process started → the PID was reused → not running
    let f = fs::File::options().write(true).open(old.join("init.pid")).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)).unwrap();
    // a symlinked "bundle" pointing outside the namespace dir is never considered
    let outside = tempfile::tempdir().unwrap();
    let evil = sibling(outside.path(), "evil", json!({"nerdctl/name": "evil"}), Some(me));
    symlink(&evil, tmp.path().join("default/evil")).unwrap();

    let h = RealHost::new(&own, &own.join("rootfs"), "runc");
    let t = h.sibling_task("web").unwrap().unwrap();
    assert_eq!((t.id.as_str(), t.pid, t.running), ("abc111", me as i32, true));
    let t = h.sibling_task("db").unwrap().unwrap();
    assert_eq!((t.id.as_str(), t.running), ("abc222", false));
    assert!(!h.sibling_task("def").unwrap().unwrap().running, "PID reuse guard");
    assert_eq!(h.sibling_task("abc111").unwrap().unwrap().id, "abc111");
    assert_eq!(h.sibling_task("abc").unwrap_err().to_string(), "multiple IDs found with provided prefix: abc");
    assert_eq!(h.sibling_task("evil").unwrap(), None);
    assert_eq!(h.sibling_task("nope").unwrap(), None);
    assert_eq!(h.sibling_task("").unwrap(), None);
    assert_eq!(h.sibling_task("../x").unwrap(), None);
}

#[test]
fn ns_3_shareable_sibling_reports_its_shm_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let own = sibling(tmp.path(), "self", json!({}), None);
    let donor = sibling(tmp.path(), "donor", json!({}), Some(std::process::id()));
    fs::write(donor.join(ACTIONS_FILE), serde_json::to_vec(&json!([{"kind": "shm-tmpfs", "path": "/run/x/donor/shm", "size": 1}])).unwrap()).unwrap();
    let h = RealHost::new(&own, &own.join("rootfs"), "runc");
    assert_eq!(h.sibling_task("donor").unwrap().unwrap().shm_path.as_deref(), Some("/run/x/donor/shm"));
}

#[test]
fn actions_persist_and_undo_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    fs::create_dir_all(&b).unwrap();
    // nothing persisted: undo is a no-op
    undo_actions_from_bundle(&b).unwrap();
    let shm = b.join("shm");
    let acts = vec![HostAction::ShmTmpfs { path: shm.display().to_string(), size: 1 << 20 }];
    fs::write(b.join(ACTIONS_FILE), serde_json::to_vec(&acts).unwrap()).unwrap();
    fs::create_dir(&shm).unwrap();
    assert_eq!(read_actions(&b).unwrap(), acts);
    undo_actions_from_bundle(&b).unwrap();
    assert!(!shm.exists() && !b.join(ACTIONS_FILE).exists());
    undo_actions(&b, &acts).unwrap();
    // a tampered path is refused by apply and skipped by undo
    let bad = vec![HostAction::ShmTmpfs { path: "/etc".into(), size: 1 }];
    assert!(apply_actions(&b, &bad).unwrap_err().to_string().contains("refused"));
    undo_actions(&b, &bad).unwrap();
    assert!(Path::new("/etc").exists());
}

/// MT-13: the files are written 0644 and owned by the container's root, undone at delete; an
/// etc file outside the bundle or with another name is refused (a tampered actions file cannot
/// remove host files).
#[test]
fn mt_13_etc_files_written_owned_and_removed() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    fs::create_dir_all(&b).unwrap();
    let root = nix::unistd::geteuid().is_root();
    let (uid, gid) = if root { (100000, 200000) } else { (0, 0) };
    let acts = vec![
        HostAction::EtcFile { path: b.join("etc/hosts").display().to_string(), content: "127.0.0.1\tlocalhost\n".into(), uid, gid },
        HostAction::EtcFile { path: b.join("etc/resolv.conf").display().to_string(), content: "nameserver 8.8.8.8\n".into(), uid, gid },
    ];
    if root {
        apply_actions(&b, &acts).unwrap();
        let md = fs::metadata(b.join("etc/hosts")).unwrap();
        assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o644, uid, gid));
        assert_eq!(fs::metadata(b.join("etc")).unwrap().mode() & 0o7777, 0o711);
        assert_eq!(fs::read_to_string(b.join("etc/resolv.conf")).unwrap(), "nameserver 8.8.8.8\n");
        undo_actions_from_bundle(&b).unwrap();
        assert!(!b.join("etc").exists() && !b.join(ACTIONS_FILE).exists());
    }
    let outside = tmp.path().join("victim");
    fs::write(&outside, "x").unwrap();
    let bads = [outside.clone(), b.join("config.json"), b.join("etc/passwd"), b.join("hosts")];
    for bad in bads.iter().map(|p| HostAction::EtcFile { path: p.display().to_string(), content: String::new(), uid: 0, gid: 0 }) {
        assert!(apply_actions(&b, std::slice::from_ref(&bad)).unwrap_err().to_string().contains("refused"), "{bad:?}");
        undo_actions(&b, &[bad]).unwrap();
    }
    assert!(outside.exists());
}

/// GEN-3/MT-13 `container:`: a sibling reports its hostname and its /etc file binds.
#[test]
fn gen_3_sibling_reports_hostname_and_etc_files() {
    let tmp = tempfile::tempdir().unwrap();
    let own = sibling(tmp.path(), "self", json!({}), None);
    let mut spec = fixture("ctr_default");
    spec["hostname"] = json!("dbhost");
    spec["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc/hosts", "type": "bind", "source": "/b/donor/hosts", "options": ["rbind"]}));
    bundle(tmp.path(), "donor", &spec);
    let h = RealHost::new(&own, &own.join("rootfs"), "runc");
    let t = h.sibling_task("donor").unwrap().unwrap();
    assert_eq!(t.hostname.as_deref(), Some("dbhost"));
    assert_eq!(t.etc_files, vec![("/etc/hosts".to_string(), "/b/donor/hosts".to_string())]);
    spec.as_object_mut().unwrap().remove("hostname");
    spec["process"]["env"] = json!(["PATH=/bin", "HOSTNAME=fromenv"]);
    bundle(tmp.path(), "donor2", &spec);
    assert_eq!(h.sibling_task("donor2").unwrap().unwrap().hostname.as_deref(), Some("fromenv"));
}

#[test]
fn ipc_4_shm_tmpfs_mount_and_unmount_as_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().to_path_buf();
    let shm = b.join("shm");
    let acts = vec![HostAction::ShmTmpfs { path: shm.display().to_string(), size: 1 << 20 }];
    apply_actions(&b, &acts).unwrap();
    apply_actions(&b, &acts).unwrap(); // idempotent
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mi.lines().find(|l| l.contains(&*shm.display().to_string())).expect("mounted");
    assert!(line.contains("nosuid") && line.contains("nodev") && line.contains("noexec") && line.contains("size=1024k"), "{line}");
    undo_actions_from_bundle(&b).unwrap();
    assert!(!fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&*shm.display().to_string()));
    assert!(!shm.exists());
}

#[test]
fn load_config_precedence_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let json_p = tmp.path().join("d.json");
    let toml_p = tmp.path().join("d.toml");
    let env_p = tmp.path().join("env.toml");
    let def_p = tmp.path().join("default.toml");
    fs::write(&json_p, r#"{"cgroup-scope-prefix":"fromjson"}"#).unwrap();
    fs::write(&toml_p, "cgroup-scope-prefix = \"fromtoml\"\n").unwrap();
    fs::write(&env_p, "cgroup-scope-prefix = \"fromenv\"\n").unwrap();
    fs::write(&def_p, "cgroup-scope-prefix = \"fromdefault\"\n").unwrap();
    let body = Some("cgroup-scope-prefix = \"frombody\"");
    let p = |c: DaemonConfig| c.cgroup_scope_prefix;
    assert_eq!(p(load_config_from(Some(&json_p), body, Some(&env_p), &def_p).unwrap()), "fromjson");
    assert_eq!(p(load_config_from(Some(&toml_p), body, Some(&env_p), &def_p).unwrap()), "fromtoml");
    assert_eq!(p(load_config_from(None, body, Some(&env_p), &def_p).unwrap()), "frombody");
    assert_eq!(p(load_config_from(None, None, Some(&env_p), &def_p).unwrap()), "fromenv");
    assert_eq!(p(load_config_from(None, None, None, &def_p).unwrap()), "fromdefault");
    assert_eq!(p(load_config_from(None, None, None, &tmp.path().join("none.toml")).unwrap()), "docker");
    fs::write(&json_p, r#"{"bogus": 1}"#).unwrap();
    let e = load_config_from(Some(&json_p), None, None, &def_p).unwrap_err().to_string();
    assert_eq!(e, format!("config file {}: config \"bogus\": unknown key", json_p.display()));
    let e = load_config_from(None, Some("init = 5"), None, &def_p).unwrap_err().to_string();
    assert!(e.contains("config_body") && e.contains("config \"init\": expected a boolean, got 5"), "{e}");
    let e = load_config_from(Some(&tmp.path().join("missing.json")), None, None, &def_p).unwrap_err().to_string();
    assert!(e.contains("missing.json") && e.contains("no such file"), "{e}");
}

#[test]
fn real_host_facts_on_this_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let h = RealHost::new(tmp.path(), tmp.path(), "runc");
    assert!(!h.mountinfo().unwrap().is_empty());
    assert!(h.kernel_version().is_some());
    assert!(!h.arch().is_empty());
    assert!(h.num_cpus() >= 1);
    assert!(h.cpuset_available().is_some());
    assert!(h.own_capabilities().iter().all(|c| c.starts_with("CAP_")));
    assert_eq!(h.realpath("/").unwrap(), "/");
    assert!(h.realpath("/nonexistent/x").unwrap_err().to_string().starts_with("lstat /nonexistent/x: no such file or directory"));
    let null = h.host_device("/dev/null").unwrap().unwrap();
    assert_eq!((null.kind, null.major, null.minor), ('c', 1, 3));
    assert_eq!(h.host_device("/etc").unwrap(), None);
    assert!(h.host_device("/dev/nope").unwrap_err().to_string().starts_with("lstat /dev/nope: no such file or directory"));
    assert_eq!(h.read_config_file("/nonexistent").unwrap(), None);
    assert!(h.host_file(dockerish_spec::HostFile::Passwd).unwrap().is_some_and(|p| p.contains("root:")));
    assert_eq!(h.sysctl_exists("net.ipv4.ip_forward"), std::path::Path::new("/proc/sys/net/ipv4/ip_forward").exists());
    assert!(!h.sysctl_exists("net..ipv4") && !h.sysctl_exists("net/../../etc"));
    assert_eq!(h.lookup_executable("sh", &[]).as_deref().map(|p| p.ends_with("/sh")), Some(true));
    assert_eq!(h.lookup_executable("no-such-binary-here", &["/usr/bin"]), None);
    assert_eq!(h.own_init_pid(), None);
    let v1_weight = Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists();
    let v2_io = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok_and(|c| c.split_whitespace().any(|x| x == "io"));
    assert_eq!(h.blkio_weight_supported(), if h.cgroup_v2() { v2_io } else { v1_weight });
    if let Some(f) = h.runc_features() {
        assert!(f.get("mountOptions").is_some());
    }
}

/// CG-1 guard: the cgroup of a cgroupfs path is read from the unified hierarchy on v2 and from
/// the `pids` hierarchy on v1; relative paths and `..` are never read.
#[test]
fn cg_1_cgroup_procs_file_per_hierarchy() {
    use dockerish_host::realhost::cgroup_procs_file;
    assert_eq!(cgroup_procs_file(true, "/docker/x").unwrap(), Path::new("/sys/fs/cgroup/docker/x/cgroup.procs"));
    assert_eq!(cgroup_procs_file(false, "/docker/x").unwrap(), Path::new("/sys/fs/cgroup/pids/docker/x/cgroup.procs"));
    assert_eq!(cgroup_procs_file(false, "docker/x"), None);
    assert_eq!(cgroup_procs_file(true, "/a/../../etc"), None);
}

/// `runc features` is cached per runc binary identity; a different binary gets its own entry.
#[test]
fn runc_features_cached_by_binary_identity() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("fake-runc");
    let count = d.path().join("count");
    std::fs::write(&bin, format!("#!/bin/sh\necho x >> {}\necho '{{\"ociVersionMin\":\"1.0.0\"}}'\n", count.display())).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&bin).status().unwrap();
    let cache = d.path().join("cache");
    let bin_s = bin.to_str().unwrap();
    for _ in 0..3 {
        let v = dockerish_host::realhost::cached_runc_features(bin_s, &cache).expect("features");
        assert_eq!(v["ociVersionMin"], "1.0.0");
    }
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1, "runc ran once");
    // Replacing the binary (new inode/mtime/size) invalidates the entry.
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(&bin, format!("#!/bin/sh\necho y >> {}\necho '{{\"ociVersionMin\":\"1.1.0\"}}'\n", count.display())).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&bin).status().unwrap();
    let v = dockerish_host::realhost::cached_runc_features(bin_s, &cache).expect("features");
    assert_eq!(v["ociVersionMin"], "1.1.0");
    // A failing runc is not cached.
    assert!(dockerish_host::realhost::cached_runc_features("/nonexistent/runc", &cache).is_none());
}

/// CG-1 claims are host-wide: bundles of two namespaces (and two containerds) conflict; the
/// error names the cgroup, the holder and its namespace; the host's class directory stays.
#[test]
fn cg_1_cgroup_claims_are_host_wide() {
    use dockerish_host::claims::{claim, release};
    use dockerish_spec::ClaimScope::Host;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("claims");
    let a = tmp.path().join("state1/team-a/web");
    let b = tmp.path().join("state2/team-b/web");
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
    }
    claim(&root, &a, Host, "cgroup", "/batch/web").unwrap();
    let e = claim(&root, &b, Host, "cgroup", "/batch/web").unwrap_err().to_string();
    assert_eq!(e, "cgroup \"/batch/web\" is already in use by container \"web\" of namespace \"team-a\": containers never share a cgroup (CG-1); give this container another id, cgroup-parent or cgroups path");
    claim(&root, &a, Host, "systemd-unit", "docker-web.scope").unwrap();
    let e = claim(&root, &b, Host, "systemd-unit", "docker-web.scope").unwrap_err().to_string();
    assert!(e.starts_with("systemd unit \"docker-web.scope\" is already in use by container \"web\" of namespace \"team-a\""), "{e}");
    release(&root, &a, Host, "cgroup", "/batch/web").unwrap();
    release(&root, &a, Host, "systemd-unit", "docker-web.scope").unwrap();
    claim(&root, &b, Host, "cgroup", "/batch/web").unwrap();
    release(&root, &b, Host, "cgroup", "/batch/web").unwrap();
    assert!(root.join("host/cgroup").is_dir(), "the host's class directory stays");
    assert_eq!(fs::read_dir(root.join("host/cgroup")).unwrap().count(), 0, "no claim left");
}

/// NAME-1 claims: one owner per key and scope, even when creates race; the owner may claim
/// again; a claim whose owner bundle is gone is taken over; release leaves others' claims and
/// removes empty directories; another namespace is another scope.
#[test]
fn name_1_claims_are_exclusive_and_race_free() {
    use dockerish_host::claims::{claim, claim_path, release};
    use dockerish_spec::ClaimScope::Namespace;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("claims");
    let a = bundle(tmp.path(), "a", &json!({}));
    let b = bundle(tmp.path(), "b", &json!({}));
    claim(&root, &a, Namespace, "name", "web").unwrap();
    claim(&root, &a, Namespace, "name", "web").unwrap();
    let e = claim(&root, &b, Namespace, "name", "web").unwrap_err().to_string();
    assert_eq!(e, "Conflict. The container name \"/web\" is already in use by container \"a\". You have to remove (or rename) that container to be able to reuse that name.");
    release(&root, &b, Namespace, "name", "web").unwrap(); // not b's: left alone
    assert!(claim(&root, &b, Namespace, "name", "web").is_err());
    release(&root, &a, Namespace, "name", "web").unwrap();
    claim(&root, &b, Namespace, "name", "web").unwrap();
    // stale: the owner's bundle is gone
    fs::remove_dir_all(&b).unwrap();
    claim(&root, &a, Namespace, "name", "web").unwrap();
    // another namespace dir is another scope
    let other = tmp.path().join("otherns").join("c");
    fs::create_dir_all(&other).unwrap();
    claim(&root, &other, Namespace, "name", "web").unwrap();
    release(&root, &other, Namespace, "name", "web").unwrap();
    release(&root, &a, Namespace, "name", "web").unwrap();
    let left: Vec<_> = fs::read_dir(&root).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, [".lock"], "empty claim directories are removed, the one lock file stays");
    assert!(claim_path(&root, &a, Namespace, "../x", "web").is_err());

    // Racing creates: exactly one of 16 threads wins each round.
    let bundles: Vec<PathBuf> = (0..16).map(|i| bundle(tmp.path(), &format!("r{i}"), &json!({}))).collect();
    for round in 0..20 {
        let key = format!("race{round}");
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = bundles.iter().map(|b| s.spawn(|| claim(&root, b, Namespace, "name", &key).is_ok())).collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1, "round {round}");
    }
}

/// NAME-1: the real host finds the other containers holding a name (name annotations or IDs).
#[test]
fn name_1_containers_named_scans_the_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let own = sibling(tmp.path(), "self", json!({"io.containerd.dockerish/name": "web"}), None);
    sibling(tmp.path(), "other", json!({"io.containerd.dockerish/name": "web"}), Some(1));
    sibling(tmp.path(), "db", json!({"nerdctl/name": "cache"}), Some(1));
    // still in its own Create (no init.pid): its claim decides, not the scan
    sibling(tmp.path(), "creating", json!({"io.containerd.dockerish/name": "api"}), None);
    let h = RealHost::new(&own, &own.join("rootfs"), "runc");
    assert_eq!(h.containers_named("web").unwrap(), vec!["other".to_string()]);
    assert_eq!(h.containers_named("cache").unwrap(), vec!["db".to_string()]);
    assert_eq!(h.containers_named("db").unwrap(), vec!["db".to_string()], "an ID is a name too");
    assert!(h.containers_named("self").unwrap().is_empty());
    assert!(h.containers_named("none").unwrap().is_empty());
    assert!(h.containers_named("api").unwrap().is_empty());
}

/// US-2 at exec (issue 11 item 10): the exec's user chosen by the client gets its groups from
/// the container's rootfs and the container's group-add; the container's own user is left alone.
#[test]
fn us_2_exec_users_resolve_from_the_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = fixture("ctr_default");
    spec["annotations"] = json!({"io.containerd.dockerish/group-add": "extra"});
    let b = bundle(tmp.path(), "c", &spec);
    fs::write(b.join("rootfs/etc/passwd"), "root:x:0:0::/root:/bin/sh\ntester:x:1000:1000::/:/bin/sh\n").unwrap();
    fs::write(b.join("rootfs/etc/group"), "root:x:0:\ntestgrp:x:2000:tester\nextra:x:3000:\n").unwrap();
    let cfg = DaemonConfig::default();
    let filled = prepare(&b, "c", "default", &cfg, "runc", None).unwrap();
    let users = ExecUsers::new(&b, &spec, &filled, &cfg);
    let mut p = json!({"args": ["id"], "user": {"uid": 1000, "gid": 1000, "additionalGids": [0]}});
    assert!(users.resolve(&mut p).unwrap());
    assert_eq!(p["user"]["additionalGids"], json!([1000, 2000, 3000]));
    let mut p = json!({"args": ["id"], "user": {"uid": 0, "gid": 0}});
    assert!(!users.resolve(&mut p).unwrap());
    assert_eq!(p["user"], json!({"uid": 0, "gid": 0}));
}
