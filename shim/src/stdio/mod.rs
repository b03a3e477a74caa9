//! A process's stdio: FIFOs (copied through pipes so output is drained before the exit is
//! reported and a vanished client never gets a container SIGPIPE), `file://` and `binary://`
//! log URIs, and terminals (the pty master runc hands over its console socket).
//!
//! Three steps, so that nothing blocking runs on the shared runtime thread: [`StdioSpec::parse`]
//! validates the request; [`open`] (blocking: FIFOs, files, pipes) runs on the blocking pool;
//! [`Prepared::start`] / [`Prepared::attach_terminal`] start the copiers on the runtime.

mod console;
mod spec;

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use console::{resize, ConsoleSocket};
pub use spec::{Logger, Output, Sink, SpecError, StdioPaths, StdioSpec};

use crate::monitor::Monitor;
use crate::runc::ChildStdio;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{what} {path:?}: {source}")]
    Open { what: &'static str, path: String, source: std::io::Error },
    #[error("log driver {binary:?}: {reason}")]
    Logger { binary: String, reason: String },
    #[error("console socket: {0}")]
    Console(String),
}

fn cloexec_pipe(what: &'static str, path: &Path) -> Result<(OwnedFd, OwnedFd), StdioError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| StdioError::Open { what, path: path.display().to_string(), source: e.into() })
}

/// How long an output FIFO's open waits for the client's reader before going on without it.
const READER_WAIT: Duration = Duration::from_secs(2);

/// Opens an output FIFO once the client's reader is there, then read-write, so that the shim
/// never hits EPIPE when containerd's side comes and goes (containerd restarts, `ctr run -d`).
///
/// The wait is the Go shim's rendezvous (it opens the FIFO write-only, blocking). containerd's
/// client opens its reader in a goroutine that may run after the Exec RPC: without the wait a
/// short process's output went into a FIFO that only the shim had open, and the kernel dropped
/// it when the shim closed its end, before ctr's open (ctr printed nothing). A reader that has
/// entered its open counts, even while that open still waits for a writer. After `until` the
/// shim goes on as before: the output is kept for as long as the shim holds the FIFO.
fn open_output_fifo(what: &'static str, path: &Path, until: Instant) -> Result<OwnedFd, StdioError> {
    let err = |source| StdioError::Open { what, path: path.display().to_string(), source };
    let mut pause = Duration::from_millis(1);
    // ENXIO: no reader yet. Held until the read-write fd is open: closing the only writer
    // would give a reader that just arrived EOF.
    let _reader_seen = loop {
        match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(f) => break Some(f),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < until => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                log::debug!("{what} FIFO {}: no reader within {READER_WAIT:?}; output is kept while the shim holds it", path.display());
                break None;
            }
            Err(e) => return Err(err(e)),
        }
    };
    OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(path).map(OwnedFd::from).map_err(err)
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

fn open_file(what: &'static str, p: &Path) -> Result<OwnedFd, StdioError> {
    let err = |source| StdioError::Open { what, path: p.display().to_string(), source };
    if let Some(dir) = p.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(err)?;
    }
    OpenOptions::new().append(true).create(true).mode(0o640).open(p).map(OwnedFd::from).map_err(err)
}

/// The owner (runc `Options.IoUid`/`IoGid`) of the pipes a process gets, so that a non-root
/// process can reopen its own stdio (`/proc/self/fd/1`, `/dev/stdout`).
fn chown(fd: &OwnedFd, owner: Option<(u32, u32)>, what: &'static str) -> Result<(), StdioError> {
    let Some((uid, gid)) = owner else { return Ok(()) };
    nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), Some(gid.into()))
        .map_err(|e| StdioError::Open { what, path: format!("pipe (chown to {uid}:{gid})"), source: e.into() })
}

/// An output stream after [`open`]: what the process gets and what the shim copies.
enum OpenSink {
    Null,
    /// The process writes into `pipe_w`; the shim copies `pipe_r` into the FIFO.
    Fifo { fifo: OwnedFd, pipe_r: OwnedFd, pipe_w: OwnedFd },
    /// The process writes straight into the file.
    File(OwnedFd),
    /// stderr shares stdout's pipe or file.
    SameAsStdout,
}

enum OpenOutput {
    Terminal(Option<(OwnedFd, bool)>),
    Streams { stdout: OpenSink, stderr: OpenSink },
    Logger(Logger),
}

/// A process's stdio, opened (on the blocking pool) and ready to be started.
pub struct Prepared {
    stdin: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    terminal_stdin: Option<OwnedFd>,
    output: OpenOutput,
    owner: Option<(u32, u32)>,
}

fn open_sink(what: &'static str, s: &Sink, owner: Option<(u32, u32)>, until: Instant) -> Result<OpenSink, StdioError> {
    Ok(match s {
        Sink::Null => OpenSink::Null,
        Sink::File(p) => OpenSink::File(open_file(what, p)?),
        Sink::Fifo(p) => {
            let fifo = open_output_fifo(what, p, until)?;
            let (pipe_r, pipe_w) = cloexec_pipe(what, p)?;
            chown(&pipe_w, owner, what)?;
            OpenSink::Fifo { fifo, pipe_r, pipe_w }
        }
    })
}

