//! A blocking CRI v1 client over containerd's unix socket (what a kubelet does), for the tests
//! that drive containerd's CRI plugin: the pod lifecycle and the handlers `deploy/install.sh`
//! registers.

use std::future::Future;
use std::time::Duration;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint, Uri};

/// Deadline of one RPC.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to containerd's gRPC socket (the CRI services share it).
    pub fn connect(socket: &str) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let socket = socket.to_string();
        let channel = rt
            .block_on(async move {
                Endpoint::try_from("http://[::]:50051")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(socket).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    }))
                    .await
            })
            .expect("connect to containerd's gRPC socket");
        Cri { rt, runtime: RuntimeServiceClient::new(channel.clone()), images: ImageServiceClient::new(channel) }
    }

    pub fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    pub fn is(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// Runs one RPC to completion (with a deadline).
    pub fn call<T>(&self, f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> Result<T, tonic::Status> {
        self.rt
            .block_on(async { tokio::time::timeout(RPC_TIMEOUT, f).await })
            .map_err(|_| tonic::Status::deadline_exceeded(format!("no answer within {RPC_TIMEOUT:?}")))?
            .map(tonic::Response::into_inner)
    }

    pub fn image_present(&self, name: &str) -> bool {
        let req = ImageStatusRequest { image: Some(ImageSpec { image: name.into(), ..Default::default() }), verbose: false };
        matches!(self.call(self.is().image_status(req)), Ok(r) if r.image.is_some())
    }

    /// Ok when the two conditions a kubelet requires, RuntimeReady and NetworkReady, are true
    /// (2.x adds informational ones, e.g. ContainerdHasNoDeprecationWarnings on a cgroup v1 host).
    pub fn ready(&self) -> Result<(), String> {
        let st = self.call(self.rs().status(StatusRequest { verbose: false })).map_err(|e| e.to_string())?;
        let conds = st.status.map(|s| s.conditions).unwrap_or_default();
        let ready = |t: &str| conds.iter().any(|c| c.r#type == t && c.status);
        if ready("RuntimeReady") && ready("NetworkReady") {
            Ok(())
        } else {
            Err(format!("{conds:?}"))
        }
    }

    /// A verbose `Status`: the response and its `config` entry (the CRI plugin's effective
    /// configuration, with `containerd.runtimes`) as JSON.
    pub fn status_verbose(&self) -> Result<(StatusResponse, Value), tonic::Status> {
        let st = self.call(self.rs().status(StatusRequest { verbose: true }))?;
        let config = st.info.get("config").and_then(|c| serde_json::from_str(c).ok()).unwrap_or(Value::Null);
        Ok((st, config))
    }

    /// The `info` JSON of a verbose status (pid, runtime spec, …).
    pub fn sandbox_info(&self, id: &str) -> (PodSandboxStatus, Value) {
        let r = self.call(self.rs().pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true })).unwrap();
        let info = serde_json::from_str(r.info.get("info").map(String::as_str).unwrap_or("{}")).unwrap();
        (r.status.expect("sandbox status"), info)
    }

    pub fn container_info(&self, id: &str) -> (ContainerStatus, Value) {
        let r = self.call(self.rs().container_status(ContainerStatusRequest { container_id: id.into(), verbose: true })).unwrap();
        let info = serde_json::from_str(r.info.get("info").map(String::as_str).unwrap_or("{}")).unwrap();
        (r.status.expect("container status"), info)
    }

    /// ExecSync: (exit code, stdout, stderr).
    pub fn exec(&self, id: &str, cmd: &[&str]) -> (i32, String, String) {
        let req = ExecSyncRequest { container_id: id.into(), cmd: cmd.iter().map(|s| s.to_string()).collect(), timeout: 30 };
        let r = self.call(self.rs().exec_sync(req)).unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}"));
        (r.exit_code, String::from_utf8_lossy(&r.stdout).into_owned(), String::from_utf8_lossy(&r.stderr).into_owned())
    }
}
