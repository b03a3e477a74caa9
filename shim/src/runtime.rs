//! The two seams of the task service: the container runtime it drives ([`Runtime`]; the real
//! one is runc through [`crate::oci::RuncRuntime`]) and where its events go ([`EventSink`]; the
//! real one is [`crate::events::Publisher`]). The service is generic over both, so its ordering
//! and concurrency rules are unit-tested with stubs (`crate::service_tests`).

use async_trait::async_trait;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::types::mount::Mount;

use crate::events::Event;
use crate::stdio::{ProcessIo, StdioSpec};

/// Why a runtime call failed. The caller's mistakes are kept apart from the system's, and the
/// two states containerd cares about (gone, not running) are types, not message text.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The request itself is wrong (bad options, spec, stdio URI, annotation).
    #[error("{0}")]
    InvalidArgument(String),
    /// The container is unknown to the runtime.
    #[error("{0}")]
    NotFound(String),
    /// The process has already finished.
    #[error("{0}")]
    NotRunning(String),
    /// Not supported by this runtime.
    #[error("{0}")]
    Unimplemented(String),
    /// Everything else: the system failed (runc, the file system, the kernel).
    #[error("{0}")]
    Failed(String),
}

/// What Create hands the runtime.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub id: String,
    pub bundle: String,
    pub rootfs: Vec<Mount>,
    pub stdio: StdioSpec,
    pub options: Option<Any>,
    pub checkpoint: String,
}

/// A created container: the runtime's handle for later calls, and its init process.
pub struct Created<H> {
    pub handle: H,
    pub pid: u32,
    pub io: ProcessIo,
    /// The container has no PID namespace of its own (host or shared): when its init exits,
    /// the runtime must kill what is left (the kernel does not).
    pub kill_all_on_exit: bool,
}

/// What an exec's start hands the runtime.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub exec_id: String,
    /// The OCI process (JSON) from the Exec request.
    pub process: Vec<u8>,
    pub stdio: StdioSpec,
}

/// A started exec.
pub struct Launched {
    pub pid: u32,
    pub io: ProcessIo,
}

/// The container runtime under the task service. Every method may take as long as the runtime
/// needs: the service calls them without holding any lock.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Everything the runtime keeps per container.
    type Handle: Send + Sync + 'static;

    /// Creates the container and its (not yet started) init.
    async fn create(&self, req: CreateRequest) -> Result<Created<Self::Handle>, RuntimeError>;
    /// Starts the created init. `init_alive` says whether its exit was not seen yet.
    async fn start(&self, h: &Self::Handle, init_alive: &(dyn Fn() -> bool + Send + Sync)) -> Result<(), RuntimeError>;
    /// Starts an exec in the container.
    async fn exec(&self, h: &Self::Handle, req: ExecRequest) -> Result<Launched, RuntimeError>;
    /// Signals the init (and with `all` every process of the container).
    async fn kill(&self, h: &Self::Handle, signal: u32, all: bool) -> Result<(), RuntimeError>;
    async fn pause(&self, h: &Self::Handle) -> Result<(), RuntimeError>;
    async fn resume(&self, h: &Self::Handle) -> Result<(), RuntimeError>;
    /// Pids of every process in the container.
    async fn pids(&self, h: &Self::Handle) -> Result<Vec<u32>, RuntimeError>;
    /// New resources (`LinuxResources` JSON).
    async fn update(&self, h: &Self::Handle, resources: Vec<u8>) -> Result<(), RuntimeError>;
    /// Removes the container and undoes everything its Create did (`force`: it may still run).
    async fn delete(&self, h: &Self::Handle, force: bool) -> Result<(), RuntimeError>;
    /// Metrics for Stats.
    async fn stats(&self, h: &Self::Handle) -> Result<Any, RuntimeError>;
    /// Waits for the next OOM notification of the container; false when it has none (or no
    /// more). Cancel-safe: the service drops it when the container goes.
    async fn oom_notified(&self, h: &Self::Handle) -> bool;
    /// Whether the container's cgroup counted an OOM kill not reported yet.
    fn take_oom(&self, h: &Self::Handle) -> bool;
    /// Rewrites an exec's process for this container (the rules' effect on execs); errors are
    /// the caller's.
    fn prepare_exec(&self, h: &Self::Handle, process: &[u8], terminal: bool) -> Result<Vec<u8>, RuntimeError>;
}

/// Where task events go, in order.
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, e: Event);
}
