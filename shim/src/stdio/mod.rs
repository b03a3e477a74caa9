//! A process's stdio: FIFOs (copied through pipes so output is flushed before the exit is
//! reported and a vanished client never gets a container SIGPIPE), `file://` and `binary://`
//! log URIs, and terminals (the pty master that runc hands over its console socket).

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::fcntl::OFlag;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::monitor::Monitor;
use crate::runc::ChildStdio;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("{what} {path:?}: {source}")]
    Open { what: &'static str, path: String, source: std::io::Error },
    #[error("invalid {field} URI {uri:?}: {reason}")]
    Uri { field: &'static str, uri: String, reason: String },
    #[error("log driver {binary:?}: {reason}")]
    Logger { binary: String, reason: String },
    #[error("console socket: {0}")]
    Console(String),
}

/// The stdio paths containerd gave for a process.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

#[derive(Debug, PartialEq)]
enum Target {
    Null,
    Fifo(PathBuf),
    File(PathBuf),
    Binary { path: PathBuf, args: Vec<(String, String)> },
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Work on bytes: slicing the str could split a multi-byte character and panic.
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_target(field: &'static str, s: &str) -> Result<Target, StdioError> {
    if s.is_empty() {
        return Ok(Target::Null);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(Target::Fifo(PathBuf::from(s)));
    };
    let err = |reason: &str| StdioError::Uri { field, uri: s.to_string(), reason: reason.to_string() };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path);
    if !path.starts_with('/') {
        return Err(err("the path must be absolute"));
    }
    match scheme {
        "fifo" => Ok(Target::Fifo(path.into())),
        "file" => Ok(Target::File(path.into())),
        "binary" => {
            let args = query
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect();
            Ok(Target::Binary { path: path.into(), args })
        }
        other => Err(err(&format!("unsupported scheme {other:?} (use fifo, file or binary)"))),
    }
}

fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// Opens a FIFO read-write: never blocks waiting for the other side, never hits EOF or
/// EPIPE when containerd's side comes and goes (containerd restarts, `ctr run -d`).
fn open_fifo_rw(what: &'static str, path: &Path) -> Result<OwnedFd, StdioError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| StdioError::Open { what, path: path.display().to_string(), source })
}

/// Opens the stdin FIFO read-only and non-blocking. Until a writer has connected, epoll
/// reports nothing (not even HUP), so no spurious EOF; once the client closes its end we see
/// EOF and close the process's stdin — ctr often closes the FIFO without calling CloseIO.
fn open_stdin_fifo(path: &Path) -> Result<OwnedFd, StdioError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| StdioError::Open { what: "stdin", path: path.display().to_string(), source })
}

/// Handles the shim keeps for a running process's IO.
#[derive(Default)]
pub struct ProcessIo {
    /// Tells the stdin copier to drain what is buffered and close the process's stdin.
    close_stdin: Option<oneshot::Sender<()>>,
    stdin_task: Option<JoinHandle<()>>,
    /// Output copiers; awaited before the exit is published.
    output_tasks: Vec<JoinHandle<()>>,
    /// The pty master, for resize.
    pub console: Option<OwnedFd>,
}

impl ProcessIo {
    pub fn close_stdin(&mut self) {
        if let Some(tx) = self.close_stdin.take() {
            let _ = tx.send(());
        }
    }

