//! The shim binary driven directly, the way containerd invokes it (issue 2, item 1):
//! `start`, `delete`, `-v`, `-info`, both stdin formats, task API v2 and v3 on one socket. Under
//! every containerd of the matrix, each driving `start` the way that version does, beside that
//! version's Go shim.

use std::time::Duration;

use dockerish_tests::shim_direct::{DirectShim, StartReply};
use dockerish_tests::ttrpc_raw::{task_service, Client, TASK_V2, TASK_V3};
use dockerish_tests::{matrix_tests, pb, procs, Containerd, Runtime, Version};

const T: Duration = Duration::from_secs(20);
const FEATURES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

matrix_tests!(
    start_replies_address_then_shutdown_and_delete,
    start_accepts_runc_options_on_stdin,
    version_flag,
);
matrix_tests!(dockerish_only:
    task_api_served_as_v2_and_v3,
    start_accepts_runtimeoptions_on_stdin,
    start_understands_bootstrap_params,
    info_prints_runtime_info_with_runc_features,
    info_reports_the_build_revision,
    delete_runs_runc_unless_the_delete_rpc_recorded_it,
);

/// Checks `start`'s reply the way this containerd version reads it: 1.x takes stdout and stderr
/// together as the address, so exactly `unix:///run/containerd/s/<hash>` and nothing else, and
/// the shim's `address` file; 2.x decodes a `BootstrapResult` (protocol ttrpc, no trailing
/// whitespace, which containerd would trim off the protobuf). Then the socket and one daemon.
#[track_caller]
fn check_start_reply(s: &DirectShim, o: &dockerish_tests::Out) -> StartReply {
    assert_eq!(o.code(), 0, "start failed: stdout {:?} stderr {:?}", o.stdout, o.stderr);
    assert!(o.stderr.trim().is_empty(), "start wrote to stderr (containerd would read it as part of the reply): {:?}", o.stderr);
    assert!(!o.pipes_held_open, "the daemon kept start's stdout/stderr open: containerd's CombinedOutput would hang");
    let r = s.start_reply(o).unwrap_or_else(|e| panic!("start reply: {e}"));
    assert_eq!(r.address, format!("unix://{}", s.expected_socket().display()), "start reply");
    if s.c.build.version.is_2x() {
        assert_eq!(r.protocol, "ttrpc", "BootstrapResult.protocol");
        assert!(!o.stdout_bytes.last().is_some_and(|b| b.is_ascii_whitespace()), "BootstrapResult ends in whitespace (containerd trims it)");
    } else {
        assert_eq!(s.address_file().as_deref(), Some(r.address.as_str()), "address file in the bundle");
    }
    assert!(s.expected_socket().exists(), "socket missing");
    assert_eq!(s.daemons().len(), 1, "exactly one daemon: {:?}", s.daemons());
    r
}

#[track_caller]
fn decode_delete_response(o: &dockerish_tests::Out) -> pb::Fields {
    assert_eq!(o.code(), 0, "delete failed: {}", o.stderr);
    let f = pb::decode(&o.stdout_bytes).unwrap_or_else(|e| panic!("delete stdout is not a DeleteResponse ({e}): {:?}", o.stdout));
    assert_eq!(f.varint(2), Some(137), "DeleteResponse.exit_status: {f:?}");
    assert!(f.msg(3).and_then(|t| t.varint(1)).unwrap_or(0) > 1_600_000_000, "DeleteResponse.exited_at: {f:?}");
    f
}

