//! [`RealHost`]: the `Host` trait answered from /proc, /sys, the bundle directory and runc.

use crate::{fsutil, path_str};
use dockerish_spec::annotations::{CRI_CONTAINER_NAME, CRI_SANDBOX_ID, NERDCTL_NAME};
use dockerish_spec::oci::{key, ns, Doc};
use dockerish_spec::parse::ALL_CAPABILITIES;
use dockerish_spec::{Host, HostAction, HostDevice, HostError, HostFile, MountInfo, RtBudget, SiblingTask, Value};
use std::cell::OnceCell;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Host facts for one bundle. Cheap to build; `runc features` is run at most once per instance.
pub struct RealHost {
    bundle: PathBuf,
    rootfs: PathBuf,
    runc_binary: String,
    own_id: String,
    prefix: String,
    sandbox_id: Option<String>,
    features: OnceCell<Option<Value>>,
    /// Runs `runc features` for a binary path (the shim routes it through its reaper).
    features_runner: Option<FeaturesRunner>,
}

/// Exists (as a directory) exactly when systemd is PID 1 (`sd_booted`).
pub const SYSTEMD_RUN_DIR: &str = "/run/systemd/system";

/// Runs `<binary> features` and returns its stdout, or `None` if it failed.
pub type FeaturesRunner = Box<dyn Fn(&Path) -> Option<Vec<u8>> + Send + Sync>;

/// Directories under `/dev` that DV-6 skips (ctrd `pkg/oci/utils_unix.go` `getDevices`).
const DEV_SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// Cap on a sibling's config.json (a spec with a seccomp profile is ~20 kB).
const SIBLING_SPEC_CAP: u64 = 8 * 1024 * 1024;

impl RealHost {
    pub fn new(bundle: &Path, rootfs: &Path, runc_binary: &str) -> Self {
        let own_id = bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        RealHost {
            bundle: bundle.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            runc_binary: if runc_binary.is_empty() { "runc".into() } else { runc_binary.into() },
            own_id,
            prefix: "io.containerd.dockerish/".into(),
            sandbox_id: None,
            features: OnceCell::new(),
            features_runner: None,
        }
    }

    /// Who runs `runc features` when a rule asks (default: a plain child process).
    pub fn with_features_runner(mut self, run: FeaturesRunner) -> Self {
        self.features_runner = Some(run);
        self
    }

    pub fn set_rootfs(&mut self, rootfs: &Path) {
        self.rootfs = rootfs.to_path_buf();
    }

    /// Who we are for NS-10 lookups: our container ID, the annotation prefix (for
    /// `<prefix>name`), and our CRI sandbox (CRI names only resolve inside it).
    pub fn set_scope(&mut self, own_id: &str, prefix: &str, sandbox_id: Option<&str>) {
        self.own_id = own_id.to_string();
        self.prefix = prefix.to_string();
        self.sandbox_id = sandbox_id.map(str::to_string);
    }

    /// The namespace directory holding every task bundle of our namespace.
    fn namespace_dir(&self) -> Result<PathBuf, HostError> {
        let b = std::fs::canonicalize(&self.bundle).map_err(|e| HostError::io("realpath", path_str(&self.bundle), e))?;
        b.parent().map(Path::to_path_buf).ok_or_else(|| HostError::Refused { path: path_str(&b), msg: "bundle has no parent directory".into() })
    }

    /// Every task bundle of our namespace (ours included).
    fn siblings(&self) -> Result<Vec<Sib>, HostError> {
        let ns_dir = self.namespace_dir()?;
        let rd = std::fs::read_dir(&ns_dir).map_err(|e| HostError::io("open", path_str(&ns_dir), e))?;
        let mut sibs = Vec::new();
        for ent in rd.flatten() {
            // Only real directories directly inside the namespace dir: never follow a symlink
            // out of it.
            let Ok(ft) = ent.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let id = ent.file_name().to_string_lossy().into_owned();
            if let Some(s) = self.sibling_info(&ent.path(), &id) {
                sibs.push(s);
            }
        }
        Ok(sibs)
    }

