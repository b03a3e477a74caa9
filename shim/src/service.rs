//! The task API (served as `containerd.task.v2.Task` and `.v3.Task`): decode a request, find
//! the container, call it, encode the reply. The registry of containers, Create and Delete
//! (which add and remove entries) and the routing of exits live here too; everything about one
//! container is in [`crate::container`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_shim_protos::api::*;
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExecAdded, TaskIO};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::types::task::ProcessInfo;
use tokio::sync::{mpsc, Notify};
use ttrpc::r#async::TtrpcContext;
use ttrpc::Code;

use crate::container::{Container, Ctx, TaskError};
use crate::events::{timestamp, Event};
use crate::exits::Routes;
use crate::monitor::Exit;
use crate::runtime::{CreateRequest, EventSink, Runtime};
use crate::stdio::{StdioPaths, StdioSpec};

const VERSION: &str = env!("CARGO_PKG_VERSION");

impl From<TaskError> for ttrpc::Error {
    fn from(e: TaskError) -> Self {
        let code = match &e {
            TaskError::NotFound(_) => Code::NOT_FOUND,
            TaskError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            TaskError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            TaskError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            TaskError::Unimplemented(_) => Code::UNIMPLEMENTED,
            TaskError::Unknown(_) => Code::UNKNOWN,
        };
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
    }
}

enum Slot<R: Runtime, E: EventSink> {
    /// A Create in flight: the id is taken.
    Creating,
    Ready(Arc<Container<R, E>>),
}

/// The containers of this daemon. Shared with the tasks that run operations to completion.
struct Registry<R: Runtime, E: EventSink> {
    ctx: Arc<Ctx<R, E>>,
    containers: Mutex<HashMap<String, Slot<R, E>>>,
}

pub struct Service<R: Runtime, E: EventSink> {
    reg: Arc<Registry<R, E>>,
    /// Notified when Shutdown finds no container left.
    pub shutdown: Arc<Notify>,
    /// The socket this daemon serves, unlinked before the Shutdown reply leaves.
    socket: Option<PathBuf>,
}

/// Runs an operation that changes state across awaits in a task of its own. ttrpc drops a
/// request's future when its deadline passes or its connection closes (containerd killed,
/// `ctr` interrupted): the operation must still finish, or a process would stay "starting"
/// or a Create half done.
async fn to_completion<T: Send + 'static>(op: impl std::future::Future<Output = Result<T, TaskError>> + Send + 'static) -> Result<T, TaskError> {
    tokio::spawn(op).await.unwrap_or_else(|e| Err(TaskError::Unknown(format!("operation failed: {e}"))))
}

