//! A process's lifecycle as types: each state is its own struct and each transition consumes
//! the old state, so e.g. a stopped process cannot be started or paused by mistake.

use std::time::SystemTime;

#[derive(Debug, Clone, Copy)]
pub struct Created {
    pub pid: u32,
}
#[derive(Debug, Clone, Copy)]
pub struct Running {
    pub pid: u32,
}
#[derive(Debug, Clone, Copy)]
pub struct Paused {
    pub pid: u32,
}
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    pub pid: u32,
    pub status: u32,
    pub at: SystemTime,
}

/// An exec that containerd announced (`Exec`) but has not started yet.
#[derive(Debug, Clone, Copy)]
pub struct Registered;

impl Registered {
    pub fn start(self, pid: u32) -> Running {
        Running { pid }
    }
}

impl Created {
    pub fn start(self) -> Running {
        Running { pid: self.pid }
    }
    pub fn exit(self, status: u32, at: SystemTime) -> Stopped {
        Stopped { pid: self.pid, status, at }
    }
}

impl Running {
    pub fn pause(self) -> Paused {
        Paused { pid: self.pid }
    }
    pub fn exit(self, status: u32, at: SystemTime) -> Stopped {
        Stopped { pid: self.pid, status, at }
    }
}

impl Paused {
    pub fn resume(self) -> Running {
        Running { pid: self.pid }
    }
    pub fn exit(self, status: u32, at: SystemTime) -> Stopped {
        Stopped { pid: self.pid, status, at }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum State {
    Registered(Registered),
    Created(Created),
    Running(Running),
    Paused(Paused),
    Stopped(Stopped),
}

impl State {
    pub fn pid(&self) -> u32 {
        match self {
            State::Registered(_) => 0,
            State::Created(s) => s.pid,
            State::Running(s) => s.pid,
            State::Paused(s) => s.pid,
            State::Stopped(s) => s.pid,
        }
    }

    /// The status containerd shows (`ctr task ls`).
    pub fn status(&self) -> containerd_shim_protos::types::task::Status {
        use containerd_shim_protos::types::task::Status;
        match self {
            State::Registered(_) | State::Created(_) => Status::CREATED,
            State::Running(_) => Status::RUNNING,
            State::Paused(_) => Status::PAUSED,
            State::Stopped(_) => Status::STOPPED,
        }
    }

    pub fn stopped(&self) -> Option<Stopped> {
        match self {
            State::Stopped(s) => Some(*s),
            _ => None,
        }
    }

    /// Applies an exit to whatever live state the process is in; exiting twice is a no-op.
    pub fn exit(self, status: u32, at: SystemTime) -> (State, bool) {
        match self {
            State::Created(s) => (State::Stopped(s.exit(status, at)), true),
            State::Running(s) => (State::Stopped(s.exit(status, at)), true),
            State::Paused(s) => (State::Stopped(s.exit(status, at)), true),
            State::Registered(_) => (State::Stopped(Stopped { pid: 0, status, at }), true),
            State::Stopped(_) => (self, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_is_applied_once() {
        let s = State::Running(Created { pid: 7 }.start());
        let (s, changed) = s.exit(137, SystemTime::UNIX_EPOCH);
        assert!(changed);
        assert_eq!(s.stopped().unwrap().status, 137);
        let (s2, changed) = s.exit(0, SystemTime::now());
        assert!(!changed);
        assert_eq!(s2.stopped().unwrap().status, 137);
    }

    #[test]
    fn paused_process_can_exit_and_reports_pid() {
        let s = State::Paused(Running { pid: 3 }.pause());
        assert_eq!(s.pid(), 3);
        let (s, _) = s.exit(1, SystemTime::now());
        assert_eq!(s.pid(), 3);
    }
}