    fn sibling_info(&self, dir: &Path, id: &str) -> Option<Sib> {
        let spec_path = dir.join("config.json");
        let md = std::fs::symlink_metadata(&spec_path).ok()?;
        if !md.is_file() || md.len() > SIBLING_SPEC_CAP {
            return None;
        }
        let spec = Doc(serde_json::from_slice(&std::fs::read(&spec_path).ok()?).ok()?);
        let a = |k: &str| spec.annotation(k).map(str::to_string);
        let sandbox_id = a(CRI_SANDBOX_ID);
        let mut names = Vec::new();
        if let Some(n) = a(NERDCTL_NAME) {
            names.push(n);
        }
        if let Some(n) = a(&format!("{}name", self.prefix)) {
            names.push(n);
        }
        // CRI container names are only unique inside a pod.
        if let (Some(n), Some(sb)) = (a(CRI_CONTAINER_NAME), &sandbox_id) {
            if self.sandbox_id.as_ref() == Some(sb) {
                names.push(n);
            }
        }
        // A spec that lists namespaces but no IPC one shares the host's (its /dev/shm is the host's).
        let host_ipc = spec.get(&[key::LINUX, key::NAMESPACES]).is_some_and(Value::is_array) && !spec.has_ns(ns::IPC);
        let hostname = spec.hostname().map(str::to_string).or_else(|| spec.env().iter().find_map(|e| e.strip_prefix("HOSTNAME=").map(str::to_string)));
        let mounts = spec.mounts();
        let etc_files = dockerish_spec::ETC_FILES
            .iter()
            .filter_map(|(dest, _)| mounts.iter().rfind(|m| m.destination() == *dest && m.is_bind()).map(|m| (dest.to_string(), m.source().to_string())))
            .collect();
        Some(Sib { id: id.to_string(), dir: dir.to_path_buf(), names, sandbox_id, host_ipc, hostname, etc_files })
    }

    fn to_task(&self, s: &Sib) -> SiblingTask {
        let (pid, running) = init_pid_alive(&s.dir);
        let shm_path = crate::read_actions(&s.dir)
            .ok()
            .and_then(|acts| {
                acts.into_iter().find_map(|a| match a {
                    HostAction::ShmTmpfs { path, .. } => Some(path),
                    _ => None,
                })
            })
            .or_else(|| s.host_ipc.then(|| "/dev/shm".to_string()));
        SiblingTask { id: s.id.clone(), pid, running, sandbox_id: s.sandbox_id.clone(), shm_path, hostname: s.hostname.clone(), etc_files: s.etc_files.clone() }
    }
}

struct Sib {
    id: String,
    dir: PathBuf,
    names: Vec<String>,
    sandbox_id: Option<String>,
    host_ipc: bool,
    hostname: Option<String>,
    etc_files: Vec<(String, String)>,
}

/// Read `<bundle>/init.pid` and check the process is the one that file recorded: alive, not a
/// zombie, and started no later than the file was written (PID-reuse guard, NS-10).
fn init_pid_alive(dir: &Path) -> (i32, bool) {
    let pid_file = dir.join(INIT_PID);
    let Ok(text) = std::fs::read_to_string(&pid_file) else { return (0, false) };
    let Ok(pid) = text.trim().parse::<i32>() else { return (0, false) };
    if pid <= 0 {
        return (0, false);
    }
    let Ok(mtime) = std::fs::metadata(&pid_file).and_then(|m| m.modified()) else { return (pid, false) };
    let Some((state, start)) = proc_start(pid) else { return (pid, false) };
    if state == 'Z' || state == 'X' {
        return (pid, false);
    }
    // Start time is in clock ticks since boot: allow a 2 s slack for tick/boot-time rounding.
    let running = start <= mtime + Duration::from_secs(2);
    (pid, running)
}

