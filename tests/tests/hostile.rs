//! Hostile input (issue 6, items 3 and 4).
//!
//! - Every parser the shim runs on input it does not control goes through a bounded mutation
//!   run of its fuzz target (`fuzz/src/lib.rs`, the same bodies cargo-fuzz runs): no panic, a
//!   clear error per rejected input. `DOCKERISH_FUZZ_SECS` sets the seconds per target
//!   (default 2; scripts/soak runs minutes).
//! - Garbage on the shim's ttrpc socket: every method answers with a status, the shim survives.
//! - A symlink in the rootfs cannot make the shim read a host file.
//! - A container ID or an annotation cannot name a path outside the state directory.
//! - A namespace join cannot target a task of another containerd namespace, nor a reused PID.
//! - Privilege-raising annotations are refused unless the config allows them.
//! - The socket and the files the shim creates are owner-only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockerish_tests::shim_direct::DirectShim;
use dockerish_tests::ttrpc_raw::{self, CallError, TASK_V2};
use dockerish_tests::{image, pb, procs, Containerd, RunOpts, Runtime};

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz;

const D: Runtime = Runtime::Dockerish;
const P: &str = "io.containerd.dockerish/";
const T: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Fuzz targets, bounded

fn fuzz_secs() -> f64 {
    std::env::var("DOCKERISH_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0)
}

fn run_target(name: &str) {
    let (name, body) = *fuzz::TARGETS.iter().find(|t| t.0 == name).expect("known target");
    let seed = std::env::var("DOCKERISH_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_0000 + name.len() as u64);
    let crash_dir = dockerish_tests::target_dir().join("fuzz-crashes");
    let st = fuzz::run_bounded(name, body, Duration::from_secs_f64(fuzz_secs()), seed, Some(&crash_dir));
    // One line per target, collected by scripts/soak for docs/RELIABILITY.md.
    eprintln!("FUZZ {} inputs={} secs={:.1}", st.target, st.inputs, st.elapsed.as_secs_f64());
    assert!(st.inputs > 0);
}

macro_rules! fuzz_tests {
    ($($t:ident),+) => { mod fuzz_bounded { $( #[test] fn $t() { super::run_target(stringify!($t)) } )+ } };
}
fuzz_tests!(annotations, daemon_config, mountinfo, passwd_group, runtime_options, bootstrap_params, shim_flags, stdio);

#[test]
fn every_fuzz_target_has_a_cargo_fuzz_binary() {
    let dir = dockerish_tests::workspace_root().join("fuzz");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    for (name, _) in fuzz::TARGETS {
        assert!(dir.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "fuzz_targets/{name}.rs missing");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "[[bin]] {name} missing in fuzz/Cargo.toml");
        assert!(!fuzz::seeds(name).is_empty(), "no seeds for {name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage on the ttrpc socket

use dockerish_spec::testing::Rng;

/// Reads a FIFO in the background (as containerd does with the shim's `log`), keeping the text.
fn drain_log(path: &Path) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::io::Read;
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut f = std::fs::File::open(path).expect("open log fifo");
    let o = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            o.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    out
}

/// Random protobuf-ish payloads to every task method (Create with a garbage spec and random
/// options): each call gets a status or a reply, never a dropped connection; the shim keeps
/// serving and `delete` leaves nothing.
#[test]
fn garbage_requests_get_errors_not_crashes() {
    let c = Containerd::start();
    let s = DirectShim::new(&c, D);
    let address = s.start(b"").expect_ok().stdout.trim().to_string();
    let shim_pid = s.daemons().first().map(|p| p.pid).expect("shim daemon running");
    // containerd drains the shim's log FIFO; here we must, or the shim blocks once it is full.
    let log = drain_log(&s.bundle.join("log"));
    let mut cl = ttrpc_raw::Client::connect(&address).expect("connect");
    // Shutdown would legitimately stop an empty shim; Wait blocks by design; Create gets its
    // own structured requests below (its bundle and stdio paths are trusted containerd input).
    let methods = [
        "State", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec", "ResizePty", "CloseIO", "Update", "Stats", "Connect",
    ];
    let mut r = Rng(0xdead_beef_cafe);
    let mut calls = 0;
    for i in 0..600 {
        let m = methods[i % methods.len()];
        let payload = match r.next() % 3 {
            0 => r.bytes(64),
            // field 1 (id) set to our id or junk, then random tail.
            1 => {
                let mut b = pb::Msg::new().str(1, if r.next() & 1 == 0 { &s.id } else { "../../x" }).str(2, "e1").into_bytes();
                b.extend(r.bytes(32));
                b
            }
            _ => pb::Msg::new().str(1, &s.id).bytes(2, &r.bytes(48)).uint(3, r.next()).into_bytes(),
        };
        match cl.call(TASK_V2, m, &payload) {
            Ok(_) | Err(CallError::Status(_)) => {}
            Err(e) => {
                let alive = procs::read_proc(shim_pid).map(|p| p.state);
                let fresh = ttrpc_raw::Client::connect(&address).map(|mut c2| c2.connect_task(TASK_V2, &s.id).map(|_| ()).map_err(|e| e.to_string()));
                let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
                panic!("shim log:\n{log}\ncall #{i} {m} with {} random bytes {payload:02x?}: transport failure: {e}; shim state {alive:?}, fresh connection: {fresh:?}", payload.len())
            }
        }
        calls += 1;
    }
    let bad_options = [
        pb::any("example.com/evil.v1", b"\x0a\x01x").into_bytes(),
        pb::any("containerd.runc.v1.Options", b"\xff\xff\xff").into_bytes(),
        pb::any("runtimeoptions.v1.Options", b"\x12\x10/nonexistent.toml").into_bytes(),
        pb::any("runtimeoptions.v1.Options", b"\x1a\x05[[[[[").into_bytes(),
    ];
    let specs: [&[u8]; 5] = [b"", b"null", b"[]", b"{\"process\": 5, \"root\": {\"path\": 7}}", b"{\"annotations\": {\"io.containerd.dockerish/privileged\": 1}}"];
    for (i, spec) in specs.iter().enumerate() {
        std::fs::write(s.bundle.join("config.json"), spec).unwrap();
        for opts in &bad_options {
            let req = pb::Msg::new().str(1, &s.id).str(2, &s.bundle.to_string_lossy()).bytes(10, opts).into_bytes();
            match cl.call(TASK_V2, "Create", &req) {
                Err(CallError::Status(st)) => assert!(!st.message.is_empty(), "Create #{i}: empty error"),
                Ok(_) => panic!("Create with garbage spec {:?} succeeded", String::from_utf8_lossy(spec)),
                Err(e) => panic!("Create #{i}: transport failure (shim crash?): {e}"),
            }
            calls += 1;
        }
    }
    eprintln!("{calls} garbage requests answered");
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(!text.contains("panicked"), "the shim panicked:\n{text}");
    assert!(procs::alive(shim_pid), "shim died");
    let (pid, _, _) = cl.connect_task(TASK_V2, &s.id).expect("shim still answers");
    assert_eq!(pid as i32, shim_pid);
    let _ = cl.shutdown(TASK_V2, &s.id, false);
    drop(cl);
    assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()), "shim did not exit on Shutdown");
    assert_eq!(s.delete().code(), 0);
    assert!(!procs::runc_state(&s.ns, &s.id).exists());
    assert!(procs::mounts_under(&s.bundle).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Paths

/// `/etc/passwd` and `/etc/group` of the rootfs are symlinks (absolute, and `../`-relative)
/// naming a host path that holds a user the rootfs does not have. The shim resolves them inside
/// the rootfs: the rootfs's own file at that path is used, the host's never.
#[test]
fn rootfs_symlink_cannot_make_the_shim_read_a_host_file() {
    let c = Containerd::start();
    let hostdir = c.dir.join("hostsecret");
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::write(hostdir.join("passwd"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
    std::fs::write(hostdir.join("group"), "evilgrp:x:4343:\n").unwrap();
    let rootfs = c.dir.join("symrootfs");
    image::extract_rootfs(&rootfs);
    // Same absolute path inside the rootfs, different content.
    let inside = rootfs.join(hostdir.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("passwd"), "inside:x:5151:5151::/:/bin/sh\n").unwrap();
    std::fs::write(inside.join("group"), "insidegrp:x:5252:\n").unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    for f in ["passwd", "group"] {
        let _ = std::fs::remove_file(rootfs.join("etc").join(f));
    }
    std::os::unix::fs::symlink(hostdir.join("passwd"), rootfs.join("etc/passwd")).unwrap();
    let up = "../".repeat(12);
    std::os::unix::fs::symlink(format!("{up}{}", hostdir.join("group").strip_prefix("/").unwrap().display()), rootfs.join("etc/group")).unwrap();

    let run = |base: &str, user: &str, group_add: Option<&str>| {
        let id = c.id(base);
        // ctr 1.6: `--rootfs` is a switch; the rootfs directory takes the image's place.
        let mut args = vec!["run".to_string(), "--runtime".into(), D.name().into(), "--rm".into(), "--rootfs".into()];
        args.extend(["--annotation".into(), format!("{P}user={user}")]);
        if let Some(g) = group_add {
            args.extend(["--annotation".into(), format!("{P}group-add={g}")]);
        }
        args.extend([rootfs.display().to_string(), id.to_string(), "sh".into(), "-c".into(), "id -u; id -G".into()]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = c.ctr_with(&a, None, T);
        (id, o)
    };
    let (id, o) = run("symok", "inside", Some("insidegrp"));
    assert_eq!(o.code(), 0, "user from the rootfs's own file: {}", o.stderr);
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("5151"), "{}", o.stdout);
    assert!(lines.next().unwrap_or("").split_whitespace().any(|g| g == "5252"), "group-add from the rootfs's group: {}", o.stdout);
    c.assert_no_leftovers(id);

    let (id, o) = run("symevil", "evil", None);
    assert!(!o.stdout.contains("4242"), "ran as the host file's uid: {}", o.stdout);
    let msg = o.expect_err();
    assert!(msg.contains("unable to find user evil"), "the host's passwd must not be read: {msg}");
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_no_leftovers(id);

    let (id, o) = run("symevilg", "inside", Some("evilgrp"));
    let msg = o.expect_err();
    assert!(msg.contains("evilgrp"), "the host's group must not be read: {msg}");
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_no_leftovers(id);
}

/// A Create whose container ID names a path (`..`, `/`) is refused before anything is touched;
/// a grouping annotation naming a path still gets a socket under /run/containerd/s (hashed);
/// `shim delete` with a path-like ID removes nothing outside.
#[test]
fn container_id_and_annotations_cannot_name_paths_outside_the_state_dir() {
    let c = Containerd::start();
    let s = DirectShim::new(&c, D);
    // The grouping annotation names a path: the socket must still be a hash under /run/containerd/s.
    let evil_sock = c.dir.join("evil-sock");
    let mut spec = dockerish_tests::shim_direct::minimal_spec();
    spec["annotations"]["io.containerd.runc.v2.group"] = serde_json::json!(format!("../../../..{}", evil_sock.display()));
    std::fs::write(s.bundle.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    let address = s.start(b"").expect_ok().stdout.trim().to_string();
    let sock = PathBuf::from(address.strip_prefix("unix://").unwrap());
    assert_eq!(sock.parent(), Some(Path::new("/run/containerd/s")), "{address}");
    assert!(sock.file_name().unwrap().to_string_lossy().chars().all(|ch| ch.is_ascii_hexdigit()), "{address}");
    assert!(!evil_sock.exists());

    // A canary where `../` ids would point from the runc root and from the bundle.
    let canary_dir = c.dir.join("canary");
    std::fs::create_dir_all(&canary_dir).unwrap();
    std::fs::write(canary_dir.join("config.json"), b"keep").unwrap();
    let rel = format!("../../../../../..{}", canary_dir.display());
    let mut cl = ttrpc_raw::Client::connect(&address).expect("connect");
    for bad in [rel.as_str(), "..", ".", "a/b", "/etc", ""] {
        let req = pb::Msg::new().str(1, bad).str(2, &s.bundle.to_string_lossy()).into_bytes();
        match cl.call(TASK_V2, "Create", &req) {
            Err(CallError::Status(st)) => assert!(st.message.contains("invalid container id"), "id {bad:?}: {}", st.message),
            other => panic!("Create with id {bad:?}: expected an error status, got {other:?}"),
        }
    }
    assert_eq!(std::fs::read(canary_dir.join("config.json")).unwrap(), b"keep");
    assert!(!canary_dir.join("config.json.orig").exists(), "the shim wrote beside the canary");
    let _ = cl.shutdown(TASK_V2, &s.id, false);
    drop(cl);
    assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()));

    // `shim delete` (containerd's cleanup) with a path-like id: nothing outside is removed.
    let mut cmd = s.command();
    cmd.args(["-namespace", &s.ns, "-address", &c.grpc, "-publish-binary", "/usr/bin/containerd", "-id", &rel, "-bundle"])
        .arg(&s.bundle)
        .arg("delete");
    let _ = dockerish_tests::run_cmd(&mut cmd, None, T);
    assert_eq!(std::fs::read(canary_dir.join("config.json")).unwrap(), b"keep");
    assert!(canary_dir.exists());
}

/// `ipc=container:<x>` names a task of another containerd namespace: refused as unknown. A
/// stopped task whose recorded init PID now belongs to another process (PID reuse, simulated by
/// pointing `init.pid` at a host process started after the file was written) is refused as not
/// running: the shim never joins the host process's namespaces.
#[test]
fn namespace_join_only_targets_live_tasks_of_the_same_namespace() {
    let c = Containerd::start();
    let target = c.id("jointgt");
    c.run_sleeper(D, target);
    let ns2 = c.new_namespace();
    let id2 = format!("joiner-{ns2}");
    c.track(&ns2, &id2);
    let o = c.ctr_in(
        &ns2,
        &["run", "--runtime", D.name(), "--rm", "--annotation", &format!("{P}ipc=container:{target}"), dockerish_tests::IMAGE, &id2, "true"],
    );
    let msg = o.expect_err();
    assert!(msg.contains(&format!("No such container: {target}")), "cross-namespace join: {msg}");
    let _ = c.ctr_in(&ns2, &["container", "rm", &id2]);

    // PID reuse: stop the target, then make its init.pid name a fresh host process.
    c.ctr(&["task", "kill", "-s", "SIGKILL", target]).expect_ok();
    assert!(c.wait_status(target, "STOPPED", T));
    let mut host = std::process::Command::new("sleep").arg("300").spawn().unwrap();
    let pid_file = c.bundle(&c.ns, target).join("init.pid");
    std::fs::write(&pid_file, host.id().to_string()).unwrap();
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options().write(true).open(&pid_file).unwrap().set_modified(past).unwrap();
    let id3 = c.id("reusejoin");
    let o = c.run(D, id3, &["sh", "-c", "readlink /proc/self/ns/ipc"], RunOpts::rm().flag("--annotation").flag(format!("{P}ipc=container:{target}")));
    let host_ipc = std::fs::read_link(format!("/proc/{}/ns/ipc", host.id())).unwrap();
    let _ = host.kill();
    let _ = host.wait();
    assert!(!o.stdout.contains(&*host_ipc.to_string_lossy()), "joined the host process's IPC namespace");
    let msg = o.expect_err();
    assert!(msg.contains(&format!("container {target} is not running")), "reused PID: {msg}");
    let _ = c.ctr(&["container", "rm", id3]);
    c.assert_no_leftovers(id3);
    c.remove(target);
    c.assert_no_leftovers(target);
}

/// CRI-origin containers (the Kubernetes case) get `unprivileged-only` by default:
/// `privileged`, `cap-add`, `pid=host` are refused naming the key; a config with
/// `[annotation-policy] cri = "all"` allows them.
#[test]
fn privilege_raising_annotations_need_the_config_to_allow_them() {
    let c = Containerd::start();
    let cri = |o: RunOpts| o.flag("--annotation").flag("io.kubernetes.cri.container-type=container");
    for (key, value) in [("privileged", "true"), ("cap-add", "SYS_ADMIN"), ("pid", "host"), ("security-opt", "seccomp=unconfined")] {
        let id = c.id(&format!("cripriv-{key}"));
        let o = c.run(D, id, &["true"], cri(RunOpts::rm()).flag("--annotation").flag(format!("{P}{key}={value}")));
        let msg = o.expect_err();
        assert!(msg.contains(&format!("annotation \"{P}{key}\": raises privileges; not allowed for cri containers")), "{key}: {msg}");
        let _ = c.ctr(&["container", "rm", id]);
        c.assert_no_leftovers(id);
    }
    let cfg = c.dir.join("allow.toml");
    std::fs::write(&cfg, "[annotation-policy]\ncri = \"all\"\n").unwrap();
    let id = c.id("cripriv-ok");
    let o = c.run(
        D,
        id,
        &["sh", "-c", "grep CapEff /proc/self/status"],
        cri(RunOpts::rm()).flag("--runtime-config-path").flag(cfg.display().to_string()).flag("--annotation").flag(format!("{P}cap-add=SYS_ADMIN")),
    );
    assert_eq!(o.code(), 0, "allowed by config: {}", o.stderr);
    let eff = u64::from_str_radix(o.stdout.split_whitespace().nth(1).unwrap_or("0"), 16).unwrap_or(0);
    assert!(eff & (1 << 21) != 0, "CAP_SYS_ADMIN granted when the config allows it: {}", o.stdout);
    c.assert_no_leftovers(id);
}

// ---------------------------------------------------------------------------------------------
// Permissions

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

/// The shim's socket is 0600; every regular file the shim (or runc on its behalf) creates or
/// keeps in the bundle, the original spec included, is readable by its owner only, while a
/// container and an exec run.
#[test]
fn socket_and_shim_files_are_owner_only() {
    let c = Containerd::start();
    let id = c.id("perms");
    c.run_sleeper(D, id);
    c.ctr(&["task", "exec", "-d", "--exec-id", "bg", id, "sleep", "1000"]).expect_ok();
    let bundle = c.bundle(&c.ns, id);
    let address = std::fs::read_to_string(bundle.join("address")).unwrap();
    let sock = PathBuf::from(address.trim().strip_prefix("unix://").unwrap());
    assert_eq!(mode(&sock), 0o600, "socket {}", sock.display());
    // Files containerd writes itself (or that are not files) are not ours to judge; the spec
    // containerd wrote is, as `config.json.orig` (issue 13: it was containerd's 0644 inode).
    let containerd_owned = ["options.json", "runtime", "work", "log", "rootfs", "shim-binary-path"];
    let mut checked = Vec::new();
    for e in std::fs::read_dir(&bundle).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if containerd_owned.contains(&name.as_str()) || !e.file_type().unwrap().is_file() {
            continue;
        }
        checked.push(format!("{name} {:o}", mode(&e.path())));
    }
    eprintln!("bundle files: {checked:?}");
    let open: Vec<&String> = checked.iter().filter(|c| u32::from_str_radix(c.rsplit(' ').next().unwrap(), 8).unwrap() & 0o077 != 0).collect();
    assert!(open.is_empty(), "group/other can read what the shim wrote: {open:?}");
    for must in ["address", "config.json", "config.json.orig", "dockerish-state.json"] {
        assert!(checked.iter().any(|c| c.starts_with(&format!("{must} "))), "{must} not found among {checked:?}");
    }
    c.remove(id);
    c.assert_no_leftovers(id);
}
