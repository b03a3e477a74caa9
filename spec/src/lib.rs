//! Docker's OCI spec rules (docs/RULES.md), pure.
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
pub mod oci;
pub mod parse;
pub mod passwd;
mod rules;
pub mod seccomp;
pub mod testing;

pub use config::{AnnotationGate, AnnotationPolicy, CgroupDriver, DaemonConfig, Origin, Policy, SystemdCgroup, CONFIG_KEYS};
pub use error::{HostError, SpecError};
pub use mountinfo::{parse_mountinfo, MountInfo};
pub use rules::{cgroup_claims, cgroup_leaf, exec_user_chosen, exec_user_groups, NAMESPACE_SEPARATOR, UNQUALIFIED_NAMESPACE};
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
    /// Rule id (docs/RULES.md), e.g. `CG-1`.
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
    /// MT-13: a file Docker writes for the container (`hostname`, `hosts`, `resolv.conf`), at
    /// `path` in the bundle's [`ETC_FILES_DIR`], mode 0644, owned by the container's root
    /// (`uid`/`gid` on the host), bind-mounted by the spec; removed at delete.
    EtcFile { path: String, content: String, uid: u32, gid: u32 },
    /// A key only one container of `scope` may hold ([`claim_class`]: NAME-1 a container name,
    /// CG-1 a cgroup path or systemd unit), claimed race-free before `runc create` (two creates
    /// racing for it cannot both win) and released at delete.
    Claim { scope: ClaimScope, class: String, key: String },
}

/// Where a [`HostAction::Claim`] must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimScope {
    /// The containerd namespace of the shim (container names).
    Namespace,
    /// The whole host (e.g. cgroup paths).
    Host,
}

/// The classes of [`HostAction::Claim`] (directory names of the host's claims).
pub mod claim_class {
    /// NAME-1: a container name, per containerd namespace.
    pub const NAME: &str = "name";
    /// CG-1: a cgroupfs path (cleaned, absolute), host-wide.
    pub const CGROUP: &str = "cgroup";
    /// CG-1: a systemd unit runc creates for a container (`prefix-name.scope`), host-wide.
    pub const SYSTEMD_UNIT: &str = "systemd-unit";
}

/// CG-1: the text for a cgroup another container holds (`what`: `cgroup "/docker/x"` or
/// `systemd unit "docker-x.scope"`; the holder's id and namespace).
pub fn cgroup_conflict(what: &str, holder_id: &str, holder_namespace: &str) -> String {
    format!(
        "{what} is already in use by container {holder_id:?} of namespace {holder_namespace:?}: containers never share a cgroup (CG-1); give this container another id, cgroup-parent or cgroups path"
    )
}

/// Docker's text for a name in use (NAME-1, moby `daemon/names.go`).
pub fn name_conflict(name: &str, holder_id: &str) -> String {
    format!("Conflict. The container name \"/{name}\" is already in use by container \"{holder_id}\". You have to remove (or rename) that container to be able to reuse that name.")
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
    /// The sibling's hostname: its spec's `hostname`, else its `HOSTNAME` (GEN-3 `container:`).
    pub hostname: Option<String>,
    /// The sibling's `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` bind sources, by
    /// destination (MT-13: a `network=container:` joiner shares them).
    pub etc_files: Vec<(String, String)>,
}

impl SiblingTask {
    /// `/proc/<pid>/ns/<name>` of the sibling's init for an OCI namespace type (NS-2..4).
    pub fn namespace_path(&self, kind: &str) -> String {
        format!("/proc/{}/ns/{}", self.pid, oci::ns::proc_name(kind))
    }
}

/// The real-time budget of the cgroup v1 `cpu` parent a container's cgroup is created in
/// (CG-5 `cpu-rt-runtime`): the kernel refuses a child whose runtime/period ratio does not fit
/// in what the parent's ratio leaves after its other children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtBudget {
    /// The parent's `cpu.rt_period_us` and `cpu.rt_runtime_us` (`-1` = unlimited).
    pub period: i64,
    pub runtime: i64,
    /// `(period, runtime)` of the parent's other children.
    pub children: Vec<(i64, i64)>,
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

/// A host file the rules read, by name: the [`Host`] maps it to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostFile {
    /// `/etc/passwd` (NS-1 `userns-remap` user lookup).
    Passwd,
    /// `/etc/group` (NS-1).
    Group,
    /// `/etc/subuid` (NS-1).
    Subuid,
    /// `/etc/subgid` (NS-1).
    Subgid,
    /// `/etc/hosts` (MT-13: host network).
    Hosts,
    /// `/etc/resolv.conf` (MT-13).
    ResolvConf,
    /// systemd-resolved's upstream list, `/run/systemd/resolve/resolv.conf` (MT-13: used when
    /// `/etc/resolv.conf` only names the local stub resolver).
    SystemdResolvConf,
}

