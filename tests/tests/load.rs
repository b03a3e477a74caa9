//! Load (issue 6, item 2): 100 containers started in parallel batches and removed; then 2,000
//! execs with and without stdin against one container. Afterwards the shim's open fds, threads
//! and memory are back to their baseline, nothing is left unreaped, and nothing is leaked on the
//! host. Sizes: `DOCKERISH_LOAD_CONTAINERS` (100), `DOCKERISH_LOAD_BATCH` (10),
//! `DOCKERISH_LOAD_EXECS` (2000); scripts/soak raises them.

use std::time::{Duration, Instant};

use dockerish_tests::cmd::try_run_cmd;
use dockerish_tests::{procs, Containerd, Options, Runtime};

const D: Runtime = Runtime::Dockerish;
const T: Duration = Duration::from_secs(60);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Host-wide things a leak would grow: shim sockets, runc state dirs of our namespace, mounts
/// under the harness dir.
fn host_snapshot(c: &Containerd) -> (usize, usize, usize) {
    let count = |d: &str| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    (count("/run/containerd/s"), count(&format!("/run/containerd/runc/{}", c.ns)), procs::mounts_under(&c.dir).len())
}

/// `DOCKERISH_LOAD_CONTAINERS` containers, `DOCKERISH_LOAD_BATCH` at a time: each batch is
/// started in parallel, every task checked RUNNING with its own shim and answering an exec, then
/// the batch is removed in parallel. No shim, mount, cgroup, runc state or socket survives.
#[test]
fn containers_in_parallel_batches_leave_nothing() {
    let c = Containerd::start_with(Options { log_level: "info".into(), ..Default::default() });
    let n = env("DOCKERISH_LOAD_CONTAINERS", 100);
    let batch = env("DOCKERISH_LOAD_BATCH", 10).max(1);
    let (socks0, runc0, mounts0) = host_snapshot(&c);
    let started = Instant::now();
    let ids: Vec<&'static str> = (0..n).map(|i| c.id(&format!("ld{i}"))).collect();
    for chunk in ids.chunks(batch) {
        std::thread::scope(|s| {
            for id in chunk {
                let c = &c;
                s.spawn(move || {
                    c.run_sleeper(D, id);
                    let o = c.ctr(&["task", "exec", "--exec-id", "probe", id, "echo", id]);
                    assert_eq!(o.stdout.trim(), *id, "{} ({}): {}", o.what, o.status, o.stderr);
                });
            }
        });
        let shims: Vec<i32> = chunk.iter().map(|id| c.shim_pid(id).expect("shim per container")).collect();
        std::thread::scope(|s| {
            for id in chunk {
                let c = &c;
                s.spawn(move || c.remove(id));
            }
        });
        for id in chunk {
            c.assert_no_leftovers(id);
        }
        assert!(dockerish_tests::wait_until(T, || shims.iter().all(|p| !procs::alive(*p))), "shims of the batch still running");
    }
    let took = started.elapsed();
    assert!(c.shims().is_empty(), "shims left: {:?}", c.shims().iter().map(|p| p.pid).collect::<Vec<_>>());
    assert!(c.tasks().is_empty(), "tasks left: {:?}", c.tasks());
    let (socks1, runc1, mounts1) = host_snapshot(&c);
    eprintln!("LOAD containers={n} batch={batch} secs={:.1} sockets {socks0}->{socks1} runc-state {runc0}->{runc1} mounts {mounts0}->{mounts1}", took.as_secs_f64());
    assert_eq!(runc1, 0, "runc state left in our namespace");
    assert!(mounts1 <= mounts0, "mounts under the harness dir grew: {mounts0} -> {mounts1}");
    for id in &ids {
        assert!(!procs::shim_socket(&c.grpc, &c.ns, id).exists(), "socket of {id} left");
    }
}

/// One exec; even `i` attaches stdin (`head -n 1` reads a line and exits while stdin is still
/// open), odd `i` gets no stdin data and prints its argument.
fn one_exec(c: &Containerd, id: &str, i: usize) -> Result<(), String> {
    let eid = format!("l{i}");
    let line = format!("line-{i}\n");
    let mut cmd = c.ctr_command();
    cmd.args(["-n", &c.ns, "task", "exec", "--exec-id", &eid, id]);
    let (o, want) = if i & 1 == 0 {
        cmd.args(["head", "-n", "1"]);
        (try_run_cmd(&mut cmd, Some(line.as_bytes()), T)?, line)
    } else {
        cmd.args(["sh", "-c", "echo out-$0", &eid]);
        (try_run_cmd(&mut cmd, None, T)?, format!("out-{eid}\n"))
    };
    if o.code() != 0 || o.stdout != want {
        return Err(format!("exec {eid}: code {}, stdout {:?} (want {want:?}), stderr {:?}", o.code(), o.stdout, o.stderr));
    }
    Ok(())
}

fn run_execs(c: &Containerd, id: &str, range: std::ops::Range<usize>, workers: usize) -> Vec<String> {
    dockerish_tests::run_parallel(range, workers, usize::MAX, |i| one_exec(c, id, i))
}

/// `DOCKERISH_LOAD_EXECS` execs, half with stdin, from 4 clients at once against one container.
/// All succeed with the right output; afterwards the shim's fds and threads are back to the
/// baseline, its RSS within 4 MiB of it, no zombie, only init left in the container.
#[test]
fn execs_with_and_without_stdin_shim_back_to_baseline() {
    let c = Containerd::start_with(Options { log_level: "info".into(), ..Default::default() });
    let id = c.id("ldexec");
    let init = c.run_sleeper(D, id);
    let shim = c.shim_pid(id).expect("shim");
    let errors = run_execs(&c, id, 0..40, 4);
    assert!(errors.is_empty(), "warm-up execs failed: {errors:#?}");
    std::thread::sleep(Duration::from_secs(1));
    let (threads0, fds0, rss0) = (procs::threads(shim), procs::fds(shim), procs::rss_kib(shim));

    let n = env("DOCKERISH_LOAD_EXECS", 2000);
    let started = Instant::now();
    let errors = run_execs(&c, id, 40..40 + n, 4);
    let took = started.elapsed();
    assert!(errors.is_empty(), "{} of {n} execs failed, first ones: {:#?}", errors.len(), &errors[..errors.len().min(5)]);

    let settled = dockerish_tests::wait_until(Duration::from_secs(20), || procs::threads(shim) <= threads0 && procs::fds(shim) <= fds0);
    let (threads1, fds1, rss1) = (procs::threads(shim), procs::fds(shim), procs::rss_kib(shim));
    eprintln!(
        "LOAD execs={n} secs={:.1} rate={:.1}/s shim threads {threads0}->{threads1} fds {fds0}->{fds1} rss {rss0}->{rss1} KiB",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    assert!(settled, "shim not back to baseline after {n} execs: threads {threads0}->{threads1}, fds {fds0}->{fds1}");
    assert!(rss1 <= rss0 + 4096, "shim RSS grew {rss0} -> {rss1} KiB over {n} execs");
    assert!(procs::zombies_of(&[shim]).is_empty(), "zombies: {:?}", procs::zombies_of(&[shim]));
    assert_eq!(c.task_pids(id), vec![init], "only init should remain in the container");
    let o = c.ctr(&["task", "exec", "--exec-id", "final", id, "echo", "alive"]);
    assert_eq!(o.stdout, "alive\n", "{}", o.stderr);
    c.remove(id);
    c.assert_no_leftovers(id);
}
