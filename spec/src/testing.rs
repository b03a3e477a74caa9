//! A configurable fake [`Host`] for unit tests (here and in other crates): every fact is a
//! plain field, defaults describe a cgroup v1 machine like this project's (x86_64, no systemd,
//! no AppArmor, runc 1.1 without the time namespace, kernel 6.1, every cgroup v1 file present).

use crate::{Host, HostDevice, HostError, HostFile, MountInfo, RtBudget, SiblingTask, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Fake host; build with `FakeHost::default()` and set fields.
#[derive(Debug, Clone)]
pub struct FakeHost {
    pub mountinfo: Vec<MountInfo>,
    pub siblings: Vec<SiblingTask>,
    /// (name, id) of other containers holding a name (NAME-1)
    pub named: Vec<(String, String)>,
    /// path inside rootfs → content
    pub rootfs: BTreeMap<String, Vec<u8>>,
    pub devices: Vec<HostDevice>,
    pub cgroup_v2: bool,
    pub systemd_running: bool,
    pub apparmor: bool,
    pub apparmor_loaded: BTreeSet<String>,
    /// Host paths that exist but are not devices (DV-3 errors) and executables (INIT-1).
    pub paths: BTreeSet<String>,
    /// Sysctls (dotted names) that exist on the host (SY-1).
    pub sysctls: BTreeSet<String>,
    pub cpu_rt: bool,
    pub rt_budget: Option<RtBudget>,
    pub blkio_weight: bool,
    pub time_ns: bool,
    /// cgroupfs path → PIDs in it (CG-1 guard)
    pub cgroup_procs: BTreeMap<String, Vec<i32>>,
    pub own_init_pid: Option<i32>,
    pub thermal_cpus: Vec<u32>,
    pub host_files: BTreeMap<HostFile, String>,
    /// Files named by the config or annotations (seccomp profiles).
    pub config_files: BTreeMap<String, String>,
    pub caps: Vec<String>,
    pub runc_features: Option<Value>,
    pub kernel: Option<(u32, u32)>,
    pub arch: String,
    pub cpuset: Option<(String, String)>,
    pub num_cpus: usize,
    /// host path → resolved path (EvalSymlinks); identity when absent
    pub links: BTreeMap<String, String>,
    pub in_userns: bool,
    pub bundle: String,
    pub hostname: String,
}

/// The `$PATH` the fake host's daemon runs with (INIT-1 lookups).
pub const FAKE_PATH: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            mountinfo: crate::parse_mountinfo(
                "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                 23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw\n\
                 24 23 0:20 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw\n\
                 30 22 0:40 / /srv/private rw,nodev - tmpfs tmpfs rw\n\
                 31 22 0:41 / /srv/slave rw master:9 - tmpfs tmpfs rw\n",
            )
            .unwrap_or_default(),
            siblings: vec![],
            named: vec![],
            rootfs: BTreeMap::new(),
            devices: vec![],
            cgroup_v2: false,
            systemd_running: false,
            apparmor: false,
            apparmor_loaded: BTreeSet::new(),
            paths: BTreeSet::new(),
            sysctls: ["net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"].iter().map(|s| s.to_string()).collect(),
            cpu_rt: true,
            rt_budget: None,
            blkio_weight: true,
            time_ns: true,
            cgroup_procs: BTreeMap::new(),
            own_init_pid: None,
            thermal_cpus: vec![],
            host_files: BTreeMap::new(),
            config_files: BTreeMap::new(),
            caps: crate::parse::ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect(),
            runc_features: Some(serde_json::json!({
                "linux": {"namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]},
                "mountOptions": ["bind", "rbind", "ro", "rro", "rw"]
            })),
            kernel: Some((6, 1)),
            arch: "amd64".into(),
            cpuset: Some(("0-1".into(), "0".into())),
            num_cpus: 2,
            links: BTreeMap::new(),
            in_userns: false,
            bundle: "/run/containerd/io.containerd.runtime.v2.task/default/test".into(),
            hostname: "fakehost".into(),
        }
    }
}

impl FakeHost {
    /// A char device entry for `devices`.
    pub fn chardev(path: &str, major: i64, minor: i64) -> HostDevice {
        HostDevice { path: path.into(), kind: 'c', major, minor, file_mode: 0o666, uid: 0, gid: 0 }
    }
}