/// Opens what `spec` names. Blocking (FIFOs, files, directories; up to [`READER_WAIT`] for the
/// readers of output FIFOs): run it off the runtime thread. `owner` is runc's IoUid/IoGid when
/// either is set.
pub fn open(spec: &StdioSpec, owner: Option<(u32, u32)>) -> Result<Prepared, StdioError> {
    let until = Instant::now() + READER_WAIT;
    let terminal = matches!(spec.output, Output::Terminal(_));
    let (mut stdin, mut terminal_stdin) = (None, None);
    if let Some(p) = &spec.stdin {
        let fifo = open_stdin_fifo(p)?;
        if terminal {
            terminal_stdin = Some(fifo);
        } else {
            let (r, w) = cloexec_pipe("stdin", p)?;
            chown(&r, owner, "stdin")?;
            stdin = Some((fifo, r, w));
        }
    }
    let output = match &spec.output {
        Output::Terminal(Sink::Null) => OpenOutput::Terminal(None),
        Output::Terminal(Sink::Fifo(p)) => OpenOutput::Terminal(Some((open_output_fifo("stdout", p, until)?, true))),
        Output::Terminal(Sink::File(p)) => OpenOutput::Terminal(Some((open_file("stdout", p)?, false))),
        Output::Streams { stdout, stderr } => {
            let out = open_sink("stdout", stdout, owner, until)?;
            let err = if stderr == stdout && *stdout != Sink::Null { OpenSink::SameAsStdout } else { open_sink("stderr", stderr, owner, until)? };
            OpenOutput::Streams { stdout: out, stderr: err }
        }
        Output::Logger(l) => OpenOutput::Logger(l.clone()),
    };
    Ok(Prepared { stdin, terminal_stdin, output, owner })
}

/// Handles the shim keeps for a running process's IO.
#[derive(Default)]
pub struct ProcessIo {
    /// Tells the stdin copier to drain what is buffered and close the process's stdin.
    close_stdin: Option<oneshot::Sender<()>>,
    stdin_task: Option<JoinHandle<()>>,
    /// Output copiers; drained before the exit is published.
    output_tasks: Vec<JoinHandle<()>>,
    /// The pty master, for resize.
    pub console: Option<OwnedFd>,
}

/// A process's output copiers, taken out of its [`ProcessIo`] to be waited for without a lock.
pub struct Drain(Vec<JoinHandle<()>>);