/// `start` as this containerd version does it (1.x: empty stdin, plain address; 2.x:
/// BootstrapParams, BootstrapResult); Connect on the task API the reply names; Shutdown makes
/// the daemon exit and remove its socket; `delete` prints a DeleteResponse (137).
fn start_replies_address_then_shutdown_and_delete(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let o = s.start_as_containerd(None);
    let reply = check_start_reply(&s, &o);
    let daemon = s.daemons()[0].pid;
    // The Go shim starts its daemon with GOMAXPROCS=4 and runc, a Go program, inherits it: the
    // same runc work must run with the same Go runtime setting under both shims (containerd
    // itself gives shims GOMAXPROCS=2).
    let environ = std::fs::read(format!("/proc/{daemon}/environ")).unwrap();
    let gomaxprocs: Vec<&[u8]> = environ.split(|b| *b == 0).filter(|e| e.starts_with(b"GOMAXPROCS=")).collect();
    assert_eq!(gomaxprocs, [b"GOMAXPROCS=4".as_slice()], "{rt:?} daemon's GOMAXPROCS under {v}");
    // A process group of its own but containerd's session, as the Go shim's daemon (Setpgid):
    // a session is also a scheduling group (autogroup), and runc should be scheduled as under
    // the Go shim.
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let f: Vec<i32> = stat[stat.rfind(')').unwrap() + 2..].split(' ').skip(2).take(2).map(|x| x.parse().unwrap()).collect();
    assert_eq!((f[0], f[1] == daemon), (daemon, false), "{rt:?} daemon under {v}: (process group, session leader)");

    // A second `start` for the same id joins the running daemon: same address, no new process.
    let o2 = s.start_as_containerd(None);
    assert_eq!(s.start_reply(&o2), Ok(reply.clone()), "second start: {:?} {:?}", o2.stdout, o2.stderr);
    assert_eq!(s.daemons().len(), 1, "second start spawned another daemon");

    let svc = task_service(reply.version);
    let mut cl = Client::connect(&reply.address).expect("connect to the shim socket");
    let (shim_pid, task_pid, _) = cl.connect_task(svc, &s.id).unwrap_or_else(|e| panic!("Connect on {svc}: {e}"));
    assert_eq!(shim_pid as i32, daemon, "Connect.shim_pid");
    assert_eq!(task_pid, 0, "no task yet");
    if rt == Runtime::RuncV2 && !v.is_2x() {
        // The Go shim 1.x serves v2 only: validates that the raw client sees the difference.
        assert!(cl.connect_task(TASK_V3, &s.id).is_err(), "Go shim {v} unexpectedly serves v3");
    }
    let _ = cl.shutdown(svc, &s.id, false);
    drop(cl);
    assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()), "daemon still running after Shutdown");
    assert!(dockerish_tests::wait_until(T, || !s.expected_socket().exists()), "socket left after Shutdown");
    assert!(procs::zombies_of(&[daemon]).is_empty());

    if rt == Runtime::RuncV2 {
        // The Go shim's `delete` needs the `runtime` file its Create writes; ours must cope
        // with a bundle whose task was never created (a shim that died early).
        std::fs::write(s.bundle.join("runtime"), "runc").unwrap();
    }
    decode_delete_response(&s.delete());
    assert!(s.daemons().is_empty(), "delete started a daemon");
}

/// containerd 1.6–2.2 put `containerd.runc.v1.Options` (here: empty, i.e. only a type URL)
/// on `start`'s stdin; 2.3 as an extension of BootstrapParams.
fn start_accepts_runc_options_on_stdin(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let any = pb::any("containerd.runc.v1.Options", b"");
    let o = s.start_as_containerd(Some(&any));
    check_start_reply(&s, &o);
}

/// `-v` prints a version and exits 0 without any other flag.
fn version_flag(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let o = s.version();
    assert_eq!(o.code(), 0, "{}", o.stderr);
    let name = if rt.is_dockerish() { "dockerish" } else { "containerd-shim-runc-v2" };
    assert!(o.stdout.contains(name), "-v output: {:?}", o.stdout);
    assert!(o.stdout.chars().any(|ch| ch.is_ascii_digit()), "-v without a version number: {:?}", o.stdout);
}

