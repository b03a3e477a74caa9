//! One container: its init and its execs (the exec registry), and the invariants containerd's
//! Go shim keeps when processes exit:
//! - a process's TaskExit goes out after its output was drained (bounded), never holding a lock;
//! - when the init exits in a container without a PID namespace of its own, everything left in
//!   the container is killed (`runc kill --all`), as the kernel does for a private namespace;
//! - the init's TaskExit is the container's last: it waits for its execs' exits;
//! - TaskOOM goes out before the TaskExit it explains.
//!
//! The state sits behind a short-held sync lock that is never held across an await. A runtime
//! call takes a token out of the process state (`crate::process`), runs unlocked, and puts the
//! outcome back, so a Kill never waits for an exec's `runc exec`, and State always answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::{TaskExecStarted, TaskExit, TaskOOM, TaskPaused, TaskResumed, TaskStart};
use tokio::sync::watch;

use crate::events::{timestamp, Event};
use crate::exits::Routes;
use crate::monitor::Exit;
use crate::process::{ExitApplied, ExitInfo, State, Transition};
use crate::runtime::{EventSink, ExecRequest, Runtime, RuntimeError};
use crate::stdio::{Drain, ProcessIo, StdioSpec};

/// How long an exit waits for the process's output to drain (a daemonised grandchild may
/// hold the pipe open forever).
const INIT_FLUSH: Duration = Duration::from_secs(5);
const EXEC_FLUSH: Duration = Duration::from_secs(2);
/// cgroup v1 signals when the cgroup hits its limit, before the OOM killer has picked and
/// counted a victim: the watcher gives the counter this long to move.
const OOM_SETTLE: (u32, Duration) = (20, Duration::from_millis(25));

/// A task API error: the caller's mistakes apart from the system's (mapped to ttrpc codes by
/// the service).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Unknown(String),
}

impl From<RuntimeError> for TaskError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::InvalidArgument(m) => TaskError::InvalidArgument(m),
            RuntimeError::NotFound(m) | RuntimeError::NotRunning(m) => TaskError::NotFound(m),
            RuntimeError::Unimplemented(m) => TaskError::Unimplemented(m),
            RuntimeError::Failed(m) => TaskError::Unknown(m),
        }
    }
}

/// What the service shares with every container.
pub struct Ctx<R, E> {
    pub runtime: R,
    pub events: E,
    pub routes: Routes,
}

struct Proc {
    state: State,
    stdio: StdioSpec,
    io: ProcessIo,
    /// The published exit, for Wait.
    exited: watch::Sender<Option<ExitInfo>>,
    /// An exec's process spec, as the runtime will run it.
    process: Vec<u8>,
}

impl Proc {
    fn new(state: State, stdio: StdioSpec, io: ProcessIo, process: Vec<u8>) -> Proc {
        Proc { state, stdio, io, exited: watch::channel(None).0, process }
    }
}

struct Procs {
    init: Proc,
    execs: HashMap<String, Proc>,
    deleting: bool,
}

impl Procs {
    fn get(&mut self, exec_id: &str, cid: &str) -> Result<&mut Proc, TaskError> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs.get_mut(exec_id).ok_or_else(|| TaskError::NotFound(format!("exec {exec_id:?} of container {cid:?} not found")))
    }
}

/// A process as State reports it.
pub struct Snapshot {
    pub pid: u32,
    pub state: State,
    pub stdio: crate::stdio::StdioPaths,
}

