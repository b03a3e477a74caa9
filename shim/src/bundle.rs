//! The bundle directory containerd gives a container, and everything the shim keeps in it:
//! the layout (one place for every file name), the Create transaction (mount the rootfs, read
//! the original spec once, fill it, record what `shim delete` needs), and the one undo that
//! Delete, a failed Create and `shim delete` share.
//!
//! All of it is blocking file-system work: the daemon runs it on the blocking pool.

use std::path::{Path, PathBuf};

use containerd_shim_protos::types::mount::Mount;
use dockerish_host::{FeaturesRunner, HostError};
use dockerish_proto::ShimOptions;
use serde::{Deserialize, Serialize};

use crate::rules::{Plan, ProcessDelta, RuncChoice};

/// Written at Create: how to reach runc again without the options (`shim delete`).
pub const STATE_FILE: &str = "dockerish-state.json";
/// runc's `--pid-file` for the init: `shim delete` and sibling lookups (NS-10) read it after
/// the daemon is gone.
pub const INIT_PID: &str = "init.pid";
/// runc's `--log` (JSON lines).
pub const RUNC_LOG: &str = "log.json";
/// The socket address `start` chose (containerd reads it too, on restart).
pub const ADDRESS: &str = "address";
pub const ROOTFS: &str = "rootfs";

/// A bundle error: the caller's (a bad spec, annotation, config or option) or the system's.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    System(String),
}

impl From<HostError> for BundleError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Io { .. } => BundleError::System(e.to_string()),
            _ => BundleError::InvalidArgument(e.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub runc_binary: String,
    pub runc_root: PathBuf,
    pub systemd_cgroup: bool,
    /// The Delete RPC's `runc delete` succeeded: runc has nothing left of this container, so
    /// `shim delete` (which containerd 1.6/1.7 run after every shim disconnect) need not run
    /// runc again. Absent (a daemon killed before Delete, a state from an older shim) means
    /// runc may still hold the container.
    #[serde(default)]
    pub runc_deleted: bool,
}

/// What a Create needs from the caller.
pub struct CreateParams<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub rootfs: &'a [Mount],
    pub options: &'a ShimOptions,
    /// Runs `runc features` for the rules (through the daemon's reaper).
    pub features: FeaturesRunner,
}

/// The outcome of a successful Create transaction.
pub struct Prepared {
    pub runc: RuncChoice,
    pub delta: ProcessDelta,
    pub exec_users: dockerish_host::ExecUsers,
    /// Start may open runc's exec FIFO itself instead of running `runc start` (no poststart hooks).
    pub start_via_fifo: bool,
    pub kill_all_on_exit: bool,
}

