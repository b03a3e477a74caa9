//! Task Start (issue 4): dockerish starts a created container through runc's exec FIFO instead
//! of a `runc start` process, except when the spec has poststart hooks (runc ≥ 1.2 runs those
//! in `runc start`). Whichever way, runc must see the container as running afterwards, and a
//! container whose init died before Start must fail cleanly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dockerish_tests::shim_direct::DirectShim;
use dockerish_tests::ttrpc_raw::{self, CallError, TASK_V2};
use dockerish_tests::{image, pb, procs, runtime_tests, Containerd, RunOpts, Runtime};

const T: Duration = Duration::from_secs(20);
const D: Runtime = Runtime::Dockerish;

runtime_tests!(started_container_is_running_for_runc, init_killed_before_start_fails_cleanly);

/// A runc that logs its subcommand to `log` and then runs the real runc.
fn logging_runc(c: &Containerd, log: &Path) -> String {
    let real = dockerish_tests::which("runc").unwrap_or_else(|| PathBuf::from("/usr/sbin/runc"));
    let wrapper = c.dir.join("runc-logging");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in create|start|delete|exec|kill|state|ps|pause|resume|update) echo \"$a\" >> {log}; break;; esac; done\nexec {real} \"$@\"\n",
            log = log.display(),
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = c.dir.join("logging-runc.toml");
    std::fs::write(&cfg, format!("runc-binary = \"{}\"\n", wrapper.display())).unwrap();
    cfg.display().to_string()
}

fn calls(log: &Path) -> Vec<String> {
    let v = std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_string).collect();
    let _ = std::fs::remove_file(log);
    v
}

/// `ctr run --rm` runs exactly two runc processes through dockerish: create and delete (the
/// Delete RPC's; `shim delete` finds no runc state left and skips its own).
#[test]
fn run_rm_runs_runc_only_for_create_and_delete() {
    let c = Containerd::start();
    let log = c.dir.join("runc-calls");
    let cfg = logging_runc(&c, &log);
    let id = c.id("norunctart");
    let o = c.run(D, id, &["sh", "-c", "echo started"], RunOpts::rm().flag("--runtime-config-path").flag(&cfg));
    assert_eq!((o.code(), o.stdout.as_str()), (0, "started\n"), "{}", o.stderr);
    assert_eq!(calls(&log), ["create", "delete"]);
    c.assert_no_leftovers(id);
}

/// A runc that keeps its state under `<root>-moved` instead of the `--root` it is given (as a
/// runc with another state layout would, from the shim's point of view), logging subcommands
/// to `log` like [`logging_runc`].
fn relocating_runc(c: &Containerd, log: &Path) -> String {
    let real = dockerish_tests::which("runc").unwrap_or_else(|| PathBuf::from("/usr/sbin/runc"));
    let wrapper = c.dir.join("runc-relocating");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in create|start|delete|exec|kill|state|ps|pause|resume|update) echo \"$a\" >> {log}; break;; esac; done\n\
             first=1; prev=\nfor a in \"$@\"; do\n  [ \"$first\" = 1 ] && set -- && first=0\n  [ \"$prev\" = --root ] && a=\"$a-moved\"\n  set -- \"$@\" \"$a\"; prev=\"$a\"\ndone\nexec {real} \"$@\"\n",
            log = log.display(),
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = c.dir.join("relocating-runc.toml");
    std::fs::write(&cfg, format!("runc-binary = \"{}\"\n", wrapper.display())).unwrap();
    cfg.display().to_string()
}

/// The two shortcuts around runc processes keep working when runc's state is not where the shim
/// would look (another runc layout): Start falls back to `runc start` when there is no exec
/// FIFO at `<root>/<id>`, and `shim delete` after a SIGKILLed daemon (no Delete RPC) still runs
/// `runc delete`: whether it may skip runc is the shim's own record of a successful Delete,
/// never the presence of runc's files.
#[test]
fn runc_state_elsewhere_start_falls_back_and_shim_delete_still_deletes() {
    let c = Containerd::start();
    let log = c.dir.join("runc-calls");
    let cfg = relocating_runc(&c, &log);
    let id = c.id("moved");
    let o = c.run(D, id, &["sleep", "100000"], RunOpts::detach().flag("--runtime-config-path").flag(&cfg));
    assert_eq!(o.code(), 0, "{}", o.stderr);
    let moved = PathBuf::from(format!("{}-moved", procs::runc_state(&c.ns, "").display().to_string().trim_end_matches('/'))).join(id);
    assert!(moved.join("state.json").is_file(), "runc state not at {}", moved.display());
    assert!(!procs::runc_state(&c.ns, id).exists());
    assert_eq!(calls(&log), ["create", "start"], "no exec FIFO where the shim looks: `runc start` starts it");
    let pid = c.task_pid(id).expect("task pid");
    assert!(procs::alive(pid));

    let shim = c.shim_pid(id).expect("shim pid");
    procs::kill(shim, libc::SIGKILL);
    // containerd notices the dead shim and runs `shim delete`, which must remove the container.
    assert!(dockerish_tests::wait_until(T, || !moved.exists() && !procs::alive(pid)), "runc state at {} or init {pid} left after shim delete", moved.display());
    assert!(calls(&log).contains(&"delete".to_string()), "shim delete ran no `runc delete`");
    c.remove(id);
    c.assert_no_leftovers(id);
    let _ = std::fs::remove_dir(moved.parent().unwrap());
}

