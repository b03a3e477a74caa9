//! Bad input gets a clear error and leaves nothing behind (issue 2, item 9).

use std::path::Path;
use std::time::Duration;

use dockerish_tests::shim_direct::DirectShim;
use dockerish_tests::ttrpc_raw::{self, CallError, TASK_V2};
use dockerish_tests::{image, pb, procs, runtime_tests, Containerd, Options, Runtime};

const T: Duration = Duration::from_secs(20);

runtime_tests!(
    invalid_spec_is_refused_cleanly,
    missing_rootfs_is_refused_cleanly,
    missing_runc_binary_is_refused_cleanly,
    unknown_options_type_is_refused_cleanly,
    garbage_config_json_is_refused_cleanly,
);

/// A crash of the shim shows up in ctr as a closed connection instead of a message.
#[track_caller]
fn assert_clear_error(msg: &str, expect_any: &[&str]) {
    eprintln!("error message: {msg}");
    let lower = msg.to_lowercase();
    for crash in ["ttrpc: closed", "transport is closing", "connection reset", "broken pipe", "panicked"] {
        assert!(!lower.contains(crash), "error looks like a shim crash ({crash}): {msg}");
    }
    assert!(
        expect_any.iter().any(|w| lower.contains(&w.to_lowercase())),
        "error does not say what is wrong (expected one of {expect_any:?}): {msg}"
    );
}

/// Everything the failed attempt could have left: containerd's task, the shim, its socket,
/// runc state, mounts, cgroups, the bundle.
#[track_caller]
fn assert_nothing_left(c: &Containerd, id: &str) {
    assert!(c.task_status(id).is_none(), "task {id} still listed");
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_no_leftovers(id);
    assert!(c.shims().is_empty(), "shims still running: {:?}", c.shims());
}

fn spec_with(c: &Containerd, rootfs: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let o = c.ctr(&["oci", "spec"]).expect_ok();
    let mut spec: serde_json::Value = serde_json::from_str(&o.stdout).expect("ctr oci spec");
    spec["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    spec["process"]["args"] = serde_json::json!(["sh", "-c", "echo should-not-run"]);
    edit(&mut spec);
    let path = c.dir.join("bad-spec.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    path
}

/// A spec runc cannot run (an unknown namespace type): `ctr run --config` fails with the reason.
fn invalid_spec_is_refused_cleanly(rt: Runtime) {
    let c = Containerd::start();
    let rootfs = c.dir.join("rootfs");
    image::extract_rootfs(&rootfs);
    let spec = spec_with(&c, &rootfs, |s| {
        s["linux"]["namespaces"].as_array_mut().unwrap().push(serde_json::json!({"type": "bogus"}));
    });
    let id = c.id("badspec");
    let o = c.ctr(&["run", "--runtime", rt.name(), "--config", &spec.to_string_lossy(), id]);
    let msg = o.expect_err();
    assert_clear_error(&msg, &["namespace", "bogus"]);
    assert_nothing_left(&c, id);
    // The same daemon still runs good containers.
    let o = c.run(rt, c.id("good"), &["true"], dockerish_tests::RunOpts::rm());
    assert_eq!(o.code(), 0, "{}", o.stderr);
}

/// `ctr run --rootfs /does/not/exist`: a clear error naming the rootfs.
fn missing_rootfs_is_refused_cleanly(rt: Runtime) {
    let c = Containerd::start();
    let id = c.id("norootfs");
    let o = c.ctr(&["run", "--runtime", rt.name(), "--rootfs", "/nonexistent/dockerish-rootfs", id, "sh"]);
    let msg = o.expect_err();
    assert_clear_error(&msg, &["rootfs", "no such file"]);
    assert_nothing_left(&c, id);
}

/// containerd (and so the shim) runs with a PATH where `runc` does not exist.
fn missing_runc_binary_is_refused_cleanly(rt: Runtime) {
    let dir = tempfile::Builder::new().prefix("dkt-bin-").tempdir_in("/tmp").unwrap();
    for (name, target) in [
        ("containerd-shim-dockerish-v2", dockerish_tests::shim_path()),
        ("containerd-shim-runc-v2", Runtime::RuncV2.binary()),
        ("containerd", "/usr/bin/containerd".into()),
    ] {
        std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
    }
    let c = Containerd::start_with(Options { path: Some(dir.path().to_string_lossy().into_owned()), ..Options::default() });
    let id = c.id("norunc");
    let o = c.run(rt, id, &["true"], dockerish_tests::RunOpts::rm());
    let msg = o.expect_err();
    assert_clear_error(&msg, &["runc"]);
    assert_nothing_left(&c, id);
}

/// `start` with runtime options of a type nobody knows: non-zero exit with the type in the
/// message, no daemon, no socket.
fn unknown_options_type_is_refused_cleanly(rt: Runtime) {
    let c = Containerd::start();
    let s = DirectShim::new(&c, rt);
    let any = pb::any("example.com/unknown.v1.Options", b"\x0a\x03abc").into_bytes();
    let o = s.start(&any);
    let msg = o.expect_err();
    assert_clear_error(&msg, &["example.com/unknown.v1.Options"]);
    assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()), "shim daemon left running");
    assert!(!s.expected_socket().exists(), "socket left behind");
}

/// Task Create on a bundle whose config.json is not JSON: an error status, the shim keeps
/// serving, and Shutdown + `delete` leave nothing.
fn garbage_config_json_is_refused_cleanly(rt: Runtime) {
    let c = Containerd::start();
    let s = DirectShim::new(&c, rt);
    let o = s.start(b"").expect_ok();
    let address = o.stdout.trim().to_string();
    std::fs::write(s.bundle.join("config.json"), b"{this is not json").unwrap();
    let mut cl = ttrpc_raw::Client::connect(&address).expect("connect");
    let req = pb::Msg::new().str(1, &s.id).str(2, &s.bundle.to_string_lossy()).into_bytes();
    match cl.call(TASK_V2, "Create", &req) {
        Err(CallError::Status(st)) => assert_clear_error(&st.message, &["config", "json", "spec", "invalid", "parse"]),
        other => panic!("Create with garbage config.json: expected an error status, got {other:?}"),
    }
    let (shim_pid, _, _) = cl.connect_task(TASK_V2, &s.id).expect("shim still answers after the failed Create");
    assert!(procs::alive(shim_pid as i32));
    let _ = cl.shutdown(TASK_V2, &s.id, false);
    drop(cl);
    assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()), "shim did not exit on Shutdown");
    let o = s.delete();
    assert_eq!(o.code(), 0, "delete after failed create: {}", o.stderr);
    assert!(!procs::runc_state(&s.ns, &s.id).exists(), "runc state left");
    assert!(procs::mounts_under(&s.bundle).is_empty(), "mounts left");
    assert!(procs::cgroups_named(&s.id).is_empty(), "cgroups left");
    assert!(
        dockerish_tests::wait_until(Duration::from_secs(5), || !s.expected_socket().exists()),
        "socket left behind after Shutdown"
    );
}
