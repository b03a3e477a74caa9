//! The runc client: the only place a runc process is started (the daemon's task calls, `shim
//! delete`, `-info`, and `runc features` for the rules). Typed options in, typed errors out:
//! "the container does not exist" and "its process is not running" are told apart by looking
//! at runc's own state (`<root>/<id>/state.json`, the init's start time), never by reading
//! runc's message text. Other failures carry runc's last error message (from `--log` JSON),
//! which is what users need to see through ctr.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio::io::AsyncReadExt;

use crate::monitor::{ExitWaiter, Monitor};

#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    #[error("runc binary {binary:?} ({origin}) could not be started: {source}")]
    Spawn { binary: String, origin: &'static str, source: std::io::Error },
    #[error("container {id:?} does not exist in runc's state {root:?}")]
    NotFound { id: String, root: PathBuf },
    #[error("container {id:?}: its process is not running")]
    NotRunning { id: String },
    #[error("runc {command} failed (exit status {status}): {message}")]
    Failed { command: &'static str, status: u32, message: String },
    #[error("runc {command}: {reason}")]
    Output { command: &'static str, reason: String },
}

/// `runc create` options.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub bundle: PathBuf,
    pub pid_file: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// `runc exec --detach` options.
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    /// The process spec (JSON) file.
    pub process: PathBuf,
    pub pid_file: PathBuf,
    pub console_socket: Option<PathBuf>,
}

/// The stdio runc (and through it the container's process) gets; `None` is /dev/null.
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

fn to_stdio(fd: Option<OwnedFd>) -> Stdio {
    fd.map(Stdio::from).unwrap_or_else(Stdio::null)
}

/// A runc binary with its global options.
#[derive(Clone)]
pub struct Runc {
    pub binary: String,
    /// Where the binary name came from, so a "not found" says which setting to fix.
    pub origin: &'static str,
    /// `--root`: runc's state directory for this containerd namespace.
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `--log` (JSON) inside the bundle; `None` outside the daemon.
    pub log: Option<PathBuf>,
    /// The daemon's reaper; `None` in the short-lived invocations, which wait for runc directly.
    pub reaper: Option<Monitor>,
}

/// runc's state dir for a namespace: `<root>/<namespace>`, as the Go shim lays it out.
pub fn state_root(root: Option<&str>, namespace: &str) -> PathBuf {
    Path::new(root.unwrap_or("/run/containerd/runc")).join(namespace)
}

impl Runc {
    fn command(&self, args: &[&std::ffi::OsStr]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        if let Some(log) = &self.log {
            cmd.arg("--log").arg(log).arg("--log-format").arg("json");
        }
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    fn spawn(&self, cmd: &mut Command) -> Result<(std::process::Child, ExitWaiter), RuncError> {
        let spawned = match &self.reaper {
            Some(m) => m.spawn(cmd),
            None => cmd.spawn().map(|c| (c, ExitWaiter::Direct)),
        };
        spawned.map_err(|source| RuncError::Spawn { binary: self.binary.clone(), origin: self.origin, source })
    }

    /// Runs a command whose stdio belongs to the container (create, exec) or nobody; on
    /// failure, tells "gone" and "not running" apart through runc's state for `id`.
    async fn run(&self, command: &'static str, args: &[&std::ffi::OsStr], id: &str, stdio: ChildStdio) -> Result<(), RuncError> {
        let mut cmd = self.command(args);
        cmd.stdin(to_stdio(stdio.stdin)).stdout(to_stdio(stdio.stdout)).stderr(to_stdio(stdio.stderr));
        let (child, exit) = self.spawn(&mut cmd)?;
        // Drop our copies of the container's fds now: runc holds its own.
        drop(cmd);
        let status = exit.wait(child).await.map_err(|reason| RuncError::Output { command, reason })?;
        if status == 0 {
            return Ok(());
        }
        Err(self.failure(command, status, id, String::new()).await)
    }

    /// Runs a command and returns its stdout (ps, features).
    async fn output(&self, command: &'static str, args: &[&std::ffi::OsStr], id: &str) -> Result<Vec<u8>, RuncError> {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, exit) = self.spawn(&mut cmd)?;
        drop(cmd);
        let out = child.stdout.take().map(OwnedFd::from);
        let err = child.stderr.take().map(OwnedFd::from);
        let (out, err) = tokio::join!(read_all(out), read_all(err));
        let status = exit.wait(child).await.map_err(|reason| RuncError::Output { command, reason })?;
        if status != 0 {
            return Err(self.failure(command, status, id, String::from_utf8_lossy(&err).trim().to_string()).await);
        }
        Ok(out)
    }

    async fn failure(&self, command: &'static str, status: u32, id: &str, stderr: String) -> RuncError {
        let (root, id_owned, log) = (self.root.clone(), id.to_string(), self.log.clone());
        let classified = tokio::task::spawn_blocking(move || (classify(&root, &id_owned), log.as_deref().map(last_log_error).unwrap_or_default())).await;
        let (state, logged) = classified.unwrap_or((None, String::new()));
        match state {
            Some(e) if command != "create" => e,
            _ => RuncError::Failed { command, status, message: if logged.is_empty() { stderr } else { logged } },
        }
    }

    pub async fn create(&self, id: &str, o: &CreateOpts, stdio: ChildStdio) -> Result<(), RuncError> {
        let mut a: Vec<&std::ffi::OsStr> = vec!["create".as_ref(), "--bundle".as_ref(), o.bundle.as_os_str(), "--pid-file".as_ref(), o.pid_file.as_os_str()];
        if let Some(c) = &o.console_socket {
            a.extend(["--console-socket".as_ref(), c.as_os_str()] as [&std::ffi::OsStr; 2]);
        }
        if o.no_pivot {
            a.push("--no-pivot".as_ref());
        }
        if o.no_new_keyring {
            a.push("--no-new-keyring".as_ref());
        }
        a.push(id.as_ref());
        self.run("create", &a, id, stdio).await
    }

    pub async fn exec(&self, id: &str, o: &ExecOpts, stdio: ChildStdio) -> Result<(), RuncError> {
        let mut a: Vec<&std::ffi::OsStr> = vec!["exec".as_ref(), "--detach".as_ref(), "--process".as_ref(), o.process.as_os_str(), "--pid-file".as_ref(), o.pid_file.as_os_str()];
        if let Some(c) = &o.console_socket {
            a.extend(["--console-socket".as_ref(), c.as_os_str()] as [&std::ffi::OsStr; 2]);
        }
        a.push(id.as_ref());
        self.run("exec", &a, id, stdio).await
    }

    pub async fn start(&self, id: &str) -> Result<(), RuncError> {
        self.run("start", &["start".as_ref(), id.as_ref()], id, ChildStdio::default()).await
    }

    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuncError> {
        let sig = signal.to_string();
        let mut a: Vec<&std::ffi::OsStr> = vec!["kill".as_ref()];
        if all {
            a.push("--all".as_ref());
        }
        a.extend([id.as_ref(), sig.as_str().as_ref()] as [&std::ffi::OsStr; 2]);
        self.run("kill", &a, id, ChildStdio::default()).await
    }

    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuncError> {
        let mut a: Vec<&std::ffi::OsStr> = vec!["delete".as_ref()];
        if force {
            a.push("--force".as_ref());
        }
        a.push(id.as_ref());
        self.run("delete", &a, id, ChildStdio::default()).await
    }

    pub async fn pause(&self, id: &str) -> Result<(), RuncError> {
        self.run("pause", &["pause".as_ref(), id.as_ref()], id, ChildStdio::default()).await
    }

    pub async fn resume(&self, id: &str) -> Result<(), RuncError> {
        self.run("resume", &["resume".as_ref(), id.as_ref()], id, ChildStdio::default()).await
    }

    pub async fn update(&self, id: &str, resources: &Path) -> Result<(), RuncError> {
        self.run("update", &["update".as_ref(), "--resources".as_ref(), resources.as_os_str(), id.as_ref()], id, ChildStdio::default()).await
    }

    /// Pids of the container's processes (runc prints `null` when none is left).
    pub async fn ps(&self, id: &str) -> Result<Vec<u32>, RuncError> {
        let out = self.output("ps", &["ps".as_ref(), "--format".as_ref(), "json".as_ref(), id.as_ref()], id).await?;
        serde_json::from_slice::<Option<Vec<u32>>>(&out).map(Option::unwrap_or_default).map_err(|e| RuncError::Output { command: "ps", reason: format!("output is not a JSON list of pids: {e}") })
    }

    /// `runc delete [--force] ID` outside the daemon (`shim delete`): waits for runc directly.
    pub fn delete_blocking(&self, id: &str, force: bool) -> Result<(), RuncError> {
        let mut cmd = self.command(&[]);
        cmd.arg("delete");
        if force {
            cmd.arg("--force");
        }
        cmd.arg(id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let (mut child, exit) = self.spawn(&mut cmd)?;
        let mut stderr = Vec::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = std::io::Read::read_to_end(&mut s, &mut stderr);
        }
        let status = exit.wait_blocking(child).map_err(|reason| RuncError::Output { command: "delete", reason })?;
        if status == 0 {
            return Ok(());
        }
        Err(classify(&self.root, id).unwrap_or_else(|| RuncError::Failed { command: "delete", status, message: String::from_utf8_lossy(&stderr).trim().to_string() }))
    }
}

/// `runc features` (an OCI features document, JSON). From a thread that may block: the daemon's
/// blocking pool (through the reaper) or a short-lived invocation (directly).
pub fn features_blocking(binary: &Path, reaper: Option<&Monitor>) -> Result<Vec<u8>, RuncError> {
    let mut cmd = Command::new(binary);
    cmd.arg("features").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let spawn_err = |source| RuncError::Spawn { binary: binary.display().to_string(), origin: "runc features", source };
    let (mut child, exit) = match reaper {
        Some(m) => m.spawn(&mut cmd).map_err(spawn_err)?,
        None => (cmd.spawn().map_err(spawn_err)?, ExitWaiter::Direct),
    };
    let mut out = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        std::io::Read::read_to_end(&mut s, &mut out).map_err(|e| RuncError::Output { command: "features", reason: e.to_string() })?;
    }
    let status = exit.wait_blocking(child).map_err(|reason| RuncError::Output { command: "features", reason })?;
    if status != 0 {
        return Err(RuncError::Failed { command: "features", status, message: String::new() });
    }
    Ok(out)
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

/// After a failed command: runc keeps `<root>/<id>/state.json` while the container exists,
/// with its init's pid and start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
/// `None`: the container exists and its init runs, so the failure was something else.
fn classify(root: &Path, id: &str) -> Option<RuncError> {
    let state = match std::fs::read(root.join(id).join("state.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(RuncError::NotFound { id: id.to_string(), root: root.to_path_buf() }),
        Err(_) => return None,
    };
    #[derive(serde::Deserialize)]
    struct InitOf {
        init_process_pid: i64,
        init_process_start: u64,
    }
    let init: InitOf = serde_json::from_slice(&state).ok()?;
    let running = std::fs::read_to_string(format!("/proc/{}/stat", init.init_process_pid)).ok().and_then(|stat| {
        // The comm field may contain spaces and parentheses: split after the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let zombie = matches!(f.first().copied(), Some("Z") | Some("X"));
        Some(!zombie && f.get(19)?.parse::<u64>().ok()? == init.init_process_start)
    });
    match running {
        Some(true) => None,
        _ => Some(RuncError::NotRunning { id: id.to_string() }),
    }
}

/// runc writes one JSON object per line; the last `error`-level message says why it failed.
fn last_log_error(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else { return String::new() };
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
/// its messages name paths and arguments, so the file is created owner-only here. Blocking.
pub fn reset_log(log: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(log) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    crate::fsutil::write_private(log, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_tells_gone_from_not_running() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(classify(d.path(), "absent"), Some(RuncError::NotFound { .. })));
        std::fs::create_dir(d.path().join("c")).unwrap();
        // Our own pid with a start time that is not ours: a reused pid, not the init.
        let me = std::process::id();
        std::fs::write(d.path().join("c/state.json"), format!(r#"{{"init_process_pid":{me},"init_process_start":1}}"#)).unwrap();
        assert!(matches!(classify(d.path(), "c"), Some(RuncError::NotRunning { .. })));
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let start: u64 = stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(19).unwrap().parse().unwrap();
        std::fs::write(d.path().join("c/state.json"), format!(r#"{{"init_process_pid":{me},"init_process_start":{start}}}"#)).unwrap();
        assert!(classify(d.path(), "c").is_none(), "a running init: the failure was something else");
    }

    #[test]
    fn last_error_line_of_the_log() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log.json");
        std::fs::write(&log, "{\"level\":\"error\",\"msg\":\"first\"}\nnot json\n{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"second\"}\n").unwrap();
        assert_eq!(last_log_error(&log), "second");
        reset_log(&log).unwrap();
        assert_eq!(last_log_error(&log), "");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