/// Kill of a container's init (issue 14) signals it through a pidfd the shim opened at Create:
/// no `runc kill` process, the exit is the signal's, and a Kill after the exit reports that the
/// process already finished. `kill --all` (`ctr task kill -a`) still goes through runc.
#[test]
fn kill_signals_the_init_without_a_runc_process() {
    let c = Containerd::start();
    let log = c.dir.join("runc-calls");
    let cfg = logging_runc(&c, &log);
    let id = c.id("killed");
    // The init of a PID namespace ignores signals it has no handler for: trap SIGTERM.
    let o = c.run(D, id, &["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"], RunOpts::detach().flag("--runtime-config-path").flag(&cfg));
    assert_eq!(o.code(), 0, "{}", o.stderr);
    assert_eq!(calls(&log), ["create"]);
    let pid = c.task_pid(id).expect("task pid");
    let k = c.ctr(&["task", "kill", "-s", "SIGTERM", id]);
    assert_eq!(k.code(), 0, "{}", k.stderr);
    assert!(c.wait_status(id, "STOPPED", T), "SIGTERM did not stop {id}");
    assert!(!procs::alive(pid));
    assert_eq!(calls(&log), Vec::<String>::new(), "Kill ran runc");
    let d = c.ctr(&["task", "delete", id]);
    assert!(d.stderr.contains("exit code 7"), "exit status of the init's TERM trap: {} {}", d.stdout, d.stderr);
    let again = c.ctr(&["task", "kill", "-s", "SIGKILL", id]);
    assert_ne!(again.code(), 0, "Kill of a deleted task must fail");

    let id2 = c.id("killall");
    let o = c.run(D, id2, &["sleep", "100000"], RunOpts::detach().flag("--runtime-config-path").flag(&cfg));
    assert_eq!(o.code(), 0, "{}", o.stderr);
    let _ = calls(&log);
    let k = c.ctr(&["task", "kill", "-a", "-s", "SIGKILL", id2]);
    assert_eq!(k.code(), 0, "{}", k.stderr);
    assert!(c.wait_status(id2, "STOPPED", T));
    assert_eq!(calls(&log), ["kill"], "kill --all is runc's");
    c.remove(id);
    c.remove(id2);
    c.assert_no_leftovers(id);
    c.assert_no_leftovers(id2);
}

/// The daemon's listening socket (passed by `shim start` as fd 3, necessarily inheritable) is
/// not inherited by the processes the daemon starts: runc here, log drivers alike.
#[test]
fn runc_does_not_inherit_the_shims_socket() {
    let c = Containerd::start();
    let real = dockerish_tests::which("runc").unwrap_or_else(|| PathBuf::from("/usr/sbin/runc"));
    let fds = c.dir.join("runc-fds");
    let wrapper = c.dir.join("runc-fds.sh");
    std::fs::write(&wrapper, format!("#!/bin/sh\ncase \" $* \" in *\" create \"*) ls -l /proc/$$/fd > {fds};; esac\nexec {real} \"$@\"\n", fds = fds.display(), real = real.display())).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = c.dir.join("runc-fds.toml");
    std::fs::write(&cfg, format!("runc-binary = \"{}\"\n", wrapper.display())).unwrap();
    let id = c.id("fds");
    let o = c.run(D, id, &["true"], RunOpts::rm().flag("--runtime-config-path").flag(&cfg.display().to_string()));
    assert_eq!(o.code(), 0, "{}", o.stderr);
    let listing = std::fs::read_to_string(&fds).expect("the wrapper ran for runc create");
    assert!(!listing.contains("socket:"), "runc create inherited a socket from the shim:\n{listing}");
    c.assert_no_leftovers(id);
}

