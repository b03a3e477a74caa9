//! A configurable fake [`Host`] for unit tests (here and in other crates): every fact is a
//! plain field, defaults describe this project's machine (x86_64, cgroup v1, no systemd, no AppArmor,
//! runc 1.1 without the time namespace, kernel 6.1).

use crate::{Host, HostDevice, HostError, MountInfo, SiblingTask, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Fake host; build with `FakeHost::default()` and set fields.
#[derive(Debug, Clone)]
pub struct FakeHost {
    pub mountinfo: Vec<MountInfo>,
    pub siblings: Vec<SiblingTask>,
    /// path inside rootfs → content
    pub rootfs: BTreeMap<String, Vec<u8>>,
    pub devices: Vec<HostDevice>,
    pub cgroup_v2: bool,
    pub systemd_running: bool,
    pub apparmor: bool,
    pub apparmor_loaded: BTreeSet<String>,
    pub paths: BTreeSet<String>,
    pub caps: Vec<String>,
    pub runc_features: Option<Value>,
    pub kernel: Option<(u32, u32)>,
    pub arch: String,
    pub cpuset: Option<(String, String)>,
    pub num_cpus: usize,
    /// host path → resolved path (EvalSymlinks); identity when absent
    pub links: BTreeMap<String, String>,
    pub host_files: BTreeMap<String, String>,
    pub in_userns: bool,
    pub bundle: String,
}

impl Default for FakeHost {
    fn default() -> Self {
        let paths = [
            "/proc/self/ns/time",
            "/proc/sys/net/ipv4/ping_group_range",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
            "/sys/fs/cgroup/cpu/cpu.rt_runtime_us",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
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
            rootfs: BTreeMap::new(),
            devices: vec![],
            cgroup_v2: false,
            systemd_running: false,
            apparmor: false,
            apparmor_loaded: BTreeSet::new(),
            paths,
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
            host_files: BTreeMap::from([("/sys/devices/system/cpu/possible".to_string(), "0-1\n".to_string())]),
            in_userns: false,
            bundle: "/run/containerd/io.containerd.runtime.v2.task/default/test".into(),
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
    fn path_exists(&self, p: &str) -> bool {
        self.paths.contains(p)
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
    fn read_host_file(&self, p: &str) -> Result<Option<String>, HostError> {
        Ok(self.host_files.get(p).cloned())
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
