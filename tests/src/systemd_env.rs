//! A real systemd for the systemd cgroup-driver tests, on hosts that do not run systemd.
//!
//! A Debian bookworm rootfs with systemd, dbus, containerd 1.6 and runc is built once with
//! `debootstrap` from the mirror apt already uses and cached under [`cache_dir`] (default
//! `/var/cache/dockerish-tests/`), reused by every later run. [`SystemdEnv::boot`] starts it with
//! `systemd-nspawn --boot` (systemd as the machine's PID 1, containerd started by systemd) in a
//! child cgroup of the test process, with the cached rootfs under a throw-away overlay
//! (`--volatile=overlay`, so runs never change the cache and may run at the same time), our shim
//! bound in at `/usr/local/bin/containerd-shim-dockerish-v2`, and per-boot host directories
//! bound at `/run/containerd` (so the host reaches containerd's socket and sees runc state and
//! shim sockets), `/var/lib/containerd`, `/etc/containerd`, `/etc/dkt` and `/etc/cni/net.d`.
//!
//! What had to be worked around (see also `../shared/systemd/README.md`):
//! - nspawn mounts the cgroup v1 controller hierarchies read-only: a oneshot unit remounts them
//!   read-write before containerd starts;
//! - a new v1 cpuset cgroup starts empty: the parent's cpus/mems are copied into ours;
//! - nspawn's seccomp filter blocks the keyring calls runc makes: they are allowed;
//! - systemd waits 90 s for a task that ignores SIGTERM at poweroff: the default stop timeout is
//!   5 s, tasks are killed first, and the last resort is SIGKILL to the machine's PID 1, which
//!   ends its whole PID namespace.
//!
//! [`SystemdEnv::shutdown`] (also run by `Drop`) leaves nothing: no nspawn, no machine process,
//! no cgroup, no mount, no run directory. A test binary killed before that leaves a state file
//! in its run directory; the next boot tears such leftovers down first.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{run_cmd, try_run_cmd, Out};
use crate::procs;

/// Bumped whenever the rootfs recipe below changes: a new name means a rebuild.
const ROOTFS_NAME: &str = "systemd-bookworm-v1";
/// Packages on top of debootstrap's minbase.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins";
/// The shim's path inside the machine.
pub const SHIM_IN_MACHINE: &str = "/usr/local/bin/containerd-shim-dockerish-v2";
/// containerd's gRPC socket inside the machine (its default).
pub const GRPC_IN_MACHINE: &str = "/run/containerd/containerd.sock";
/// Prefix of run directories (`/tmp/dkt-sd-<random>`) and of our cgroups (`dkt-sd-<pid>`).
const RUN_PREFIX: &str = "dkt-sd-";
const STATE_FILE: &str = "state.json";
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the environment cannot be used on this host: the tests are skipped, and this says why.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Where the rootfs is cached: `$DOCKERISH_TEST_CACHE` or `/var/cache/dockerish-tests`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DOCKERISH_TEST_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("/var/cache/dockerish-tests"),
    }
}

/// Checks what the environment needs from the host; `Err` says what is missing.
pub fn preflight() -> Result<(), Unavailable> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Unavailable("not root: systemd-nspawn and runc need root".into()));
    }
    for (tool, pkg) in [("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"), ("nsenter", "util-linux")] {
        if find_tool(tool).is_none() {
            return Err(Unavailable(format!("{tool} not found (apt-get install {pkg}; scripts/install-deps does)")));
        }
    }
    let hierarchies = hierarchies();
    if hierarchies.is_empty() {
        return Err(Unavailable("no cgroup hierarchy mounted under /sys/fs/cgroup".into()));
    }
    // Writable cgroups: make (and remove) a probe cgroup where ours would go.
    for h in &hierarchies {
        let probe = h.own_cgroup().join(format!("{RUN_PREFIX}probe-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&probe) {
            return Err(Unavailable(format!("cannot create cgroup {}: {e}", probe.display())));
        }
        let _ = std::fs::remove_dir(&probe);
    }
    Ok(())
}

/// The PATH every command of the environment runs with (debootstrap and nspawn live in sbin).
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::split_paths(SYSTEM_PATH).map(|d| d.join(name)).find(|p| p.is_file())
}