/// (state, start time) of a process from /proc/<pid>/stat and /proc/stat btime.
fn proc_start(pid: i32) -> Option<(char, SystemTime)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let state = f.first()?.chars().next()?;
    let start_ticks: u64 = f.get(19)?.parse().ok()?; // field 22 overall
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|h| *h > 0).map_or(100, |h| h as u64);
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))?;
    let start = UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(start_ticks.saturating_mul(1000) / hz);
    Some((state, start))
}

fn device_of(path: &str, md: &std::fs::Metadata) -> Option<HostDevice> {
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        return None;
    };
    let rdev = md.rdev();
    Some(HostDevice {
        path: path.to_string(),
        kind,
        major: libc::major(rdev) as i64,
        minor: libc::minor(rdev) as i64,
        file_mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
    })
}

fn walk_devices(dir: &Path, top_dev: bool, out: &mut Vec<HostDevice>, depth: usize) -> Result<(), HostError> {
    if depth > 32 {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| HostError::io("open", path_str(dir), e))?;
    for ent in rd.flatten() {
        let p = ent.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue }; // vanished: skipped
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if md.is_dir() {
            if top_dev && DEV_SKIP_DIRS.contains(&name.as_ref()) {
                continue;
            }
            walk_devices(&p, top_dev, out, depth + 1)?;
            continue;
        }
        if top_dev && name == "console" {
            continue;
        }
        if let Some(d) = device_of(&path_str(&p), &md) {
            if top_dev && d.kind == 'p' {
                continue;
            }
            out.push(d);
        }
    }
    Ok(())
}

/// Where cgroup hierarchies are mounted.
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";
/// What runc writes in the bundle (`runc create --pid-file`).
const INIT_PID: &str = "init.pid";
/// Cap on host files read for the rules (passwd, subuid, seccomp profiles).
const HOST_FILE_CAP: u64 = 16 * 1024 * 1024;

/// `/proc/sys/<a>/<b>/…` of a dotted sysctl name; `None` for names that are not plain dotted words.
fn sysctl_path(name: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.iter().any(|p| p.is_empty() || p.contains('/')) {
        return None;
    }
    Some(parts.iter().fold(PathBuf::from("/proc/sys"), |p, c| p.join(c)))
}