impl Drain {
    /// Waits (bounded) for all output to reach its destination: a background child that keeps
    /// the pipe open, or a reader that has not come yet, must not hold the exit event forever.
    /// Copiers still running then are handed back: they go on to EOF, as the Go shim's do, and
    /// stop only when the process is deleted (their reader may come late; cutting its output
    /// short would lose data).
    pub async fn wait(mut self, limit: Duration) -> Drain {
        let all = async {
            for t in self.0.iter_mut() {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
        self.0.retain(|t| !t.is_finished());
        self
    }
}

impl ProcessIo {
    pub fn close_stdin(&mut self) {
        if let Some(tx) = self.close_stdin.take() {
            let _ = tx.send(());
        }
    }

    pub fn take_output(&mut self) -> Drain {
        Drain(std::mem::take(&mut self.output_tasks))
    }

    /// Keeps the copiers a [`Drain`] left running, so that deleting the process stops them.
    pub fn keep_output(&mut self, rest: Drain) {
        self.output_tasks.extend(rest.0);
    }

    /// The process exited: stdin and the terminal are closed; output copiers still draining
    /// go on until EOF or until the process is deleted (drop).
    pub fn close_after_exit(&mut self) {
        self.close_stdin.take();
        if let Some(t) = self.stdin_task.take() {
            t.abort();
        }
        self.console.take();
    }

    /// Stops every copier and closes every fd (the process is gone).
    pub fn shutdown(&mut self) {
        self.close_after_exit();
        for t in self.output_tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Prepared {
    pub fn is_terminal(&self) -> bool {
        matches!(self.output, OpenOutput::Terminal(_))
    }

    /// For a process without a terminal: the fds runc (and so the process) gets, with the
    /// copiers running. Starts the logging driver for `binary://`.
    pub async fn start(self, monitor: &Monitor, container_id: &str, namespace: &str) -> Result<(ChildStdio, ProcessIo), StdioError> {
        let mut io = ProcessIo::default();
        let mut child = ChildStdio::default();
        if let Some((fifo, r, w)) = self.stdin {
            child.stdin = Some(r);
            let (tx, rx) = oneshot::channel();
            io.close_stdin = Some(tx);
            io.stdin_task = Some(tokio::spawn(copy_stdin(fifo, w, rx)));
        }
        match self.output {
            OpenOutput::Terminal(_) => return Err(StdioError::Console("a terminal's output is attached when runc sends the pty".into())),
            OpenOutput::Logger(l) => {
                let (out_w, err_w) = start_logger(&l, monitor, container_id, namespace, self.owner).await?;
                child.stdout = Some(out_w);
                child.stderr = Some(err_w);
            }
            OpenOutput::Streams { stdout, stderr } => {
                child.stdout = sink_fd(stdout, &mut io);
                child.stderr = match stderr {
                    OpenSink::SameAsStdout => match &child.stdout {
                        Some(fd) => Some(fd.try_clone().map_err(|source| StdioError::Open { what: "stderr", path: "(stdout's pipe)".into(), source })?),
                        None => None,
                    },
                    other => sink_fd(other, &mut io),
                };
            }
        }
        Ok((child, io))
    }

    /// For a terminal process: copies between the pty master runc sent and the FIFOs.
    pub fn attach_terminal(self, master: OwnedFd) -> Result<ProcessIo, StdioError> {
        let mut io = ProcessIo::default();
        let dup = |f: &OwnedFd| f.try_clone().map_err(|e| StdioError::Console(e.to_string()));
        if let Some(fifo) = self.terminal_stdin {
            let (tx, rx) = oneshot::channel();
            io.close_stdin = Some(tx);
            // A pty master is pollable, which is all tokio's pipe types need.
            io.stdin_task = Some(tokio::spawn(copy_stdin(fifo, dup(&master)?, rx)));
        }
        if let OpenOutput::Terminal(Some((dst, is_fifo))) = self.output {
            io.output_tasks.push(tokio::spawn(copy_tty_output(dup(&master)?, dst, is_fifo)));
        }
        io.console = Some(master);
        Ok(io)
    }
}

fn sink_fd(s: OpenSink, io: &mut ProcessIo) -> Option<OwnedFd> {
    match s {
        OpenSink::Null | OpenSink::SameAsStdout => None,
        OpenSink::File(f) => Some(f),
        OpenSink::Fifo { fifo, pipe_r, pipe_w } => {
            io.output_tasks.push(tokio::spawn(copy_output(pipe_r, fifo)));
            Some(pipe_w)
        }
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
            // An append to a local log file: the kernel's page cache takes it without waiting.
            (None, Some(f)) => std::io::Write::write_all(f, &buf[..n]).is_ok(),
            (None, None) => false,
        };
        if !ok {
            return;
        }
    }
}

/// containerd's logging-binary protocol: fd 3 = stdout, fd 4 = stderr, fd 5 = closed (or
/// written to) when the driver is ready; CONTAINER_ID / CONTAINER_NAMESPACE in the env.
async fn start_logger(l: &Logger, monitor: &Monitor, container_id: &str, namespace: &str, owner: Option<(u32, u32)>) -> Result<(OwnedFd, OwnedFd), StdioError> {
    let lerr = |reason: String| StdioError::Logger { binary: l.path.display().to_string(), reason };
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| lerr(e.to_string()));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    chown(&out_w, owner, "stdout")?;
    chown(&err_w, owner, "stderr")?;
    let mut cmd = Command::new(&l.path);
    for (k, v) in &l.args {
        if v.is_empty() {
            cmd.arg(k);
        } else {
            cmd.arg(k).arg(v);
        }
    }
    cmd.env("CONTAINER_ID", container_id).env("CONTAINER_NAMESPACE", namespace);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    // SAFETY: pre_exec is unsafe by contract (it runs between fork and exec); the closure only
    // makes async-signal-safe calls (fcntl, dup2).
    unsafe {
        cmd.pre_exec(move || {
            // Move sources out of the 3..5 range first so the dup2s cannot clobber each other.
            let mut tmp = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                tmp[i] = nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))?;
            }
            for (i, t) in tmp.iter().enumerate() {
                nix::unistd::dup2(*t, 3 + i as i32)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let p = dir.path().join("out");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }

    #[test]
    fn output_fifo_without_a_reader_is_opened_when_the_wait_ends() {
        let dir = tempfile::tempdir().unwrap();
        let p = fifo(&dir);
        let started = Instant::now();
        let fd = open_output_fifo("stdout", &p, started + Duration::from_millis(100)).expect("opened without a reader");
        assert!(started.elapsed() >= Duration::from_millis(100), "gave up before the wait ended");
        // Read-write: the output is kept for as long as the shim holds it.
        nix::unistd::write(&fd, b"kept").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(fd.as_raw_fd(), &mut buf).unwrap(), 4);
    }

    #[test]
    fn output_fifo_open_returns_once_a_reader_came_and_it_gets_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = fifo(&dir);
        let reader = {
            let p = p.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                // Blocking, as containerd's client opens it: returns once the shim's end is open.
                std::fs::read(&p).unwrap()
            })
        };
        let started = Instant::now();
        let fd = open_output_fifo("stdout", &p, started + Duration::from_secs(30)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "did not notice the reader");
        nix::unistd::write(&fd, b"all of it").unwrap();
        drop(fd);
        assert_eq!(reader.join().unwrap(), b"all of it");
    }
}
