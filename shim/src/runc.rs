//! Runs the runc binary. Errors carry runc's own last log message (from `--log` JSON), which
//! is what users need to see through ctr.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio::io::AsyncReadExt;

use crate::monitor::Monitor;

#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    #[error("runc binary {binary:?} ({origin}) could not be started: {source}")]
    Spawn { binary: String, origin: &'static str, source: std::io::Error },
    #[error("runc {command} failed (exit status {status}): {message}")]
    Failed { command: &'static str, status: u32, message: String },
    #[error("runc {command}: {reason}")]
    Output { command: &'static str, reason: String },
}

/// Where the runc binary name came from, so a "not found" says which setting to fix.
#[derive(Clone)]
pub struct Runc {
    pub binary: String,
    pub origin: &'static str,
    /// `--root`: runc's state directory for this containerd namespace.
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `--log` file inside the bundle.
    pub log: PathBuf,
    pub monitor: Monitor,
}

/// The stdio runc (and through it the container's process) gets.
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

fn to_stdio(fd: Option<OwnedFd>) -> Stdio {
    fd.map(Stdio::from).unwrap_or_else(Stdio::null)
}

impl Runc {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root).arg("--log").arg(&self.log).arg("--log-format").arg("json");
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    /// Runs a command whose stdio belongs to the container (create, exec) or nobody.
    pub async fn run(&self, name: &'static str, args: &[&str], stdio: ChildStdio) -> Result<(), RuncError> {
        let mut cmd = self.command(args);
        cmd.stdin(to_stdio(stdio.stdin)).stdout(to_stdio(stdio.stdout)).stderr(to_stdio(stdio.stderr));
        let (child, exit) = self.spawn(&mut cmd)?;
        // Drop our copies of the container's fds now: runc holds its own.
        drop(cmd);
        drop(child);
        let exit = exit.await.map_err(|_| RuncError::Output { command: name, reason: "reaper stopped".into() })?;
        if exit.status != 0 {
            return Err(RuncError::Failed { command: name, status: exit.status, message: self.last_log_error() });
        }
        Ok(())
    }

    /// Runs a command and returns its stdout (state, ps, features).
    pub async fn output(&self, name: &'static str, args: &[&str], stdin: Option<OwnedFd>) -> Result<Vec<u8>, RuncError> {
        let mut cmd = self.command(args);
        cmd.stdin(to_stdio(stdin)).stdout(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, exit) = self.spawn(&mut cmd)?;
        drop(cmd);
        let out = child.stdout.take().map(OwnedFd::from);
        let err = child.stderr.take().map(OwnedFd::from);
        drop(child);
        let (out, err) = tokio::join!(read_all(out), read_all(err));
        let exit = exit.await.map_err(|_| RuncError::Output { command: name, reason: "reaper stopped".into() })?;
        if exit.status != 0 {
            let mut message = self.last_log_error();
            if message.is_empty() {
                message = String::from_utf8_lossy(&err).trim().to_string();
            }
            return Err(RuncError::Failed { command: name, status: exit.status, message });
        }
        Ok(out)
    }

    fn spawn(&self, cmd: &mut Command) -> Result<(std::process::Child, tokio::sync::oneshot::Receiver<crate::monitor::Exit>), RuncError> {
        self.monitor.spawn(cmd).map_err(|source| RuncError::Spawn { binary: self.binary.clone(), origin: self.origin, source })
    }

    /// runc writes one JSON object per line; the last `error`-level message says why it failed.
    fn last_log_error(&self) -> String {
        let Ok(text) = std::fs::read_to_string(&self.log) else { return String::new() };
        let mut last = String::new();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                if v.get("level").and_then(|l| l.as_str()) == Some("error") {
                    if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                        last = m.to_string();
                    }
                }
            }
        }
        last
    }

    /// Starts a Create with an empty log. runc appends to `--log` but would create it 0644;
    /// its messages name paths and arguments, so the file is created owner-only here.
    pub fn clear_log(&self) {
        let _ = std::fs::remove_file(&self.log);
        let _ = crate::fsutil::write_private(&self.log, b"");
    }
}

async fn read_all(fd: Option<OwnedFd>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(fd) = fd {
        if let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            let _ = rx.read_to_end(&mut buf).await;
        }
    }
    buf
}

/// runc's state dir for a namespace: `<root>/<namespace>`, as the Go shim lays it out.
pub fn state_root(root: Option<&str>, namespace: &str) -> PathBuf {
    Path::new(root.unwrap_or("/run/containerd/runc")).join(namespace)
}