/// One mounted cgroup hierarchy: its mount point and this process's cgroup in it.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    /// Path of this process's cgroup relative to the mount (from /proc/self/cgroup).
    own: String,
}

impl Hierarchy {
    fn own_cgroup(&self) -> PathBuf {
        self.mount.join(self.own.trim_start_matches('/'))
    }
}

/// The hierarchies under /sys/fs/cgroup (v1 controllers, `name=systemd`, the v2 `unified`
/// one) or the single v2 hierarchy, each with our own cgroup in it.
fn hierarchies() -> Vec<Hierarchy> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let lines: Vec<(String, String)> = own
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            Some((ctrls.to_string(), path.to_string()))
        })
        .collect();
    let root = Path::new("/sys/fs/cgroup");
    if std::fs::metadata(root.join("cgroup.controllers")).is_ok() {
        // Pure v2.
        let own = lines.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p.clone()).unwrap_or_else(|| "/".into());
        return vec![Hierarchy { mount: root.to_path_buf(), own }];
    }
    let mut v = Vec::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // Symlinks such as cpu -> cpu,cpuacct name the same hierarchy twice.
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let own = lines.iter().find_map(|(ctrls, path)| {
            let hit = match name.as_str() {
                "unified" => ctrls.is_empty(),
                "systemd" => ctrls == "name=systemd",
                n => ctrls.split(',').any(|c| c == n) || ctrls == n,
            };
            hit.then(|| path.clone())
        });
        if let Some(own) = own {
            v.push(Hierarchy { mount: e.path(), own });
        }
    }
    v
}

/// The Debian mirror apt uses here (`DOCKERISH_TEST_MIRROR` overrides).
fn mirror() -> Option<String> {
    if let Some(m) = std::env::var_os("DOCKERISH_TEST_MIRROR").filter(|m| !m.is_empty()) {
        return Some(m.to_string_lossy().into_owned());
    }
    let mut texts = Vec::new();
    for e in std::fs::read_dir("/etc/apt/sources.list.d").into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "sources") {
            texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    // deb822: the first URIs of a stanza whose suites include bookworm (not -security).
    for t in &texts {
        for stanza in t.split("\n\n") {
            let field = |k: &str| stanza.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()));
            if field("Suites:").is_some_and(|s| s.split_whitespace().any(|x| x == "bookworm")) {
                if let Some(u) = field("URIs:").and_then(|u| u.split_whitespace().next().map(str::to_string)) {
                    return Some(u);
                }
            }
        }
    }
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    list.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&"deb") && !l.contains("security")).then(|| f.iter().find(|x| x.contains("://")).map(|s| s.to_string())).flatten()
    })
}

/// An exclusive `flock` on a file, released on drop.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: a valid open descriptor; flock blocks until the lock is ours.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: our own descriptor.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The cached rootfs, built first if needed. Returns it and how long the build took (`None`:
/// reused). `Err` when it cannot be built (typically: the mirror is unreachable).
pub fn ensure_rootfs() -> Result<(PathBuf, Option<Duration>), Unavailable> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(|e| Unavailable(format!("cannot create {}: {e}", cache.display())))?;
    let rootfs = cache.join(ROOTFS_NAME);
    let ready = |r: &Path| r.join(".dockerish-complete").is_file();
    if ready(&rootfs) {
        return Ok((rootfs, None));
    }
    // One builder at a time; the others wait and then reuse its result.
    let _lock = FileLock::acquire(&cache.join(".lock")).map_err(|e| Unavailable(format!("lock {}: {e}", cache.display())))?;
    if ready(&rootfs) {
        return Ok((rootfs, None));
    }
    let started = Instant::now();
    let mirror = mirror().ok_or_else(|| Unavailable("no Debian mirror found in /etc/apt (set DOCKERISH_TEST_MIRROR)".into()))?;
    // Half-built trees of builders that were killed (we hold the lock: none is running).
    for e in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&format!("{ROOTFS_NAME}.build-")) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let tmp = cache.join(format!("{ROOTFS_NAME}.build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&rootfs);
    // debootstrap's wget retries a silent mirror for many minutes: ask first.
    mirror_reachable(&mirror).map_err(|e| Unavailable(format!("the Debian mirror {mirror} is not reachable ({e}): cannot build the rootfs")))?;
    eprintln!("systemd env: building the bookworm rootfs in {} from {mirror} (once; ~40 s)", rootfs.display());
    let o = try_run_cmd(
        Command::new("debootstrap").env("PATH", SYSTEM_PATH).args(["--variant=minbase", &format!("--include={PACKAGES}"), "bookworm"]).arg(&tmp).arg(&mirror),
        None,
        Duration::from_secs(900),
    );
    let failed = match &o {
        Ok(o) if o.ok() => None,
        Ok(o) => Some(format!("{}\n{}", o.stdout, o.stderr)),
        Err(e) => Some(e.clone()),
    };
    if let Some(out) = failed {
        let _ = std::fs::remove_dir_all(&tmp);
        let tail: Vec<&str> = out.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Unavailable(format!("debootstrap could not build the rootfs from {mirror}:\n    {}", tail.join("\n    "))));
    }
    configure_rootfs(&tmp).map_err(|e| Unavailable(format!("configure {}: {e}", tmp.display())))?;
    std::fs::write(tmp.join(".dockerish-complete"), format!("{PACKAGES}\n")).map_err(|e| Unavailable(e.to_string()))?;
    std::fs::rename(&tmp, &rootfs).map_err(|e| Unavailable(format!("rename {} -> {}: {e}", tmp.display(), rootfs.display())))?;
    Ok((rootfs, Some(started.elapsed())))
}