    /// Waits (bounded) for all output to reach its destination. A background child that keeps
    /// the pipe open must not hold the exit event forever.
    pub async fn flush(&mut self, limit: Duration) {
        let tasks = std::mem::take(&mut self.output_tasks);
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// Stops every copier and closes every fd (the process is gone).
    pub fn shutdown(&mut self) {
        self.close_stdin.take();
        if let Some(t) = self.stdin_task.take() {
            t.abort();
        }
        for t in self.output_tasks.drain(..) {
            t.abort();
        }
        self.console.take();
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Builds the fds runc gets for a non-terminal process, and starts the copiers.
pub async fn setup_pipes(
    paths: &StdioPaths,
    monitor: &Monitor,
    container_id: &str,
    namespace: &str,
) -> Result<(ChildStdio, ProcessIo), StdioError> {
    let mut io = ProcessIo::default();
    let mut child = ChildStdio::default();

    if !paths.stdin.is_empty() {
        let fifo = open_stdin_fifo(Path::new(&paths.stdin))?;
        let (r, w) = cloexec_pipe().map_err(|source| StdioError::Open { what: "stdin pipe", path: paths.stdin.clone(), source })?;
        child.stdin = Some(r);
        let (tx, rx) = oneshot::channel();
        io.close_stdin = Some(tx);
        io.stdin_task = Some(tokio::spawn(copy_stdin(fifo, w, rx)));
    }

    let stdout = parse_target("stdout", &paths.stdout)?;
    let stderr = parse_target("stderr", &paths.stderr)?;
    match (&stdout, &stderr) {
        (Target::Binary { path, args }, _) => {
            let (out_w, err_w) = start_logger(path, args, monitor, container_id, namespace).await?;
            child.stdout = Some(out_w);
            child.stderr = Some(err_w);
        }
        _ => {
            child.stdout = output_fd("stdout", &stdout, &mut io)?;
            child.stderr = if stderr == stdout && stdout != Target::Null {
                match &child.stdout {
                    Some(fd) => Some(fd.try_clone().map_err(|source| StdioError::Open { what: "stderr", path: paths.stderr.clone(), source })?),
                    None => None,
                }
            } else {
                output_fd("stderr", &stderr, &mut io)?
            };
        }
    }
    Ok((child, io))
}

fn output_fd(what: &'static str, t: &Target, io: &mut ProcessIo) -> Result<Option<OwnedFd>, StdioError> {
    match t {
        Target::Null => Ok(None),
        Target::File(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|source| StdioError::Open { what, path: dir.display().to_string(), source })?;
            }
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(p)
                .map_err(|source| StdioError::Open { what, path: p.display().to_string(), source })?;
            Ok(Some(f.into()))
        }
        Target::Fifo(p) => {
            let fifo = open_fifo_rw(what, p)?;
            let (r, w) = cloexec_pipe().map_err(|source| StdioError::Open { what, path: p.display().to_string(), source })?;
            io.output_tasks.push(tokio::spawn(copy_output(r, fifo)));
            Ok(Some(w))
        }
        Target::Binary { .. } => unreachable!("binary targets are handled before"),
    }
}

async fn copy_stdin(fifo: OwnedFd, pipe_w: OwnedFd, mut close: oneshot::Receiver<()>) {
    // Unchecked: the destination is a pipe or, for terminals, the pty master; unchecked also
    // means tokio leaves the mode alone, and a blocking write would stall the whole shim.
    let _ = nix::fcntl::fcntl(pipe_w.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let (Ok(mut src), Ok(mut dst)) = (pipe::Receiver::from_owned_fd_unchecked(fifo), pipe::Sender::from_owned_fd_unchecked(pipe_w)) else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = src.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => if dst.write_all(&buf[..n]).await.is_err() { return },
            },
            _ = &mut close => {
                // The client wrote everything before it called CloseIO: forward what is still
                // buffered in the FIFO, then close the process's stdin (EOF).
                loop {
                    match src.try_read(&mut buf) {
                        Ok(n) if n > 0 => if dst.write_all(&buf[..n]).await.is_err() { return },
                        _ => return,
                    }
                }
            }
        }
    }
}

async fn copy_output(pipe_r: OwnedFd, fifo: OwnedFd) {
    let (Ok(mut src), Ok(mut dst)) = (pipe::Receiver::from_owned_fd(pipe_r), pipe::Sender::from_owned_fd_unchecked(fifo)) else {
        return;
    };
    let _ = tokio::io::copy(&mut src, &mut dst).await;
}