/// One socket serves the task API as `containerd.task.v2.Task` (1.6, 1.7, 2.x bridge) and
/// `containerd.task.v3.Task` (2.x), the same implementation behind both.
fn task_api_served_as_v2_and_v3(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let address = check_start_reply(&s, &s.start_as_containerd(None)).address;
    let daemon = s.daemons()[0].pid as u64;
    let mut cl = Client::connect(&address).unwrap();
    let v2 = cl.connect_task(TASK_V2, &s.id).expect("Connect v2");
    let v3 = cl.connect_task(TASK_V3, &s.id).expect("Connect v3");
    assert_eq!(v2.0, daemon);
    assert_eq!(v3.0, daemon);
    // State of an unknown task: the same error on both names.
    let req = pb::Msg::new().str(1, "no-such-task").into_bytes();
    let e2 = cl.call(TASK_V2, "State", &req).expect_err("State of unknown task v2");
    let e3 = cl.call(TASK_V3, "State", &req).expect_err("State of unknown task v3");
    assert_eq!(e2.to_string(), e3.to_string());
    assert!(cl.call("containerd.task.v9.Task", "Connect", &pb::Msg::new().str(1, &s.id).into_bytes()).is_err());
    cl.shutdown(TASK_V3, &s.id, false).ok();
    drop(cl);
    assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()), "daemon still running after Shutdown (v3)");
    assert!(dockerish_tests::wait_until(T, || !s.expected_socket().exists()), "socket left after Shutdown");
}

/// CRI sends `runtimeoptions.v1.Options{type_url=1, config_path=2, config_body=3}`.
fn start_accepts_runtimeoptions_on_stdin(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let cfg = c.dir.join("dockerish.toml");
    std::fs::write(&cfg, "").unwrap();
    let opts = pb::Msg::new().str(1, "io.containerd.dockerish.v1.Config").str(2, &cfg.to_string_lossy()).into_bytes();
    let any = pb::any("runtimeoptions.v1.Options", &opts);
    check_start_reply(&s, &s.start_as_containerd(Some(&any)));
}

/// containerd 2.3 sends `BootstrapParams` (identity = flags) and expects a `BootstrapResult`
/// protobuf back, not ending in whitespace. Like the Go shim of 2.3 it says version 3 (task API
/// v3); the socket still serves v2 too (a daemon joined by a later `start` of an older
/// containerd, or 2.3's v2 bridge).
fn start_understands_bootstrap_params(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let opts = pb::Msg::new().str(2, "/nonexistent/dockerish.toml");
    let ext = pb::any("runtimeoptions.v1.Options", &opts.0);
    let params = s.bootstrap_params(&[ext]);
    let o = s.start(&params);
    assert_eq!(o.code(), 0, "start with BootstrapParams failed: {:?} {:?}", o.stdout, o.stderr);
    assert!(o.stderr.is_empty(), "stderr: {:?}", o.stderr);
    let raw = &o.stdout_bytes;
    assert!(!raw.is_empty() && !raw.last().unwrap().is_ascii_whitespace(), "BootstrapResult ends in whitespace (containerd trims it)");
    let r = pb::decode(raw).unwrap_or_else(|e| panic!("reply is not a BootstrapResult ({e}): {:?}", o.stdout));
    assert_eq!(r.varint(1), Some(3), "BootstrapResult.version: task API v3, as the Go shim of containerd 2.3 answers");
    let address = r.string(2).unwrap_or_default();
    assert!(address.starts_with("unix:///"), "BootstrapResult.address {address:?}");
    assert_eq!(r.string(3).as_deref(), Some("ttrpc"), "BootstrapResult.protocol");
    assert_eq!(s.address_file().as_deref(), Some(address.as_str()), "address file");
    let mut cl = Client::connect(&address).unwrap();
    cl.connect_task(TASK_V3, &s.id).expect("Connect v3");
    cl.connect_task(TASK_V2, &s.id).expect("Connect v2");
    // A second `start` (2.3 joining the group) gets the same answer; an older containerd's
    // `start` (raw options on stdin) joining the same daemon gets the plain address.
    let again = pb::decode(&s.start(&params).expect_ok().stdout_bytes).unwrap();
    assert_eq!((again.varint(1), again.string(2)), (Some(3), Some(address.clone())));
    assert_eq!(s.start(b"").expect_ok().stdout.trim(), address);
    assert_eq!(s.daemons().len(), 1);
}

