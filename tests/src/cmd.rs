//! Running commands with a deadline, capturing their output.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Output of a finished command.
#[derive(Debug)]
pub struct Out {
    /// What was run (for messages).
    pub what: String,
    pub status: ExitStatus,
    pub stdout_bytes: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
    /// The output pipes were still held open by a descendant when the command exited.
    pub pipes_held_open: bool,
}

impl Out {
    /// The exit code, or 128+signal when killed by a signal.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => -1,
        }
    }

    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// Panics with the command's output unless it succeeded.
    #[track_caller]
    pub fn expect_ok(self) -> Self {
        if !self.ok() {
            panic!("`{}` failed ({}):\nstdout: {}\nstderr: {}", self.what, self.status, self.stdout, self.stderr);
        }
        self
    }

    /// Panics unless it failed; returns stderr+stdout for checking the message.
    #[track_caller]
    pub fn expect_err(self) -> String {
        if self.ok() {
            panic!("`{}` succeeded but should have failed:\nstdout: {}\nstderr: {}", self.what, self.stdout, self.stderr);
        }
        format!("{}{}", self.stderr, self.stdout)
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with `stdin` (or `/dev/null`), captures stdout and stderr, kills it and panics
/// after `timeout`.
#[track_caller]
pub fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Out {
    match try_run_cmd(cmd, stdin, timeout) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`run_cmd`] but returns an error string instead of panicking on spawn failure or timeout.
pub fn try_run_cmd(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Out, String> {
    try_run_cmd_ex(cmd, stdin, Duration::ZERO, timeout)
}

/// Like [`try_run_cmd`], keeping stdin open `close_delay` after writing it. `ctr run` and
/// `ctr task exec` (1.6) lose the EOF → CloseIO when stdin ends before the task exists (their
/// `stdinCloser` has no closer yet), so input meant to end must end a little later.
pub fn try_run_cmd_ex(cmd: &mut Command, stdin: Option<&[u8]>, close_delay: Duration, timeout: Duration) -> Result<Out, String> {
    let what = describe(cmd);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run `{what}`: {e}"))?;
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
            if !close_delay.is_zero() {
                std::thread::sleep(close_delay);
            }
        });
    }
    let out_buf = Arc::new(Mutex::new(Vec::new()));
    let err_buf = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = [
        (Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, out_buf.clone()),
        (Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>, err_buf.clone()),
    ]
    .into_iter()
    .map(|(mut r, buf)| {
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        })
    })
    .collect();
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for `{what}`: {e}")),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            return Err(format!(
                "`{what}` did not finish within {timeout:?}\nstdout so far: {}\nstderr so far: {}",
                String::from_utf8_lossy(&out_buf.lock().unwrap()),
                String::from_utf8_lossy(&err_buf.lock().unwrap())
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A daemonizing descendant might keep the pipes open: give readers a short grace period.
    let grace = Instant::now() + Duration::from_secs(3);
    let mut held = false;
    for r in readers {
        while !r.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(5));
        }
        if r.is_finished() {
            let _ = r.join();
        } else {
            held = true;
        }
    }
    let stdout_bytes = out_buf.lock().unwrap().clone();
    let stderr = String::from_utf8_lossy(&err_buf.lock().unwrap()).into_owned();
    Ok(Out {
        what,
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr,
        pipes_held_open: held,
    })
}
