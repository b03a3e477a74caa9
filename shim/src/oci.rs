//! The real [`Runtime`]: runc (through [`crate::runc`]) on a [`Bundle`], with stdio, the
//! container's cgroup (stats, OOM) and the rules' effect on execs.
//!
//! Blocking work (the bundle's Create transaction with the rules, opening FIFOs and files,
//! reading pid files, cgroup files) runs on tokio's blocking pool; runc runs as a child the
//! reaper reports on. Nothing here waits on the runtime thread.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::bundle::{Bundle, BundleError, CreateParams, INIT_PID, RUNC_LOG};
use crate::cgroup::{Cgroup, OomState};
use crate::monitor::Monitor;
use crate::rules::ProcessDelta;
use crate::runc::{ChildStdio, CreateOpts, ExecOpts, Runc, RuncError};
use crate::runtime::{CreateRequest, Created, ExecRequest, Launched, Runtime, RuntimeError};
use crate::stdio::{self, ConsoleSocket, ProcessIo, StdioError};

/// How long runc may take to send a terminal's pty once it has exited successfully.
const CONSOLE_AFTER_RUNC: Duration = Duration::from_secs(5);

impl From<RuncError> for RuntimeError {
    fn from(e: RuncError) -> Self {
        match e {
            RuncError::NotFound { .. } => RuntimeError::NotFound(e.to_string()),
            RuncError::NotRunning { .. } => RuntimeError::NotRunning(e.to_string()),
            _ => RuntimeError::Failed(e.to_string()),
        }
    }
}

impl From<StdioError> for RuntimeError {
    fn from(e: StdioError) -> Self {
        match e {
            StdioError::Spec(_) => RuntimeError::InvalidArgument(e.to_string()),
            _ => RuntimeError::Failed(e.to_string()),
        }
    }
}

impl From<BundleError> for RuntimeError {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::InvalidArgument(m) => RuntimeError::InvalidArgument(m),
            BundleError::System(m) => RuntimeError::Failed(m),
        }
    }
}

/// Runs blocking work on the pool; a panic there (a bug) becomes an error, not a dead shim.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| RuntimeError::Failed(format!("blocking task failed: {e}")))?
}

pub struct RuncRuntime {
    namespace: String,
    monitor: Monitor,
}

impl RuncRuntime {
    pub fn new(namespace: String, monitor: Monitor) -> RuncRuntime {
        RuncRuntime { namespace, monitor }
    }

    /// Runs `runc create`/`runc exec` (`run`) with the process's stdio; for a terminal,
    /// receives the pty master runc sends over the console socket while it runs.
    async fn launch<F, Fut>(&self, prepared: stdio::Prepared, id: &str, run: F) -> Result<ProcessIo, RuntimeError>
    where
        F: FnOnce(Option<PathBuf>, ChildStdio) -> Fut,
        Fut: std::future::Future<Output = Result<(), RuncError>>,
    {
        if !prepared.is_terminal() {
            let (child, io) = prepared.start(&self.monitor, id, &self.namespace).await?;
            run(None, child).await?;
            return Ok(io);
        }
        let console = ConsoleSocket::new()?;
        let runc = run(Some(console.path.clone()), ChildStdio::default());
        let master = console.receive_master();
        tokio::pin!(runc, master);
        // runc sends the master before it exits; a runc that fails first sends none.
        let master: OwnedFd = tokio::select! {
            r = &mut runc => {
                r?;
                tokio::time::timeout(CONSOLE_AFTER_RUNC, master).await.map_err(|_| RuntimeError::Failed("runc exited without sending the terminal".into()))??
            }
            m = &mut master => {
                let m = m?;
                runc.await?;
                m
            }
        };
        Ok(prepared.attach_terminal(master)?)
    }

    async fn teardown(&self, runc: &Runc, id: &str, bundle: &Bundle) {
        if let Err(e) = runc.delete(id, true).await {
            if !matches!(e, RuncError::NotFound { .. }) {
                log::warn!("rollback of {id}: {e}");
            }
        }
        let b = bundle.clone();
        if let Err(e) = blocking(move || b.undo().map_err(RuntimeError::from)).await {
            log::warn!("rollback of {id}: {e}");
        }
    }
}