fn stdio_spec(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Result<StdioSpec, TaskError> {
    let paths = StdioPaths { stdin: stdin.into(), stdout: stdout.into(), stderr: stderr.into(), terminal };
    StdioSpec::parse(paths).map_err(|e| TaskError::InvalidArgument(e.to_string()))
}

impl<R: Runtime, E: EventSink> Registry<R, E> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot<R, E>>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<Container<R, E>>, TaskError> {
        match self.map().get(id) {
            Some(Slot::Ready(c)) => Ok(c.clone()),
            _ => Err(TaskError::NotFound(format!("container {id:?} not found"))),
        }
    }

    async fn create(&self, req: CreateTaskRequest) -> Result<u32, TaskError> {
        let id = req.id.as_str();
        if !crate::fsutil::is_path_component(id) {
            return Err(TaskError::InvalidArgument(format!("invalid container id {id:?}: must be one path component")));
        }
        let stdio = stdio_spec(&req.stdin, &req.stdout, &req.stderr, req.terminal)?;
        {
            let mut m = self.map();
            if m.contains_key(id) {
                return Err(TaskError::AlreadyExists(format!("container {id:?} already exists")));
            }
            m.insert(id.to_string(), Slot::Creating);
        }
        let window = self.ctx.routes.begin_start();
        let rreq = CreateRequest { id: id.to_string(), bundle: req.bundle.clone(), rootfs: req.rootfs.clone(), stdio: stdio.clone(), options: req.options.clone().into_option(), checkpoint: req.checkpoint.clone() };
        let created = match self.ctx.runtime.create(rreq).await {
            Ok(c) => c,
            Err(e) => {
                self.map().remove(id);
                log::error!("create {id}: {e}");
                return Err(e.into());
            }
        };
        let pid = created.pid;
        let c = Container::new(id.to_string(), req.bundle.clone(), self.ctx.clone(), created, stdio);
        self.map().insert(id.to_string(), Slot::Ready(c.clone()));
        let early = self.ctx.routes.register(pid, (id.to_string(), String::new()));
        drop(window);
        self.ctx.events.publish(Event::Create(TaskCreate {
            container_id: id.to_string(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal, ..Default::default() }).into(),
            pid,
            ..Default::default()
        }));
        c.watch_oom();
        if let Some(e) = early {
            c.on_exit("", e);
        }
        log::info!("created container {id} (pid {pid})");
        Ok(pid)
    }

    /// Delete of a container (its init) or of one exec.
    async fn delete(&self, id: &str, exec_id: &str) -> Result<DeleteResponse, TaskError> {
        let c = self.get(id)?;
        if !exec_id.is_empty() {
            let e = c.delete_exec(exec_id)?;
            return Ok(DeleteResponse {
                pid: e.map(|e| e.pid).unwrap_or(0),
                exit_status: e.map(|e| e.status).unwrap_or(0),
                exited_at: MessageField::from(e.map(|e| timestamp(e.at))),
                ..Default::default()
            });
        }
        let e = c.delete().await?;
        self.map().remove(id);
        self.ctx.routes.forget(id);
        self.ctx.events.publish(Event::Delete(TaskDelete {
            container_id: id.to_string(),
            pid: e.pid,
            exit_status: e.status,
            exited_at: Some(timestamp(e.at)).into(),
            id: id.to_string(),
            ..Default::default()
        }));
        Ok(DeleteResponse { pid: e.pid, exit_status: e.status, exited_at: Some(timestamp(e.at)).into(), ..Default::default() })
    }
}

impl<R: Runtime, E: EventSink> Service<R, E> {
    pub fn new(runtime: R, events: E, socket: Option<PathBuf>) -> Arc<Self> {
        let ctx = Arc::new(Ctx { runtime, events, routes: Routes::default() });
        Arc::new(Service { reg: Arc::new(Registry { ctx, containers: Mutex::default() }), shutdown: Arc::new(Notify::new()), socket })
    }

    pub fn get(&self, id: &str) -> Result<Arc<Container<R, E>>, TaskError> {
        self.reg.get(id)
    }

    pub fn is_empty(&self) -> bool {
        self.reg.map().is_empty()
    }

    /// Applies exits the reaper did not hand to a command waiter, one after the other: each
    /// only updates a state and spawns the publication, so none waits for another.
    pub async fn handle_exits(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Exit>) {
        while let Some(exit) = rx.recv().await {
            self.deliver_exit(exit);
        }
    }

    pub fn deliver_exit(&self, exit: Exit) {
        let Some((cid, eid)) = self.reg.ctx.routes.route(exit) else { return };
        if let Ok(c) = self.reg.get(&cid) {
            c.on_exit(&eid, exit);
        }
    }

    /// Create, run to completion (see [`to_completion`]).
    pub async fn create(&self, req: &CreateTaskRequest) -> Result<u32, TaskError> {
        let (reg, req) = (self.reg.clone(), req.clone());
        to_completion(async move { reg.create(req).await }).await
    }

    /// Delete of a container (its init) or of one exec, run to completion.
    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<DeleteResponse, TaskError> {
        let (reg, id, exec_id) = (self.reg.clone(), id.to_string(), exec_id.to_string());
        to_completion(async move { reg.delete(&id, &exec_id).await }).await
    }

    pub fn exec(&self, req: &ExecProcessRequest) -> Result<(), TaskError> {
        let c = self.reg.get(&req.id)?;
        let stdio = stdio_spec(&req.stdin, &req.stdout, &req.stderr, req.terminal)?;
        let spec = req.spec.as_ref().map(|a| a.value.as_slice()).unwrap_or_default();
        c.add_exec(&req.exec_id, stdio, spec)?;
        self.reg.ctx.events.publish(Event::ExecAdded(TaskExecAdded { container_id: req.id.clone(), exec_id: req.exec_id.clone(), ..Default::default() }));
        Ok(())
    }

