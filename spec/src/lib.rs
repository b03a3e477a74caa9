//! Docker's OCI spec rules (DOCKER-RULES.md), pure.
//!
//! `fill` takes the `config.json` a producer (ctr, nerdctl, CRI, dockerd) wrote and returns the
//! spec dockerd would have produced for the same request, plus the list of rules applied. It never
//! touches the filesystem or the kernel: every fact about the machine comes through [`Host`], so
//! unit tests run with [`testing::FakeHost`] and the shim uses `dockerish_host::RealHost`.

// Nested `match` + `if` reads closer to the rule text than collapsed guards.
#![allow(clippy::collapsible_match, clippy::collapsible_if)]

pub mod annotations;
pub mod cgroup_driver;
pub mod config;
pub mod error;
pub mod mountinfo;
pub mod parse;
pub mod passwd;
mod rules;
pub mod seccomp;
pub mod testing;

pub use config::{AnnotationPolicy, CgroupDriver, DaemonConfig, Origin, Policy, SystemdCgroup, CONFIG_KEYS};
pub use error::{HostError, SpecError};
pub use mountinfo::{parse_mountinfo, MountInfo};
pub use serde_json::Value;

/// What `fill` needs besides the spec.
pub struct Inputs<'a> {
    /// The containerd container (task) ID.
    pub id: &'a str,
    /// The containerd namespace of the shim (`-namespace`).
    pub namespace: &'a str,
    pub config: &'a DaemonConfig,
    /// runc `Options.SystemdCgroup` when the client sent runc options (`None` otherwise): the
    /// first word on the cgroup driver ([`cgroup_driver`]).
    pub runc_systemd_cgroup: Option<bool>,
}

/// The result of `fill`.
#[derive(Debug, Clone)]
pub struct Filled {
    /// The new config.json.
    pub spec: Value,
    /// Every rule applied, in order.
    pub applied: Vec<Applied>,
    /// Who wrote the incoming spec (§0.4).
    pub origin: Origin,
    /// What `fill` did for that producer.
    pub policy: Policy,
    /// runc must get `--systemd-cgroup` (CG-2, [`cgroup_driver`]).
    pub systemd_cgroup: bool,
    /// Things the shim should log: the request runs, but not the way its author may think
    /// (e.g. a systemd-form cgroups path that runc takes as a cgroupfs path).
    pub warnings: Vec<String>,
    /// Side effects the shim must perform before `runc create` and undo after delete.
    pub actions: Vec<HostAction>,
}

/// One rule applied by `fill`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Rule id from DOCKER-RULES §1, e.g. `"CG-1"`.
    pub rule: &'static str,
    /// What changed, for humans and logs.
    pub change: String,
}

/// A side effect the shim owns (the S~ rules).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HostAction {
    /// IPC-4: a private tmpfs at `path` (dir created 0700; flags `nosuid,nodev,noexec`; data
    /// `mode=1777,size=<size>`), bind-mounted by the spec at `/dev/shm`; unmounted and removed
    /// at delete.
    ShmTmpfs { path: String, size: i64 },
}

/// A sibling task of the same containerd namespace (NS-10).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SiblingTask {
    pub id: String,
    /// Init PID (0 if unknown).
    pub pid: i32,
    /// The init process is alive and is the one the bundle recorded (PID reuse guarded).
    pub running: bool,
    /// `io.kubernetes.cri.sandbox-id` of the sibling, if any (cross-pod joins are refused).
    pub sandbox_id: Option<String>,
    /// The sibling's shareable `/dev/shm` source (its IPC-4 tmpfs, or `/dev/shm` for host IPC).
    pub shm_path: Option<String>,
}

