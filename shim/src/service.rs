//! The task service: containerd's task API (served as v2 and v3) over runc.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim_protos::api::*;
use containerd_shim_protos::events::task::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::types::task::ProcessInfo;
use tokio::sync::{mpsc, watch, Notify};
use ttrpc::r#async::TtrpcContext;
use ttrpc::Code;

use crate::cgroup::{Cgroup, OomState};
use crate::events::{timestamp, Event, Publisher};
use crate::monitor::{Exit, Monitor};
use crate::process::{Created, Registered, State, Stopped};
use crate::runc::{ChildStdio, Runc};
use crate::rules;
use crate::stdio::{self, ConsoleSocket, ProcessIo, StdioPaths};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How long an exit waits for the process's output to drain (a daemonised grandchild may
/// hold the pipe open forever).
const INIT_FLUSH: Duration = Duration::from_secs(5);
const EXEC_FLUSH: Duration = Duration::from_secs(2);
/// Exits of pids we do not know yet (an exec that finished before `runc exec` returned).
const EARLY_EXITS_MAX: usize = 1024;

fn status(code: Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}

struct Proc {
    state: State,
    paths: StdioPaths,
    io: ProcessIo,
    exited: watch::Sender<Option<Stopped>>,
    /// The OCI process of an exec, as JSON.
    spec: Vec<u8>,
}

impl Proc {
    fn new(state: State, paths: StdioPaths, spec: Vec<u8>) -> Proc {
        Proc { state, paths, io: ProcessIo::default(), exited: watch::channel(None).0, spec }
    }
}

struct Container {
    id: String,
    bundle: PathBuf,
    runc: Runc,
    init: Proc,
    execs: HashMap<String, Proc>,
    cgroup: Option<Cgroup>,
    oom: OomState,
    oom_task: Option<tokio::task::JoinHandle<()>>,
    rootfs_mounted: bool,
    /// What the rules changed in the container's process, for its execs.
    delta: rules::ProcessDelta,
    /// The daemon config the container was created with (exec users, US-2).
    config: Arc<dockerish_spec::DaemonConfig>,
    /// Start may open runc's exec FIFO itself instead of running `runc start` (no poststart hooks).
    start_via_fifo: bool,
}

impl Container {
    fn proc_mut(&mut self, exec_id: &str) -> Result<&mut Proc, ttrpc::Error> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        let id = &self.id;
        self.execs.get_mut(exec_id).ok_or_else(|| status(Code::NOT_FOUND, format!("exec {exec_id:?} of container {id:?} not found")))
    }

    fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }
}

type Shared = Arc<tokio::sync::Mutex<Container>>;

pub struct Service {
    namespace: String,
    monitor: Monitor,
    publisher: Publisher,
    containers: Mutex<HashMap<String, Shared>>,
    /// pid → (container id, exec id or "" for init), for routing exits.
    pids: Mutex<HashMap<u32, (String, String)>>,
    early_exits: Mutex<HashMap<u32, Exit>>,
    pub shutdown: Arc<Notify>,
    seq: AtomicU64,
}

impl Service {
    pub fn new(namespace: String, monitor: Monitor, publisher: Publisher) -> Arc<Service> {
        Arc::new(Service {
            namespace,
            monitor,
            publisher,
            containers: Mutex::default(),
            pids: Mutex::default(),
            early_exits: Mutex::default(),
            shutdown: Arc::new(Notify::new()),
            seq: AtomicU64::new(0),
        })
    }

