//! Stdio: fifos, `file://` and `binary://` log URIs, terminals, CloseIO, flushing (issue 2, item 4),
//! on every containerd of the matrix.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use dockerish_tests::pty::run_in_pty;
use dockerish_tests::{matrix_tests, Containerd, Events, RunOpts, Runtime, Version, IMAGE};

const T: Duration = Duration::from_secs(20);

/// Shell that waits (up to 10 s) until the console has a size: ctr sends ResizePty only after
/// the task started, so a fixed sleep loses the race on a loaded machine. (busybox `stty size`
/// prints nothing while the size is unset.)
const WAIT_FOR_SIZE: &str = "i=0; until s=$(stty size 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != \"0 0\" ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done";

matrix_tests!(
    terminal_run_resize_and_input,
    terminal_exec_resize,
    stdin_eof_closes_io,
    log_uri_file,
    log_uri_binary,
    output_fully_delivered_through_fifos,
    output_flushed_before_task_exit,
);

fn ctr_cmd(c: &Containerd, args: &[&str]) -> Command {
    let mut cmd = c.ctr_command();
    cmd.args(["-n", &c.ns]).args(args);
    cmd
}

/// `ctr run -t`: a console from runc's console socket, its size set by ResizePty, input typed
/// on the terminal reaches the container, the exit code comes back.
fn terminal_run_resize_and_input(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let id = c.id("tty1");
    let cmd = ctr_cmd(
        &c,
        &["run", "-t", "--rm", "--runtime", rt.name(), IMAGE, id, "sh", "-c", &format!("{WAIT_FOR_SIZE}; tty; stty size; [ -t 0 ] && echo STDIN-IS-TTY")],
    );
    let o = run_in_pty(cmd, 37, 111, None, T);
    assert_eq!(o.code, 0, "ctr run -t failed: {}", o.output);
    assert!(o.output.contains("/dev/pts/"), "no pty in the container: {:?}", o.output);
    assert!(o.output.contains("37 111"), "console size not applied: {:?}", o.output);
    assert!(o.output.contains("STDIN-IS-TTY"), "{:?}", o.output);
    c.assert_no_leftovers(id);

    // Interactive shell: type commands on the terminal.
    let id = c.id("tty2");
    let cmd = ctr_cmd(&c, &["run", "-t", "--rm", "--runtime", rt.name(), IMAGE, id, "sh"]);
    let o = run_in_pty(cmd, 24, 80, Some((b"echo typed-$((6*7))\nexit 5\n", Duration::from_millis(1500))), T);
    assert!(o.output.contains("typed-42"), "typed command did not run: {:?}", o.output);
    assert_eq!(o.code, 5, "exit code of the interactive shell: {:?}", o.output);
    c.assert_no_leftovers(id);
}

/// `ctr task exec -t`: an exec with its own console and size.
fn terminal_exec_resize(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let id = c.id("ttyexec");
    c.run_sleeper(rt, id);
    let cmd = ctr_cmd(&c, &["task", "exec", "-t", "--exec-id", "t1", id, "sh", "-c", &format!("{WAIT_FOR_SIZE}; stty size; tty; exit 3")]);
    let o = run_in_pty(cmd, 20, 60, None, T);
    assert!(o.output.contains("20 60"), "exec console size: {:?}", o.output);
    assert!(o.output.contains("/dev/pts/"), "{:?}", o.output);
    assert_eq!(o.code, 3, "{:?}", o.output);
    c.remove(id);
    c.assert_no_leftovers(id);
}

/// Stdin through fifos; EOF on ctr's stdin becomes CloseIO and the process sees EOF, for the
/// init process and for an exec.
fn stdin_eof_closes_io(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let input = "hello\nworld\n".repeat(1000);
    let id = c.id("catstdin");
    let o = c.run(rt, id, &["cat"], RunOpts::rm().stdin(input.clone()).timeout(T));
    assert_eq!(o.code(), 0, "{}", o.stderr);
    assert_eq!(o.stdout.len(), input.len(), "cat output length");
    assert_eq!(o.stdout, input);
    c.assert_no_leftovers(id);

    let id = c.id("stdinexec");
    c.run_sleeper(rt, id);
    let o = c.ctr_stdin_delayed(&["task", "exec", "--exec-id", "wc", id, "wc", "-c"], b"12345", Duration::from_secs(1), T);
    assert_eq!(o.code(), 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "5");
    c.remove(id);
    c.assert_no_leftovers(id);
}