/// A spec with a poststart hook is started by `runc start` (the hook runs, once).
#[test]
fn poststart_hooks_are_left_to_runc_start() {
    let c = Containerd::start();
    let log = c.dir.join("runc-calls");
    let cfg = logging_runc(&c, &log);
    let rootfs = c.dir.join("hook-rootfs");
    image::extract_rootfs(&rootfs);
    let marker = c.dir.join("poststart-ran");
    let spec_out = c.ctr(&["oci", "spec"]).expect_ok();
    let mut spec: serde_json::Value = serde_json::from_str(&spec_out.stdout).unwrap();
    spec["process"]["args"] = serde_json::json!(["sh", "-c", "echo hooked"]);
    spec["process"]["terminal"] = false.into();
    spec["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    spec["hooks"] = serde_json::json!({"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo ran >> {}", marker.display())]}]});
    let spec_file = c.dir.join("hook-spec.json");
    std::fs::write(&spec_file, spec.to_string()).unwrap();

    let id = c.id("hooked");
    let o = c.ctr(&["run", "--rm", "--runtime", D.name(), "--runtime-config-path", &cfg, "--config", &spec_file.to_string_lossy(), id]);
    assert_eq!((o.code(), o.stdout.as_str()), (0, "hooked\n"), "{}", o.stderr);
    assert_eq!(calls(&log), ["create", "start", "delete"]);
    assert_eq!(std::fs::read_to_string(&marker).unwrap_or_default(), "ran\n", "poststart hook");
    c.assert_no_leftovers(id);
}

/// After Start, runc reports the container running (its exec FIFO is gone), execs work, and the
/// container stops and is removed as usual.
fn started_container_is_running_for_runc(rt: Runtime) {
    let c = Containerd::start();
    let id = c.id("running");
    c.run_sleeper(rt, id);
    let state_dir = procs::runc_state(&c.ns, id);
    assert!(!state_dir.join("exec.fifo").exists(), "exec.fifo still there: runc would say 'created'");
    let o = std::process::Command::new(dockerish_tests::which("runc").unwrap_or_else(|| PathBuf::from("/usr/sbin/runc")))
        .arg("--root")
        .arg(state_dir.parent().unwrap())
        .args(["state", id])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("runc state: {e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(state["status"], "running", "{state}");
    let e = c.ctr(&["task", "exec", "--exec-id", "x", id, "sh", "-c", "echo in"]);
    assert_eq!((e.code(), e.stdout.as_str()), (0, "in\n"), "{}", e.stderr);
    c.remove(id);
    c.assert_no_leftovers(id);
}

/// The init dies (SIGKILL from outside) between Create and Start: Start fails, Wait and Delete
/// report 137, and `shim delete` leaves no runc state.
fn init_killed_before_start_fails_cleanly(rt: Runtime) {
    let c = Containerd::start();
    let s = DirectShim::new(&c, rt);
    image::extract_rootfs(&s.bundle.join("rootfs"));
    let mut spec = dockerish_tests::shim_direct::minimal_spec();
    spec["process"]["args"] = serde_json::json!(["sh", "-c", "exit 0"]);
    spec["mounts"] = serde_json::json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    std::fs::write(s.bundle.join("config.json"), spec.to_string()).unwrap();
    let address = s.start(b"").expect_ok().stdout.trim().to_string();
    let mut cl = ttrpc_raw::Client::connect(&address).expect("connect");

    let create = pb::Msg::new().str(1, &s.id).str(2, &s.bundle.to_string_lossy()).into_bytes();
    let out = cl.call(TASK_V2, "Create", &create).expect("Create");
    let pid = pb::decode(&out).unwrap().varint(1).expect("Create pid") as i32;
    assert!(pid > 0);
    procs::kill(pid, libc::SIGKILL);
    assert!(dockerish_tests::wait_until(T, || !procs::alive(pid)), "init {pid} did not die");

    match cl.call(TASK_V2, "Start", &pb::Msg::new().str(1, &s.id).into_bytes()) {
        Err(CallError::Status(st)) => assert!(!st.message.is_empty(), "empty error"),
        other => {
            panic!("Start of a container whose init is dead: expected an error, got {other:?}")
        }
    }
    let waited = cl.call(TASK_V2, "Wait", &pb::Msg::new().str(1, &s.id).into_bytes()).expect("Wait");
    assert_eq!(pb::decode(&waited).unwrap().varint(1), Some(137), "Wait exit status");
    let deleted = cl.call(TASK_V2, "Delete", &pb::Msg::new().str(1, &s.id).into_bytes()).expect("Delete");
    assert_eq!(pb::decode(&deleted).unwrap().varint(2), Some(137), "Delete exit status");
    let _ = cl.shutdown(TASK_V2, &s.id, false);
    drop(cl);
    assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()), "shim did not exit on Shutdown");
    assert_eq!(s.delete().code(), 0);
    assert!(!procs::runc_state(&s.ns, &s.id).exists(), "runc state left");
}
