//! A private containerd of any version of the matrix ([`Version`]): own root, state, gRPC and
//! ttrpc sockets, the config in the version's native layout (2 for 1.6/1.7, 4 for 2.3).
//!
//! The system's containerd (if any) is never touched: the private daemon listens on sockets
//! inside its own directory and reads no file of the machine's config. Two things are
//! machine-wide by containerd's design and are kept apart by unique namespaces
//! ([`crate::unique_name`]): runc state under `/run/containerd/runc/<ns>` and shim sockets under
//! `/run/containerd/s/` (whose names hash the private gRPC address, so they never collide with
//! the system's either).
//!
//! [`Containerd::start_version`] gives a test a daemon of its own (needed to restart it, to
//! enable CRI or to count every shim); [`Containerd::shared`] gives it a namespace of its own in
//! the one daemon per version that the tests of a test binary share.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cmd::{run_cmd, try_run_cmd, try_run_cmd_ex, Out};
use crate::matrix::{Build, Version};
use crate::procs;
use crate::Runtime;

/// Default deadline of one `ctr` command.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(30);

/// How the private containerd is configured.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which containerd (default: Debian's 1.6).
    pub version: Version,
    /// Keep the CRI plugin (disabled by default: it needs CNI and a pause image).
    pub cri: bool,
    /// `PATH` for the daemon (and so for the shims and runc). Default: the shim's directory
    /// first, then the version's binaries (its Go shim), then the usual system directories.
    pub path: Option<String>,
    /// TOML in the version's config layout (see [`Version::config_version`]), merged into the
    /// generated `config.toml`: tables are merged key by key; the harness's own keys (root,
    /// state, sockets, `imports`, the `opt` path, NRI off) win, so even a whole
    /// `containerd config default` can be given.
    pub extra_config: String,
    /// Import the busybox image into the default namespace at start.
    pub import_image: bool,
    /// Directory to use instead of a fresh temporary one (kept on drop only if `keep_dir`).
    pub dir: Option<PathBuf>,
    /// `debug` or `info`.
    pub log_level: String,
    /// Where the generated `config.toml` is written and read from (default: the daemon's
    /// directory). A test that edits the file in place (the node installer) points it at a
    /// node's `/etc/containerd/config.toml`; [`Containerd::restart`] rereads it.
    pub config_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: Version::V1_6,
            cri: false,
            path: None,
            extra_config: String::new(),
            import_image: true,
            dir: None,
            log_level: "debug".into(),
            config_file: None,
        }
    }
}

/// Options of [`Containerd::run`] (`ctr run`).
#[derive(Clone, Debug, Default)]
pub struct RunOpts {
    pub detach: bool,
    pub rm: bool,
    /// Extra flags placed before the image (`--memory-limit`, `--log-uri`, …).
    pub flags: Vec<String>,
    /// Data fed to ctr's stdin (else /dev/null).
    pub stdin: Option<Vec<u8>>,
    /// Keep ctr's stdin open this long after writing `stdin` (see [`crate::cmd::try_run_cmd_ex`]).
    pub stdin_close_delay: Option<Duration>,
    pub timeout: Option<Duration>,
    /// Image instead of [`crate::IMAGE`].
    pub image: Option<String>,
}