/// A TCP connection to the mirror's host within 10 s.
fn mirror_reachable(url: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let default_port = if scheme == "https" { 443 } else { 80 };
    let hostport = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) { authority.to_string() } else { format!("{authority}:{default_port}") };
    let addrs: Vec<_> = hostport.to_socket_addrs().map_err(|e| format!("resolve {hostport}: {e}"))?.collect();
    let mut last = format!("no address for {hostport}");
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("connect {a}: {e}"),
        }
    }
    Err(last)
}

/// The units and settings the machine needs (see the module doc).
fn configure_rootfs(r: &Path) -> std::io::Result<()> {
    let units = r.join("etc/systemd/system");
    std::fs::write(
        units.join("cgroup-rw.service"),
        "[Unit]\n\
         Description=Remount the cgroup v1 controller hierarchies read-write (systemd-nspawn mounts them read-only)\n\
         DefaultDependencies=no\n\
         Before=sysinit.target containerd.service\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw \"$d\" || true; done'\n\
         [Install]\n\
         WantedBy=sysinit.target\n",
    )?;
    std::fs::create_dir_all(units.join("sysinit.target.wants"))?;
    let link = units.join("sysinit.target.wants/cgroup-rw.service");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("../cgroup-rw.service", link)?;
    for u in ["getty@tty1.service", "console-getty.service", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer", "dpkg-db-backup.timer"] {
        let p = units.join(u);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink("/dev/null", p)?;
    }
    std::fs::create_dir_all(r.join("etc/systemd/system.conf.d"))?;
    std::fs::write(r.join("etc/systemd/system.conf.d/10-fast-stop.conf"), "[Manager]\nDefaultTimeoutStopSec=5s\n")?;
    // Mount points for the per-boot binds.
    for d in ["etc/dkt", "etc/cni/net.d", "run/containerd", "var/lib/containerd"] {
        std::fs::create_dir_all(r.join(d))?;
    }
    std::fs::write(r.join(SHIM_IN_MACHINE.trim_start_matches('/')), b"")?;
    Ok(())
}

/// What the harness recorded about a boot, for the stale-leftover cleanup of a later run.
struct State {
    owner: i32,
    nspawn: i32,
    leader: i32,
    cgroups: Vec<PathBuf>,
}

impl State {
    fn to_json(&self) -> Vec<u8> {
        let cg: Vec<String> = self.cgroups.iter().map(|c| c.display().to_string()).collect();
        serde_json::to_vec(&serde_json::json!({"owner": self.owner, "nspawn": self.nspawn, "leader": self.leader, "cgroups": cg})).unwrap_or_default()
    }

    fn from_json(b: &[u8]) -> Option<State> {
        let v: serde_json::Value = serde_json::from_slice(b).ok()?;
        let n = |k: &str| v[k].as_i64().unwrap_or(0) as i32;
        let cgroups = v["cgroups"].as_array()?.iter().filter_map(|c| c.as_str().map(PathBuf::from)).collect();
        Some(State { owner: n("owner"), nspawn: n("nspawn"), leader: n("leader"), cgroups })
    }
}