/// Everything kept per container.
pub struct Handle {
    id: String,
    /// A pidfd of the container's init, opened when `runc create` returned (the init then
    /// waits on its exec FIFO, and the shim, its reaper, has not reaped it). Kill signals it
    /// directly instead of running `runc kill`, which does no more than that for one process;
    /// unlike a pid, a pidfd can never reach another process once the init is reaped. `None`
    /// on kernels without pidfds (< 5.3): `runc kill` then.
    init_fd: Option<OwnedFd>,
    bundle: Bundle,
    runc: Runc,
    cgroup: Option<Cgroup>,
    oom: OomState,
    /// The OOM notifier (eventfd or inotify), read as a stream. Only the OOM watcher task
    /// uses it (an async lock: it waits inside).
    oom_fd: tokio::sync::Mutex<Option<pipe::Receiver>>,
    delta: ProcessDelta,
    exec_users: Arc<dockerish_host::ExecUsers>,
    start_via_fifo: bool,
    io_owner: Option<(u32, u32)>,
    /// Names the files of concurrent execs apart.
    seq: AtomicU64,
}

#[async_trait]
impl Runtime for RuncRuntime {
    type Handle = Handle;

    async fn create(&self, req: CreateRequest) -> Result<Created<Handle>, RuntimeError> {
        if !req.checkpoint.is_empty() {
            return Err(RuntimeError::Unimplemented("restoring from a checkpoint is not supported by io.containerd.dockerish.v2".into()));
        }
        let options = dockerish_proto::decode_options(req.options.as_ref()).map_err(|e| RuntimeError::InvalidArgument(e.to_string()))?;
        let io_owner = (options.io_uid != 0 || options.io_gid != 0).then_some((options.io_uid, options.io_gid));
        let bundle = Bundle::new(&req.bundle);
        let (b, id, ns, rootfs, spec, monitor, opts) = (bundle.clone(), req.id.clone(), self.namespace.clone(), req.rootfs.clone(), req.stdio.clone(), self.monitor.clone(), options.clone());
        let (prepared, stdio) = blocking(move || {
            // Stdio first: a bad FIFO must not cost a mount and a fill to undo.
            let stdio = stdio::open(&spec, io_owner)?;
            let features = Box::new(move |bin: &std::path::Path| crate::runc::features_blocking(bin, Some(&monitor)).ok());
            let prepared = b.create(CreateParams { id: &id, namespace: &ns, rootfs: &rootfs, options: &opts, features })?;
            crate::daemon::trim_heap();
            Ok((prepared, stdio))
        })
        .await?;
        let c = prepared.runc;
        let runc = Runc { binary: c.binary, origin: c.origin, root: c.root, systemd_cgroup: c.systemd_cgroup, log: Some(bundle.path(RUNC_LOG)), reaper: Some(self.monitor.clone()) };
        let opts = CreateOpts {
            bundle: bundle.dir().to_path_buf(),
            pid_file: bundle.path(INIT_PID),
            console_socket: None,
            no_pivot: options.no_pivot_root,
            no_new_keyring: options.no_new_keyring,
        };
        let launched = async {
            let io = self.launch(stdio, &req.id, |console, child| {
                let opts = CreateOpts { console_socket: console, ..opts.clone() };
                let runc = runc.clone();
                let id = req.id.clone();
                async move { runc.create(&id, &opts, child).await }
            })
            .await?;
            let b = bundle.clone();
            let (pid, cgroup, init_fd) = blocking(move || {
                let pid = b.init_pid()?;
                b.restrict_init_pid();
                Ok((pid, Cgroup::of_pid(pid), pidfd_open(pid)))
            })
            .await?;
            Ok::<_, RuntimeError>((io, pid, cgroup, init_fd))
        }
        .await;
        let (io, pid, cgroup, init_fd) = match launched {
            Ok(v) => v,
            Err(e) => {
                self.teardown(&runc, &req.id, &bundle).await;
                return Err(e);
            }
        };
        let oom = OomState::default();
        let notifier = match &cgroup {
            Some(cg) => {
                oom.prime(cg);
                // Unchecked: tokio's pipe type works on any pollable fd, which both notifiers are.
                cg.oom_notifier().and_then(|fd| pipe::Receiver::from_owned_fd_unchecked(fd).ok())
            }
            None => None,
        };
        let handle = Handle {
            id: req.id.clone(),
            init_fd,
            bundle,
            runc,
            cgroup,
            oom,
            oom_fd: tokio::sync::Mutex::new(notifier),
            delta: prepared.delta,
            exec_users: Arc::new(prepared.exec_users),
            start_via_fifo: prepared.start_via_fifo,
            io_owner,
            seq: AtomicU64::new(0),
        };
        Ok(Created { handle, pid, io, kill_all_on_exit: prepared.kill_all_on_exit })
    }