impl Host for FakeHost {
    fn mountinfo(&self) -> Result<Vec<MountInfo>, HostError> {
        Ok(self.mountinfo.clone())
    }
    fn sibling_task(&self, name_or_id: &str) -> Result<Option<SiblingTask>, HostError> {
        if let Some(t) = self.siblings.iter().find(|t| t.id == name_or_id) {
            return Ok(Some(t.clone()));
        }
        let pre: Vec<&SiblingTask> = self.siblings.iter().filter(|t| t.id.starts_with(name_or_id)).collect();
        match pre.len() {
            0 => Ok(None),
            1 => Ok(Some(pre[0].clone())),
            _ => Err(HostError::AmbiguousPrefix(name_or_id.into())),
        }
    }
    fn containers_named(&self, name: &str) -> Result<Vec<String>, HostError> {
        let by_id = self.siblings.iter().filter(|t| t.id == name).map(|t| t.id.clone());
        Ok(by_id.chain(self.named.iter().filter(|(n, _)| n == name).map(|(_, id)| id.clone())).collect())
    }
    fn rootfs_file(&self, p: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.rootfs.get(p).cloned())
    }
    fn host_device(&self, path: &str) -> Result<Option<HostDevice>, HostError> {
        if let Some(d) = self.devices.iter().find(|d| d.path == path) {
            return Ok(Some(d.clone()));
        }
        if self.devices.iter().any(|d| d.path.starts_with(&format!("{path}/"))) || self.paths.contains(path) {
            return Ok(None);
        }
        Err(HostError::io("lstat", path, std::io::Error::from_raw_os_error(2)))
    }
    fn host_devices(&self, dir: &str) -> Result<Vec<HostDevice>, HostError> {
        Ok(self.devices.iter().filter(|d| d.path.starts_with(&format!("{dir}/"))).cloned().collect())
    }
    fn cgroup_v2(&self) -> bool {
        self.cgroup_v2
    }
    fn systemd_running(&self) -> bool {
        self.systemd_running
    }
    fn apparmor_enabled(&self) -> bool {
        self.apparmor
    }
    fn apparmor_profile_loaded(&self, name: &str) -> bool {
        self.apparmor_loaded.contains(name)
    }
    fn sysctl_exists(&self, name: &str) -> bool {
        self.sysctls.contains(name)
    }
    fn cpu_rt_supported(&self) -> bool {
        self.cpu_rt
    }
    fn cpu_rt_budget(&self, _cgroups_path: &str) -> Result<Option<RtBudget>, HostError> {
        Ok(self.rt_budget.clone())
    }
    fn blkio_weight_supported(&self) -> bool {
        self.blkio_weight
    }
    fn time_namespace(&self) -> bool {
        self.time_ns
    }
    fn lookup_executable(&self, name: &str, dirs: &[&str]) -> Option<String> {
        dirs.iter().chain(FAKE_PATH).map(|d| format!("{d}/{name}")).find(|p| self.paths.contains(p))
    }
    fn cgroup_processes(&self, cgroups_path: &str) -> Result<Vec<i32>, HostError> {
        Ok(self.cgroup_procs.get(cgroups_path).cloned().unwrap_or_default())
    }
    fn own_init_pid(&self) -> Option<i32> {
        self.own_init_pid
    }
    fn thermal_throttle_cpus(&self) -> Result<Vec<u32>, HostError> {
        Ok(self.thermal_cpus.clone())
    }
    fn hostname(&self) -> String {
        self.hostname.clone()
    }
    fn host_file(&self, file: HostFile) -> Result<Option<String>, HostError> {
        Ok(self.host_files.get(&file).cloned())
    }
    fn read_config_file(&self, p: &str) -> Result<Option<String>, HostError> {
        Ok(self.config_files.get(p).cloned())
    }
    fn own_capabilities(&self) -> Vec<String> {
        self.caps.clone()
    }
    fn runc_features(&self) -> Option<Value> {
        self.runc_features.clone()
    }
    fn kernel_version(&self) -> Option<(u32, u32)> {
        self.kernel
    }
    fn arch(&self) -> String {
        self.arch.clone()
    }
    fn cpuset_available(&self) -> Option<(String, String)> {
        self.cpuset.clone()
    }
    fn num_cpus(&self) -> usize {
        self.num_cpus
    }
    fn realpath(&self, p: &str) -> Result<String, HostError> {
        Ok(self.links.get(p).cloned().unwrap_or_else(|| p.to_string()))
    }
    fn in_user_namespace(&self) -> bool {
        self.in_userns
    }
    fn bundle_dir(&self) -> String {
        self.bundle.clone()
    }
}

/// A tiny deterministic xorshift generator for the no-panic and garbage-input tests (here and
/// in the integration tests): seeded, so a failing input can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }

    /// Up to `max - 1` random bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % max as u64) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}
