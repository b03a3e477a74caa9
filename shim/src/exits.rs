//! Which process an exit belongs to. The reaper only knows pids; a pid is registered here once
//! its process is started (`runc create` / `runc exec` returned with the pid file). A process
//! can exit before that — an exec that runs `true` — so while any start is in flight, exits of
//! unknown pids are kept and handed to the registration that claims them (as the Go shim's
//! exit subscribers do). With no start in flight an unknown exit is an orphan from inside a
//! container (the shim is a subreaper) and is dropped, so a stale exit cannot be matched to a
//! later process that reuses its pid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::monitor::Exit;

/// Bound on exits kept during starts (a container can orphan many processes at once).
const EARLY_MAX: usize = 4096;

/// Who a registered pid is: (container id, exec id; "" for the init).
pub type Owner = (String, String);

#[derive(Default)]
struct Inner {
    owners: HashMap<u32, Owner>,
    starts: usize,
    early: HashMap<u32, Exit>,
}

#[derive(Default, Clone)]
pub struct Routes(Arc<Mutex<Inner>>);

/// Held while a start runs (see the module doc); dropping it ends the window.
#[must_use]
pub struct StartWindow(Routes);

impl Drop for StartWindow {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.starts -= 1;
        if g.starts == 0 {
            g.early.clear();
        }
    }
}

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn begin_start(&self) -> StartWindow {
        self.lock().starts += 1;
        StartWindow(self.clone())
    }

    /// Registers a started process; returns its exit if it already happened.
    pub fn register(&self, pid: u32, owner: Owner) -> Option<Exit> {
        let mut g = self.lock();
        if let Some(e) = g.early.remove(&pid) {
            return Some(e);
        }
        g.owners.insert(pid, owner);
        None
    }

    /// The owner of an exit (which is then forgotten); unknown exits are kept during starts.
    pub fn route(&self, exit: Exit) -> Option<Owner> {
        let mut g = self.lock();
        let pid = exit.pid as u32;
        if let Some(o) = g.owners.remove(&pid) {
            return Some(o);
        }
        if g.starts > 0 {
            if g.early.len() >= EARLY_MAX {
                if let Some(oldest) = g.early.values().min_by_key(|e| e.at).map(|e| e.pid as u32) {
                    g.early.remove(&oldest);
                }
            }
            g.early.insert(pid, exit);
        }
        None
    }

    /// A container is gone: its pids are nobody's any more.
    pub fn forget(&self, container_id: &str) {
        self.lock().owners.retain(|_, (c, _)| c != container_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn exit(pid: i32) -> Exit {
        Exit { pid, status: 0, at: SystemTime::now() }
    }

    #[test]
    fn early_exits_only_while_a_start_is_in_flight() {
        let r = Routes::default();
        assert_eq!(r.route(exit(10)), None);
        assert_eq!(r.register(10, ("c".into(), "e".into())), None, "an orphan's exit from before is not kept");
        assert_eq!(r.route(exit(10)), Some(("c".into(), "e".into())));
        let w = r.begin_start();
        assert_eq!(r.route(exit(11)), None);
        assert_eq!(r.register(11, ("c".into(), "x".into())).map(|e| e.pid), Some(11), "exit before registration");
        assert_eq!(r.route(exit(12)), None);
        drop(w);
        assert_eq!(r.register(12, ("c".into(), "y".into())), None, "the window closed: kept exits are dropped");
        r.forget("c");
        assert_eq!(r.route(exit(12)), None);
    }
}