/// A host device node (DV-3, DV-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub path: String,
    /// `c`, `b` or `p`.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    /// Permission bits of the host node.
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The facts about the machine the rules need. Keep it narrow: each method names the rules that
/// use it. Implementations must not panic; "unknown" answers are `None`/`false`.
pub trait Host {
    /// Parsed `/proc/self/mountinfo` (MT-7 propagation, MT-9 locked flags, IPC-6 host shm).
    fn mountinfo(&self) -> Result<Vec<MountInfo>, HostError>;
    /// A task of the SAME containerd namespace by exact ID, exact name (`nerdctl/name`,
    /// `io.kubernetes.cri.container-name` within our sandbox, `<prefix>name`), or unique ID
    /// prefix (NS-10). `Ok(None)` = no such container.
    fn sibling_task(&self, name_or_id: &str) -> Result<Option<SiblingTask>, HostError>;
    /// A file inside the container rootfs, symlinks clamped to the rootfs; `None` if absent or not
    /// a regular file; at most 10 MiB + 1 byte is returned (US-1).
    fn rootfs_file(&self, path_in_rootfs: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// `EvalSymlinks` + `lstat` of a host path (DV-3): `Some` for char/block/fifo nodes, `None`
    /// for anything else that exists; `Err` (with the errno) if it cannot be stat'ed.
    fn host_device(&self, path: &str) -> Result<Option<HostDevice>, HostError>;
    /// Every device under a host directory, recursively (DV-3 directory form, DV-6 with `/dev`,
    /// skipping `pts shm fd mqueue .lxc .lxd-mounts .udev`, `console`, fifos for `/dev`).
    fn host_devices(&self, dir: &str) -> Result<Vec<HostDevice>, HostError>;
    /// cgroup v2 unified mode (CG-2, CG-7, NS-6).
    fn cgroup_v2(&self) -> bool;
    /// AppArmor is usable (AA-1: securityfs, parser, module enabled).
    fn apparmor_enabled(&self) -> bool;
    /// The AppArmor profile is loaded (AA-2).
    fn apparmor_profile_loaded(&self, name: &str) -> bool;
    /// A host path exists (SY-1 sysctl keys, NS-7 `/proc/self/ns/time`, INIT-1 lookup, MP-1
    /// thermal paths).
    fn path_exists(&self, host_path: &str) -> bool;
    /// systemd is PID 1 here (`sd_booted`: `/run/systemd/system` is a directory), so runc's
    /// systemd cgroup driver can work (CG-2).
    fn systemd_running(&self) -> bool;
    /// CapEff of this process as `CAP_*` names (CP-2 availability, CP-3 privileged).
    fn own_capabilities(&self) -> Vec<String>;
    /// `runc features` JSON if known (NS-7 gating, MT-8 rro).
    fn runc_features(&self) -> Option<Value>;
    /// Running kernel `(major, minor)` (SC-2 `minKernel`, MT-8).
    fn kernel_version(&self) -> Option<(u32, u32)>;
    /// Go architecture name of the host (`amd64`, `arm64`, ...) for SC-2.
    fn arch(&self) -> String;
    /// `(cpus, mems)` available to this process's cpuset (CG-5), e.g. `("0-1", "0")`.
    fn cpuset_available(&self) -> Option<(String, String)>;
    /// CPUs in this process's affinity mask (CPU-1 range check).
    fn num_cpus(&self) -> usize;
    /// `filepath.EvalSymlinks` of a host path (MT-7).
    fn realpath(&self, host_path: &str) -> Result<String, HostError>;
    /// A small host text file (`/etc/subuid`, `/etc/subgid`, `/etc/passwd` for NS-1, seccomp
    /// profiles under the configured root for SC-1, `/sys/devices/system/cpu/possible` for MP-1).
    fn read_host_file(&self, path: &str) -> Result<Option<String>, HostError>;
    /// This process runs in a non-initial user namespace (SY-1, MT-9).
    fn in_user_namespace(&self) -> bool;
    /// The bundle directory (IPC-4 default shm location).
    fn bundle_dir(&self) -> String;
}

/// Fill `spec` the way dockerd would (see crate docs).
pub fn fill(spec: Value, inputs: &Inputs, host: &dyn Host) -> Result<Filled, SpecError> {
    rules::fill(spec, inputs, host)
}

/// `slice:prefix:name` (ECOSYSTEM §0.6): three `:`-separated fields, the first empty or a slice.
pub fn is_systemd_cgroups_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3 && (parts[0].is_empty() || parts[0].ends_with(".slice"))
}