impl RunOpts {
    pub fn detach() -> Self {
        RunOpts { detach: true, ..Default::default() }
    }
    pub fn rm() -> Self {
        RunOpts { rm: true, ..Default::default() }
    }
    pub fn flag(mut self, f: impl Into<String>) -> Self {
        self.flags.push(f.into());
        self
    }
    /// Data for ctr's stdin, ended (EOF) one second after it was written.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self.stdin_close_delay = Some(Duration::from_secs(1));
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

/// A running private containerd, or a namespace of its own in a shared one
/// ([`Containerd::shared`]). Dropping it stops everything it started and removes its directory
/// (a shared daemon itself is stopped when the test process exits).
pub struct Containerd {
    /// This instance's scratch directory (the daemon's directory, or a namespace's own
    /// directory inside the shared daemon's).
    pub dir: PathBuf,
    /// The daemon's directory: config, log, root, state.
    pub daemon_dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    /// gRPC socket path (what `ctr --address` and the shims' `-address` take).
    pub grpc: String,
    /// ttrpc socket path (events from shims).
    pub ttrpc: String,
    /// Default namespace of this instance (unique on the machine), with the image imported.
    pub ns: String,
    pub opts: Options,
    /// The containerd build this daemon runs (its `ctr` and Go shim go with it).
    pub build: Build,
    child: Option<Child>,
    pid: i32,
    namespaces: Mutex<Vec<String>>,
    /// (namespace, id) of every container run through this instance, for cleanup.
    ids: Mutex<Vec<(String, String)>>,
    /// Shim socket paths seen in bundles' `address` files, by container id.
    sockets: Mutex<Vec<(String, PathBuf)>>,
    detached: bool,
    remove_dir: bool,
    /// A namespace in a shared daemon: the daemon is not ours to stop or restart.
    view: bool,
}

const STATE_FILE: &str = "harness.json";

/// The daemons [`Containerd::shared`] hands out namespaces of: one per version per test
/// process. Process-wide by nature (tests run on their own threads and share them); stopped by
/// [`stop_shared_daemons`] at exit, since a static is never dropped.
static SHARED: Mutex<Vec<Containerd>> = Mutex::new(Vec::new());

/// `atexit` handler: libtest ends the process with `exit()` (success or not), after every test
/// has returned, so no view of these daemons is alive any more.
extern "C" fn stop_shared_daemons() {
    let daemons = std::mem::take(&mut *SHARED.lock().unwrap_or_else(|e| e.into_inner()));
    // A panic must not unwind into libc.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(daemons)));
}

/// containerd's plugin ids of the CRI implementation (2.x split it in three, plus the pod
/// sandbox controller that needs them).
fn cri_plugins(v: Version) -> &'static [&'static str] {
    if v.is_2x() {
        &["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox"]
    } else {
        &["io.containerd.grpc.v1.cri"]
    }
}

