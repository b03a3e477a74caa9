//! For the tests that drive containerd's CRI plugin (the pod lifecycle on every containerd of
//! the matrix, the handlers `deploy/install.sh` registers, pods in the systemd environment): a
//! blocking CRI v1 client over containerd's unix socket (what a kubelet does), the pause image,
//! the kubelet's namespace options and a loopback-only CNI configuration.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{image, Version, IMAGE};

/// Sandbox image: the test busybox image whose command never exits on its own.
pub const PAUSE_IMAGE: &str = "docker.io/dockerish/pause:test";
/// The pause process: exits 0 on SIGTERM/SIGINT, otherwise waits forever.
pub const PAUSE_CMD: &[&str] = &["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];
/// An app container that ends quickly (and with 0) on StopContainer's SIGTERM.
pub const APP_CMD: &[&str] = &["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"];

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

    pub fn create_container(&self, sandbox: &str, sandbox_config: &PodSandboxConfig, name: &str) -> Result<String, tonic::Status> {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(ImageSpec { image: IMAGE.into(), ..Default::default() }),
            command: APP_CMD.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            // As the kubelet does for a pod without shareProcessNamespace.
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = CreateContainerRequest { pod_sandbox_id: sandbox.into(), config: Some(config), sandbox_config: Some(sandbox_config.clone()) };
        self.call(self.rs().create_container(req)).map(|r| r.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), tonic::Status> {
        self.call(self.rs().start_container(StartContainerRequest { container_id: id.into() })).map(|_| ())
    }
}

/// The kubelet's namespace options for an ordinary pod: pod network and IPC, a PID namespace
/// per container (no `shareProcessNamespace`).
pub fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// Loopback, then `static` IPAM: containerd 1.6's CRI wants an IP on the pod interface, and
/// `static` gives one without an interface, route or any host state.
pub const CNI_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "dockerish-test-lo",
  "plugins": [
    { "type": "loopback" },
    { "type": "static", "ipam": { "addresses": [ { "address": "192.0.2.10/32" } ] } }
  ]
}
"#;

/// The CRI part of a node's containerd config, as a distribution ships it plus what a private
/// test node needs: for 1.x a version 2 file that declares no runtime (like Debian 12's
/// `/etc/containerd/config.toml`), for 2.3 a version 4 file in 2.x's CRI plugin layout; the
/// test's sandbox image and CNI directory (`cni_dir`, holding [`CNI_CONFLIST`]). No runtime
/// handler: `deploy/install.sh` or the node installer adds `dockerish`.
pub fn node_cri_config(v: Version, cni_dir: &Path) -> String {
    // This machine runs the tests inside a container that may not lower OOM scores (the
    // sandbox's -998 fails with EACCES in runc init): restrict_oom_score_adj makes CRI clamp to
    // containerd's own score.
    if v.is_2x() {
        format!(
            r#"version = 4

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '{PAUSE_IMAGE}'

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '{cni}'
"#,
            cni = cni_dir.display(),
        )
    } else {
        format!(
            r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    netns_mounts_under_state_dir = true
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "{cni}"
"#,
            cni = cni_dir.display(),
        )
    }
}

/// The pod-level cgroup directories CRI asked runc to create (the kubelet's job to remove). Its
/// `Drop` (after the harness's, which removes the containers) also removes runc's state root
/// for `k8s.io` if no other CRI user is left in it.
pub struct PodCgroup {
    pub parent: String,
}

impl PodCgroup {
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join(self.parent.trim_start_matches('/'));
                if p.is_dir() {
                    v.push(p);
                }
            }
        }
        v
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        for d in self.dirs() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&d);
            // besteffort and kubepods, only if nothing else lives there.
            let mut up = d.parent();
            for _ in 0..2 {
                if let Some(p) = up {
                    let _ = std::fs::remove_dir(p);
                    up = p.parent();
                }
            }
        }
        let _ = std::fs::remove_dir(crate::procs::runc_state("k8s.io", ""));
    }
}

// ---------------------------------------------------------------------------------------------
// The pause image: the harness's busybox image with another command and name.

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// `image::build_image_tarball()` with `Cmd` = [`PAUSE_CMD`] and the name [`PAUSE_IMAGE`]. The
/// layer is the same blob, so containerd stores it once.
pub fn pause_image_tarball(dir: &Path) -> PathBuf {
    let src = image::build_image_tarball();
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut ar = tar::Archive::new(&src[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        files.insert(name, data);
    }
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let mut index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let mdigest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let mut manifest: Value = serde_json::from_slice(&files[&blob(&mdigest)]).unwrap();
    let cdigest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let mut config: Value = serde_json::from_slice(&files[&blob(&cdigest)]).unwrap();
    config["config"]["Cmd"] = serde_json::json!(PAUSE_CMD);
    let config = serde_json::to_vec(&config).unwrap();
    let cdigest = format!("sha256:{}", sha256_hex(&config));
    manifest["config"]["digest"] = cdigest.clone().into();
    manifest["config"]["size"] = config.len().into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mdigest = format!("sha256:{}", sha256_hex(&manifest));
    index["manifests"][0]["digest"] = mdigest.clone().into();
    index["manifests"][0]["size"] = manifest.len().into();
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = PAUSE_IMAGE.into();
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "test".into();
    let index = serde_json::to_vec(&index).unwrap();

    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", &files["oci-layout"]);
    add("index.json", &index);
    add(&blob(&mdigest), &manifest);
    add(&blob(&cdigest), &config);
    add(&blob(&layer), &files[&blob(&layer)]);
    let path = dir.join("pause.oci.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}