    /// Shutdown: like the Go shim, the daemon only exits once no container is left. The
    /// socket goes first, before the reply: containerd may check for it, or a new daemon of the
    /// same group may bind the same path, as soon as the reply arrives.
    pub fn request_shutdown(&self) {
        if !self.is_empty() {
            return;
        }
        if let Some(s) = &self.socket {
            if let Err(e) = std::fs::remove_file(s) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("remove socket {}: {e}", s.display());
                }
            }
        }
        self.shutdown.notify_one();
    }
}

#[async_trait]
impl<R: Runtime, E: EventSink> Task for Service<R, E> {
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let c = self.get(&req.id)?;
        let s = c.snapshot(&req.exec_id)?;
        let stopped = s.state.stopped();
        Ok(StateResponse {
            id: if req.exec_id.is_empty() { req.id.clone() } else { req.exec_id.clone() },
            bundle: c.bundle.clone(),
            pid: s.pid,
            status: s.state.status().into(),
            stdin: s.stdio.stdin,
            stdout: s.stdio.stdout,
            stderr: s.stdio.stderr,
            terminal: s.stdio.terminal,
            exit_status: stopped.map(|s| s.status).unwrap_or(0),
            exited_at: MessageField::from(stopped.map(|s| timestamp(s.at))),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        let pid = Service::create(self, &req).await?;
        Ok(CreateTaskResponse { pid, ..Default::default() })
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let c = self.get(&req.id)?;
        let pid = to_completion(async move { c.start(&req.exec_id).await }).await?;
        Ok(StartResponse { pid, ..Default::default() })
    }

    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        Ok(Service::delete(self, &req.id, &req.exec_id).await?)
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let pids = self.get(&req.id)?.pids().await?;
        let processes = pids
            .into_iter()
            .map(|(pid, exec_id)| {
                let info = exec_id.and_then(|exec_id| {
                    let d = ProcessDetails { exec_id, ..Default::default() };
                    d.write_to_bytes().ok().map(|value| Any { type_url: "containerd.runc.v1.ProcessDetails".into(), value, ..Default::default() })
                });
                ProcessInfo { pid, info: MessageField::from(info), ..Default::default() }
            })
            .collect();
        Ok(PidsResponse { processes, ..Default::default() })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        to_completion(async move { c.pause().await }).await?;
        Ok(Empty::new())
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        to_completion(async move { c.resume().await }).await?;
        Ok(Empty::new())
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        Err(TaskError::Unimplemented("checkpoint is not supported by io.containerd.dockerish.v2".into()).into())
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        self.get(&req.id)?.kill(&req.exec_id, req.signal, req.all).await?;
        Ok(Empty::new())
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        Service::exec(self, &req)?;
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        self.get(&req.id)?.resize_pty(&req.exec_id, req.width, req.height)?;
        Ok(Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        self.get(&req.id)?.close_io(&req.exec_id)?;
        Ok(Empty::new())
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let c = self.get(&req.id)?;
        let res = req.resources.as_ref().ok_or_else(|| TaskError::InvalidArgument("update: no resources given".into()))?;
        let resources = res.value.clone();
        to_completion(async move { c.update(resources).await }).await?;
        Ok(Empty::new())
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let e = self.get(&req.id)?.wait(&req.exec_id).await?;
        Ok(WaitResponse { exit_status: e.status, exited_at: Some(timestamp(e.at)).into(), ..Default::default() })
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let stats = self.get(&req.id)?.stats().await?;
        Ok(StatsResponse { stats: Some(stats).into(), ..Default::default() })
    }

    async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let task_pid = self.get(&req.id).map(|c| c.init_pid()).unwrap_or(0);
        Ok(ConnectResponse { shim_pid: std::process::id(), task_pid, version: VERSION.to_string(), ..Default::default() })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<Empty> {
        self.request_shutdown();
        Ok(Empty::new())
    }
}