    async fn start(&self, h: &Handle, init_alive: &(dyn Fn() -> bool + Send + Sync)) -> Result<(), RuntimeError> {
        if h.start_via_fifo {
            match crate::execfifo::start(&h.runc.root.join(&h.id), init_alive).await {
                Ok(crate::execfifo::Outcome::Started) => return Ok(()),
                Ok(crate::execfifo::Outcome::NotApplicable) => {}
                Err(e @ crate::execfifo::StartError::InitDead) => return Err(RuntimeError::NotRunning(format!("start container {:?}: {e}", h.id))),
                Err(e) => return Err(RuntimeError::Failed(format!("start container {:?}: {e}", h.id))),
            }
        }
        Ok(h.runc.start(&h.id).await?)
    }

    async fn exec(&self, h: &Handle, req: ExecRequest) -> Result<Launched, RuntimeError> {
        let n = h.seq.fetch_add(1, Ordering::Relaxed);
        let (spec_name, pid_name) = (format!(".exec-{n}.json"), format!(".exec-{n}.pid"));
        let (b, spec, owner, process, name, users) = (h.bundle.clone(), req.stdio.clone(), h.io_owner, req.process, spec_name.clone(), h.exec_users.clone());
        let (prepared, process_file) = blocking(move || {
            let process = exec_user_groups(&users, process)?;
            let file = b.write_private(&name, &process)?;
            match stdio::open(&spec, owner) {
                Ok(p) => Ok((p, file)),
                Err(e) => {
                    let _ = std::fs::remove_file(&file);
                    Err(e.into())
                }
            }
        })
        .await?;
        let opts = ExecOpts { process: process_file, pid_file: h.bundle.path(&pid_name), console_socket: None };
        let launched = self
            .launch(prepared, &h.id, |console, child| {
                let opts = ExecOpts { console_socket: console, ..opts.clone() };
                async move { h.runc.exec(&h.id, &opts, child).await }
            })
            .await;
        let b = h.bundle.clone();
        let pid = blocking(move || {
            let pid = std::fs::read_to_string(b.path(&pid_name)).ok().and_then(|s| s.trim().parse::<u32>().ok());
            let _ = std::fs::remove_file(b.path(&pid_name));
            let _ = std::fs::remove_file(b.path(&spec_name));
            Ok(pid)
        })
        .await?;
        let io = launched?;
        let pid = pid.ok_or_else(|| RuntimeError::Failed(format!("exec {:?}: runc wrote no pid file", req.exec_id)))?;
        Ok(Launched { pid, io })
    }

