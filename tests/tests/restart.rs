//! containerd restarts while containers run (issue 2, item 8), on every containerd of the
//! matrix: each test restarts a daemon of its own.

use std::time::Duration;

use dockerish_tests::{matrix_tests, procs, Containerd, Events, Runtime, Version};

const T: Duration = Duration::from_secs(20);

matrix_tests!(containerd_killed_and_restarted, containerd_stopped_and_restarted);

fn containerd_killed_and_restarted(v: Version, rt: Runtime) {
    survive_restart(v, rt, libc::SIGKILL)
}

fn containerd_stopped_and_restarted(v: Version, rt: Runtime) {
    survive_restart(v, rt, libc::SIGTERM)
}

/// Tasks stay RUNNING across a containerd restart; kill, exec and exit events still work.
fn survive_restart(v: Version, rt: Runtime, sig: i32) {
    let mut c = Containerd::start_version(v);
    let id = c.id("survivor");
    let pid = c.run_sleeper(rt, id);
    c.ctr(&["task", "exec", "-d", "--exec-id", "bg", id, "sleep", "100000"]).expect_ok();
    let shim = c.shim_pid(id).expect("shim");

    c.restart(sig);

    assert!(procs::alive(shim), "the shim died with containerd");
    assert!(procs::alive(pid), "the container died with containerd");
    assert!(c.wait_status(id, "RUNNING", T), "task after restart: {:?}", c.task_status(id));
    assert_eq!(c.task_pid(id), Some(pid));
    let ev = Events::watch(&c, &c.ns);

    // Exec with output after the restart.
    let o = c.ctr(&["task", "exec", "--exec-id", "after", id, "sh", "-c", "echo after-restart; exit 9"]);
    assert_eq!(o.code(), 9, "{}", o.stderr);
    assert_eq!(o.stdout, "after-restart\n");
    ev.expect_match("exec-added after", T, |e| e.topic == "/tasks/exec-added" && e.str("exec_id") == "after");
    ev.expect_match("exec-started after", T, |e| e.topic == "/tasks/exec-started" && e.str("exec_id") == "after");
    let e = ev.expect_match("exit after", T, |e| e.topic == "/tasks/exit" && e.str("id") == "after");
    assert_eq!(e.num("exit_status"), 9);

    // The exec started before the restart can be killed and reports its exit.
    c.ctr(&["task", "kill", "-s", "SIGKILL", "--exec-id", "bg", id]).expect_ok();
    let e = ev.expect_match("exit bg", T, |e| e.topic == "/tasks/exit" && e.str("id") == "bg");
    assert_eq!(e.num("exit_status"), 137);

    // And the init process.
    c.ctr(&["task", "kill", "-s", "SIGKILL", id]).expect_ok();
    let e = ev.expect_match("init exit", T, |e| e.topic == "/tasks/exit" && e.str("id") == id);
    assert_eq!(e.num("exit_status"), 137);
    assert!(c.wait_status(id, "STOPPED", T));
    c.ctr(&["task", "rm", id]).expect_ok();
    ev.expect_task_delete(v, rt, id, T);
    c.ctr(&["container", "rm", id]).expect_ok();
    c.assert_no_leftovers(id);
}