pub struct Container<R: Runtime, E: EventSink> {
    pub id: String,
    pub bundle: String,
    ctx: Arc<Ctx<R, E>>,
    handle: R::Handle,
    kill_all_on_exit: bool,
    procs: Mutex<Procs>,
    /// Bumped whenever a process changes state; the init's exit waits on it for its execs.
    changed: watch::Sender<u64>,
    oom_watch: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn transition(e: Transition) -> TaskError {
    TaskError::FailedPrecondition(e.to_string())
}

impl<R: Runtime, E: EventSink> Container<R, E> {
    pub fn new(id: String, bundle: String, ctx: Arc<Ctx<R, E>>, created: crate::runtime::Created<R::Handle>, stdio: StdioSpec) -> Arc<Self> {
        let init = Proc::new(State::Created { pid: created.pid }, stdio, created.io, Vec::new());
        Arc::new(Container {
            id,
            bundle,
            ctx,
            handle: created.handle,
            kill_all_on_exit: created.kill_all_on_exit,
            procs: Mutex::new(Procs { init, execs: HashMap::new(), deleting: false }),
            changed: watch::channel(0).0,
            oom_watch: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Procs> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn publish(&self, e: Event) {
        self.ctx.events.publish(e);
    }

    pub fn init_pid(&self) -> u32 {
        self.lock().init.state.pid()
    }

    pub fn snapshot(&self, exec_id: &str) -> Result<Snapshot, TaskError> {
        let mut g = self.lock();
        let p = g.get(exec_id, &self.id)?;
        Ok(Snapshot { pid: p.state.pid(), state: p.state, stdio: p.stdio.paths.clone() })
    }

    /// Watches the container's cgroup for OOM kills until its init exits.
    pub fn watch_oom(self: &Arc<Self>) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            while me.ctx.runtime.oom_notified(&me.handle).await {
                for _ in 0..OOM_SETTLE.0 {
                    if me.ctx.runtime.take_oom(&me.handle) {
                        me.publish(Event::Oom(TaskOOM { container_id: me.id.clone(), ..Default::default() }));
                        break;
                    }
                    tokio::time::sleep(OOM_SETTLE.1).await;
                }
            }
        });
        *self.oom_watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    fn stop_oom_watch(&self) {
        if let Some(t) = self.oom_watch.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }

    // --- exits --------------------------------------------------------------------------

    /// The reaper saw a process of this container exit.
    pub fn on_exit(self: &Arc<Self>, exec_id: &str, e: Exit) {
        let info = ExitInfo { pid: e.pid as u32, status: e.status, at: e.at };
        let applied = match self.lock().get(exec_id, &self.id) {
            Ok(p) => p.state.exit(info),
            Err(_) => return,
        };
        if let ExitApplied::Publish(_) = applied {
            self.spawn_publish(exec_id.to_string());
        }
    }

    fn spawn_publish(self: &Arc<Self>, exec_id: String) {
        let drain = match self.lock().get(&exec_id, &self.id) {
            Ok(p) => p.io.take_output(),
            Err(_) => return,
        };
        let me = self.clone();
        tokio::spawn(async move { me.publish_exit(exec_id, drain).await });
    }

    /// Publishes an exit once its output is drained and, for the init, once everything else
    /// in the container is gone.
    async fn publish_exit(self: Arc<Self>, exec_id: String, drain: Drain) {
        let is_init = exec_id.is_empty();
        if is_init && self.kill_all_on_exit {
            // No PID namespace of its own: the kernel left the container's other processes
            // (and its execs) running. Kill them, as the Go shim does.
            if let Err(e) = self.ctx.runtime.kill(&self.handle, nix::sys::signal::Signal::SIGKILL as u32, true).await {
                log::debug!("{}: kill --all after the init exited: {e}", self.id);
            }
        }
        let still_draining = drain.wait(if is_init { INIT_FLUSH } else { EXEC_FLUSH }).await;
        if is_init {
            let mut changed = self.changed.subscribe();
            while self.lock().execs.values().any(|p| p.state.exit_pending()) {
                if changed.changed().await.is_err() {
                    break;
                }
            }
        }
        // containerd wants the OOM event before the exit (containerd#12714). Checked on every
        // exit: the v1 notifier fires before the kernel counts the kill, so the watcher can
        // miss a kill that the victim's exit then reveals. (Read before the lock: it is a
        // cgroup file; nothing else runs between here and the publication below.)
        let oom = self.ctx.runtime.take_oom(&self.handle);
        let mut g = self.lock();
        if oom {
            self.publish(Event::Oom(TaskOOM { container_id: self.id.clone(), ..Default::default() }));
        }
        let Ok(p) = g.get(&exec_id, &self.id) else { return };
        let Ok(e) = p.state.publish() else { return };
        p.io.close_after_exit();
        p.io.keep_output(still_draining);
        self.publish(Event::Exit(TaskExit {
            container_id: self.id.clone(),
            id: if is_init { self.id.clone() } else { exec_id.clone() },
            pid: e.pid,
            exit_status: e.status,
            exited_at: Some(timestamp(e.at)).into(),
            ..Default::default()
        }));
        // send_replace, not send: with no Wait subscribed yet, send() drops the value and a
        // later Wait would block forever on a process that already exited.
        p.exited.send_replace(Some(e));
        drop(g);
        self.bump();
        if is_init {
            self.stop_oom_watch();
        }
    }

    // --- operations ---------------------------------------------------------------------

    /// Start of the init (`exec_id` empty) or of an exec.
    pub async fn start(self: &Arc<Self>, exec_id: &str) -> Result<u32, TaskError> {
        if exec_id.is_empty() {
            self.start_init().await
        } else {
            self.start_exec(exec_id).await
        }
    }

    async fn start_init(self: &Arc<Self>) -> Result<u32, TaskError> {
        let token = self.lock().init.state.begin_start().map_err(transition)?;
        let alive = || matches!(self.lock().init.state, State::Starting { exit: None, .. });
        let result = token.start_init(&self.ctx.runtime, &self.handle, &alive).await;
        let mut g = self.lock();
        let applied = g.init.state.finish_start(result.as_ref().map(|p| *p).map_err(|_| ()), SystemTime::now()).map_err(transition)?;
        if let Ok(pid) = &result {
            self.publish(Event::Start(TaskStart { container_id: self.id.clone(), pid: *pid, ..Default::default() }));
        }
        drop(g);
        if let ExitApplied::Publish(_) = applied {
            self.spawn_publish(String::new());
        }
        self.bump();
        result.map_err(|e| match e {
            RuntimeError::NotRunning(m) => TaskError::FailedPrecondition(m),
            e => e.into(),
        })
    }

    async fn start_exec(self: &Arc<Self>, exec_id: &str) -> Result<u32, TaskError> {
        let (token, req) = {
            let mut g = self.lock();
            if !matches!(g.init.state, State::Created { .. } | State::Starting { .. } | State::Running { .. } | State::Paused { .. }) {
                return Err(TaskError::FailedPrecondition(format!("container {:?}: its init process is {}", self.id, g.init.state.name())));
            }
            let p = g.get(exec_id, &self.id)?;
            let token = p.state.begin_start().map_err(transition)?;
            (token, ExecRequest { exec_id: exec_id.to_string(), process: p.process.clone(), stdio: p.stdio.clone() })
        };
        self.bump();
        let window = self.ctx.routes.begin_start();
        let result = token.start_exec(&self.ctx.runtime, &self.handle, req).await;
        let early = match &result {
            Ok(l) => self.ctx.routes.register(l.pid, (self.id.clone(), exec_id.to_string())),
            Err(_) => None,
        };
        drop(window);
        let mut g = self.lock();
        let init_gone = !matches!(g.init.state, State::Created { .. } | State::Starting { .. } | State::Running { .. } | State::Paused { .. });
        let p = g.get(exec_id, &self.id)?;
        let outcome = match result {
            Ok(l) => {
                p.io = l.io;
                let applied = p.state.finish_start(Ok(l.pid), SystemTime::now()).map_err(transition)?;
                self.publish(Event::ExecStarted(TaskExecStarted { container_id: self.id.clone(), exec_id: exec_id.to_string(), pid: l.pid, ..Default::default() }));
                Ok((l.pid, applied))
            }
            Err(e) => {
                p.state.finish_start(Err(()), SystemTime::now()).map_err(transition)?;
                if let Some(stopped) = p.state.stopped() {
                    p.exited.send_replace(Some(stopped));
                }
                Err(e)
            }
        };
        drop(g);
        self.bump();
        let (pid, applied) = outcome?;
        if init_gone {
            // Started after the init exited (no PID namespace of its own): the init's exit
            // waits for this one, so it must not outlive it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        if let ExitApplied::Publish(_) = applied {
            self.spawn_publish(exec_id.to_string());
        }
        if let Some(e) = early {
            self.on_exit(exec_id, e);
        }
        Ok(pid)
    }

    /// Registers an exec (Exec RPC): validated now, started by Start.
    pub fn add_exec(&self, exec_id: &str, stdio: StdioSpec, process: &[u8]) -> Result<(), TaskError> {
        let process = self.ctx.runtime.prepare_exec(&self.handle, process, stdio.paths.terminal).map_err(|e| match e {
            RuntimeError::InvalidArgument(m) => TaskError::InvalidArgument(format!("exec {exec_id:?}: {m}")),
            e => e.into(),
        })?;
        let mut g = self.lock();
        if matches!(g.init.state, State::Exited(_) | State::Stopped(_)) || g.deleting {
            return Err(TaskError::FailedPrecondition(format!("container {:?} is not running", self.id)));
        }
        if exec_id.is_empty() || g.execs.contains_key(exec_id) {
            return Err(TaskError::AlreadyExists(format!("exec {exec_id:?} already exists")));
        }
        g.execs.insert(exec_id.to_string(), Proc::new(State::Registered, stdio, ProcessIo::default(), process));
        Ok(())
    }

    pub async fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<(), TaskError> {
        let sig = nix::sys::signal::Signal::try_from(signal as i32).map_err(|_| TaskError::InvalidArgument(format!("invalid signal {signal}")))?;
        let finished = || TaskError::NotFound(format!("container {:?}: process {exec_id:?} already finished", self.id));
        let token = {
            let mut g = self.lock();
            let p = g.get(exec_id, &self.id)?;
            match p.state.begin_kill() {
                Ok(t) => t,
                Err(_) if matches!(p.state, State::Exited(_) | State::Stopped(_)) => return Err(finished()),
                Err(e) => return Err(transition(e)),
            }
        };
        if !exec_id.is_empty() {
            return token.kill_exec(sig).map_err(|_| finished());
        }
        match token.kill_init(&self.ctx.runtime, &self.handle, signal, all).await {
            Ok(()) => Ok(()),
            Err(RuntimeError::NotRunning(_)) | Err(RuntimeError::NotFound(_)) => Err(finished()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn pause(&self) -> Result<(), TaskError> {
        let token = self.lock().init.state.begin_pause().map_err(transition)?;
        token.pause(&self.ctx.runtime, &self.handle).await?;
        if self.lock().init.state.finish_pause(token) {
            self.publish(Event::Paused(TaskPaused { container_id: self.id.clone(), ..Default::default() }));
        }
        Ok(())
    }

    pub async fn resume(&self) -> Result<(), TaskError> {
        let token = self.lock().init.state.begin_resume().map_err(transition)?;
        token.resume(&self.ctx.runtime, &self.handle).await?;
        if self.lock().init.state.finish_resume(token) {
            self.publish(Event::Resumed(TaskResumed { container_id: self.id.clone(), ..Default::default() }));
        }
        Ok(())
    }

    /// Delete of an exec: returns its published exit (or nothing, if it never started).
    pub fn delete_exec(&self, exec_id: &str) -> Result<Option<ExitInfo>, TaskError> {
        let mut g = self.lock();
        let p = g.get(exec_id, &self.id)?;
        p.state.check_delete(false).map_err(transition)?;
        let stopped = p.state.stopped();
        if let Some(mut p) = g.execs.remove(exec_id) {
            p.io.shutdown();
        }
        Ok(stopped)
    }

    /// Delete of the init: the runtime removes the container (forced if it never started);
    /// then every process's IO is closed. On error the container stays, so Delete can be
    /// retried.
    pub async fn delete(&self) -> Result<ExitInfo, TaskError> {
        let force = {
            let mut g = self.lock();
            if g.deleting {
                return Err(TaskError::FailedPrecondition(format!("container {:?} is being deleted", self.id)));
            }
            let force = g.init.state.check_delete(true).map_err(|_| TaskError::FailedPrecondition(format!("container {:?} must be stopped before it is deleted", self.id)))?;
            g.deleting = true;
            force
        };
        let result = self.ctx.runtime.delete(&self.handle, force).await;
        let mut g = self.lock();
        g.deleting = false;
        result?;
        let info = match g.init.state.stopped() {
            Some(e) => e,
            None => g.init.state.stop_unstarted(SystemTime::now()).map_err(transition)?,
        };
        g.init.exited.send_replace(Some(info));
        g.init.io.shutdown();
        for p in g.execs.values_mut() {
            p.io.shutdown();
        }
        drop(g);
        self.stop_oom_watch();
        Ok(info)
    }

    pub async fn wait(&self, exec_id: &str) -> Result<ExitInfo, TaskError> {
        let mut rx = self.lock().get(exec_id, &self.id)?.exited.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return Ok(e);
            }
            if rx.changed().await.is_err() {
                return Err(TaskError::NotFound(format!("process {:?}/{exec_id:?} was deleted", self.id)));
            }
        }
    }

    /// Pids in the container, with the exec id of those that are execs.
    pub async fn pids(&self) -> Result<Vec<(u32, Option<String>)>, TaskError> {
        let pids = self.ctx.runtime.pids(&self.handle).await?;
        let g = self.lock();
        let execs: HashMap<u32, &str> = g.execs.iter().map(|(k, p)| (p.state.pid(), k.as_str())).filter(|(pid, _)| *pid != 0).collect();
        Ok(pids.into_iter().map(|pid| (pid, execs.get(&pid).map(|e| e.to_string()))).collect())
    }

    pub fn resize_pty(&self, exec_id: &str, width: u32, height: u32) -> Result<(), TaskError> {
        let mut g = self.lock();
        let p = g.get(exec_id, &self.id)?;
        // Like the Go shim: resizing a process without a terminal (or one that already exited
        // and closed it; `ctr run -t` resizes right after Start) is a no-op.
        match &p.io.console {
            Some(master) => crate::stdio::resize(master, width, height).map_err(|e| TaskError::Unknown(format!("resize: {e}"))),
            None => Ok(()),
        }
    }

    pub fn close_io(&self, exec_id: &str) -> Result<(), TaskError> {
        self.lock().get(exec_id, &self.id)?.io.close_stdin();
        Ok(())
    }

    pub async fn update(&self, resources: Vec<u8>) -> Result<(), TaskError> {
        Ok(self.ctx.runtime.update(&self.handle, resources).await?)
    }

    pub async fn stats(&self) -> Result<containerd_shim_protos::protobuf::well_known_types::any::Any, TaskError> {
        Ok(self.ctx.runtime.stats(&self.handle).await?)
    }
}