/// A booted machine. Commands run inside with `nsenter` ([`SystemdEnv::exec`]); containerd's
/// socket is reachable from the host at [`SystemdEnv::grpc`].
pub struct SystemdEnv {
    /// The per-boot host directory (binds, state file).
    pub run_dir: PathBuf,
    /// containerd's gRPC socket, host path.
    pub grpc: String,
    /// The machine's PID 1 (host PID).
    pub leader: i32,
    /// Our cgroup in every hierarchy (the machine's root cgroup).
    pub cgroups: Vec<PathBuf>,
    pub boot_time: Duration,
    nspawn: Option<Child>,
    down: bool,
}

/// What to put into the machine at boot.
#[derive(Default)]
pub struct BootOptions {
    /// `/etc/containerd/config.toml` (containerd's defaults when empty).
    pub containerd_config: String,
    /// Files under `/etc/dkt` (name, content).
    pub files: Vec<(String, String)>,
    /// Files under `/etc/cni/net.d`.
    pub cni: Vec<(String, String)>,
}

impl SystemdEnv {
    /// Boots the machine from `rootfs` and waits for systemd and containerd.
    pub fn boot(rootfs: &Path, opts: &BootOptions) -> Result<SystemdEnv, String> {
        cleanup_stale();
        let shim = crate::shim_path();
        let run_dir = tempfile::Builder::new().prefix(RUN_PREFIX).tempdir_in("/tmp").map_err(|e| e.to_string())?.keep();
        let mut env = SystemdEnv {
            grpc: run_dir.join("rc/containerd.sock").to_string_lossy().into_owned(),
            run_dir,
            leader: 0,
            cgroups: Vec::new(),
            boot_time: Duration::ZERO,
            nspawn: None,
            down: false,
        };
        match env.start(rootfs, &shim, opts) {
            Ok(()) => Ok(env),
            Err(e) => {
                let log = std::fs::read_to_string(env.run_dir.join("nspawn.log")).unwrap_or_default();
                let _ = env.shutdown();
                Err(format!("{e}\n--- systemd-nspawn output ---\n{log}"))
            }
        }
    }

