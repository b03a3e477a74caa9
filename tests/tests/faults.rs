//! Faults (issue 6, item 1): containerd SIGKILLed under load, the shim SIGKILLed, runc missing
//! or failing half-way through Create, a full or read-only bundle while config.json is written,
//! OOM kills; each under every containerd of the matrix (`<test>::v1_6`, `::v1_7`, `::v2_3`). Each test checks the shim's answer (clear error, right events and exit codes) and
//! that nothing is left: no process, zombie, mount, cgroup, runc state or socket.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dockerish_tests::cmd::try_run_cmd;
use dockerish_tests::shim_direct::DirectShim;
use dockerish_tests::ttrpc_raw::{self, CallError, TASK_V2};
use dockerish_tests::{matrix_tests, pb, procs, Containerd, Events, RunOpts, Runtime, Version};

const D: Runtime = Runtime::Dockerish;
const T: Duration = Duration::from_secs(30);

matrix_tests!(versions_only:
    containerd_sigkill_while_20_containers_run_and_exec,
    shim_sigkill_is_cleaned_up_by_shim_delete,
    runc_binary_missing_from_config_is_a_clear_error,
    runc_failing_mid_create_is_rolled_back,
    full_or_read_only_bundle_keeps_the_original_spec,
    oom_kill_reports_one_task_oom_per_kill,
);

/// A crash of the shim shows up in ctr as a closed connection instead of a message.
#[track_caller]
fn assert_clear_error(msg: &str, expect_all: &[&str]) {
    eprintln!("error message: {msg}");
    let lower = msg.to_lowercase();
    for crash in ["ttrpc: closed", "transport is closing", "connection reset", "broken pipe", "panicked"] {
        assert!(!lower.contains(crash), "error looks like a shim crash ({crash}): {msg}");
    }
    for w in expect_all {
        assert!(msg.contains(w), "error does not say {w:?}: {msg}");
    }
}

/// Reads a FIFO in the background (containerd drains the shim's `log`; a direct test must too).
/// Reads the shim's log FIFO until its writers are gone. Join it once the bundle is removed and
/// before the file system is remounted: an unlinked FIFO still open is a removed-but-open inode,
/// and the kernel refuses to remount that file system read-only ("mount point is busy").
fn drain(path: &Path) -> std::thread::JoinHandle<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).expect("open log fifo");
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    })
}

// ---------------------------------------------------------------------------------------------
// containerd and shim killed

