//! The one place that reaps children.
//!
//! The shim is a child subreaper, so container processes (reparented from `runc`), runc
//! itself and log drivers all end up as our children. A single `waitpid(-1)` loop collects
//! every exit; exits of commands we are waiting on go to that waiter, all others to the task
//! service. Everything runs on one tokio thread, so registering a waiter right after `spawn`
//! (with no await in between) cannot race the reaper.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Copy)]
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

    /// Spawns `cmd` and returns the child plus a receiver for its exit.
    /// Callers must not call `wait` on the child: the reaper owns reaping.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<(Child, oneshot::Receiver<Exit>)> {
        let (tx, rx) = oneshot::channel();
        let child = cmd.spawn()?;
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).commands.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Spawns a process whose exit nobody needs (a log driver): its exit is swallowed
    /// instead of reaching the task service as a stray exit.
    pub fn spawn_detached(&self, cmd: &mut Command) -> std::io::Result<Child> {
        let (child, rx) = self.spawn(cmd)?;
        drop(rx);
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