#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    pub fn new(dir: impl Into<PathBuf>) -> Bundle {
        Bundle { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS)
    }

    /// Create: mounts the rootfs, fills the spec, records the state. On error, whatever it did
    /// is undone before it returns.
    pub fn create(&self, p: CreateParams<'_>) -> Result<Prepared, BundleError> {
        let plan = Plan::load(p.options)?;
        let mut mounted = false;
        let result = (|| {
            if !p.rootfs.is_empty() {
                let rootfs = self.rootfs();
                std::fs::create_dir_all(&rootfs).map_err(|e| BundleError::System(format!("create {}: {e}", rootfs.display())))?;
                mounted = true;
                crate::mount::mount_rootfs(p.rootfs, &rootfs).map_err(|e| BundleError::System(e.to_string()))?;
            }
            let original = dockerish_host::read_spec(&self.dir)?;
            let filled = plan.fill(&self.dir, &original, p.id, p.namespace, p.features)?;
            let mut runc = plan.runc(p.namespace);
            runc.systemd_cgroup = filled.systemd_cgroup;
            self.save_state(&SavedState { runc_binary: runc.binary.clone(), runc_root: runc.root.clone(), systemd_cgroup: runc.systemd_cgroup, runc_deleted: false })?;
            crate::runc::reset_log(&self.path(RUNC_LOG)).map_err(|e| BundleError::System(format!("create {}: {e}", self.path(RUNC_LOG).display())))?;
            Ok(Prepared { runc, delta: filled.delta, exec_users: filled.exec_users, start_via_fifo: !filled.poststart_hooks, kill_all_on_exit: !filled.own_pid_namespace })
        })();
        if result.is_err() {
            if let Err(e) = self.undo_actions() {
                log::warn!("undo host actions of {}: {e}", self.dir.display());
            }
            if mounted {
                self.unmount_rootfs();
            }
        }
        result
    }

    /// Written to a temporary name and renamed: a daemon killed mid-write must not leave a
    /// state `shim delete` cannot read (it would fall back to the default runc).
    fn save_state(&self, s: &SavedState) -> Result<(), BundleError> {
        let path = self.path(STATE_FILE);
        let json = serde_json::to_vec(s).map_err(|e| BundleError::System(e.to_string()))?;
        crate::fsutil::replace_private(&path, &json).map_err(|e| BundleError::System(format!("write {}: {e}", path.display())))
    }

    /// Records that runc removed the container (the Delete RPC's `runc delete` succeeded or
    /// found nothing). Blocking.
    pub fn mark_runc_deleted(&self) -> Result<(), BundleError> {
        match self.saved_state() {
            Some(s) => self.save_state(&SavedState { runc_deleted: true, ..s }),
            None => Ok(()),
        }
    }

    /// The runc a previous Create chose, if it got that far.
    pub fn saved_state(&self) -> Option<SavedState> {
        serde_json::from_slice(&std::fs::read(self.path(STATE_FILE)).ok()?).ok()
    }

    fn undo_actions(&self) -> Result<(), HostError> {
        dockerish_host::undo_actions_from_bundle(&self.dir)
    }

    fn unmount_rootfs(&self) {
        if let Err(e) = dockerish_host::unmount_all(&self.rootfs(), false) {
            log::warn!("{e}");
        }
    }

    /// Undoes a Create: the host actions and the rootfs mount. Idempotent (Delete, then
    /// `shim delete`); every step runs even if one fails, and the first error is returned.
    pub fn undo(&self) -> Result<(), BundleError> {
        let actions = self.undo_actions();
        let rootfs = dockerish_host::unmount_all(&self.rootfs(), false);
        actions?;
        rootfs?;
        Ok(())
    }

    pub fn init_pid(&self) -> Result<u32, BundleError> {
        let path = self.path(INIT_PID);
        let s = std::fs::read_to_string(&path).map_err(|e| BundleError::System(format!("read {}: {e}", path.display())))?;
        s.trim().parse().map_err(|_| BundleError::System(format!("{}: not a pid: {s:?}", path.display())))
    }

    /// runc writes the pid file 0644; everything the shim leaves in the bundle is owner-only.
    pub fn restrict_init_pid(&self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(self.path(INIT_PID), std::fs::Permissions::from_mode(0o600));
    }

    /// The socket address `start` recorded.
    pub fn address(&self) -> Option<String> {
        std::fs::read_to_string(self.path(ADDRESS)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    pub fn write_address(&self, address: &str) -> std::io::Result<()> {
        crate::fsutil::replace_private(&self.path(ADDRESS), address.as_bytes())
    }

    /// The grouping id: containers of one pod (or an explicit group) share a daemon, as with
    /// the Go runc shim.
    /// Reads only the annotations: `shim start` and `shim delete` call this on every container,
    /// and building the whole spec as a `Value` (Docker's seccomp profile makes a filled spec
    /// ~1,500 values) cost more instructions than everything else `shim delete` does.
    pub fn group(&self, id: &str) -> String {
        #[derive(Deserialize)]
        struct Annotations {
            #[serde(default)]
            annotations: Option<std::collections::HashMap<String, serde_json::Value>>,
        }
        let Ok(bytes) = std::fs::read(self.path(dockerish_host::SPEC)) else { return id.to_string() };
        let Ok(Annotations { annotations: Some(ann) }) = serde_json::from_slice::<Annotations>(&bytes) else { return id.to_string() };
        for key in ["io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id"] {
            if let Some(g) = ann.get(key).and_then(|v| v.as_str()) {
                if !g.is_empty() {
                    return g.to_string();
                }
            }
        }
        id.to_string()
    }

    /// A file of the shim's own (exec process specs, update resources), owner-only.
    pub fn write_private(&self, name: &str, data: &[u8]) -> Result<PathBuf, BundleError> {
        let path = self.path(name);
        crate::fsutil::write_private(&path, data).map_err(|e| BundleError::System(format!("write {}: {e}", path.display())))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_prefers_explicit_group_then_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let b = Bundle::new(d.path());
        std::fs::write(d.path().join("config.json"), r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb"}}"#).unwrap();
        assert_eq!(b.group("c"), "sb");
        std::fs::write(d.path().join("config.json"), r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb","io.containerd.runc.v2.group":"g"}}"#).unwrap();
        assert_eq!(b.group("c"), "g");
        // Other fields are skipped, not required; a non-string annotation does not hide the others.
        std::fs::write(d.path().join("config.json"), r#"{"ociVersion":"1.0.2","linux":{"seccomp":{"syscalls":[{"names":["read"]}]}},"annotations":{"x":{"y":1},"io.kubernetes.cri.sandbox-id":"sb"}}"#).unwrap();
        assert_eq!(b.group("c"), "sb");
        std::fs::write(d.path().join("config.json"), r#"{"annotations":null}"#).unwrap();
        assert_eq!(b.group("c"), "c");
        std::fs::write(d.path().join("config.json"), r#"{"annotations":{"io.containerd.runc.v2.group":""}}"#).unwrap();
        assert_eq!(b.group("c"), "c");
        std::fs::write(d.path().join("config.json"), "not json").unwrap();
        assert_eq!(b.group("c"), "c");
    }

    #[test]
    fn create_errors_are_the_callers_or_the_systems_and_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        let b = Bundle::new(d.path());
        let params = |opts| CreateParams { id: "c", namespace: "default", rootfs: &[], options: opts, features: Box::new(|_: &Path| None) };
        // No config.json: the system's (a read error).
        let opts = ShimOptions::default();
        assert!(matches!(b.create(params(&opts)), Err(BundleError::System(_))));
        // A spec that is not JSON, a config file that does not parse: the caller's.
        std::fs::write(d.path().join("config.json"), "{").unwrap();
        let e = b.create(params(&opts)).err().unwrap();
        assert!(matches!(e, BundleError::InvalidArgument(ref m) if m.contains("config.json")), "{e}");
        let cfg = d.path().join("bad.toml");
        std::fs::write(&cfg, "no-such-key = 1\n").unwrap();
        let opts = ShimOptions { config_path: Some(cfg.display().to_string()), ..Default::default() };
        assert!(matches!(b.create(params(&opts)), Err(BundleError::InvalidArgument(_))));
        assert!(b.saved_state().is_none(), "no state for a failed create");
        b.undo().unwrap();
    }

    #[test]
    fn address_and_state_files() {
        let d = tempfile::tempdir().unwrap();
        let b = Bundle::new(d.path());
        assert_eq!(b.address(), None);
        b.write_address("unix:///run/x/s").unwrap();
        assert_eq!(b.address().as_deref(), Some("unix:///run/x/s"));
        let s = SavedState { runc_binary: "runc".into(), runc_root: "/run/r/ns".into(), systemd_cgroup: true, runc_deleted: false };
        b.save_state(&s).unwrap();
        assert_eq!(b.saved_state(), Some(s.clone()));
        b.mark_runc_deleted().unwrap();
        assert_eq!(b.saved_state(), Some(SavedState { runc_deleted: true, ..s }));
        // A state written by an earlier shim (no runc_deleted): runc may still hold the container.
        std::fs::write(b.path(STATE_FILE), r#"{"runc_binary":"runc","runc_root":"/r","systemd_cgroup":false}"#).unwrap();
        assert_eq!(b.saved_state().map(|s| s.runc_deleted), Some(false));
        std::fs::write(b.path(INIT_PID), "42\n").unwrap();
        assert_eq!(b.init_pid().unwrap(), 42);
    }
}