/// containerd's logging-binary protocol: fd 3 = stdout, fd 4 = stderr, fd 5 = closed (or
/// written to) when the driver is ready; CONTAINER_ID / CONTAINER_NAMESPACE in the env.
async fn start_logger(
    path: &Path,
    args: &[(String, String)],
    monitor: &Monitor,
    container_id: &str,
    namespace: &str,
) -> Result<(OwnedFd, OwnedFd), StdioError> {
    let lerr = |reason: String| StdioError::Logger { binary: path.display().to_string(), reason };
    let (out_r, out_w) = cloexec_pipe().map_err(|e| lerr(e.to_string()))?;
    let (err_r, err_w) = cloexec_pipe().map_err(|e| lerr(e.to_string()))?;
    let (ready_r, ready_w) = cloexec_pipe().map_err(|e| lerr(e.to_string()))?;
    let mut cmd = Command::new(path);
    for (k, v) in args {
        if v.is_empty() {
            cmd.arg(k);
        } else {
            cmd.arg(k).arg(v);
        }
    }
    cmd.env("CONTAINER_ID", container_id).env("CONTAINER_NAMESPACE", namespace);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move sources out of the 3..5 range first so the dup2s cannot clobber each other.
            let mut tmp = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                let t = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                if t < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                tmp[i] = t;
            }
            for (i, t) in tmp.iter().enumerate() {
                if libc::dup2(*t, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    monitor.spawn_detached(&mut cmd).map_err(|e| lerr(e.to_string()))?;
    drop(cmd);
    drop((out_r, err_r, ready_w));
    // Wait (bounded) for the driver to say it is ready: a byte or EOF on fd 5.
    let mut ready = pipe::Receiver::from_owned_fd(ready_r).map_err(|e| lerr(e.to_string()))?;
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), ready.read(&mut b)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(lerr(format!("reading its readiness pipe: {e}"))),
        Err(_) => return Err(lerr("did not close or write to fd 5 within 10s (children holding fd 5 open count as not ready)".into())),
    }
    Ok((out_w, err_w))
}

/// A terminal process: runc sends the pty master over a unix socket we listen on.
pub struct ConsoleSocket {
    dir: PathBuf,
    pub path: PathBuf,
    listener: tokio::net::UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<Self, StdioError> {
        // sun_path is 108 bytes: bundle paths can be longer, so use a short private dir.
        let dir = std::env::temp_dir().join(format!("dockerish-pty-{}-{}", std::process::id(), next_seq()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| StdioError::Console(format!("{}: {e}", dir.display())))?;
        let path = dir.join("pty.sock");
        let listener = tokio::net::UnixListener::bind(&path).map_err(|e| StdioError::Console(format!("bind {}: {e}", path.display())))?;
        Ok(ConsoleSocket { dir, path, listener })
    }

    /// Receives the master fd runc sends (SCM_RIGHTS).
    pub async fn receive_master(&self) -> Result<OwnedFd, StdioError> {
        let (stream, _) = self.listener.accept().await.map_err(|e| StdioError::Console(e.to_string()))?;
        let std_stream = stream.into_std().map_err(|e| StdioError::Console(e.to_string()))?;
        std_stream.set_nonblocking(false).map_err(|e| StdioError::Console(e.to_string()))?;
        let fd = std_stream.as_raw_fd();
        tokio::task::spawn_blocking(move || recv_fd(fd).map(|f| (f, std_stream)))
            .await
            .map_err(|e| StdioError::Console(e.to_string()))?
            .map(|(f, _keep)| f)
    }
}

fn recv_fd(sock: i32) -> Result<OwnedFd, StdioError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).map_err(|e| StdioError::Console(format!("recvmsg: {e}")))?;
    for c in msg.cmsgs().map_err(|e| StdioError::Console(e.to_string()))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us; nobody else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(StdioError::Console("runc sent no file descriptor".into()))
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Copies between the pty master and the process's FIFOs.
pub fn attach_console(master: OwnedFd, paths: &StdioPaths, io: &mut ProcessIo) -> Result<(), StdioError> {
    let dup = |f: &OwnedFd| f.try_clone().map_err(|e| StdioError::Console(e.to_string()));
    if !paths.stdin.is_empty() {
        let fifo = open_stdin_fifo(Path::new(&paths.stdin))?;
        let w = dup(&master)?;
        let (tx, rx) = oneshot::channel();
        io.close_stdin = Some(tx);
        // A pty master is pollable, which is all tokio's pipe types need.
        io.stdin_task = Some(tokio::spawn(copy_stdin(fifo, w, rx)));
    }
    match parse_target("stdout", &paths.stdout)? {
        Target::Fifo(p) => {
            let fifo = open_fifo_rw("stdout", &p)?;
            let r = dup(&master)?;
            io.output_tasks.push(tokio::spawn(copy_tty_output(r, fifo, true)));
        }
        Target::File(p) => {
            let f = OpenOptions::new().append(true).create(true).mode(0o640).open(&p).map_err(|source| StdioError::Open {
                what: "stdout",
                path: p.display().to_string(),
                source,
            })?;
            let r = dup(&master)?;
            io.output_tasks.push(tokio::spawn(copy_tty_output(r, f.into(), false)));
        }
        Target::Null => {}
        Target::Binary { .. } => return Err(StdioError::Uri { field: "stdout", uri: paths.stdout.clone(), reason: "binary:// logging cannot be combined with a terminal".into() }),
    }
    io.console = Some(master);
    Ok(())
}

