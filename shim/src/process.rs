//! A process's lifecycle (the container's init or one exec) as states, after containerd's Go
//! shim (`process/init_state.go`): each operation is a method of the state it is valid in, and
//! asking a state for an operation it does not have is a [`Transition`] error the caller must
//! handle (every method returns a `Result`; nothing moves a process by assignment).
//!
//! Runtime calls (runc) never run while the container's lock is held, so an operation is split
//! in two: `begin_*` takes a token out of the state (and for Start leaves [`State::Starting`]
//! behind, which records an exit that arrives meanwhile); the token's method runs the runtime
//! call without any lock; `finish_*` puts the outcome back. An exit is applied in two steps too:
//! [`State::exit`] marks the process [`State::Exited`] the moment the reaper sees it, and
//! [`State::publish`] makes it [`State::Stopped`] once its TaskExit goes out (after its output
//! was drained, and for an init after its execs' exits).

use std::time::SystemTime;

use containerd_shim_protos::types::task::Status as TaskStatus;

use crate::runtime::{ExecRequest, Launched, Runtime, RuntimeError};

/// How a process ended, as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub pid: u32,
    /// Exit code, or 128 + signal.
    pub status: u32,
    pub at: SystemTime,
}

/// The exit status containerd shows for a process killed by SIGKILL (also: an init that was
/// never started and is force-deleted).
pub const KILLED: u32 = 128 + 9;
/// What Wait and Delete report for an exec whose start failed (it never ran).
pub const START_FAILED: u32 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// An exec containerd announced (`Exec`) and has not started.
    Registered,
    /// An init after `runc create`.
    Created { pid: u32 },
    /// A start in flight (`runc start`/exec FIFO for an init, `runc exec` for an exec). `pid` is
    /// 0 for an exec until `runc exec` returns; `exit` holds an exit seen meanwhile.
    Starting { pid: u32, exec: bool, exit: Option<ExitInfo> },
    Running { pid: u32 },
    Paused { pid: u32 },
    /// Exit seen by the reaper, TaskExit not published yet.
    Exited(ExitInfo),
    /// TaskExit published: Wait answers, Delete may remove it.
    Stopped(ExitInfo),
}

/// An operation the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {op} a process that is {state}")]
pub struct Transition {
    pub op: &'static str,
    pub state: &'static str,
}

/// What the caller does after an exit was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitApplied {
    /// The process is now [`State::Exited`]: drain its output and publish.
    Publish(ExitInfo),
    /// A start is in flight: its `finish_start` takes care of the exit.
    Deferred,
    /// Already exited (a second exit for the same pid): nothing to do.
    Ignored,
}

/// Taken out of [`State::Created`] or [`State::Registered`]: the right to run the start.
#[must_use = "a start token must be run and its outcome given to finish_start"]
#[derive(Debug)]
pub struct StartToken {
    pub pid: u32,
}

impl StartToken {
    /// Starts a created init (the exec FIFO or `runc start`).
    pub async fn start_init<R: Runtime>(&self, rt: &R, h: &R::Handle, init_alive: &(dyn Fn() -> bool + Send + Sync)) -> Result<u32, RuntimeError> {
        rt.start(h, init_alive).await.map(|()| self.pid)
    }

    /// Starts a registered exec (`runc exec`).
    pub async fn start_exec<R: Runtime>(&self, rt: &R, h: &R::Handle, req: ExecRequest) -> Result<Launched, RuntimeError> {
        rt.exec(h, req).await
    }
}

impl KillToken {
    /// Signals the init through the runtime (with `all`, every process of the container).
    pub async fn kill_init<R: Runtime>(&self, rt: &R, h: &R::Handle, signal: u32, all: bool) -> Result<(), RuntimeError> {
        rt.kill(h, signal, all).await
    }

    /// Signals an exec directly, as the Go shim does (runc knows only the init).
    pub fn kill_exec(&self, signal: nix::sys::signal::Signal) -> Result<(), nix::errno::Errno> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal)
    }
}

impl PauseToken {
    pub async fn pause<R: Runtime>(&self, rt: &R, h: &R::Handle) -> Result<(), RuntimeError> {
        rt.pause(h).await
    }

    pub async fn resume<R: Runtime>(&self, rt: &R, h: &R::Handle) -> Result<(), RuntimeError> {
        rt.resume(h).await
    }
}

/// Taken out of a live state: the right to signal it.
#[must_use]
#[derive(Debug)]
pub struct KillToken {
    pub pid: u32,
}