    fn get(&self, id: &str) -> Result<Shared, ttrpc::Error> {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| status(Code::NOT_FOUND, format!("container {id:?} not found")))
    }

    pub fn is_empty(&self) -> bool {
        self.containers.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Routes exits that no command waiter claimed to their process.
    pub async fn handle_exits(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Exit>) {
        while let Some(exit) = rx.recv().await {
            let owner = self.pids.lock().unwrap_or_else(|e| e.into_inner()).remove(&(exit.pid as u32));
            let Some((cid, eid)) = owner else {
                let mut early = self.early_exits.lock().unwrap_or_else(|e| e.into_inner());
                if early.len() >= EARLY_EXITS_MAX {
                    if let Some(oldest) = early.values().min_by_key(|e| e.at).map(|e| e.pid as u32) {
                        early.remove(&oldest);
                    }
                }
                early.insert(exit.pid as u32, exit);
                continue;
            };
            let Ok(c) = self.get(&cid) else { continue };
            let mut c = c.lock().await;
            self.apply_exit(&mut c, &eid, exit).await;
        }
    }

    /// Registers a started process's pid, or applies its exit at once if it already happened.
    async fn track(&self, c: &mut Container, exec_id: &str, pid: u32) {
        let early = self.early_exits.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
        match early {
            Some(exit) => self.apply_exit(c, exec_id, exit).await,
            None => {
                self.pids.lock().unwrap_or_else(|e| e.into_inner()).insert(pid, (c.id.clone(), exec_id.to_string()));
            }
        }
    }

    async fn apply_exit(&self, c: &mut Container, exec_id: &str, exit: Exit) {
        let is_init = exec_id.is_empty();
        // containerd wants the OOM event before the exit (containerd#12714). Checked on every
        // exit, execs included: the v1 notifier fires before the kernel counts the kill, so
        // the watcher can miss a kill that the victim's exit then reveals.
        if let Some(cg) = &c.cgroup {
            if c.oom.take_new(cg) {
                self.publisher.publish(Event::Oom(TaskOOM { container_id: c.id.clone(), ..Default::default() }));
            }
        }
        let cid = c.id.clone();
        let Ok(p) = c.proc_mut(exec_id) else { return };
        let (next, changed) = p.state.exit(exit.status, exit.at);
        if !changed {
            return;
        }
        p.io.flush(if is_init { INIT_FLUSH } else { EXEC_FLUSH }).await;
        p.io.shutdown();
        p.state = next;
        let pid = next.pid();
        self.publisher.publish(Event::Exit(TaskExit {
            container_id: cid.clone(),
            id: if is_init { cid } else { exec_id.to_string() },
            pid,
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        }));
        // send_replace, not send: with no Wait subscribed yet, send() drops the value and a
        // later Wait would block forever on a process that already exited.
        p.exited.send_replace(next.stopped());
        if is_init {
            if let Some(t) = c.oom_task.take() {
                t.abort();
            }
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn watch_oom(&self, c: &Container) -> Option<tokio::task::JoinHandle<()>> {
        let cg = c.cgroup.clone()?;
        let fd = cg.oom_notifier()?;
        c.oom.prime(&cg);
        let oom = c.oom.clone();
        let publisher = self.publisher.clone();
        let id = c.id.clone();
        Some(tokio::spawn(async move {
            // SAFETY: we own `fd` exclusively and it stays open as long as the AsyncFd lives.
            let Ok(afd) = (unsafe { tokio::io::unix::AsyncFd::register(fd) }) else { return };
            let mut buf = [0u8; 4096];
            loop {
                let Ok(mut guard) = afd.readable().await else { return };
                // Drain the eventfd counter / inotify queue.
                // SAFETY: reading into a buffer we own from an fd we own.
                let n = unsafe { libc::read(std::os::fd::AsRawFd::as_raw_fd(afd.get_ref()), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                if n <= 0 {
                    return;
                }
                // cgroup v1 signals when the cgroup hits its limit, before the OOM killer has
                // picked and counted a victim: give the counter a moment to move.
                for _ in 0..20 {
                    if oom.take_new(&cg) {
                        publisher.publish(Event::Oom(TaskOOM { container_id: id.clone(), ..Default::default() }));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }))
    }

    /// Undoes a failed or finished Create: runc state, host actions, rootfs mount.
    async fn teardown(runc: &Runc, id: &str, bundle: &Path, rootfs_mounted: bool) {
        let _ = runc.run("delete", &["delete", "--force", id], ChildStdio::default()).await;
        if let Err(e) = rules::undo(bundle) {
            log::warn!("undo host actions for {id}: {e}");
        }
        if rootfs_mounted {
            crate::mount::unmount_all(&bundle.join("rootfs"));
        }
    }

    async fn create_inner(&self, req: &CreateTaskRequest) -> Result<CreateTaskResponse, ttrpc::Error> {
        let id = req.id.as_str();
        if !crate::fsutil::is_path_component(id) {
            return Err(status(Code::INVALID_ARGUMENT, format!("invalid container id {id:?}")));
        }
        if self.containers.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id) {
            return Err(status(Code::ALREADY_EXISTS, format!("container {id:?} already exists")));
        }
        if !req.checkpoint.is_empty() {
            return Err(status(Code::UNIMPLEMENTED, "restoring from a checkpoint is not supported by io.containerd.dockerish.v2"));
        }
        let bundle = PathBuf::from(&req.bundle);
        let opts = dockerish_proto::decode_options(req.options.as_ref()).map_err(|e| status(Code::INVALID_ARGUMENT, e.to_string()))?;
        let plan = rules::Plan::load(&opts).map_err(|e| status(Code::INVALID_ARGUMENT, e))?;
        let runc = plan.runc(self.monitor.clone(), &bundle, &self.namespace);

        let rootfs = bundle.join("rootfs");
        let mut rootfs_mounted = false;
        if !req.rootfs.is_empty() {
            if let Err(e) = std::fs::create_dir_all(&rootfs) {
                return Err(status(Code::INTERNAL, format!("create {}: {e}", rootfs.display())));
            }
            crate::mount::mount_rootfs(&req.rootfs, &rootfs).map_err(|e| {
                crate::mount::unmount_all(&rootfs);
                status(Code::INTERNAL, e.to_string())
            })?;
            rootfs_mounted = true;
        }

        // Docker's rules, then runc. Anything that fails from here on is rolled back.
        let result = async {
            let filled = plan.fill(&bundle, id, &self.namespace).map_err(|e| status(Code::INVALID_ARGUMENT, e))?;
            let runc = Runc { systemd_cgroup: runc.systemd_cgroup || filled.systemd_cgroup, ..runc.clone() };
            plan.save_state(&bundle, &runc).map_err(|e| status(Code::INTERNAL, e))?;
            let paths = StdioPaths { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
            let pid_file = bundle.join(crate::fsutil::INIT_PID);
            let pid_file_s = pid_file.to_string_lossy().into_owned();
            let bundle_s = bundle.to_string_lossy().into_owned();
            runc.clear_log();
            let io = self
                .run_with_stdio(&runc, &paths, id, |console: Option<&str>| {
                    let mut a = vec!["create".to_string(), "--bundle".into(), bundle_s.clone(), "--pid-file".into(), pid_file_s.clone()];
                    if let Some(c) = console {
                        a.push("--console-socket".into());
                        a.push(c.to_string());
                    }
                    if opts.no_pivot_root {
                        a.push("--no-pivot".into());
                    }
                    if opts.no_new_keyring {
                        a.push("--no-new-keyring".into());
                    }
                    a.push(id.to_string());
                    a
                }, "create")
                .await?;
            let pid = crate::fsutil::read_pid(&pid_file).map_err(|e| status(Code::INTERNAL, e))?;
            // runc writes the pid file 0644; everything the shim leaves in the bundle is owner-only.
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&pid_file, std::fs::Permissions::from_mode(0o600));
            }
            Ok::<_, ttrpc::Error>((runc, paths, io, pid, filled))
        }
        .await;
        let (runc, paths, io, pid, filled) = match result {
            Ok(v) => v,
            Err(e) => {
                Self::teardown(&runc, id, &bundle, rootfs_mounted).await;
                return Err(e);
            }
        };

        let mut init = Proc::new(State::Created(Created { pid }), paths.clone(), Vec::new());
        init.io = io;
        let mut c = Container {
            id: id.to_string(),
            bundle: bundle.clone(),
            runc,
            init,
            execs: HashMap::new(),
            cgroup: Cgroup::of_pid(pid),
            oom: OomState::default(),
            oom_task: None,
            rootfs_mounted,
            delta: filled.delta,
            config: Arc::new(plan.config.clone()),
            start_via_fifo: !filled.poststart_hooks,
        };
        c.oom_task = self.watch_oom(&c);
        self.track(&mut c, "", pid).await;
        self.containers.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), Arc::new(tokio::sync::Mutex::new(c)));
        self.publisher.publish(Event::Create(TaskCreate {
            container_id: id.to_string(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO { stdin: paths.stdin, stdout: paths.stdout, stderr: paths.stderr, terminal: paths.terminal, ..Default::default() }).into(),
            pid,
            ..Default::default()
        }));
        log::info!("created container {id} (pid {pid})");
        Ok(CreateTaskResponse { pid, ..Default::default() })
    }

    /// Runs `runc create` or `runc exec` with the process's stdio wired up; for terminals,
    /// receives the pty master runc sends while it runs.
    async fn run_with_stdio(
        &self,
        runc: &Runc,
        paths: &StdioPaths,
        id: &str,
        args: impl FnOnce(Option<&str>) -> Vec<String>,
        name: &'static str,
    ) -> Result<ProcessIo, ttrpc::Error> {
        let io_err = |e: stdio::StdioError| status(Code::INVALID_ARGUMENT, e.to_string());
        if paths.terminal {
            let console = ConsoleSocket::new().map_err(io_err)?;
            let args = args(Some(&console.path.to_string_lossy()));
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let (run, master) = tokio::join!(runc.run(name, &argv, ChildStdio::default()), async {
                tokio::time::timeout(Duration::from_secs(30), console.receive_master()).await
            });
            run.map_err(|e| status(Code::UNKNOWN, e.to_string()))?;
            let master = master
                .map_err(|_| status(Code::UNKNOWN, "runc did not send the terminal within 30s"))?
                .map_err(io_err)?;
            let mut io = ProcessIo::default();
            stdio::attach_console(master, paths, &mut io).map_err(io_err)?;
            Ok(io)
        } else {
            let (child, io) = stdio::setup_pipes(paths, &self.monitor, id, &self.namespace).await.map_err(io_err)?;
            let args = args(None);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            runc.run(name, &argv, child).await.map_err(|e| status(Code::UNKNOWN, e.to_string()))?;
            Ok(io)
        }
    }

    async fn start_exec(&self, c: &mut Container, exec_id: &str) -> Result<u32, ttrpc::Error> {
        let (paths, spec) = {
            let p = c.proc_mut(exec_id)?;
            if !matches!(p.state, State::Registered(_)) {
                return Err(status(Code::FAILED_PRECONDITION, format!("exec {exec_id:?} was already started")));
            }
            (p.paths.clone(), p.spec.clone())
        };
        let n = self.next_seq();
        let spec_file = c.bundle.join(format!(".exec-{n}.json"));
        let pid_file = c.bundle.join(format!(".exec-{n}.pid"));
        crate::fsutil::write_private(&spec_file, &spec).map_err(|e| status(Code::INTERNAL, format!("write {}: {e}", spec_file.display())))?;
        let (spec_s, pid_s, id) = (spec_file.to_string_lossy().into_owned(), pid_file.to_string_lossy().into_owned(), c.id.clone());
        let result = self
            .run_with_stdio(&c.runc, &paths, &c.id, |console| {
                let mut a = vec!["exec".to_string(), "--detach".into(), "--process".into(), spec_s.clone(), "--pid-file".into(), pid_s.clone()];
                if let Some(cs) = console {
                    a.push("--console-socket".into());
                    a.push(cs.to_string());
                }
                a.push(id.clone());
                a
            }, "exec")
            .await;
        let _ = std::fs::remove_file(&spec_file);
        let pid = result.and_then(|io| {
            let pid = crate::fsutil::read_pid(&pid_file).map_err(|e| status(Code::INTERNAL, e));
            let _ = std::fs::remove_file(&pid_file);
            let pid = pid?;
            let p = c.proc_mut(exec_id)?;
            p.io = io;
            p.state = State::Running(Registered.start(pid));
            Ok(pid)
        })?;
        self.publisher.publish(Event::ExecStarted(TaskExecStarted {
            container_id: c.id.clone(),
            exec_id: exec_id.to_string(),
            pid,
            ..Default::default()
        }));
        self.track(c, exec_id, pid).await;
        Ok(pid)
    }
}

fn signal_name(sig: u32) -> Result<nix::sys::signal::Signal, ttrpc::Error> {
    nix::sys::signal::Signal::try_from(sig as i32).map_err(|_| status(Code::INVALID_ARGUMENT, format!("invalid signal {sig}")))
}

#[async_trait]
impl Task for Service {
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let c = self.get(&req.id)?;
        let mut c = c.lock().await;
        let bundle = c.bundle.to_string_lossy().into_owned();
        let p = c.proc_mut(&req.exec_id)?;
        let stopped = p.state.stopped();
        Ok(StateResponse {
            id: if req.exec_id.is_empty() { req.id.clone() } else { req.exec_id.clone() },
            bundle,
            pid: p.state.pid(),
            status: p.state.status().into(),
            stdin: p.paths.stdin.clone(),
            stdout: p.paths.stdout.clone(),
            stderr: p.paths.stderr.clone(),
            terminal: p.paths.terminal,
            exit_status: stopped.map(|s| s.status).unwrap_or(0),
            exited_at: MessageField::from(stopped.map(|s| timestamp(s.at))),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        let r = self.create_inner(&req).await;
        if let Err(e) = &r {
            log::error!("create {}: {e:?}", req.id);
        }
        r
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let c = self.get(&req.id)?;
        let mut c = c.lock().await;
        if !req.exec_id.is_empty() {
            let pid = self.start_exec(&mut c, &req.exec_id).await?;
            return Ok(StartResponse { pid, ..Default::default() });
        }
        let State::Created(created) = c.init.state else {
            return Err(status(Code::FAILED_PRECONDITION, format!("container {:?} is {:?}, not created", req.id, c.init.state.status())));
        };
        let mut started = false;
        if c.start_via_fifo {
            let pid = created.pid;
            // The reaper's routing table drops the pid as soon as the init's exit is seen.
            let alive = || self.pids.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&pid);
            match crate::execfifo::start(&c.runc.root.join(&req.id), alive).await {
                Ok(crate::execfifo::Outcome::Started) => started = true,
                Ok(crate::execfifo::Outcome::NotApplicable) => {}
                Err(e) => return Err(status(Code::UNKNOWN, format!("start container {:?}: {e}", req.id))),
            }
        }
        if !started {
            c.runc.run("start", &["start", &req.id], ChildStdio::default()).await.map_err(|e| status(Code::UNKNOWN, e.to_string()))?;
        }
        c.init.state = State::Running(created.start());
        self.publisher.publish(Event::Start(TaskStart { container_id: req.id.clone(), pid: created.pid, ..Default::default() }));
        Ok(StartResponse { pid: created.pid, ..Default::default() })
    }

    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let shared = self.get(&req.id)?;
        let mut c = shared.lock().await;
        if !req.exec_id.is_empty() {
            let p = c.proc_mut(&req.exec_id)?;
            if matches!(p.state, State::Running(_) | State::Paused(_)) {
                return Err(status(Code::FAILED_PRECONDITION, format!("exec {:?} is still running", req.exec_id)));
            }
            let stopped = p.state.stopped();
            let pid = p.state.pid();
            c.execs.remove(&req.exec_id);
            return Ok(DeleteResponse {
                pid,
                exit_status: stopped.map(|s| s.status).unwrap_or(0),
                exited_at: MessageField::from(stopped.map(|s| timestamp(s.at))),
                ..Default::default()
            });
        }
        if matches!(c.init.state, State::Running(_) | State::Paused(_)) {
            return Err(status(Code::FAILED_PRECONDITION, format!("container {:?} must be stopped before it is deleted", req.id)));
        }
        let pid = c.init.state.pid();
        let force = matches!(c.init.state, State::Created(_));
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(&req.id);
        if let Err(e) = c.runc.run("delete", &args, ChildStdio::default()).await {
            // Already gone from runc is fine; anything else is worth a log line, not a stuck task.
            log::warn!("{e}");
        }
        let stopped = c.init.state.stopped().unwrap_or(Stopped { pid, status: 137, at: SystemTime::now() });
        if force {
            c.init.state = State::Stopped(stopped);
        }
        if let Err(e) = rules::undo(&c.bundle) {
            log::warn!("undo host actions for {}: {e}", req.id);
        }
        if c.rootfs_mounted {
            crate::mount::unmount_all(&c.rootfs());
            c.rootfs_mounted = false;
        }
        c.init.io.shutdown();
        for p in c.execs.values_mut() {
            p.io.shutdown();
        }
        if let Some(t) = c.oom_task.take() {
            t.abort();
        }
        {
            let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
            pids.retain(|_, (cid, _)| cid != &req.id);
        }
        self.containers.lock().unwrap_or_else(|e| e.into_inner()).remove(&req.id);
        self.publisher.publish(Event::Delete(TaskDelete {
            container_id: req.id.clone(),
            pid,
            exit_status: stopped.status,
            exited_at: Some(timestamp(stopped.at)).into(),
            id: req.id.clone(),
            ..Default::default()
        }));
        Ok(DeleteResponse { pid, exit_status: stopped.status, exited_at: Some(timestamp(stopped.at)).into(), ..Default::default() })
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let c = self.get(&req.id)?;
        let c = c.lock().await;
        let out = c.runc.output("ps", &["ps", "--format", "json", &req.id], None).await.map_err(|e| status(Code::UNKNOWN, e.to_string()))?;
        // runc prints `null` when every process has exited; that is an empty list, as in the Go shim.
        let pids: Vec<u32> = serde_json::from_slice::<Option<Vec<u32>>>(&out)
            .map_err(|e| status(Code::INTERNAL, format!("runc ps output: {e}")))?
            .unwrap_or_default();
        let execs: HashMap<u32, &str> = c.execs.iter().map(|(k, p)| (p.state.pid(), k.as_str())).filter(|(pid, _)| *pid != 0).collect();
        let processes = pids
            .into_iter()
            .map(|pid| {
                let info = execs.get(&pid).and_then(|eid| {
                    let d = ProcessDetails { exec_id: eid.to_string(), ..Default::default() };
                    d.write_to_bytes().ok().map(|value| Any { type_url: "containerd.runc.v1.ProcessDetails".into(), value, ..Default::default() })
                });
                ProcessInfo { pid, info: MessageField::from(info), ..Default::default() }
            })
            .collect();
        Ok(PidsResponse { processes, ..Default::default() })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        let mut c = c.lock().await;
        let State::Running(r) = c.init.state else {
            return Err(status(Code::FAILED_PRECONDITION, format!("container {:?} is not running", req.id)));
        };
        c.runc.run("pause", &["pause", &req.id], ChildStdio::default()).await.map_err(|e| status(Code::UNKNOWN, e.to_string()))?;
        c.init.state = State::Paused(r.pause());
        self.publisher.publish(Event::Paused(TaskPaused { container_id: req.id.clone(), ..Default::default() }));
        Ok(Empty::new())
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        let mut c = c.lock().await;
        let State::Paused(p) = c.init.state else {
            return Err(status(Code::FAILED_PRECONDITION, format!("container {:?} is not paused", req.id)));
        };
        c.runc.run("resume", &["resume", &req.id], ChildStdio::default()).await.map_err(|e| status(Code::UNKNOWN, e.to_string()))?;
        c.init.state = State::Running(p.resume());
        self.publisher.publish(Event::Resumed(TaskResumed { container_id: req.id.clone(), ..Default::default() }));
        Ok(Empty::new())
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        Err(status(Code::UNIMPLEMENTED, "checkpoint is not supported by io.containerd.dockerish.v2"))
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        let sig = signal_name(req.signal)?;
        let c = self.get(&req.id)?;
        let mut c = c.lock().await;
        if req.exec_id.is_empty() {
            if c.init.state.stopped().is_some() {
                return Err(status(Code::NOT_FOUND, format!("container {:?}: process already finished", req.id)));
            }
            let sig_s = (req.signal).to_string();
            let mut args = vec!["kill"];
            if req.all {
                args.push("--all");
            }
            args.push(&req.id);
            args.push(&sig_s);
            return match c.runc.run("kill", &args, ChildStdio::default()).await {
                Ok(()) => Ok(Empty::new()),
                Err(e) if e.to_string().contains("not running") || e.to_string().contains("does not exist") => {
                    Err(status(Code::NOT_FOUND, format!("container {:?}: process already finished", req.id)))
                }
                Err(e) => Err(status(Code::UNKNOWN, e.to_string())),
            };
        }
        let p = c.proc_mut(&req.exec_id)?;
        match p.state {
            State::Running(r) => nix::sys::signal::kill(nix::unistd::Pid::from_raw(r.pid as i32), sig)
                .map(|_| Empty::new())
                .map_err(|e| status(Code::NOT_FOUND, format!("exec {:?}: {e}", req.exec_id))),
            State::Stopped(_) => Err(status(Code::NOT_FOUND, format!("exec {:?}: process already finished", req.exec_id))),
            _ => Err(status(Code::FAILED_PRECONDITION, format!("exec {:?} is not running", req.exec_id))),
        }
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        let spec = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        let mut process = serde_json::from_slice::<serde_json::Value>(&spec)
            .map_err(|e| status(Code::INVALID_ARGUMENT, format!("exec {:?}: process spec is not valid JSON: {e}", req.exec_id)))?;
        let (bundle, config) = {
            let c = c.lock().await;
            c.delta.apply(&mut process);
            (c.bundle.clone(), c.config.clone())
        };
        // US-2: an exec user the client chose gets its groups from the container's rootfs, as
        // Docker's; file reads, so off the runtime thread and without the container lock.
        let ns = self.namespace.clone();
        let process = tokio::task::spawn_blocking(move || {
            let mut p = process;
            dockerish_host::resolve_exec_user(&bundle, &ns, &config, &mut p).map(|_| p)
        })
        .await
        .map_err(|e| status(Code::INTERNAL, e.to_string()))?
        .map_err(|e| status(Code::INTERNAL, format!("exec {:?}: {e}", req.exec_id)))?;
        let mut c = c.lock().await;
        if c.init.state.stopped().is_some() {
            return Err(status(Code::FAILED_PRECONDITION, format!("container {:?} is not running", req.id)));
        }
        if req.exec_id.is_empty() || c.execs.contains_key(&req.exec_id) {
            return Err(status(Code::ALREADY_EXISTS, format!("exec {:?} already exists", req.exec_id)));
        }
        let spec = serde_json::to_vec(&process).map_err(|e| status(Code::INTERNAL, e.to_string()))?;
        let paths = StdioPaths { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
        c.execs.insert(req.exec_id.clone(), Proc::new(State::Registered(Registered), paths, spec));
        self.publisher.publish(Event::ExecAdded(TaskExecAdded { container_id: req.id.clone(), exec_id: req.exec_id.clone(), ..Default::default() }));
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        let mut c = c.lock().await;
        let p = c.proc_mut(&req.exec_id)?;
        // Like the Go shim: resizing a process without a terminal (or one that already exited
        // and closed it; `ctr run -t` resizes right after Start) is a no-op.
        let Some(master) = &p.io.console else {
            return Ok(Empty::new());
        };
        stdio::resize(master, req.width, req.height).map_err(|e| status(Code::INTERNAL, format!("resize: {e}")))?;
        Ok(Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        let mut c = c.lock().await;
        c.proc_mut(&req.exec_id)?.io.close_stdin();
        Ok(Empty::new())
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        let c = c.lock().await;
        let Some(res) = req.resources.as_ref() else {
            return Err(status(Code::INVALID_ARGUMENT, "update: no resources given"));
        };
        serde_json::from_slice::<serde_json::Value>(&res.value).map_err(|e| status(Code::INVALID_ARGUMENT, format!("update: resources are not valid JSON: {e}")))?;
        let file = c.bundle.join(format!(".update-{}.json", self.next_seq()));
        crate::fsutil::write_private(&file, &res.value).map_err(|e| status(Code::INTERNAL, format!("write {}: {e}", file.display())))?;
        let f = file.to_string_lossy().into_owned();
        let r = c.runc.run("update", &["update", "--resources", &f, &req.id], ChildStdio::default()).await;
        let _ = std::fs::remove_file(&file);
        r.map_err(|e| status(Code::UNKNOWN, e.to_string()))?;
        Ok(Empty::new())
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let mut rx = {
            let c = self.get(&req.id)?;
            let mut c = c.lock().await;
            c.proc_mut(&req.exec_id)?.exited.subscribe()
        };
        let stopped = loop {
            if let Some(s) = *rx.borrow_and_update() {
                break s;
            }
            if rx.changed().await.is_err() {
                return Err(status(Code::NOT_FOUND, format!("process {:?}/{:?} was deleted", req.id, req.exec_id)));
            }
        };
        Ok(WaitResponse { exit_status: stopped.status, exited_at: Some(timestamp(stopped.at)).into(), ..Default::default() })
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let c = self.get(&req.id)?;
        let c = c.lock().await;
        let cg = c.cgroup.as_ref().ok_or_else(|| status(Code::NOT_FOUND, format!("container {:?} has no cgroup", req.id)))?;
        Ok(StatsResponse { stats: Some(cg.metrics()).into(), ..Default::default() })
    }

    async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let task_pid = match self.get(&req.id) {
            Ok(c) => c.lock().await.init.state.pid(),
            Err(_) => 0,
        };
        Ok(ConnectResponse { shim_pid: std::process::id(), task_pid, version: VERSION.to_string(), ..Default::default() })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<Empty> {
        // Like the Go shim: only exit once no container is left to supervise.
        if self.is_empty() {
            self.shutdown.notify_one();
        }
        Ok(Empty::new())
    }
}