    async fn kill(&self, h: &Handle, signal: u32, all: bool) -> Result<(), RuntimeError> {
        if let (false, Some(fd)) = (all, &h.init_fd) {
            match pidfd_send_signal(fd, signal) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(RuntimeError::NotRunning(format!("container {:?}: its init process has exited", h.id))),
                // Anything else (a seccomp'd shim, EPERM): runc decides, as before.
                Err(e) => log::debug!("{}: pidfd_send_signal: {e}; running runc kill", h.id),
            }
        }
        Ok(h.runc.kill(&h.id, signal, all).await?)
    }

    async fn pause(&self, h: &Handle) -> Result<(), RuntimeError> {
        Ok(h.runc.pause(&h.id).await?)
    }

    async fn resume(&self, h: &Handle) -> Result<(), RuntimeError> {
        Ok(h.runc.resume(&h.id).await?)
    }

    async fn pids(&self, h: &Handle) -> Result<Vec<u32>, RuntimeError> {
        Ok(h.runc.ps(&h.id).await?)
    }

    async fn update(&self, h: &Handle, resources: Vec<u8>) -> Result<(), RuntimeError> {
        serde_json::from_slice::<serde_json::Value>(&resources).map_err(|e| RuntimeError::InvalidArgument(format!("update: resources are not valid JSON: {e}")))?;
        let name = format!(".update-{}.json", h.seq.fetch_add(1, Ordering::Relaxed));
        let b = h.bundle.clone();
        let file = blocking(move || Ok(b.write_private(&name, &resources)?)).await?;
        let r = h.runc.update(&h.id, &file).await;
        let _ = blocking(move || Ok(std::fs::remove_file(&file).ok())).await;
        Ok(r?)
    }

    async fn delete(&self, h: &Handle, force: bool) -> Result<(), RuntimeError> {
        let gone = match h.runc.delete(&h.id, force).await {
            Ok(()) | Err(RuncError::NotFound { .. }) => true,
            // The undo below must still run; the failure is worth a line, not a stuck task.
            Err(e) => {
                log::warn!("{e}");
                false
            }
        };
        let b = h.bundle.clone();
        blocking(move || {
            if gone {
                // Lets `shim delete` skip its own `runc delete` (see SavedState::runc_deleted).
                if let Err(e) = b.mark_runc_deleted() {
                    log::warn!("{e}");
                }
            }
            Ok(b.undo()?)
        })
        .await
    }

    async fn stats(&self, h: &Handle) -> Result<Any, RuntimeError> {
        let cg = h.cgroup.clone().ok_or_else(|| RuntimeError::NotFound(format!("container {:?} has no cgroup", h.id)))?;
        blocking(move || Ok(cg.metrics())).await
    }

    async fn oom_notified(&self, h: &Handle) -> bool {
        let mut guard = h.oom_fd.lock().await;
        let Some(rx) = guard.as_mut() else { return false };
        // One read drains the eventfd counter or a batch of inotify events.
        let mut buf = [0u8; 4096];
        match rx.read(&mut buf).await {
            Ok(n) if n > 0 => true,
            _ => {
                *guard = None;
                false
            }
        }
    }

    fn take_oom(&self, h: &Handle) -> bool {
        h.cgroup.as_ref().is_some_and(|cg| h.oom.take_new(cg))
    }

    fn prepare_exec(&self, h: &Handle, process: &[u8], terminal: bool) -> Result<Vec<u8>, RuntimeError> {
        let mut p = serde_json::from_slice::<serde_json::Value>(process).map_err(|e| RuntimeError::InvalidArgument(format!("process spec is not valid JSON: {e}")))?;
        if !p.is_object() {
            return Err(RuntimeError::InvalidArgument("process spec is not a JSON object".into()));
        }
        h.delta.apply(&mut p);
        // The request decides, as in the Go shim: runc refuses a console socket for a process
        // without a terminal (containerd's TestContainerExecLargeOutputWithTTY).
        p["terminal"] = serde_json::Value::Bool(terminal);
        serde_json::to_vec(&p).map_err(|e| RuntimeError::Failed(e.to_string()))
    }
}

/// US-2: an exec user the client chose gets its groups from the container's rootfs, as with
/// Docker (reads files only in that case). Blocking.
fn exec_user_groups(users: &dockerish_host::ExecUsers, process: Vec<u8>) -> Result<Vec<u8>, RuntimeError> {
    let mut p = serde_json::from_slice::<serde_json::Value>(&process).map_err(|e| RuntimeError::InvalidArgument(format!("process spec is not valid JSON: {e}")))?;
    match users.resolve(&mut p) {
        Ok(false) => Ok(process),
        Ok(true) => serde_json::to_vec(&p).map_err(|e| RuntimeError::Failed(e.to_string())),
        Err(e) => Err(RuntimeError::Failed(format!("exec user groups: {e}"))),
    }
}

/// `pidfd_open(2)`: `None` if the kernel has none or the process is gone. Blocking-safe.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: the syscall takes a pid and flags and returns a new descriptor (close-on-exec) or
    // -1; no memory is passed. Neither nix 0.29 nor std wraps it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(2)` without siginfo: what `kill(2)` does, aimed at the process the pidfd
/// was opened on.
fn pidfd_send_signal(fd: &OwnedFd, signal: u32) -> std::io::Result<()> {
    // SAFETY: a pidfd we own, no siginfo (NULL) and no flags; the kernel reads no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), signal as libc::c_int, std::ptr::null::<libc::siginfo_t>(), 0u32) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pidfd reaches its process while it lives and only it: once the child is reaped,
    /// signalling reports ESRCH instead of hitting whatever reuses the pid.
    #[test]
    fn pidfd_signals_its_process_and_nothing_after_it_is_reaped() {
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let Some(fd) = pidfd_open(child.id()) else { return }; // a kernel without pidfds
        pidfd_send_signal(&fd, libc::SIGTERM as u32).unwrap();
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGTERM));
        let e = pidfd_send_signal(&fd, libc::SIGTERM as u32).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
