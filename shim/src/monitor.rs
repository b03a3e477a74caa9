//! The one place that reaps children in the daemon.
//!
//! The shim is a child subreaper, so container processes (reparented from `runc`), runc
//! itself and log drivers all end up as our children. A single `waitpid(-1)` loop collects
//! every exit; exits of commands someone waits for go to that waiter, all others to the task
//! service. Every child the daemon starts is started through [`Monitor::spawn`], from the
//! runtime thread or from the blocking pool: the waiter is registered under the same lock the
//! reaper takes to look it up, so the reaper cannot take an exit before its waiter exists.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// Exit code, or 128 + signal number, as containerd reports it.
    pub status: u32,
    pub at: SystemTime,
}

#[derive(Default)]
struct Waiters {
    commands: HashMap<i32, oneshot::Sender<Exit>>,
}

#[derive(Clone)]
pub struct Monitor {
    waiters: Arc<Mutex<Waiters>>,
}

/// How the exit of a spawned command is learnt.
pub enum ExitWaiter {
    /// From the daemon's reaper.
    Reaper(oneshot::Receiver<Exit>),
    /// By waiting for the child directly (a short-lived invocation, no reaper).
    Direct,
}

fn status_of(s: std::process::ExitStatus) -> u32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().map(|c| c as u32).or_else(|| s.signal().map(|n| 128 + n as u32)).unwrap_or(255)
}

impl ExitWaiter {
    /// The command's exit status. `child` is dropped (not waited for) under the reaper.
    pub async fn wait(self, child: Child) -> Result<u32, String> {
        match self {
            ExitWaiter::Reaper(rx) => {
                drop(child);
                rx.await.map(|e| e.status).map_err(|_| "the reaper stopped".to_string())
            }
            ExitWaiter::Direct => {
                let mut child = child;
                tokio::task::spawn_blocking(move || child.wait().map(status_of).map_err(|e| e.to_string())).await.map_err(|e| e.to_string())?
            }
        }
    }

    /// The same, from a thread that may block (never the runtime thread).
    pub fn wait_blocking(self, mut child: Child) -> Result<u32, String> {
        match self {
            ExitWaiter::Reaper(rx) => {
                drop(child);
                rx.blocking_recv().map(|e| e.status).map_err(|_| "the reaper stopped".to_string())
            }
            ExitWaiter::Direct => child.wait().map(status_of).map_err(|e| e.to_string()),
        }
    }
}

impl Monitor {
    /// Starts the reaper. Exits nobody waits for are sent on the returned channel.
    pub fn start() -> std::io::Result<(Monitor, mpsc::UnboundedReceiver<Exit>)> {
        let mut sigchld = signal(SignalKind::child())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let m = Monitor { waiters: Arc::default() };
        let waiters = m.waiters.clone();
        tokio::spawn(async move {
            loop {
                reap_all(&waiters, &tx);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok((m, rx))
    }

    /// Spawns `cmd` and returns the child plus how to learn its exit.
    /// Callers must not wait for the child themselves: the reaper owns reaping.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<(Child, ExitWaiter)> {
        let (tx, rx) = oneshot::channel();
        // Held across spawn: a child that exits at once is reaped only after its waiter is in.
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        w.commands.insert(child.id() as i32, tx);
        Ok((child, ExitWaiter::Reaper(rx)))
    }

    /// Spawns a process whose exit nobody needs (a log driver): its exit is swallowed
    /// instead of reaching the task service as a stray exit.
    pub fn spawn_detached(&self, cmd: &mut Command) -> std::io::Result<Child> {
        let (child, _) = self.spawn(cmd)?;
        Ok(child)
    }
}

fn reap_all(waiters: &Mutex<Waiters>, tx: &mpsc::UnboundedSender<Exit>) {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code as u32),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as u32),
            Ok(WaitStatus::StillAlive) => return,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return, // ECHILD: no children left
        };
        let exit = Exit { pid, status, at: SystemTime::now() };
        let waiter = waiters.lock().unwrap_or_else(|e| e.into_inner()).commands.remove(&pid);
        match waiter {
            // A dropped receiver (detached command) just discards the exit.
            Some(w) => {
                let _ = w.send(exit);
            }
            None => {
                let _ = tx.send(exit);
            }
        }
    }
}