    fn start(&mut self, rootfs: &Path, shim: &Path, opts: &BootOptions) -> Result<(), String> {
        let dir = self.run_dir.clone();
        let sub = |s: &str| dir.join(s);
        for d in ["rc", "lib", "etc-containerd", "dkt", "cni"] {
            std::fs::create_dir_all(sub(d)).map_err(|e| e.to_string())?;
        }
        std::fs::write(sub("etc-containerd/config.toml"), &opts.containerd_config).map_err(|e| e.to_string())?;
        for (name, text) in &opts.files {
            std::fs::write(sub("dkt").join(name), text).map_err(|e| e.to_string())?;
        }
        for (name, text) in &opts.cni {
            std::fs::write(sub("cni").join(name), text).map_err(|e| e.to_string())?;
        }
        // Our cgroup in every hierarchy: the machine's systemd manages only that subtree.
        let name = format!("{RUN_PREFIX}{}", std::process::id());
        for h in hierarchies() {
            let c = h.own_cgroup().join(&name);
            std::fs::create_dir_all(&c).map_err(|e| format!("create cgroup {}: {e}", c.display()))?;
            if h.mount.ends_with("cpuset") {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(h.own_cgroup().join(f)).map_err(|e| e.to_string())?;
                    std::fs::write(c.join(f), v).map_err(|e| format!("{}: {e}", c.join(f).display()))?;
                }
            }
            self.cgroups.push(c);
        }
        self.save_state();
        let procs_files: Vec<CString> =
            self.cgroups.iter().map(|c| CString::new(c.join("cgroup.procs").as_os_str().as_bytes()).unwrap()).collect();
        let log = std::fs::File::create(sub("nspawn.log")).map_err(|e| e.to_string())?;
        let bind = |host: &Path, inside: &str| format!("--bind={}:{inside}", host.display());
        let mut cmd = Command::new("systemd-nspawn");
        cmd.args(["-q", "-D"])
            .arg(rootfs)
            .args(["-M", &name, "--boot", "--register=no", "--keep-unit", "--capability=all", "--console=passive", "--volatile=overlay"])
            .arg("--system-call-filter=add_key keyctl request_key")
            .arg(bind(&sub("rc"), "/run/containerd"))
            .arg(bind(&sub("lib"), "/var/lib/containerd"))
            .arg(bind(&sub("etc-containerd"), "/etc/containerd"))
            .arg(bind(&sub("dkt"), "/etc/dkt"))
            .arg(bind(&sub("cni"), "/etc/cni/net.d"))
            .arg(format!("--bind-ro={}:{SHIM_IN_MACHINE}", shim.display()))
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        // SAFETY: only async-signal-safe calls (open/write/close on prepared C strings, setsid)
        // between fork and exec: nspawn starts inside our cgroups and its own session.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                for p in &procs_files {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if r != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("systemd-nspawn: {e}"))?;
        let nspawn_pid = child.id() as i32;
        self.nspawn = Some(child);
        self.save_state();
        // The machine's PID 1 is nspawn's child named systemd.
        let found = crate::wait_until(Duration::from_secs(30), || {
            self.leader = procs::children_of(nspawn_pid).iter().find(|p| p.comm == "systemd").map(|p| p.pid).unwrap_or(0);
            self.leader > 0
        });
        if !found {
            return Err("the machine's systemd did not start within 30 s".into());
        }
        self.save_state();
        let mut state = String::new();
        let up = crate::wait_until(Duration::from_secs(120), || {
            state = self.exec(&["systemctl", "is-system-running"]).stdout.trim().to_string();
            state == "running" || state == "degraded"
        });
        if !up {
            return Err(format!("systemd in the machine is {state:?} after 120 s; failed units:\n{}", self.exec(&["systemctl", "--failed", "--no-legend"]).stdout));
        }
        let ready = crate::wait_until(Duration::from_secs(30), || self.exec(&["ctr", "version"]).ok());
        if !ready {
            return Err(format!("containerd in the machine is not ready:\n{}", self.journal("containerd")));
        }
        self.boot_time = started.elapsed();
        if state == "degraded" {
            eprintln!("systemd env: degraded; failed units:\n{}", self.exec(&["systemctl", "--failed", "--no-legend"]).stdout);
        }
        Ok(())
    }

    fn save_state(&self) {
        let st = State {
            owner: std::process::id() as i32,
            nspawn: self.nspawn.as_ref().map(|c| c.id() as i32).unwrap_or(0),
            leader: self.leader,
            cgroups: self.cgroups.clone(),
        };
        let _ = std::fs::write(self.run_dir.join(STATE_FILE), st.to_json());
    }

    /// `nsenter -t <PID 1> -a <args>` (all of the machine's namespaces, its root and cgroup).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.leader.to_string(), "-a", "--"]).args(args).env_clear().env("PATH", SYSTEM_PATH);
        c
    }

    /// Runs a command inside the machine (no panic on failure; see [`Out::expect_ok`]).
    pub fn exec(&self, args: &[&str]) -> Out {
        run_cmd(&mut self.command(args), None, CMD_TIMEOUT)
    }

    /// `sh -c script` inside the machine.
    pub fn sh(&self, script: &str) -> Out {
        self.exec(&["sh", "-c", script])
    }

    /// `ctr -n ns args` inside the machine (needed whenever ctr creates stdio FIFOs).
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Out {
        let mut v = vec!["ctr", "-n", ns];
        v.extend_from_slice(args);
        self.exec(&v)
    }

    /// `ctr --address <host path of the socket>` run on the host (no FIFOs: metrics, ls, kill…).
    pub fn host_ctr(&self, ns: &str, args: &[&str]) -> Out {
        run_cmd(Command::new("ctr").args(["--address", &self.grpc, "-n", ns]).args(args), None, CMD_TIMEOUT)
    }

    /// A unit's journal inside the machine.
    pub fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "-u", unit, "--no-pager", "-o", "cat"]).stdout
    }

    /// Host path of a file the machine sees under `/run/containerd`.
    pub fn run_containerd(&self, inside: &str) -> PathBuf {
        self.run_dir.join("rc").join(inside.trim_start_matches("/run/containerd").trim_start_matches('/'))
    }

    /// Host paths of the cgroup directories named `name` anywhere in the machine's cgroup trees.
    pub fn cgroups_named(&self, name: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut level: Vec<PathBuf> = self.cgroups.clone();
        for _ in 0..8 {
            let mut next = Vec::new();
            for d in &level {
                for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        if e.file_name().to_string_lossy() == name {
                            found.push(e.path());
                        }
                        next.push(e.path());
                    }
                }
            }
            level = next;
        }
        found
    }

    /// Stops the machine and removes everything the boot created. Idempotent; errors say what
    /// could not be removed.
    pub fn shutdown(&mut self) -> Result<Duration, String> {
        if self.down {
            return Ok(Duration::ZERO);
        }
        self.down = true;
        let started = Instant::now();
        let nspawn = self.nspawn.take();
        let nspawn_pid = nspawn.as_ref().map(|c| c.id() as i32).unwrap_or(0);
        teardown(nspawn, nspawn_pid, self.leader, &self.cgroups, &self.run_dir).map(|()| started.elapsed())
    }
}