/// The facts about the machine the rules need, asked by name: the rules never build a host
/// path themselves (only paths the user or the daemon config named reach the host as paths).
/// Keep it narrow: each method names the rules that use it. Implementations must not panic;
/// "unknown" answers are `None`/`false`.
pub trait Host {
    /// Parsed `/proc/self/mountinfo` (MT-7 propagation, MT-9 locked flags, IPC-6 host shm).
    fn mountinfo(&self) -> Result<Vec<MountInfo>, HostError>;
    /// A task of the SAME containerd namespace by exact ID, exact name (`nerdctl/name`,
    /// `io.kubernetes.cri.container-name` within our sandbox, `<prefix>name`), or unique ID
    /// prefix (NS-10). `Ok(None)` = no such container.
    fn sibling_task(&self, name_or_id: &str) -> Result<Option<SiblingTask>, HostError>;
    /// IDs of the other created tasks (not those still in their own Create) of the same
    /// containerd namespace whose ID or name (as in `sibling_task`) is exactly `name` (NAME-1).
    fn containers_named(&self, name: &str) -> Result<Vec<String>, HostError>;
    /// A file inside the container rootfs, symlinks clamped to the rootfs; `None` if absent; an
    /// error naming the file for anything that is not a regular file (never opened for reading:
    /// a device node or a FIFO of the image must not reach a driver or block); at most
    /// 10 MiB + 1 byte is returned (US-1).
    fn rootfs_file(&self, path_in_rootfs: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// `EvalSymlinks` + `lstat` of a host path the user named (DV-3): `Some` for char/block/fifo
    /// nodes, `None` for anything else that exists; `Err` (with the errno) if it cannot be stat'ed.
    fn host_device(&self, path: &str) -> Result<Option<HostDevice>, HostError>;
    /// Every device under a host directory, recursively (DV-3 directory form, DV-6 with `/dev`,
    /// skipping `pts shm fd mqueue .lxc .lxd-mounts .udev`, `console`, fifos for `/dev`).
    fn host_devices(&self, dir: &str) -> Result<Vec<HostDevice>, HostError>;
    /// cgroup v2 unified mode (CG-2, CG-7, NS-6).
    fn cgroup_v2(&self) -> bool;
    /// The host was booted with systemd (`sd_booted`: CG-2's automatic driver choice).
    fn systemd_running(&self) -> bool;
    /// AppArmor is usable (AA-1: securityfs, parser, module enabled).
    fn apparmor_enabled(&self) -> bool;
    /// The AppArmor profile is loaded (AA-2).
    fn apparmor_profile_loaded(&self, name: &str) -> bool;
    /// The sysctl (dotted name, e.g. `net.ipv4.ping_group_range`) exists on the host (SY-1).
    fn sysctl_exists(&self, name: &str) -> bool;
    /// The kernel can set a block I/O weight: `blkio.weight` on cgroup v1, the `io` controller
    /// on v2 (CG-7 discards `blkio-weight` otherwise).
    fn blkio_weight_supported(&self) -> bool;
    /// The cgroup v1 `cpu` controller has the real-time scheduler files (CG-5 `cpu-rt-*`).
    fn cpu_rt_supported(&self) -> bool;
    /// The real-time budget of the parent of the cgroupfs path `cgroups_path` (a parent runc
    /// still has to create has none); `None` when unknown (CG-5).
    fn cpu_rt_budget(&self, cgroups_path: &str) -> Result<Option<RtBudget>, HostError>;
    /// The kernel has time namespaces (NS-7).
    fn time_namespace(&self) -> bool;
    /// The first of `dirs/<name>` that is an executable file, else `<name>` looked up on the
    /// daemon's `$PATH` (INIT-1: Docker's `lookupBinPath`).
    fn lookup_executable(&self, name: &str, dirs: &[&str]) -> Option<String>;
    /// PIDs in the cgroup `cgroups_path` (a cgroupfs `linux.cgroupsPath`), empty if it does not
    /// exist (CG-1 guard).
    fn cgroup_processes(&self, cgroups_path: &str) -> Result<Vec<i32>, HostError>;
    /// The running init of this bundle, if a previous Create left one (CG-1 guard on dry-run).
    fn own_init_pid(&self) -> Option<i32>;
    /// CPUs `N` of the host's possible CPUs whose `thermal_throttle` directory exists (MP-1).
    fn thermal_throttle_cpus(&self) -> Result<Vec<u32>, HostError>;
    /// The host's name (`uname -n`; GEN-3 with host networking).
    fn hostname(&self) -> String;
    /// A small host file, by name (NS-1, MT-13).
    fn host_file(&self, file: HostFile) -> Result<Option<String>, HostError>;
    /// A file the daemon configuration or an annotation named (SC-1 seccomp profiles).
    fn read_config_file(&self, path: &str) -> Result<Option<String>, HostError>;
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
    /// `filepath.EvalSymlinks` of a host path the user named (MT-7 bind sources).
    fn realpath(&self, host_path: &str) -> Result<String, HostError>;
    /// This process runs in a non-initial user namespace (SY-1, MT-9).
    fn in_user_namespace(&self) -> bool;
    /// The bundle directory (IPC-4 default shm location).
    fn bundle_dir(&self) -> String;
}

/// MT-13: the files Docker writes for a container: (destination in the container, file name in
/// [`ETC_FILES_DIR`]).
pub const ETC_FILES: &[(&str, &str)] = rules::ETC_FILES;

/// MT-13: the bundle subdirectory the files are written in (mode 0711: they are 0644 so that
/// every user of the container can read them, unlike the shim's private files in the bundle).
pub const ETC_FILES_DIR: &str = rules::ETC_FILES_DIR;

/// Every file of this crate that implements Docker rules, with the rule ids it implements
/// (paths under `spec/src/`): the rule groups in application order, then the grammars and
/// data. Each file lists its ids in its header and declares them in an `IDS` table; a unit test
/// checks the files against the table, and `tests/tests/docs.rs` checks `docs/RULES.md`.
pub const RULE_FILES: &[(&str, &[&str])] = &[
    rules::GROUPS[0],
    rules::GROUPS[1],
    rules::GROUPS[2],
    rules::GROUPS[3],
    rules::GROUPS[4],
    rules::GROUPS[5],
    rules::GROUPS[6],
    rules::GROUPS[7],
    rules::GROUPS[8],
    rules::GROUPS[9],
    ("annotations/mod.rs", annotations::IDS),
    ("config.rs", config::IDS),
    ("parse/mod.rs", parse::IDS),
    ("parse/limits.rs", parse::limits::IDS),
    ("parse/devices.rs", parse::devices::IDS),
    ("parse/mounts.rs", parse::mounts::IDS),
    ("parse/network.rs", parse::network::IDS),
    ("parse/security.rs", parse::security::IDS),
    ("passwd.rs", passwd::IDS),
    ("mountinfo.rs", mountinfo::IDS),
    ("seccomp.rs", seccomp::IDS),
];

/// Fill `spec` the way dockerd would (see crate docs).
pub fn fill(spec: Value, inputs: &Inputs, host: &dyn Host) -> Result<Filled, SpecError> {
    rules::fill(spec, inputs, host)
}

/// `slice:prefix:name` (ECOSYSTEM §0.6): three `:`-separated fields, the first empty or a slice.
pub fn is_systemd_cgroups_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3 && (parts[0].is_empty() || parts[0].ends_with(".slice"))
}