async fn copy_tty_output(master: OwnedFd, dst_fd: OwnedFd, dst_is_fifo: bool) {
    let _ = nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let Ok(mut src) = pipe::Receiver::from_owned_fd_unchecked(master) else { return };
    let mut buf = vec![0u8; 16 * 1024];
    let (mut fifo, mut file) = if dst_is_fifo {
        (pipe::Sender::from_owned_fd_unchecked(dst_fd).ok(), None)
    } else {
        (None, Some(std::fs::File::from(dst_fd)))
    };
    loop {
        // EIO from the master means the slave side closed: the process exited.
        let n = match src.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let ok = match (&mut fifo, &mut file) {
            (Some(f), _) => f.write_all(&buf[..n]).await.is_ok(),
            (None, Some(f)) => std::io::Write::write_all(f, &buf[..n]).is_ok(),
            (None, None) => false,
        };
        if !ok {
            return;
        }
    }
}

pub fn resize(master: &OwnedFd, width: u32, height: u32) -> std::io::Result<()> {
    let ws = libc::winsize { ws_row: height as u16, ws_col: width as u16, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize struct we own.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_uris() {
        assert_eq!(parse_target("stdout", "").unwrap(), Target::Null);
        assert_eq!(parse_target("stdout", "/run/x/stdout").unwrap(), Target::Fifo("/run/x/stdout".into()));
        assert_eq!(parse_target("stdout", "file:///var/log/a%20b.log").unwrap(), Target::File("/var/log/a b.log".into()));
        assert_eq!(
            parse_target("stdout", "binary:///usr/bin/logger?id=1&flag").unwrap(),
            Target::Binary { path: "/usr/bin/logger".into(), args: vec![("id".into(), "1".into()), ("flag".into(), "".into())] }
        );
        let e = parse_target("stdout", "http://x/y").unwrap_err().to_string();
        assert!(e.contains("http://x/y") && e.contains("stdout"), "{e}");
        assert!(parse_target("stderr", "file://relative").is_err());
        // Multi-byte characters after '%' and a trailing '%' must not panic.
        assert_eq!(percent_decode("/a%é%"), "/a%é%");
        assert_eq!(percent_decode("/x%4"), "/x%4");
    }
}
