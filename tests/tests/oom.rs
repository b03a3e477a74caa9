//! OOM kills: TaskOOM event and exit 137 (issue 2, items 3 and 5).

use std::time::Duration;

use dockerish_tests::{runtime_tests, Containerd, Events, RunOpts, Runtime};

const T: Duration = Duration::from_secs(30);

runtime_tests!(oom_killed_container_reports_task_oom_and_137);

fn oom_killed_container_reports_task_oom_and_137(rt: Runtime) {
    let c = Containerd::start();
    let ev = Events::watch(&c, &c.ns);
    let id = c.id("oom");
    let o = c.run(
        rt,
        id,
        &["sh", "-c", "x=a; while :; do x=$x$x; done"],
        RunOpts::rm().flag("--memory-limit").flag("8388608").timeout(Duration::from_secs(60)),
    );
    assert_eq!(o.code(), 137, "exit code of the OOM-killed container; stderr: {}", o.stderr);
    ev.expect("/tasks/oom", id, T);
    let exit = ev.expect("/tasks/exit", id, T);
    assert_eq!(exit.num("exit_status"), 137);
    ev.expect("/tasks/delete", id, T);
    let topics = ev.task_topics(id);
    let oom_at = topics.iter().position(|t| t == "/tasks/oom").unwrap();
    let exit_at = topics.iter().position(|t| t == "/tasks/exit").unwrap();
    if rt.is_dockerish() {
        // containerd expects the OOM event before the exit (containerd#12714); the Go shim 1.6
        // does not guarantee that order, ours must.
        assert!(oom_at < exit_at, "/tasks/oom must come before /tasks/exit: {topics:?}");
    }
    c.assert_no_leftovers(id);
}