/// 20 containers run, execs fly at them, containerd gets SIGKILL and is restarted: every task
/// is still RUNNING with the same PID and shim, execs work again, long-running execs started
/// before the crash can still be killed, nothing is left unreaped, and removal is clean.
fn containerd_sigkill_while_20_containers_run_and_exec(v: Version) {
    let mut c = Containerd::start_with(dockerish_tests::Options { version: v, log_level: "info".into(), ..Default::default() });
    let n = 20;
    let ids: Vec<&'static str> = (0..n).map(|i| c.id(&format!("fk{i}"))).collect();
    let started = Instant::now();
    for batch in ids.chunks(5) {
        std::thread::scope(|s| {
            for id in batch {
                let c = &c;
                s.spawn(move || c.run_sleeper(D, id));
            }
        });
    }
    eprintln!("{n} containers started in {:?}", started.elapsed());
    let before: Vec<(i32, i32)> = ids.iter().map(|id| (c.task_pid(id).unwrap(), c.shim_pid(id).expect("shim"))).collect();
    for id in &ids[..4] {
        c.ctr(&["task", "exec", "-d", "--exec-id", "longrun", id, "sleep", "100000"]).expect_ok();
    }

    // Execs from 4 workers while containerd is killed under them.
    let stop = AtomicBool::new(false);
    let (ok, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let daemon = c.pid();
    std::thread::scope(|s| {
        for w in 0..4 {
            let (c, ids, stop, ok, failed) = (&c, &ids, &stop, &ok, &failed);
            s.spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = ids[(w * 5 + k) % ids.len()];
                    let mut cmd = c.ctr_command();
                    cmd.args(["-n", &c.ns, "task", "exec", "--exec-id", &format!("w{w}-{k}"), id, "sh", "-c", "echo ok"]);
                    match try_run_cmd(&mut cmd, None, Duration::from_secs(15)) {
                        Ok(o) if o.ok() && o.stdout == "ok\n" => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                    k += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_secs(3));
        procs::kill(daemon, libc::SIGKILL);
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
    });
    eprintln!("execs around the crash: {} ok, {} failed (containerd down)", ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(ok.load(Ordering::SeqCst) > 0, "no exec succeeded before the kill");
    c.restart(libc::SIGKILL);

    for (id, (pid, shim)) in ids.iter().zip(&before) {
        assert!(procs::alive(*shim), "shim of {id} died with containerd");
        assert!(c.wait_status(id, "RUNNING", T), "{id} after restart: {:?}", c.task_status(id));
        assert_eq!(c.task_pid(id), Some(*pid), "{id} init pid changed");
    }
    std::thread::scope(|s| {
        for id in &ids {
            let c = &c;
            s.spawn(move || {
                let o = c.ctr(&["task", "exec", "--exec-id", "after", id, "sh", "-c", "echo after; exit 7"]);
                assert_eq!((o.code(), o.stdout.as_str()), (7, "after\n"), "{id}: {}", o.stderr);
            });
        }
    });
    for id in &ids[..4] {
        c.ctr(&["task", "kill", "-s", "SIGKILL", "--exec-id", "longrun", id]).expect_ok();
    }
    // Execs that were running when containerd died have been reaped by their shims.
    assert!(dockerish_tests::wait_until(T, || c.shim_zombies().is_empty()), "zombies: {:?}", c.shim_zombies());
    for id in &ids {
        let pids = c.task_pids(id);
        assert!(dockerish_tests::wait_until(T, || c.task_pids(id).len() == 1), "{id}: leftover processes {pids:?}");
    }
    std::thread::scope(|s| {
        for id in &ids {
            let c = &c;
            s.spawn(move || c.remove(id));
        }
    });
    for id in &ids {
        c.assert_no_leftovers(id);
    }
}

/// The shim is SIGKILLed with a container and an exec running. containerd notices, runs
/// `shim delete`: the container's processes are killed, the task reports exit 137, and after
/// removal there is no process, mount, cgroup, runc state or socket.
fn shim_sigkill_is_cleaned_up_by_shim_delete(v: Version) {
    let c = Containerd::shared(v);
    let ev = Events::watch(&c, &c.ns);
    let id = c.id("shimkill");
    let init = c.run_sleeper(D, id);
    c.ctr(&["task", "exec", "-d", "--exec-id", "bg", id, "sleep", "100000"]).expect_ok();
    let pids = c.task_pids(id);
    assert_eq!(pids.len(), 2, "{pids:?}");
    let shim = c.shim_pid(id).expect("shim");
    let sock = procs::shim_socket(&c.grpc, &c.ns, id);
    assert!(sock.exists());

    procs::kill(shim, libc::SIGKILL);
    let e = ev.expect("/tasks/exit", id, T);
    assert_eq!(e.num("exit_status"), 137, "{e:?}");
    for p in &pids {
        assert!(dockerish_tests::wait_until(T, || !procs::alive(*p)), "container process {p} survived its shim");
    }
    assert!(!procs::alive(init));
    // containerd has already deleted the task (its cleanup ran `shim delete`).
    assert!(dockerish_tests::wait_until(T, || !matches!(c.task_status(id).as_deref(), Some("RUNNING"))));
    let _ = c.ctr(&["task", "rm", "-f", id]);
    c.ctr(&["container", "rm", id]).expect_ok();
    c.assert_no_leftovers(id);
    assert!(!sock.exists(), "socket {} left", sock.display());
    // The daemon may be shared: only lines about this container count (1.x logs "cleaning up
    // dead shim" without the id, right after this line).
    let log = c.log();
    assert!(
        log.lines().any(|l| l.contains("cleaning up after shim disconnected") && l.contains(&format!("id={id}"))),
        "containerd did not run its dead-shim cleanup for {id}"
    );
}

// ---------------------------------------------------------------------------------------------
// runc

fn write_config(c: &Containerd, name: &str, text: &str) -> String {
    let p = c.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// `runc-binary` in dockerish.toml names a file that does not exist: the error names the binary
/// and the setting to fix; nothing is left.
fn runc_binary_missing_from_config_is_a_clear_error(v: Version) {
    let c = Containerd::shared(v);
    let cfg = write_config(&c, "norunc.toml", "runc-binary = \"/nonexistent/dockerish/runc\"\n");
    let id = c.id("cfgnorunc");
    let o = c.run(D, id, &["true"], RunOpts::rm().flag("--runtime-config-path").flag(&cfg));
    let msg = o.expect_err();
    assert_clear_error(&msg, &["/nonexistent/dockerish/runc", "config runc-binary"]);
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_no_leftovers(id);
    assert!(c.shims().is_empty(), "shims left: {:?}", c.shims());
}

/// A runc that really creates the container (state, cgroup, `runc init` waiting) and then
/// fails: the shim rolls back (no runc state, process, mount, cgroup, shim) and reports
/// runc's message. The same config then runs a container normally when runc does not fail.
fn runc_failing_mid_create_is_rolled_back(v: Version) {
    let c = Containerd::shared(v);
    let real = dockerish_tests::which("runc").unwrap_or_else(|| PathBuf::from("/usr/sbin/runc"));
    let marker = c.dir.join("fail-create");
    let wrapper = c.dir.join("runc-flaky");
    std::fs::write(
        &wrapper,
        format!(
            r#"#!/bin/sh
# Real runc for everything; `create` really runs and then fails while {marker} exists.
log=""; prev=""; is_create=0
for a in "$@"; do
  [ "$prev" = "--log" ] && log="$a"
  [ "$a" = "create" ] && is_create=1
  prev="$a"
done
if [ $is_create = 1 ] && [ -e "{marker}" ]; then
  "{real}" "$@" || exit $?
  [ -n "$log" ] && echo '{{"level":"error","msg":"injected failure after a successful create","time":"2026-01-01T00:00:00Z"}}' >> "$log"
  exit 1
fi
exec "{real}" "$@"
"#,
            marker = marker.display(),
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = write_config(&c, "flaky.toml", &format!("runc-binary = \"{}\"\n", wrapper.display()));
    let ev = Events::watch(&c, &c.ns);

    std::fs::write(&marker, b"").unwrap();
    let id = c.id("midcreate");
    let o = c.run(D, id, &["sleep", "1000"], RunOpts::detach().flag("--runtime-config-path").flag(&cfg));
    let msg = o.expect_err();
    assert_clear_error(&msg, &["runc create failed", "injected failure after a successful create"]);
    assert!(c.task_status(id).is_none(), "task still listed");
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_no_leftovers(id);
    assert!(c.shims().is_empty(), "shims left: {:?}", c.shims());
    assert!(
        !procs::all().iter().any(|p| p.comm.starts_with("runc") && p.cmdline.iter().any(|a| a.contains(id))),
        "runc init of the rolled-back container still running"
    );
    assert!(!ev.task_topics(id).iter().any(|t| t == "/tasks/create"), "TaskCreate published for a failed create");

    std::fs::remove_file(&marker).unwrap();
    let id = c.id("aftercreate");
    let o = c.run(D, id, &["echo", "fine"], RunOpts::rm().flag("--runtime-config-path").flag(&cfg));
    assert_eq!((o.code(), o.stdout.as_str()), (0, "fine\n"), "{}", o.stderr);
    c.assert_no_leftovers(id);
}

// ---------------------------------------------------------------------------------------------
// Full or read-only bundle while config.json is written

struct Tmpfs(PathBuf);
impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "dkt-full"]).arg(dir).output().unwrap();
        assert!(o.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&o.stderr));
        Tmpfs(dir.to_path_buf())
    }
    fn remount(&self, opts: &str) {
        let o = std::process::Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(&self.0).output().unwrap();
        assert!(o.status.success(), "remount {opts}: {}", String::from_utf8_lossy(&o.stderr));
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mount").args(["-o", "remount,rw"]).arg(&self.0).output();
        procs::unmount_all_under(&self.0);
    }
}

/// Fills the file system holding `dir` (a tmpfs) until writes fail with ENOSPC.
fn fill_up(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    // Byte-granular tail.
    while f.write(&chunk[..1]).is_ok_and(|n| n == 1) {}
    p
}

/// The bundle lives on a tmpfs (bundles are on containerd's state dir, usually /run: a tmpfs).
/// containerd writes config.json itself before Create, so the fault is injected between the two
/// by driving the shim binary the way containerd does (`start`, then ttrpc Create) on a bundle
/// on a small tmpfs: once full, once read-only. Create fails with the path and the errno,
/// config.json is byte-identical to what the client wrote, no temp file is left, the shim keeps
/// serving, and `shim delete` cleans up.
fn full_or_read_only_bundle_keeps_the_original_spec(v: Version) {
    let c = Containerd::shared(v);
    let fs = Tmpfs::mount(&c.dir.join("direct"), "2m");
    for case in ["full", "read-only"] {
        let s = DirectShim::new(&c, D);
        std::fs::create_dir_all(s.bundle.join("rootfs")).unwrap();
        let original = std::fs::read(s.bundle.join("config.json")).unwrap();
        let address = s.start(b"").expect_ok().stdout.trim().to_string();
        let log_reader = drain(&s.bundle.join("log"));
        let before: Vec<String> = list(&s.bundle);
        let filler = match case {
            "full" => Some(fill_up(&fs.0)),
            _ => {
                fs.remount("ro");
                None
            }
        };
        let mut cl = ttrpc_raw::Client::connect(&address).expect("connect");
        let req = pb::Msg::new().str(1, &s.id).str(2, &s.bundle.to_string_lossy()).into_bytes();
        let msg = match cl.call(TASK_V2, "Create", &req) {
            Err(CallError::Status(st)) => st.message,
            other => panic!("{case}: Create on a {case} bundle: expected an error status, got {other:?}"),
        };
        let errno = if case == "full" { "no space left on device" } else { "read-only file system" };
        assert_clear_error(&msg, &[&s.bundle.display().to_string(), errno]);
        assert!(msg.contains("config.json"), "{case}: the error names the spec file: {msg}");
        assert_eq!(std::fs::read(s.bundle.join("config.json")).unwrap(), original, "{case}: config.json changed");
        let after = list(&s.bundle);
        // config.json.orig: the kept original (checked below); log.json: runc's log of the
        // rollback's `runc delete`.
        let extra: Vec<&String> = after.iter().filter(|f| !before.contains(f) && !["config.json.orig", "log.json"].contains(&f.as_str())).collect();
        assert!(extra.is_empty(), "{case}: files left in the bundle: {extra:?}");
        if let Ok(orig) = std::fs::read(s.bundle.join("config.json.orig")) {
            assert_eq!(orig, original, "{case}: config.json.orig differs from the original");
        }
        // The shim survived and answers; free the space, shut it down, containerd's cleanup.
        cl.connect_task(TASK_V2, &s.id).expect("shim still answers after the failed Create");
        match filler {
            Some(f) => std::fs::remove_file(f).unwrap(),
            None => fs.remount("rw"),
        }
        let _ = cl.shutdown(TASK_V2, &s.id, false);
        drop(cl);
        assert!(dockerish_tests::wait_until(T, || s.daemons().is_empty()), "{case}: shim did not exit on Shutdown");
        assert_eq!(s.delete().code(), 0);
        assert!(!procs::runc_state(&s.ns, &s.id).exists());
        assert!(dockerish_tests::wait_until(Duration::from_secs(5), || !s.expected_socket().exists()), "{case}: socket left");
        // The FIFO's last writer is the test's own end (containerd's), closed with `s`.
        drop(s);
        log_reader.join().unwrap();
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// OOM

fn ooms(ev: &Events, id: &str) -> usize {
    ev.task_events(id).iter().filter(|e| e.topic == "/tasks/oom").count()
}

/// An exec that blows the memory limit: exit 137 and exactly one TaskOOM, the container keeps
/// running; a second OOM kill gives exactly one more. Then a container whose init is OOM-killed:
/// one TaskOOM, before its exit 137.
fn oom_kill_reports_one_task_oom_per_kill(v: Version) {
    let c = Containerd::shared(v);
    let ev = Events::watch(&c, &c.ns);
    let id = c.id("oomexec");
    c.run(D, id, &["sleep", "100000"], RunOpts::detach().flag("--memory-limit").flag("16777216")).expect_ok();
    let hog = "x=a; while :; do x=$x$x; done";
    for round in 1..=2 {
        let o = c.ctr_with(&["task", "exec", "--exec-id", &format!("hog{round}"), id, "sh", "-c", hog], None, Duration::from_secs(60));
        assert_eq!(o.code(), 137, "OOM-killed exec exit code: {}", o.stderr);
        assert!(dockerish_tests::wait_until(T, || ooms(&ev, id) >= round), "no TaskOOM after round {round}: {:?}", ev.task_topics(id));
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(ooms(&ev, id), round, "TaskOOM count after {round} OOM kill(s): {:?}", ev.task_topics(id));
        assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"), "init must survive its exec's OOM kill");
    }
    c.remove(id);
    c.assert_no_leftovers(id);

    let id = c.id("oominit");
    c.run(D, id, &["sh", "-c", hog], RunOpts::detach().flag("--memory-limit").flag("16777216")).expect_ok();
    let exit = ev.expect("/tasks/exit", id, Duration::from_secs(60));
    assert_eq!(exit.num("exit_status"), 137);
    std::thread::sleep(Duration::from_secs(2));
    let topics = ev.task_topics(id);
    assert_eq!(ooms(&ev, id), 1, "exactly one TaskOOM for one OOM kill: {topics:?}");
    let oom_at = topics.iter().position(|t| t == "/tasks/oom").unwrap();
    let exit_at = topics.iter().position(|t| t == "/tasks/exit").unwrap();
    assert!(oom_at < exit_at, "TaskOOM before TaskExit: {topics:?}");
    c.ctr(&["task", "rm", id]).expect_ok();
    c.ctr(&["container", "rm", id]).expect_ok();
    c.assert_no_leftovers(id);
}
