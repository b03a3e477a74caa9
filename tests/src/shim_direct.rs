//! Driving a shim binary directly, the way containerd does: `start`, `delete`, `-v`, `-info`.

use std::ffi::CString;
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::cmd::{run_cmd, Out};
use crate::procs;
use crate::{Containerd, Runtime};

/// A bundle directory plus the environment containerd gives a shim.
pub struct DirectShim<'a> {
    pub c: &'a Containerd,
    pub runtime: Runtime,
    pub ns: String,
    pub id: String,
    pub bundle: PathBuf,
    _log: File,
}

/// A minimal OCI spec: enough for `start` (which reads annotations for grouping).
pub fn minimal_spec() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "annotations": {},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
    })
}

impl<'a> DirectShim<'a> {
    pub fn new(c: &'a Containerd, runtime: Runtime) -> Self {
        let id = crate::unique_name("d");
        let bundle = c.dir.join("direct").join(&id);
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&minimal_spec()).unwrap()).unwrap();
        // containerd creates the `log` fifo and keeps it open O_RDWR|O_NONBLOCK.
        let fifo = bundle.join("log");
        let cpath = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o700) }, 0, "mkfifo log");
        let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert!(fd >= 0, "open log fifo");
        let log = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        DirectShim { c, runtime, ns: c.ns.clone(), id, bundle, _log: log }
    }

    /// The shim binary with containerd's environment and cwd = bundle.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.c.runtime_binary(self.runtime));
        cmd.current_dir(&self.bundle)
            .env_clear()
            .env("PATH", self.c.daemon_path())
            .env("TTRPC_ADDRESS", &self.c.ttrpc)
            .env("GRPC_ADDRESS", &self.c.grpc)
            .env("NAMESPACE", &self.ns)
            .env("MAX_SHIM_VERSION", "2")
            .env("GOMAXPROCS", "2");
        cmd
    }

    fn common_args(&self) -> Vec<String> {
        vec![
            "-namespace".into(),
            self.ns.clone(),
            "-address".into(),
            self.c.grpc.clone(),
            "-publish-binary".into(),
            self.c.build.containerd().display().to_string(),
            "-id".into(),
            self.id.clone(),
        ]
    }

    /// `shim … -id ID start` with `stdin` (empty = nothing).
    pub fn start(&self, stdin: &[u8]) -> Out {
        let mut cmd = self.command();
        cmd.args(self.common_args()).arg("start");
        run_cmd(&mut cmd, Some(stdin), Duration::from_secs(30))
    }

    /// `start` the way this harness's containerd version does it: 1.x writes the runtime
    /// options (an `Any`, or nothing) on stdin; 2.x wraps them in `BootstrapParams`.
    pub fn start_as_containerd(&self, options: Option<&crate::pb::Msg>) -> Out {
        if self.c.build.version.is_2x() {
            self.start(&self.bootstrap_params(options.map(std::slice::from_ref).unwrap_or_default()))
        } else {
            self.start(options.map(|m| m.0.as_slice()).unwrap_or_default())
        }
    }

    /// Reads `start`'s reply as this harness's containerd version would: 1.x takes stdout
    /// (trimmed) as the address and talks task API v2; 2.x decodes a `BootstrapResult`.
    pub fn start_reply(&self, o: &Out) -> Result<StartReply, String> {
        if !self.c.build.version.is_2x() {
            return Ok(StartReply { address: o.stdout.trim().to_string(), version: 2, protocol: "ttrpc".into() });
        }
        let r = crate::pb::decode(&o.stdout_bytes).map_err(|e| format!("not a BootstrapResult ({e}): {:?}", o.stdout))?;
        Ok(StartReply {
            version: r.varint(1).unwrap_or(0) as u32,
            address: r.string(2).unwrap_or_default(),
            protocol: r.string(3).unwrap_or_default(),
        })
    }

    /// `shim … -id ID -bundle B delete` (no stdin, like containerd).
    pub fn delete(&self) -> Out {
        let mut cmd = self.command();
        cmd.args(self.common_args()).arg("-bundle").arg(&self.bundle).arg("delete");
        run_cmd(&mut cmd, None, Duration::from_secs(30))
    }

    /// `shim -v`.
    pub fn version(&self) -> Out {
        let mut cmd = self.command();
        cmd.arg("-v");
        run_cmd(&mut cmd, None, Duration::from_secs(30))
    }

    /// `shim -info` with runtime options on stdin.
    pub fn info(&self, stdin: &[u8]) -> Out {
        let mut cmd = self.command();
        cmd.arg("-info");
        run_cmd(&mut cmd, Some(stdin), Duration::from_secs(30))
    }

    /// The `address` file the shim wrote into the bundle.
    pub fn address_file(&self) -> Option<String> {
        std::fs::read_to_string(self.bundle.join("address")).ok().map(|s| s.trim().to_string())
    }

    /// The socket path containerd's convention gives this shim.
    pub fn expected_socket(&self) -> PathBuf {
        procs::shim_socket(&self.c.grpc, &self.ns, &self.id)
    }

    /// Running daemon processes of this shim (`-id ID`).
    pub fn daemons(&self) -> Vec<procs::Proc> {
        self.c.shims().into_iter().filter(|p| p.arg_after("-id") == Some(self.id.as_str())).collect()
    }

    /// BootstrapParams as containerd 2.3 sends them (identity fields matching the flags; the
    /// containerd version as 2.3.4 writes it, `v2.3.4`; the default socket directory).
    pub fn bootstrap_params(&self, extensions: &[crate::pb::Msg]) -> Vec<u8> {
        let version = if self.c.build.version.is_2x() { format!("v{}", self.c.build.version.label()) } else { "v2.3.4".into() };
        let mut m = crate::pb::Msg::new()
            .str(1, &self.id)
            .str(2, &self.ns)
            .int(3, -4) // LOG_LEVEL_DEBUG
            .str(4, &version)
            .str(5, &self.c.ttrpc)
            .str(6, &self.c.grpc)
            .str(7, &self.c.build.containerd().display().to_string())
            .str(9, "/run/containerd/s");
        for e in extensions {
            // Extension{value = 1: Any}
            m = m.msg(8, &crate::pb::Msg::new().msg(1, e));
        }
        m.into_bytes()
    }
}

/// What `start` told containerd: where the shim listens and which task API it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReply {
    pub address: String,
    /// Task API version: 2 (`containerd.task.v2.Task`) or 3.
    pub version: u32,
    pub protocol: String,
}

impl Drop for DirectShim<'_> {
    fn drop(&mut self) {
        for p in self.daemons() {
            procs::kill(p.pid, libc::SIGKILL);
        }
        crate::wait_until(Duration::from_secs(5), || self.daemons().is_empty());
        if let Some(a) = self.address_file() {
            let p = a.strip_prefix("unix://").unwrap_or(&a).to_string();
            if p.starts_with("/run/containerd/s/") {
                let _ = std::fs::remove_file(p);
            }
        }
        let _ = std::fs::remove_file(self.expected_socket());
        // A Go shim at debug level (2.3 passes the level in BootstrapParams) also listens on a
        // debug socket; killed, it cannot remove it.
        let _ = std::fs::remove_file(procs::shim_debug_socket(&self.c.grpc, &self.ns, &self.id));
        let _ = Command::new("runc")
            .arg("--root")
            .arg(PathBuf::from("/run/containerd/runc").join(&self.ns))
            .args(["delete", "--force", &self.id])
            .output();
        procs::unmount_all_under(&self.bundle);
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}