/// The `cgroup.procs` file of an absolute cgroupfs path: the unified hierarchy on v2, the
/// `pids` hierarchy on v1 (every container cgroup has one). `None` for a relative path.
pub fn cgroup_procs_file(v2: bool, cgroups_path: &str) -> Option<PathBuf> {
    let rel = cgroups_path.strip_prefix('/')?;
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    let base = if v2 { PathBuf::from(CGROUP_MOUNT) } else { Path::new(CGROUP_MOUNT).join("pids") };
    Some(base.join(rel).join("cgroup.procs"))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

fn read_small(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn status_field(name: &str) -> Option<String> {
    read_small("/proc/self/status")?.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
}

impl RealHost {
    /// A host file (at most 16 MiB); `None` if it does not exist. Only a regular file is
    /// opened: a path an annotation or the config names can never open a device or a FIFO.
    fn read_capped(&self, path: &Path) -> Result<Option<String>, HostError> {
        Ok(fsutil::read_host_file(path, HOST_FILE_CAP)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}

impl Host for RealHost {
    fn mountinfo(&self) -> Result<Vec<MountInfo>, HostError> {
        let p = "/proc/self/mountinfo";
        let text = std::fs::read_to_string(p).map_err(|e| HostError::io("read", p, e))?;
        dockerish_spec::parse_mountinfo(&text).map_err(|msg| HostError::Invalid { path: p.into(), msg })
    }

    fn sibling_task(&self, name_or_id: &str) -> Result<Option<SiblingTask>, HostError> {
        if name_or_id.is_empty() {
            return Ok(None);
        }
        let sibs = self.siblings()?;
        // Docker's order: exact ID, exact name, unique ID prefix.
        if let Some(s) = sibs.iter().find(|s| s.id == name_or_id) {
            return Ok(Some(self.to_task(s)));
        }
        if let Some(s) = sibs.iter().find(|s| s.names.iter().any(|n| n == name_or_id)) {
            return Ok(Some(self.to_task(s)));
        }
        let pre: Vec<&Sib> = sibs.iter().filter(|s| s.id.starts_with(name_or_id)).collect();
        match pre.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(self.to_task(one))),
            _ => Err(HostError::AmbiguousPrefix(name_or_id.to_string())),
        }
    }

    fn containers_named(&self, name: &str) -> Result<Vec<String>, HostError> {
        if name.is_empty() {
            return Ok(vec![]);
        }
        // Only created tasks (runc wrote init.pid): a sibling still in its own Create may yet
        // fail, and the claim taken when the actions run decides between racing creates.
        Ok(self
            .siblings()?
            .into_iter()
            .filter(|s| s.id != self.own_id && (s.id == name || s.names.iter().any(|n| n == name)) && s.dir.join(INIT_PID).exists())
            .map(|s| s.id)
            .collect())
    }

    fn rootfs_file(&self, path_in_rootfs: &str) -> Result<Option<Vec<u8>>, HostError> {
        fsutil::read_in_root(&self.rootfs, path_in_rootfs)
    }

    fn host_device(&self, path: &str) -> Result<Option<HostDevice>, HostError> {
        // DV-3: EvalSymlinks, then lstat.
        let real = std::fs::canonicalize(path).map_err(|e| HostError::io("lstat", path, e))?;
        let md = std::fs::symlink_metadata(&real).map_err(|e| HostError::io("lstat", path_str(&real), e))?;
        Ok(device_of(&path_str(&real), &md).map(|mut d| {
            d.path = path.to_string();
            d
        }))
    }

    fn host_devices(&self, dir: &str) -> Result<Vec<HostDevice>, HostError> {
        let mut out = Vec::new();
        let p = Path::new(dir);
        if !std::fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false) {
            return Ok(out);
        }
        walk_devices(p, dir == "/dev", &mut out, 0)?;
        Ok(out)
    }

    fn cgroup_v2(&self) -> bool {
        crate::cgroup_v2()
    }

    fn systemd_running(&self) -> bool {
        // sd_booted(3): the directory systemd creates at boot, not followed through a symlink.
        std::fs::symlink_metadata(SYSTEMD_RUN_DIR).is_ok_and(|m| m.is_dir())
    }

    fn apparmor_enabled(&self) -> bool {
        Path::new("/sys/kernel/security/apparmor").exists()
            && std::env::var_os("container").is_none_or(|v| v.is_empty())
            && Path::new("/sbin/apparmor_parser").exists()
            && read_small("/sys/module/apparmor/parameters/enabled").is_some_and(|s| s.starts_with('Y'))
    }

    fn apparmor_profile_loaded(&self, name: &str) -> bool {
        read_small("/sys/kernel/security/apparmor/profiles").is_some_and(|t| {
            t.lines().any(|l| l.rsplit_once(" (").map_or(l, |(n, _)| n) == name)
        })
    }

    fn sysctl_exists(&self, name: &str) -> bool {
        sysctl_path(name).is_some_and(|p| p.exists())
    }

    fn cpu_rt_budget(&self, cgroups_path: &str) -> Result<Option<RtBudget>, HostError> {
        if self.cgroup_v2() || !self.cpu_rt_supported() {
            return Ok(None);
        }
        let Some(rel) = cgroups_path.strip_prefix('/').filter(|r| !r.split('/').any(|c| c == "..")) else { return Ok(None) };
        let own = Path::new(CGROUP_MOUNT).join("cpu").join(rel);
        let (Some(parent), Some(own_name)) = (own.parent(), own.file_name()) else { return Ok(None) };
        if !parent.is_dir() {
            // runc creates it, and a new cgroup has no real-time runtime.
            return Ok(Some(RtBudget { period: 1_000_000, runtime: 0, children: vec![] }));
        }
        let rt = |dir: &Path| -> Option<(i64, i64)> {
            let n = |f: &str| read_small(&path_str(&dir.join(f))).and_then(|v| v.trim().parse::<i64>().ok());
            Some((n("cpu.rt_period_us")?, n("cpu.rt_runtime_us")?))
        };
        let Some((period, runtime)) = rt(parent) else { return Ok(None) };
        let rd = std::fs::read_dir(parent).map_err(|e| HostError::io("open", path_str(parent), e))?;
        let children = rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != own_name).filter_map(|e| rt(&e.path())).collect();
        Ok(Some(RtBudget { period, runtime, children }))
    }

    fn blkio_weight_supported(&self) -> bool {
        if self.cgroup_v2() {
            read_small(&format!("{CGROUP_MOUNT}/cgroup.controllers")).is_some_and(|c| c.split_whitespace().any(|x| x == "io"))
        } else {
            Path::new(CGROUP_MOUNT).join("blkio/blkio.weight").exists()
        }
    }

    fn cpu_rt_supported(&self) -> bool {
        Path::new(CGROUP_MOUNT).join("cpu/cpu.rt_runtime_us").exists()
    }

    fn time_namespace(&self) -> bool {
        Path::new("/proc/self/ns/time").exists()
    }

    fn lookup_executable(&self, name: &str, dirs: &[&str]) -> Option<String> {
        if name.is_empty() || name.contains('/') {
            return None;
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let on_path: Vec<PathBuf> = std::env::split_paths(&path).collect();
        dirs.iter().map(PathBuf::from).chain(on_path).map(|d| d.join(name)).find(|p| is_executable(p)).map(|p| path_str(&p))
    }

    fn cgroup_processes(&self, cgroups_path: &str) -> Result<Vec<i32>, HostError> {
        let Some(file) = cgroup_procs_file(self.cgroup_v2(), cgroups_path) else { return Ok(vec![]) };
        match std::fs::read_to_string(&file) {
            Ok(t) => Ok(t.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(HostError::io("read", path_str(&file), e)),
        }
    }

    fn own_init_pid(&self) -> Option<i32> {
        read_small(&path_str(&self.bundle.join(INIT_PID))).and_then(|t| t.trim().parse().ok()).filter(|p| *p > 0)
    }

    fn thermal_throttle_cpus(&self) -> Result<Vec<u32>, HostError> {
        let Some(possible) = self.read_capped(Path::new("/sys/devices/system/cpu/possible"))? else { return Ok(vec![]) };
        let cpus = dockerish_spec::parse::parse_cpuset(possible.trim()).unwrap_or_default();
        Ok(cpus.into_iter().filter(|n| Path::new(&format!("/sys/devices/system/cpu/cpu{n}/thermal_throttle")).exists()).collect())
    }

    fn hostname(&self) -> String {
        // uname(2) nodename of our UTS namespace, what Go's os.Hostname() returns.
        read_small("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    }

    fn host_file(&self, file: HostFile) -> Result<Option<String>, HostError> {
        let p = match file {
            HostFile::Passwd => "/etc/passwd",
            HostFile::Group => "/etc/group",
            HostFile::Subuid => "/etc/subuid",
            HostFile::Subgid => "/etc/subgid",
            HostFile::Hosts => "/etc/hosts",
            HostFile::ResolvConf => "/etc/resolv.conf",
            HostFile::SystemdResolvConf => "/run/systemd/resolve/resolv.conf",
        };
        self.read_capped(Path::new(p))
    }

    fn read_config_file(&self, path: &str) -> Result<Option<String>, HostError> {
        self.read_capped(Path::new(path))
    }

    fn own_capabilities(&self) -> Vec<String> {
        let Some(hex) = status_field("CapEff:") else { return vec![] };
        let bits = u64::from_str_radix(&hex, 16).unwrap_or(0);
        ALL_CAPABILITIES.iter().enumerate().filter(|(i, _)| bits & (1u64 << i) != 0).map(|(_, c)| c.to_string()).collect()
    }

    fn runc_features(&self) -> Option<Value> {
        self.features
            .get_or_init(|| match &self.features_runner {
                Some(run) => cached_runc_features_with(&self.runc_binary, Path::new(FEATURES_CACHE_DIR), run),
                None => cached_runc_features(&self.runc_binary, Path::new(FEATURES_CACHE_DIR)),
            })
            .clone()
    }

    fn kernel_version(&self) -> Option<(u32, u32)> {
        let r = read_small("/proc/sys/kernel/osrelease")?;
        let mut it = r.trim().split(|c: char| !c.is_ascii_digit());
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }

    fn arch(&self) -> String {
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        }
        .to_string()
    }

    fn cpuset_available(&self) -> Option<(String, String)> {
        Some((status_field("Cpus_allowed_list:")?, status_field("Mems_allowed_list:")?))
    }

    fn num_cpus(&self) -> usize {
        status_field("Cpus_allowed_list:")
            .and_then(|l| dockerish_spec::parse::parse_cpuset(&l).ok())
            .map(|v| v.len())
            .filter(|n| *n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    }

    fn realpath(&self, host_path: &str) -> Result<String, HostError> {
        std::fs::canonicalize(host_path).map(|p| path_str(&p)).map_err(|e| HostError::io("lstat", host_path, e))
    }

    fn in_user_namespace(&self) -> bool {
        read_small("/proc/self/uid_map").is_some_and(|m| {
            let f: Vec<&str> = m.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        })
    }

    fn bundle_dir(&self) -> String {
        path_str(&self.bundle)
    }
}

/// Where `runc features` output is cached between shims (tmpfs: gone at reboot).
pub const FEATURES_CACHE_DIR: &str = "/run/containerd-shim-dockerish";

/// `runc features` costs a runc process (~4 ms of CPU) and every container has its own shim, so
/// the answer is cached on disk, keyed by the binary's identity (device, inode, size, mtime): an
/// upgraded or replaced runc gets a new key. Only successful answers are cached.
pub fn cached_runc_features(binary: &str, cache_dir: &Path) -> Option<Value> {
    let run = |b: &Path| {
        let out = std::process::Command::new(b).arg("features").stdin(std::process::Stdio::null()).stderr(std::process::Stdio::null()).output().ok()?;
        out.status.success().then_some(out.stdout)
    };
    cached_runc_features_with(binary, cache_dir, &run)
}

/// [`cached_runc_features`] with `run` starting the process (a binary path in, its stdout out).
pub fn cached_runc_features_with(binary: &str, cache_dir: &Path, run: &dyn Fn(&Path) -> Option<Vec<u8>>) -> Option<Value> {
    let resolved = resolve_on_path(binary)?;
    let key = std::fs::metadata(&resolved).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        format!("runc-features-{}-{}-{}-{}.{}.json", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())
    });
    if let Some(k) = &key {
        if let Some(v) = std::fs::read(cache_dir.join(k)).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            return Some(v);
        }
    }
    let out = run(&resolved)?;
    let v: Value = serde_json::from_slice(&out).ok()?;
    if let Some(k) = key {
        // Best effort: a failure to cache only costs the next shim a runc call.
        let _ = write_cache(cache_dir, &k, &out);
    }
    Some(v)
}

fn write_cache(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn resolve_on_path(binary: &str) -> Option<std::path::PathBuf> {
    if binary.contains('/') {
        return Some(std::path::PathBuf::from(binary));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(binary)).find(|p| p.is_file())
}