/// Taken out of [`State::Running`] (pause) or [`State::Paused`] (resume).
#[must_use]
#[derive(Debug)]
pub struct PauseToken {
    pub pid: u32,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Registered => "registered (not started)",
            State::Created { .. } => "created",
            State::Starting { .. } => "starting",
            State::Running { .. } => "running",
            State::Paused { .. } => "paused",
            State::Exited(_) => "exiting",
            State::Stopped(_) => "stopped",
        }
    }

    fn refuse<T>(&self, op: &'static str) -> Result<T, Transition> {
        Err(Transition { op, state: self.name() })
    }

    pub fn pid(&self) -> u32 {
        match *self {
            State::Registered => 0,
            State::Created { pid } | State::Starting { pid, .. } | State::Running { pid } | State::Paused { pid } => pid,
            State::Exited(e) | State::Stopped(e) => e.pid,
        }
    }

    /// What `ctr task ls` shows. A process whose exit is not published yet is still running
    /// for containerd (the Go shim behaves the same).
    pub fn status(&self) -> TaskStatus {
        match self {
            State::Registered | State::Created { .. } => TaskStatus::CREATED,
            State::Starting { exec: true, .. } => TaskStatus::CREATED,
            State::Starting { .. } | State::Running { .. } | State::Exited(_) => TaskStatus::RUNNING,
            State::Paused { .. } => TaskStatus::PAUSED,
            State::Stopped(_) => TaskStatus::STOPPED,
        }
    }

    /// The published exit, if any.
    pub fn stopped(&self) -> Option<ExitInfo> {
        match self {
            State::Stopped(e) => Some(*e),
            _ => None,
        }
    }

    /// Alive for the purpose of the init's exit order: an exec that may still produce an exit.
    pub fn exit_pending(&self) -> bool {
        matches!(self, State::Starting { .. } | State::Running { .. } | State::Paused { .. } | State::Exited(_))
    }

    pub fn begin_start(&mut self) -> Result<StartToken, Transition> {
        match *self {
            State::Created { pid } => {
                *self = State::Starting { pid, exec: false, exit: None };
                Ok(StartToken { pid })
            }
            State::Registered => {
                *self = State::Starting { pid: 0, exec: true, exit: None };
                Ok(StartToken { pid: 0 })
            }
            _ => self.refuse("start"),
        }
    }

    /// The outcome of a start. `Ok(pid)`: running (or exited, if its exit came meanwhile).
    /// `Err`: an init stays created (or exited), an exec that never ran is stopped at once.
    pub fn finish_start(&mut self, outcome: Result<u32, ()>, now: SystemTime) -> Result<ExitApplied, Transition> {
        let State::Starting { pid, exec, exit } = *self else { return self.refuse("finish starting") };
        let (next, applied) = match (outcome, exit) {
            (Ok(pid), Some(e)) => (State::Exited(ExitInfo { pid, ..e }), ExitApplied::Publish(ExitInfo { pid, ..e })),
            (Ok(pid), None) => (State::Running { pid }, ExitApplied::Ignored),
            (Err(()), Some(e)) => (State::Exited(e), ExitApplied::Publish(e)),
            (Err(()), None) if exec => (State::Stopped(ExitInfo { pid: 0, status: START_FAILED, at: now }), ExitApplied::Ignored),
            (Err(()), None) => (State::Created { pid }, ExitApplied::Ignored),
        };
        *self = next;
        Ok(applied)
    }

    /// The reaper saw the process exit.
    pub fn exit(&mut self, e: ExitInfo) -> ExitApplied {
        match *self {
            State::Created { .. } | State::Running { .. } | State::Paused { .. } => {
                *self = State::Exited(e);
                ExitApplied::Publish(e)
            }
            State::Starting { pid, exec, exit: None } => {
                *self = State::Starting { pid, exec, exit: Some(e) };
                ExitApplied::Deferred
            }
            State::Starting { .. } | State::Registered | State::Exited(_) | State::Stopped(_) => ExitApplied::Ignored,
        }
    }

    /// TaskExit went out.
    pub fn publish(&mut self) -> Result<ExitInfo, Transition> {
        let State::Exited(e) = *self else { return self.refuse("publish the exit of") };
        *self = State::Stopped(e);
        Ok(e)
    }

    pub fn begin_kill(&self) -> Result<KillToken, Transition> {
        match *self {
            State::Created { pid } | State::Running { pid } | State::Paused { pid } => Ok(KillToken { pid }),
            State::Starting { pid, exec: false, exit: None } => Ok(KillToken { pid }),
            _ => self.refuse("signal"),
        }
    }

    pub fn begin_pause(&self) -> Result<PauseToken, Transition> {
        match *self {
            State::Running { pid } => Ok(PauseToken { pid }),
            _ => self.refuse("pause"),
        }
    }

    /// Paused, unless it exited while `runc pause` ran. Returns whether it changed.
    pub fn finish_pause(&mut self, t: PauseToken) -> bool {
        if *self == (State::Running { pid: t.pid }) {
            *self = State::Paused { pid: t.pid };
            return true;
        }
        false
    }

    pub fn begin_resume(&self) -> Result<PauseToken, Transition> {
        match *self {
            State::Paused { pid } => Ok(PauseToken { pid }),
            _ => self.refuse("resume"),
        }
    }

    pub fn finish_resume(&mut self, t: PauseToken) -> bool {
        if *self == (State::Paused { pid: t.pid }) {
            *self = State::Running { pid: t.pid };
            return true;
        }
        false
    }

    /// Delete of an init that was created and never started (`runc delete --force` kills it):
    /// it is reported as killed, without a TaskExit (it never ran).
    pub fn stop_unstarted(&mut self, at: SystemTime) -> Result<ExitInfo, Transition> {
        let State::Created { pid } = *self else { return self.refuse("stop (unstarted)") };
        let e = ExitInfo { pid, status: KILLED, at };
        *self = State::Stopped(e);
        Ok(e)
    }

    /// Whether Delete may remove the process now; for an init also whether it must be forced
    /// (created, never started: `runc delete --force` kills it).
    pub fn check_delete(&self, is_init: bool) -> Result<bool, Transition> {
        match self {
            State::Stopped(_) => Ok(false),
            State::Registered if !is_init => Ok(false),
            State::Created { .. } if is_init => Ok(true),
            _ => self.refuse("delete"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(pid: u32, status: u32) -> ExitInfo {
        ExitInfo { pid, status, at: SystemTime::UNIX_EPOCH }
    }

    #[test]
    fn init_runs_through_its_states() {
        let mut s = State::Created { pid: 7 };
        let t = s.begin_start().unwrap();
        assert_eq!(t.pid, 7);
        assert_eq!(s.status(), TaskStatus::RUNNING);
        assert!(s.begin_start().is_err(), "a second start while one is in flight");
        assert_eq!(s.finish_start(Ok(7), SystemTime::now()), Ok(ExitApplied::Ignored));
        assert_eq!(s, State::Running { pid: 7 });
        let p = s.begin_pause().unwrap();
        assert!(s.finish_pause(p));
        assert_eq!(s.status(), TaskStatus::PAUSED);
        assert!(s.begin_pause().is_err());
        let r = s.begin_resume().unwrap();
        assert!(s.finish_resume(r));
        assert_eq!(s.exit(exit(7, 137)), ExitApplied::Publish(exit(7, 137)));
        assert_eq!(s.status(), TaskStatus::RUNNING, "still running for containerd until TaskExit");
        assert_eq!(s.exit(exit(7, 0)), ExitApplied::Ignored, "exit applied once");
        assert!(s.check_delete(true).is_err(), "delete before the exit is published");
        assert_eq!(s.publish(), Ok(exit(7, 137)));
        assert!(s.publish().is_err());
        assert_eq!(s.check_delete(true), Ok(false));
        assert!(s.begin_start().is_err() && s.begin_kill().is_err() && s.begin_pause().is_err());
    }

    #[test]
    fn exit_during_start_is_kept_for_finish_start() {
        let mut s = State::Registered;
        let _ = s.begin_start().unwrap();
        assert_eq!(s.status(), TaskStatus::CREATED);
        assert_eq!(s.exit(exit(0, 3)), ExitApplied::Deferred);
        assert_eq!(s.finish_start(Ok(42), SystemTime::now()), Ok(ExitApplied::Publish(exit(42, 3))));
        assert_eq!(s, State::Exited(exit(42, 3)));
    }

    #[test]
    fn failed_starts() {
        let now = SystemTime::now();
        let mut exec = State::Registered;
        let _ = exec.begin_start().unwrap();
        exec.finish_start(Err(()), now).unwrap();
        assert_eq!(exec.stopped().map(|e| e.status), Some(START_FAILED), "an exec that never ran is stopped");
        let mut init = State::Created { pid: 5 };
        let _ = init.begin_start().unwrap();
        init.finish_start(Err(()), now).unwrap();
        assert_eq!(init, State::Created { pid: 5 }, "an init whose start failed stays created");
        let _ = init.begin_start().unwrap();
        assert_eq!(init.exit(exit(5, 137)), ExitApplied::Deferred);
        assert_eq!(init.finish_start(Err(()), now), Ok(ExitApplied::Publish(exit(5, 137))));
        assert!(State::Running { pid: 1 }.finish_start(Ok(1), now).is_err(), "finish without a start");
    }

    #[test]
    fn pause_outcome_ignored_after_exit() {
        let mut s = State::Running { pid: 3 };
        let t = s.begin_pause().unwrap();
        let _ = s.exit(exit(3, 0));
        assert!(!s.finish_pause(t));
        assert_eq!(s, State::Exited(exit(3, 0)));
    }

    #[test]
    fn delete_rules() {
        assert_eq!(State::Created { pid: 1 }.check_delete(true), Ok(true));
        assert!(State::Created { pid: 1 }.check_delete(false).is_err());
        assert_eq!(State::Registered.check_delete(false), Ok(false));
        let e = State::Running { pid: 1 }.check_delete(true).unwrap_err();
        assert_eq!(e.to_string(), "cannot delete a process that is running");
    }
}