/// Sets `path` in `t` (creating the tables on the way), replacing what was there.
fn set_key(t: &mut toml::Table, path: &[&str], value: impl Into<toml::Value>) {
    let (last, tables) = path.split_last().expect("non-empty key path");
    let mut cur = t;
    for k in tables {
        let entry = cur.entry(k.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    cur.insert(last.to_string(), value.into());
}

impl Containerd {
    /// Starts a private containerd 1.6 with default options and the busybox image imported.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a private containerd of version `v` with default options and the busybox image
    /// imported.
    pub fn start_version(v: Version) -> Self {
        Self::start_with(Options { version: v, ..Options::default() })
    }

    /// A namespace of its own (busybox imported) in the containerd of version `v` shared by the
    /// tests of this process; the first call starts that daemon. For tests that neither
    /// restart nor kill containerd, need no special [`Options`], and look only at their own
    /// containers: [`Containerd::shims`] lists only this namespace's shims, [`Containerd::dir`]
    /// is the namespace's own directory. Dropping it removes the namespace's containers,
    /// shims, mounts and cgroups; the daemon stays for the next test.
    /// `DOCKERISH_OWN_CONTAINERD=1` gives every such test a daemon of its own instead.
    pub fn shared(v: Version) -> Self {
        if std::env::var_os("DOCKERISH_OWN_CONTAINERD").is_some_and(|x| x == "1") {
            // Every test its own daemon: to tell a shared daemon's side effects from a bug.
            return Self::start_version(v);
        }
        let build = v.build();
        let mut daemons = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if daemons.is_empty() {
            // The only way to run code when libtest ends the process (see stop_shared_daemons).
            let rc = unsafe { libc::atexit(stop_shared_daemons) };
            assert_eq!(rc, 0, "atexit failed: shared containerd daemons would outlive the tests");
        }
        if !daemons.iter().any(|d| d.build.version == v) {
            daemons.push(Self::start_with(Options { version: v, import_image: false, ..Options::default() }));
        }
        let d = daemons.iter().find(|d| d.build.version == v).expect("just started");
        assert!(procs::alive(d.pid), "the shared {v} (pid {}) died; its log:\n{}", d.pid, d.log());
        let ns = crate::unique_name("t");
        // The daemon's own cleanup at exit covers the namespace too, whatever happens to the view.
        d.namespaces.lock().unwrap().push(ns.clone());
        let dir = d.dir.join("ns").join(&ns);
        std::fs::create_dir_all(&dir).expect("create the namespace's directory");
        let view = Containerd {
            dir,
            daemon_dir: d.dir.clone(),
            root: d.root.clone(),
            state: d.state.clone(),
            grpc: d.grpc.clone(),
            ttrpc: d.ttrpc.clone(),
            ns: ns.clone(),
            opts: d.opts.clone(),
            build,
            child: None,
            pid: d.pid,
            namespaces: Mutex::new(vec![ns.clone()]),
            ids: Mutex::new(Vec::new()),
            sockets: Mutex::new(Vec::new()),
            detached: false,
            remove_dir: true,
            view: true,
        };
        drop(daemons);
        view.ctr_raw(&["namespaces", "create", &ns]).expect_ok();
        view.import_image(&ns);
        view
    }

    /// Whether this is a namespace in a shared daemon ([`Containerd::shared`]).
    pub fn is_shared(&self) -> bool {
        self.view
    }

    pub fn start_with(opts: Options) -> Self {
        let build = opts.version.build();
        let (dir, remove_dir) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d).expect("create containerd dir");
                (std::fs::canonicalize(d).unwrap(), false)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("dkt-")
                    .tempdir_in("/tmp")
                    .expect("create temp dir");
                (t.keep(), true)
            }
        };
        let ns = crate::unique_name("t");
        let mut c = Containerd {
            root: dir.join("root"),
            state: dir.join("state"),
            grpc: dir.join("c.sock").to_string_lossy().into_owned(),
            ttrpc: dir.join("c.sock.ttrpc").to_string_lossy().into_owned(),
            daemon_dir: dir.clone(),
            dir,
            ns: ns.clone(),
            opts,
            build,
            child: None,
            pid: 0,
            namespaces: Mutex::new(vec![ns.clone()]),
            ids: Mutex::new(Vec::new()),
            sockets: Mutex::new(Vec::new()),
            detached: false,
            remove_dir,
            view: false,
        };
        assert!(
            c.ttrpc.len() < 100,
            "socket path {} too long for a unix socket: use a shorter directory",
            c.ttrpc
        );
        c.write_config();
        c.spawn();
        c.wait_ready();
        c.ctr_raw(&["namespaces", "create", &ns]).expect_ok();
        if c.opts.import_image {
            c.import_image(&ns);
        }
        c
    }

    /// A container id unique on the machine: `<base>-<ns>`. Shims may put every container in a
    /// cgroup named after its id alone (Docker's `/docker/<id>`), so ids must not repeat across
    /// tests running at the same time. Leaked on purpose (tests are short-lived) for `&'static str`.
    pub fn id(&self, base: &str) -> &'static str {
        let id = format!("{base}-{}", self.ns);
        self.track(&self.ns, &id);
        Box::leak(id.into_boxed_str())
    }

    /// The `PATH` the daemon runs with.
    pub fn daemon_path(&self) -> String {
        if let Some(p) = &self.opts.path {
            return p.clone();
        }
        let shim = crate::shim_path();
        format!(
            "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            shim.parent().unwrap().display(),
            self.build.bin_dir().display()
        )
    }

    /// The shim binary containerd runs for `rt`: ours, or this version's Go shim.
    pub fn runtime_binary(&self, rt: Runtime) -> PathBuf {
        match rt {
            Runtime::RuncV2 => self.build.go_shim(),
            Runtime::Dockerish => crate::shim_path(),
        }
    }

    /// The daemon's `config.toml`: [`Options::extra_config`] with the harness's keys on top.
    pub fn config_text(&self) -> String {
        let v = self.opts.version;
        let mut t: toml::Table = if self.opts.extra_config.trim().is_empty() {
            toml::Table::new()
        } else {
            toml::from_str(&self.opts.extra_config).unwrap_or_else(|e| panic!("Options::extra_config is not valid TOML: {e}\n{}", self.opts.extra_config))
        };
        let s = |p: &Path| p.display().to_string();
        set_key(&mut t, &["version"], v.config_version() as i64);
        set_key(&mut t, &["root"], s(&self.root));
        set_key(&mut t, &["state"], s(&self.state));
        // Never read the machine's drop-ins (2.x's default config imports /etc/containerd/conf.d).
        set_key(&mut t, &["imports"], toml::Value::Array(Vec::new()));
        if !self.opts.cri {
            let mut disabled: Vec<toml::Value> = t.get("disabled_plugins").and_then(|d| d.as_array()).cloned().unwrap_or_default();
            for p in cri_plugins(v) {
                if !disabled.iter().any(|d| d.as_str() == Some(p)) {
                    disabled.push((*p).into());
                }
            }
            set_key(&mut t, &["disabled_plugins"], toml::Value::Array(disabled));
        }
        set_key(&mut t, &["debug", "level"], self.opts.log_level.clone());
        if v.config_version() >= 3 {
            // 2.x: the servers are plugins.
            set_key(&mut t, &["plugins", "io.containerd.server.v1.grpc", "address"], self.grpc.clone());
            set_key(&mut t, &["plugins", "io.containerd.server.v1.ttrpc", "address"], self.ttrpc.clone());
            set_key(&mut t, &["plugins", "io.containerd.server.v1.debug", "address"], "");
            set_key(&mut t, &["plugins", "io.containerd.server.v1.metrics", "address"], "");
        } else {
            set_key(&mut t, &["grpc", "address"], self.grpc.clone());
            set_key(&mut t, &["ttrpc", "address"], self.ttrpc.clone());
            set_key(&mut t, &["debug", "address"], "");
            set_key(&mut t, &["metrics", "address"], "");
        }
        set_key(&mut t, &["plugins", "io.containerd.internal.v1.opt", "path"], format!("{}/opt", self.daemon_dir.display()));
        if v >= Version::V1_7 {
            // NRI listens on the machine-wide /var/run/nri/nri.sock (on by default in 2.x).
            set_key(&mut t, &["plugins", "io.containerd.nri.v1.nri", "disable"], true);
        }
        toml::to_string(&t).expect("a TOML table serializes")
    }

    fn write_config(&self) {
        std::fs::create_dir_all(&self.root).unwrap();
        std::fs::create_dir_all(&self.state).unwrap();
        std::fs::write(self.config_path(), self.config_text()).unwrap();
    }

    /// The `config.toml` the daemon reads ([`Options::config_file`]).
    pub fn config_path(&self) -> PathBuf {
        self.opts.config_file.clone().unwrap_or_else(|| self.daemon_dir.join("config.toml"))
    }

    /// Path of containerd's log (stdout+stderr of the daemon, including shim logs).
    pub fn log_path(&self) -> PathBuf {
        self.daemon_dir.join("containerd.log")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(self.build.containerd());
        cmd.arg("--config")
            .arg(self.config_path())
            .env_clear()
            .env("PATH", self.daemon_path())
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .current_dir(&self.daemon_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for k in ["RUST_BACKTRACE", "RUST_LOG"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        // Own session: a terminal's ^C must not reach the daemon (we stop it ourselves).
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.build.containerd().display()));
        self.pid = child.id() as i32;
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("containerd exited during start ({st}); log:\n{}", self.log());
                }
            }
            if Path::new(&self.grpc).exists() {
                if let Ok(o) = try_run_cmd(
                    self.ctr_command().arg("version"),
                    None,
                    Duration::from_secs(5),
                ) {
                    if o.ok() {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!("{} not ready after 30 s; log:\n{}", self.build.version, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// PID of the daemon.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Imports the busybox image into namespace `ns`.
    pub fn import_image(&self, ns: &str) {
        let tar = crate::image::image_tarball();
        let tar = tar.to_string_lossy();
        self.ctr_in(ns, &["images", "import", "--all-platforms", &tar]).expect_ok();
    }

    /// A new namespace (unique on the machine), with the image imported.
    pub fn new_namespace(&self) -> String {
        let ns = crate::unique_name("t");
        self.namespaces.lock().unwrap().push(ns.clone());
        self.ctr_raw(&["namespaces", "create", &ns]).expect_ok();
        self.import_image(&ns);
        ns
    }

    /// This version's `ctr` with `--address` set (no namespace). ctr 2.x prints the daemon's
    /// deprecation warnings (cgroup v1, config migration) on every command's stderr, which
    /// tests read as the container's: switched off.
    pub fn ctr_command(&self) -> Command {
        let mut c = Command::new(self.build.ctr());
        c.env("CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS", "1");
        c.args(["--address", &self.grpc]);
        c
    }

    /// `ctr --address A ARGS` (no namespace).
    #[track_caller]
    pub fn ctr_raw(&self, args: &[&str]) -> Out {
        run_cmd(self.ctr_command().args(args), None, CTR_TIMEOUT)
    }

    /// `ctr --address A -n NS ARGS`.
    #[track_caller]
    pub fn ctr_in(&self, ns: &str, args: &[&str]) -> Out {
        run_cmd(self.ctr_command().args(["-n", ns]).args(args), None, CTR_TIMEOUT)
    }

    /// `ctr` in the default namespace.
    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> Out {
        self.ctr_in(&self.ns, args)
    }

    /// `ctr` in the default namespace with stdin data and a deadline.
    #[track_caller]
    pub fn ctr_with(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Out {
        run_cmd(self.ctr_command().args(["-n", &self.ns]).args(args), stdin, timeout)
    }

    /// `ctr` in the default namespace; stdin ends `close_delay` after `stdin` was written.
    #[track_caller]
    pub fn ctr_stdin_delayed(&self, args: &[&str], stdin: &[u8], close_delay: Duration, timeout: Duration) -> Out {
        match try_run_cmd_ex(self.ctr_command().args(["-n", &self.ns]).args(args), Some(stdin), close_delay, timeout) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        }
    }

    /// `ctr run` arguments for a container.
    pub fn run_args(&self, runtime: Runtime, id: &str, args: &[&str], opts: &RunOpts) -> Vec<String> {
        self.track(&self.ns, id);
        let mut v: Vec<String> = vec!["run".into(), "--runtime".into(), runtime.name().into()];
        if opts.detach {
            v.push("-d".into());
        }
        if opts.rm {
            v.push("--rm".into());
        }
        v.extend(opts.flags.iter().cloned());
        v.push(opts.image.clone().unwrap_or_else(|| crate::IMAGE.into()));
        v.push(id.into());
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// Remembers a container id so that cleanup removes its shim socket even if containerd
    /// already forgot it.
    pub fn track(&self, ns: &str, id: &str) {
        let mut ids = self.ids.lock().unwrap();
        let k = (ns.to_string(), id.to_string());
        if !ids.contains(&k) {
            ids.push(k);
        }
    }

    /// `ctr run` in the default namespace.
    #[track_caller]
    pub fn run(&self, runtime: Runtime, id: &str, args: &[&str], opts: RunOpts) -> Out {
        let v = self.run_args(runtime, id, args, &opts);
        let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
        let timeout = opts.timeout.unwrap_or(CTR_TIMEOUT);
        match &opts.stdin {
            Some(data) => self.ctr_stdin_delayed(&v, data, opts.stdin_close_delay.unwrap_or_default(), timeout),
            None => self.ctr_with(&v, None, timeout),
        }
    }

    /// `ctr run -d … ID sleep 100000` and returns the task's PID.
    #[track_caller]
    pub fn run_sleeper(&self, runtime: Runtime, id: &str) -> i32 {
        self.run(runtime, id, &["sleep", "100000"], RunOpts::detach()).expect_ok();
        let pid = self.task_pid(id).expect("task listed after ctr run -d");
        assert!(pid > 0, "task {id} has no pid");
        self.record_socket(id);
        pid
    }

    /// Remembers the shim's socket (see [`Containerd::shim_address`]), so that the leak check
    /// also covers a shim that does not follow containerd's socket naming.
    pub fn record_socket(&self, id: &str) {
        if let Some((a, _)) = self.shim_address(&self.ns, id) {
            let p = PathBuf::from(a.strip_prefix("unix://").unwrap_or(&a));
            self.sockets.lock().unwrap().push((id.to_string(), p));
        }
    }

    /// The address of the shim serving container `id` and the task API version containerd
    /// talks to it: from `bootstrap.json`, which containerd 2.x writes into the bundle, else
    /// from the `address` file the shim itself wrote (1.x: always task API v2; the Go shim 2.x
    /// writes no such file).
    pub fn shim_address(&self, ns: &str, id: &str) -> Option<(String, u32)> {
        let bundle = self.bundle(ns, id);
        if let Ok(b) = std::fs::read(bundle.join("bootstrap.json")) {
            let j: serde_json::Value = serde_json::from_slice(&b).ok()?;
            return Some((j["address"].as_str()?.to_string(), j["version"].as_u64().unwrap_or(2) as u32));
        }
        let a = std::fs::read_to_string(bundle.join("address")).ok()?;
        Some((a.trim().to_string(), 2))
    }

    /// Rows of `ctr task ls`: (id, pid, status).
    pub fn tasks(&self) -> Vec<(String, i32, String)> {
        let o = self.ctr(&["task", "ls"]);
        o.stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() >= 3 {
                    Some((f[0].to_string(), f[1].parse().unwrap_or(0), f[2].to_string()))
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn task_pid(&self, id: &str) -> Option<i32> {
        self.tasks().into_iter().find(|t| t.0 == id).map(|t| t.1)
    }

    /// `RUNNING`, `STOPPED`, `PAUSED`, `CREATED`… or None when there is no task.
    pub fn task_status(&self, id: &str) -> Option<String> {
        self.tasks().into_iter().find(|t| t.0 == id).map(|t| t.2)
    }

    /// Waits until the task reports `status`.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.task_status(id).as_deref() == Some(status))
    }

    /// PIDs listed by `ctr task ps`.
    pub fn task_pids(&self, id: &str) -> Vec<i32> {
        self.ctr(&["task", "ps", id])
            .expect_ok()
            .stdout
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().and_then(|p| p.parse().ok()))
            .collect()
    }

    /// Kills (SIGKILL), deletes the task and the container; ignores errors.
    pub fn remove(&self, id: &str) {
        let _ = try_run_cmd(
            self.ctr_command().args(["-n", &self.ns, "task", "kill", "-a", "-s", "SIGKILL", id]),
            None,
            Duration::from_secs(10),
        );
        let _ = crate::wait_until(Duration::from_secs(5), || {
            matches!(self.task_status(id).as_deref(), Some("STOPPED") | None)
        });
        let _ = try_run_cmd(self.ctr_command().args(["-n", &self.ns, "task", "rm", "-f", id]), None, CTR_TIMEOUT);
        let _ = try_run_cmd(self.ctr_command().args(["-n", &self.ns, "container", "rm", id]), None, CTR_TIMEOUT);
    }

    /// Shim processes started by this containerd (for a shared daemon: those of this
    /// instance's namespaces).
    pub fn shims(&self) -> Vec<procs::Proc> {
        let all = procs::shims_of(&self.grpc);
        if !self.view {
            return all;
        }
        let namespaces = self.namespaces.lock().unwrap();
        all.into_iter().filter(|p| p.arg_after("-namespace").is_some_and(|ns| namespaces.iter().any(|n| n == ns))).collect()
    }

    /// PID of the shim serving container `id` in the default namespace.
    pub fn shim_pid(&self, id: &str) -> Option<i32> {
        self.shim_pid_in(&self.ns, id)
    }

    pub fn shim_pid_in(&self, ns: &str, id: &str) -> Option<i32> {
        self.shims()
            .into_iter()
            .find(|p| p.arg_after("-id") == Some(id) && p.arg_after("-namespace") == Some(ns))
            .map(|p| p.pid)
    }

    /// The bundle directory containerd gives the shim.
    pub fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join("io.containerd.runtime.v2.task").join(ns).join(id)
    }

    /// Everything left behind by container `id` (default namespace), after waiting up to
    /// `timeout` for it to disappear. Empty means clean.
    pub fn leftovers(&self, id: &str, timeout: Duration) -> Vec<String> {
        let mut problems = Vec::new();
        crate::wait_until(timeout, || {
            problems = self.leftovers_now(&self.ns, id);
            problems.is_empty()
        });
        problems
    }

    fn leftovers_now(&self, ns: &str, id: &str) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(pid) = self.shim_pid_in(ns, id) {
            v.push(format!("shim process {pid} still running"));
        }
        let sock = procs::shim_socket(&self.grpc, ns, id);
        if sock.exists() {
            v.push(format!("shim socket {} still exists", sock.display()));
        }
        let debug = procs::shim_debug_socket(&self.grpc, ns, id);
        if debug.exists() {
            v.push(format!("shim debug socket {} still exists", debug.display()));
        }
        for (sid, p) in self.sockets.lock().unwrap().iter() {
            if sid == id && p.exists() && *p != sock {
                v.push(format!("shim socket {} (from the address file) still exists", p.display()));
            }
        }
        let rs = procs::runc_state(ns, id);
        if rs.exists() {
            v.push(format!("runc state {} still exists", rs.display()));
        }
        for m in procs::mounts_under(&self.daemon_dir) {
            if m.components().any(|c| c.as_os_str() == id) {
                v.push(format!("mount {} still present", m.display()));
            }
        }
        for cg in procs::cgroups_named(id) {
            v.push(format!("cgroup {} still exists", cg.display()));
        }
        let b = self.bundle(ns, id);
        if b.exists() {
            v.push(format!("bundle {} still exists", b.display()));
        }
        let mut parents: Vec<i32> = self.shims().iter().map(|p| p.pid).collect();
        if !self.view {
            // A shared daemon's children belong to every test using it.
            parents.push(self.pid);
        }
        for z in procs::zombies_of(&parents) {
            v.push(format!("zombie {} ({}) child of {}", z.pid, z.comm, z.ppid));
        }
        v
    }

    /// Panics listing what container `id` left behind (waits up to 10 s for cleanup).
    #[track_caller]
    pub fn assert_no_leftovers(&self, id: &str) {
        let l = self.leftovers(id, Duration::from_secs(10));
        assert!(l.is_empty(), "container {id} left things behind:\n  {}", l.join("\n  "));
    }

    /// Zombie children of this containerd's shims.
    pub fn shim_zombies(&self) -> Vec<procs::Proc> {
        let parents: Vec<i32> = self.shims().iter().map(|p| p.pid).collect();
        procs::zombies_of(&parents)
    }

    /// Stops the daemon with `sig` (`libc::SIGKILL` or `libc::SIGTERM`) and starts it again
    /// on the same directories. Shims and containers keep running.
    pub fn restart(&mut self, sig: i32) {
        assert!(!self.view, "restart() needs a containerd of its own (Containerd::start_version), not a shared one");
        self.stop_daemon(sig);
        self.spawn();
        self.wait_ready();
    }

    fn stop_daemon(&mut self, sig: i32) {
        procs::kill(self.pid, sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let gone = match self.child.as_mut() {
                Some(c) => matches!(c.try_wait(), Ok(Some(_)) | Err(_)),
                None => !procs::alive(self.pid),
            };
            if gone {
                break;
            }
            if Instant::now() > deadline {
                procs::kill(self.pid, libc::SIGKILL);
                if let Some(c) = self.child.as_mut() {
                    let _ = c.wait();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = None;
    }

    /// Leaves the daemon running after this value is dropped (for `dockerish-testenv up`);
    /// writes what [`Containerd::attach`] needs into `<dir>/harness.json`.
    pub fn detach(mut self) -> PathBuf {
        assert!(!self.view, "detach() needs a containerd of its own");
        let st = serde_json::json!({
            "version": self.build.version.module(),
            "pid": self.pid,
            "grpc": self.grpc,
            "ttrpc": self.ttrpc,
            "ns": self.ns,
            "namespaces": *self.namespaces.lock().unwrap(),
            "remove_dir": self.remove_dir,
        });
        std::fs::write(self.dir.join(STATE_FILE), serde_json::to_vec_pretty(&st).unwrap()).unwrap();
        self.detached = true;
        self.child = None; // not waited: the daemon outlives us (reparented to init)
        self.dir.clone()
    }

    /// Re-attaches to a daemon left by [`Containerd::detach`]; dropping the result cleans up.
    pub fn attach(dir: &Path) -> std::io::Result<Self> {
        let dir = std::fs::canonicalize(dir)?;
        let st: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE))?)?;
        let s = |k: &str| st[k].as_str().unwrap_or_default().to_string();
        // Environments written before the matrix existed ran 1.6.
        let version = Version::parse(&s("version")).unwrap_or(Version::V1_6);
        let build = version.try_build().map_err(std::io::Error::other)?;
        Ok(Containerd {
            root: dir.join("root"),
            state: dir.join("state"),
            grpc: s("grpc"),
            ttrpc: s("ttrpc"),
            ns: s("ns"),
            opts: Options { version, dir: Some(dir.clone()), ..Options::default() },
            build,
            child: None,
            pid: st["pid"].as_i64().unwrap_or(0) as i32,
            namespaces: Mutex::new(
                st["namespaces"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
            ),
            ids: Mutex::new(Vec::new()),
            sockets: Mutex::new(Vec::new()),
            detached: false,
            remove_dir: st["remove_dir"].as_bool().unwrap_or(false),
            view: false,
            daemon_dir: dir.clone(),
            dir,
        })
    }

    /// Stops everything this instance started and removes what it left. Idempotent.
    pub fn cleanup(&mut self) {
        let namespaces = self.namespaces.lock().unwrap().clone();
        // Every (ns, id) this instance knows about: bundles and runc state.
        let mut ids: Vec<(String, String)> = self.ids.lock().unwrap().clone();
        for ns in &namespaces {
            for d in [self.state.join("io.containerd.runtime.v2.task").join(ns), PathBuf::from("/run/containerd/runc").join(ns)] {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        let id = e.file_name().to_string_lossy().into_owned();
                        if !ids.contains(&(ns.clone(), id.clone())) {
                            ids.push((ns.clone(), id));
                        }
                    }
                }
            }
        }
        // 1. Containers: runc delete --force kills and removes them.
        for (ns, id) in &ids {
            let root = PathBuf::from("/run/containerd/runc").join(ns);
            if root.join(id).exists() {
                let _ = try_run_cmd(
                    Command::new("runc").arg("--root").arg(&root).args(["delete", "--force", id]),
                    None,
                    Duration::from_secs(20),
                );
            }
        }
        // 2. Shims (and their leftover children, e.g. binary:// loggers). A shim killed here
        // (possibly in the last milliseconds of its own exit) cannot remove its socket, and
        // its id may no longer have a bundle: note the socket from its command line.
        let shims = self.shims();
        let shim_sockets: Vec<PathBuf> = shims
            .iter()
            .flat_map(|s| {
                let by_flag = s.arg_after("-socket").map(PathBuf::from);
                let by_id = s
                    .arg_after("-namespace")
                    .zip(s.arg_after("-id"))
                    .map(|(ns, id)| [procs::shim_socket(&self.grpc, ns, id), procs::shim_debug_socket(&self.grpc, ns, id)]);
                by_flag.into_iter().chain(by_id.into_iter().flatten())
            })
            .collect();
        for s in &shims {
            for c in procs::children_of(s.pid) {
                procs::kill(c.pid, libc::SIGKILL);
            }
            procs::kill(s.pid, libc::SIGKILL);
        }
        // 3. The daemon (a shared one stays for the other tests; containerd notices the dead
        // shims and cleans up their tasks itself).
        if !self.view {
            if self.pid > 0 && procs::alive(self.pid) && self.is_our_daemon() {
                self.stop_daemon(libc::SIGTERM);
            } else if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        crate::wait_until(Duration::from_secs(5), || shims.iter().all(|s| !procs::alive(s.pid)));
        // 4. Mounts, sockets, runc state, cgroups, the directory.
        procs::unmount_all_under(&self.dir);
        if self.view {
            for ns in &namespaces {
                procs::unmount_all_under(&self.state.join("io.containerd.runtime.v2.task").join(ns));
            }
        }
        for sock in shim_sockets.iter().filter(|p| p.starts_with("/run/containerd/s")) {
            let _ = std::fs::remove_file(sock);
        }
        for (ns, id) in &ids {
            let _ = std::fs::remove_file(procs::shim_socket(&self.grpc, ns, id));
            let _ = std::fs::remove_file(procs::shim_debug_socket(&self.grpc, ns, id));
            for cg in procs::cgroups_named(id) {
                let _ = std::fs::remove_dir(cg);
            }
        }
        for ns in &namespaces {
            let root = PathBuf::from("/run/containerd/runc").join(ns);
            if let Ok(rd) = std::fs::read_dir(&root) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
            let _ = std::fs::remove_dir(&root);
            procs::remove_cgroups_of_ns(ns);
        }
        // 5. The shim's claims of this instance's bundles (their undo never ran if a shim was
        // killed above): stale claims are taken over, but need not outlive the test.
        procs::remove_claims_of(&self.state.join("io.containerd.runtime.v2.task"), &namespaces);
        if self.remove_dir {
            if procs::mounts_under(&self.dir).is_empty() {
                let _ = std::fs::remove_dir_all(&self.dir);
            } else {
                eprintln!("harness: mounts remain under {}, not removing it", self.dir.display());
            }
        } else {
            for sub in ["root", "state", "opt"] {
                if procs::mounts_under(&self.dir.join(sub)).is_empty() {
                    let _ = std::fs::remove_dir_all(self.dir.join(sub));
                }
            }
            let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
            let _ = std::fs::remove_file(&self.grpc);
            let _ = std::fs::remove_file(&self.ttrpc);
        }
        self.pid = 0;
    }

    fn is_our_daemon(&self) -> bool {
        procs::read_proc(self.pid)
            .map(|p| p.cmdline.iter().any(|a| a.contains(&*self.daemon_dir.to_string_lossy())))
            .unwrap_or(false)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if std::thread::panicking() {
            let log = self.log();
            // In a shared daemon, the lines about this test's namespace (container ids end in it).
            let lines: Vec<&str> = log.lines().filter(|l| !self.view || l.contains(&self.ns)).collect();
            let start = lines.len().saturating_sub(60);
            eprintln!(
                "---- last lines{} of the private {}'s log ({}) ----\n{}\n----",
                if self.view { format!(" about namespace {}", self.ns) } else { String::new() },
                self.build.version,
                self.log_path().display(),
                lines[start..].join("\n")
            );
        }
        self.cleanup();
    }
}