#[cfg(test)]
mod tests {
    /// A string literal that is a rule id (`NS-10`, `NAME-1`).
    fn is_id(lit: &str) -> bool {
        lit.split_once('-').is_some_and(|(a, b)| !a.is_empty() && a.bytes().all(|c| c.is_ascii_uppercase()) && !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
    }

    fn code_of(path: &std::path::Path) -> String {
        let text = std::fs::read_to_string(path).expect("source file");
        text.split("\n#[cfg(test)]").next().unwrap_or(&text).to_string()
    }

    /// Each file in `RULE_FILES` lists its ids in its header and names each in its code; every
    /// rule id written as a string literal anywhere in the crate (a `note`, an error's `rule`)
    /// is declared by its file. The table is what docs/RULES.md is checked against.
    #[test]
    fn rule_files_declare_exactly_the_ids_they_use() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for (file, ids) in super::RULE_FILES {
            let text = std::fs::read_to_string(src.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let header = text.lines().take_while(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
            let code = code_of(&src.join(file));
            for id in *ids {
                assert!(header.contains(id), "{file}: header does not list {id}");
                assert!(code.contains(id), "{file} declares {id} but never names it");
            }
        }
        let mut stack = vec![src.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
                let declared: &[&str] = super::RULE_FILES.iter().find(|(f, _)| *f == rel).map_or(&[], |(_, ids)| ids);
                for lit in code_of(&p).split('"').skip(1).step_by(2).filter(|l| is_id(l)) {
                    assert!(declared.contains(&lit), "{rel} uses rule id {lit} but does not declare it (RULE_FILES)");
                }
            }
        }
    }
}