/// `--log-uri file:///…`: stdout and stderr go to the file.
fn log_uri_file(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let log = c.dir.join("file-log.txt");
    let id = c.id("flog");
    let o = c.run(
        rt,
        id,
        &["sh", "-c", "echo to-out; echo to-err >&2; exit 4"],
        RunOpts::rm().flag("--log-uri").flag(format!("file://{}", log.display())),
    );
    assert_eq!(o.code(), 4, "{}", o.stderr);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    if rt == Runtime::RuncV2 {
        // The Go shims lose one of the two streams now and then when the machine is busy
        // (measured under 1.7.34: 2 of 16 parallel runs had only "to-out"; ours 0 of 16; 1.6's
        // did the same once in a full run): for that reference, one stream is enough to show
        // the file was written. Ours is held to both streams.
        assert!(dockerish_tests::wait_until(T, || text().contains("to-out") || text().contains("to-err")), "log file content: {:?}", text());
    } else {
        assert!(text().contains("to-out") && text().contains("to-err"), "log file content: {:?}", text());
    }
    c.assert_no_leftovers(id);
}

/// `--log-uri binary:///…`: the logger gets stdout on fd 3, stderr on fd 4, signals readiness
/// by closing fd 5, and sees CONTAINER_ID / CONTAINER_NAMESPACE.
fn log_uri_binary(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let dir = c.dir.join("logger");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("logger.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nd=$(dirname \"$0\")\nexec 5>&-\necho \"$CONTAINER_NAMESPACE $*\" > \"$d/$CONTAINER_ID.env\"\ncat <&3 > \"$d/$CONTAINER_ID.out\" &\ncat <&4 > \"$d/$CONTAINER_ID.err\" &\nwait\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = c.id("blog");
    let o = c.run(
        rt,
        id,
        &["sh", "-c", "echo to-out; echo to-err >&2; exit 6"],
        RunOpts::rm().flag("--log-uri").flag(format!("binary://{}?tag=x", script.display())),
    );
    assert_eq!(o.code(), 6, "{}", o.stderr);
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{id}.{ext}"))).unwrap_or_default();
    assert!(dockerish_tests::wait_until(T, || read("out") == "to-out\n" && read("err") == "to-err\n"), "logger got out={:?} err={:?}", read("out"), read("err"));
    assert!(read("env").starts_with(&c.ns), "logger env: {:?}", read("env"));
    c.assert_no_leftovers(id);
}

/// 2.2 MB through the stdout fifo, then exit: ctr receives every byte.
fn output_fully_delivered_through_fifos(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let id = c.id("big");
    let o = c.run(rt, id, &["sh", "-c", "yes 0123456789 | head -n 200000; echo END; exit 2"], RunOpts::rm().timeout(T));
    assert_eq!(o.code(), 2, "{}", o.stderr);
    assert_eq!(o.stdout_bytes.len(), 200000 * 11 + 4, "stdout bytes");
    assert!(o.stdout.ends_with("END\n"));
    c.assert_no_leftovers(id);
}

/// With a `file://` log, the whole output is in the file when `/tasks/exit` is published.
fn output_flushed_before_task_exit(v: Version, rt: Runtime) {
    let c = Containerd::shared(v);
    let ev = Events::watch(&c, &c.ns);
    let log = c.dir.join("flush.txt");
    let id = c.id("flush");
    c.run(
        rt,
        id,
        &["sh", "-c", "sleep 0.5; yes 0123456789 | head -n 100000; echo END"],
        RunOpts::detach().flag("--log-uri").flag(format!("file://{}", log.display())),
    )
    .expect_ok();
    let size_at_exit = {
        ev.expect("/tasks/exit", id, T);
        std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0)
    };
    assert_eq!(size_at_exit, 100000 * 11 + 4, "log file size when /tasks/exit arrived");
    c.ctr(&["task", "rm", id]).expect_ok();
    c.ctr(&["container", "rm", id]).expect_ok();
    c.assert_no_leftovers(id);
}