/// `-info`: a RuntimeInfo with `runc features` as `features`.
fn info_prints_runtime_info_with_runc_features(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let o = s.info(b"");
    assert_eq!(o.code(), 0, "-info failed: {}", o.stderr);
    let info = pb::decode(&o.stdout_bytes).unwrap_or_else(|e| panic!("-info output is not a RuntimeInfo ({e}): {:?}", o.stdout));
    let name = info.string(1).unwrap_or_default();
    assert!(name.contains("dockerish"), "RuntimeInfo.name {name:?}");
    let features = info.msg(4).expect("RuntimeInfo.features");
    assert_eq!(features.string(1).as_deref(), Some(FEATURES_TYPE));
    let ours: serde_json::Value = serde_json::from_slice(features.bytes(2).unwrap_or_default()).expect("features JSON");
    let runc = std::process::Command::new("runc").arg("features").output().expect("runc features");
    let theirs: serde_json::Value = serde_json::from_slice(&runc.stdout).expect("runc features JSON");
    assert_eq!(ours["ociVersionMax"], theirs["ociVersionMax"], "features differ from `runc features`");
    assert_eq!(ours["mountOptions"], theirs["mountOptions"]);
    // With runc options on stdin too.
    let any = pb::any("containerd.runc.v1.Options", b"").into_bytes();
    assert_eq!(s.info(&any).code(), 0);
}

/// `-info` names the version-control revision the binary was built from (`git rev-parse HEAD`
/// of this checkout at build time; the Go shim reports its commit the same way).
fn info_reports_the_build_revision(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let o = s.info(b"");
    assert_eq!(o.code(), 0, "-info failed: {}", o.stderr);
    let info = pb::decode(&o.stdout_bytes).unwrap();
    let version = info.msg(2).expect("RuntimeInfo.version");
    assert_eq!(version.string(1).as_deref(), Some(env!("CARGO_PKG_VERSION")), "RuntimeVersion.version");
    let revision = version.string(2).unwrap_or_default();
    let git = std::process::Command::new("git").arg("-C").arg(dockerish_tests::workspace_root()).args(["rev-parse", "HEAD"]).output();
    match git {
        Ok(g) if g.status.success() => {
            let head = String::from_utf8_lossy(&g.stdout).trim().to_string();
            assert_eq!(revision, head, "RuntimeVersion.revision: not the checkout's HEAD (a binary built before the last commit?)");
        }
        _ => assert_eq!(revision, "unknown", "no git here: the revision must say it is unknown"),
    }
    // `-v` prints it too.
    let v = s.version().expect_ok();
    assert!(v.stdout.contains(&format!("Revision: {revision}")), "-v: {:?}", v.stdout);
}

/// `delete` runs `runc delete --force` unless the daemon's Delete RPC recorded that runc already
/// removed the container (`runc_deleted` in the saved state): containerd calls `delete` after
/// every disconnect, normally after that Delete. Whether runc's own state directory exists does
/// not matter (its layout is runc's business). The runc here is a logging stand-in named in the
/// bundle's saved state.
fn delete_runs_runc_unless_the_delete_rpc_recorded_it(v: Version, rt: Runtime) {
    use std::os::unix::fs::PermissionsExt;
    let c = Containerd::shared(v);
    let s = DirectShim::new(&c, rt);
    let root = s.bundle.join("runc-root");
    std::fs::create_dir_all(&root).unwrap();
    let log = s.bundle.join("runc-calls");
    let fake = s.bundle.join("fake-runc");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = |deleted: bool| serde_json::json!({"runc_binary": fake, "runc_root": root, "systemd_cgroup": false, "runc_deleted": deleted}).to_string();

    std::fs::write(s.bundle.join("dockerish-state.json"), state(true)).unwrap();
    decode_delete_response(&s.delete());
    assert!(!log.exists(), "runc ran although the Delete RPC recorded its delete: {:?}", std::fs::read_to_string(&log));

    // No record (a daemon killed before Delete), even with no runc state directory in sight.
    std::fs::write(s.bundle.join("dockerish-state.json"), state(false)).unwrap();
    decode_delete_response(&s.delete());
    let calls = std::fs::read_to_string(&log).expect("runc was not run although no Delete recorded it");
    assert_eq!(calls.trim(), format!("--root {} delete --force {}", root.display(), s.id));
}