impl Drop for SystemdEnv {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("systemd env: {e}");
        }
    }
}

/// Kills the machine's containers, powers it off (SIGTERM to nspawn), falls back to SIGKILL of
/// its PID 1 (the whole PID namespace) and nspawn, then removes cgroups and the run directory.
fn teardown(nspawn: Option<Child>, nspawn_pid: i32, leader: i32, cgroups: &[PathBuf], run_dir: &Path) -> Result<(), String> {
    let is_ours = |pid: i32, comm: &str| pid > 0 && procs::read_proc(pid).is_some_and(|p| p.comm == comm);
    if is_ours(leader, "systemd") {
        // Tasks first: a container that ignores SIGTERM would hold up the poweroff.
        let kill_all = "for n in $(ctr namespaces ls -q); do for t in $(ctr -n $n task ls -q); do ctr -n $n task kill -a -s KILL $t; done; done";
        let _ = try_run_cmd(
            Command::new("nsenter").args(["-t", &leader.to_string(), "-a", "--", "sh", "-c", kill_all]).env("PATH", SYSTEM_PATH),
            None,
            Duration::from_secs(30),
        );
    }
    if is_ours(nspawn_pid, "systemd-nspawn") {
        procs::kill(nspawn_pid, libc::SIGTERM);
        crate::wait_until(Duration::from_secs(30), || !procs::alive(nspawn_pid) || procs::read_proc(nspawn_pid).is_some_and(|p| p.state == 'Z'));
    }
    if is_ours(leader, "systemd") {
        procs::kill(leader, libc::SIGKILL);
    }
    if is_ours(nspawn_pid, "systemd-nspawn") {
        procs::kill(nspawn_pid, libc::SIGKILL);
    }
    if let Some(mut c) = nspawn {
        let _ = c.wait();
    }
    let mut problems = Vec::new();
    for c in cgroups {
        // Depth first; the last processes may take a moment to leave.
        let gone = crate::wait_until(Duration::from_secs(10), || {
            remove_tree(c);
            !c.exists()
        });
        if !gone {
            problems.push(format!("cgroup {} left", c.display()));
        }
    }
    let mounts = procs::mounts_under(run_dir);
    if mounts.is_empty() {
        let _ = std::fs::remove_dir_all(run_dir);
    } else {
        problems.push(format!("mounts left under {}: {mounts:?}", run_dir.display()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Removes a cgroup directory tree bottom-up (cgroup files cannot be unlinked; rmdir only).
fn remove_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Tears down machines of earlier test runs that died before their shutdown.
fn cleanup_stale() {
    for e in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        if !e.file_name().to_string_lossy().starts_with(RUN_PREFIX) {
            continue;
        }
        let Ok(text) = std::fs::read(e.path().join(STATE_FILE)) else { continue };
        let Some(st) = State::from_json(&text) else { continue };
        if st.owner <= 0 || procs::alive(st.owner) {
            continue;
        }
        eprintln!("systemd env: removing the machine of an earlier run that did not stop it ({})", e.path().display());
        if let Err(err) = teardown(None, st.nspawn, st.leader, &st.cgroups, &e.path()) {
            eprintln!("systemd env: {err}");
        }
    }
}
