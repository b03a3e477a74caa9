//! `containerd-shim-dockerish-v2 install` and `uninstall`: set the shim up on a node, or take it
//! off again. The one implementation of the node setup: `deploy/install.sh` runs it on the node
//! itself, the node installer image (`deploy/node-installer`) runs it in a privileged pod with the
//! node's root mounted (`--root /host`). Every path argument is a path *on the node*; `--root` is
//! only where the node's `/` is seen from here, so what goes into containerd's config (the
//! `ConfigPath`) is always the node's own path.
//!
//! - The binary (this one, or `--binary`) is written to a temporary file beside the target and
//!   renamed over it: running shims keep their (now unlinked) binary, new shims start the new one.
//! - The CRI runtime handler `dockerish` is registered in containerd's `config.toml` in place,
//!   between marker lines, built from the snippets `deploy/` ships (the README shows the same
//!   files). In place because containerd 1.x `imports` replace whole plugin sections. The table
//!   follows the file's `version` (2: containerd 1.6/1.7; 3 and 4: containerd 2.x, the same
//!   runtimes table). Uninstall removes exactly what install added, so the file comes back byte
//!   for byte, including a missing final newline.
//! - `dockerish.toml` is installed when the node has none; uninstall removes it only when it is
//!   still the default this installs (never the admin's settings).
//! - containerd is restarted only when its config changed, and only through the node's systemd:
//!   `systemctl restart containerd.service`, in PID 1's mount namespace when running in a pod
//!   (hostPID). Before touching anything the installer checks that it can (systemd runs the
//!   node, the unit is active, and its `KillMode=process` keeps running containers alive); a
//!   containerd that does not come back with the new config gets the old config back and is
//!   restarted again. Without systemd the installer refuses, unless told not to restart.
//! - Uninstall refuses while containers of this runtime exist on the node (their shims would
//!   lose their binary for `shim delete`), unless `--force`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::sched::CloneFlags;

/// The binary's file name: containerd derives it from the runtime name `io.containerd.dockerish.v2`.
pub const BINARY_NAME: &str = "containerd-shim-dockerish-v2";
/// The runtime name CRI's `runtime_type` carries.
pub const RUNTIME_TYPE: &str = "io.containerd.dockerish.v2";
/// The CRI runtime handler name (= the RuntimeClass `handler`).
pub const HANDLER: &str = "dockerish";
/// containerd's systemd unit.
pub const CONTAINERD_UNIT: &str = "containerd.service";

/// A line that starts with this begins the managed block (`deploy/install.sh` before this
/// module wrote a different tail; both are recognised).
const BEGIN_PREFIX: &str = "# BEGIN containerd-shim-dockerish-v2";
const BEGIN: &str = "# BEGIN containerd-shim-dockerish-v2 (managed by `containerd-shim-dockerish-v2 install`; `uninstall` removes it)";
/// Appended to the BEGIN line when the file did not end with a newline: uninstall then takes
/// back the newline it added too.
const NO_FINAL_NEWLINE: &str = " [file had no final newline]";
const END: &str = "# END containerd-shim-dockerish-v2";

/// The snippets `deploy/` ships (one source for the docs and the installer).
const SNIPPET_V2: &str = include_str!("../../deploy/containerd-config-v2.toml");
const SNIPPET_V3: &str = include_str!("../../deploy/containerd-config-v3.toml");
/// The default shim config installed when the node has none.
pub const DEFAULT_SHIM_CONFIG: &str = include_str!("../../deploy/dockerish.toml");

/// CRI plugin ids holding the `runtimes` table, by config version.
const CRI_PLUGIN_V2: &str = "io.containerd.grpc.v1.cri";
const CRI_PLUGIN_V3: &str = "io.containerd.cri.v1.runtime";
/// containerd's default state directory, where it keeps the bundles of running tasks.
const DEFAULT_STATE: &str = "/run/containerd";
const TASK_DIR: &str = "io.containerd.runtime.v2.task";

const USAGE: &str = "usage:
  containerd-shim-dockerish-v2 install [--binary PATH] [--prefix DIR] [--config FILE] [--shim-config FILE]
                                       [--shim-config-default FILE] [--root DIR] [--restart auto|systemd|none] [--no-restart]
  containerd-shim-dockerish-v2 uninstall [--prefix DIR] [--config FILE] [--shim-config FILE] [--shim-config-default FILE]
                                         [--root DIR] [--restart auto|systemd|none] [--no-restart] [--force]

  --binary PATH               the shim to install (default: this binary)
  --prefix DIR                where the binary goes, on containerd's PATH (default /usr/local/bin)
  --config FILE               containerd's config (default /etc/containerd/config.toml)
  --shim-config FILE          the shim's config, installed if missing; ConfigPath names it (default /etc/containerd/dockerish.toml)
  --shim-config-default FILE  the content installed as --shim-config (default: the built-in deploy/dockerish.toml)
  --root DIR                  where the node's / is mounted (default /); all other paths are the node's
  --restart MODE              auto (default): restart containerd through systemd if its config changed, refuse
                              without systemd; systemd: same; none (= --no-restart): never restart it
  --force                     uninstall even while containers of this runtime exist";

/// What went wrong: the caller's mistake (bad arguments, a config the installer must not edit)
/// or the system's (I/O, containerd, systemd).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    /// The node's state makes the request invalid (a config to fix by hand, no way to restart).
    #[error("{0}")]
    Refused(String),
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    System(String),
}

impl InstallError {
    /// The exit status: 2 for a usage error (as for the other actions), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            InstallError::Usage(_) => 2,
            _ => 1,
        }
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> InstallError + 'a {
    move |source| InstallError::Io { what, path: path.to_path_buf(), source }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Install,
    Uninstall,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Through systemd when the config changed; refuse (before changing anything) without it.
    Auto,
    /// Same as `Auto` today; kept apart so that a later non-systemd way does not change what
    /// an explicit `systemd` means.
    Systemd,
    None,
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub action: Action,
    pub binary: Option<PathBuf>,
    pub root: PathBuf,
    pub prefix: PathBuf,
    pub config: PathBuf,
    pub shim_config: PathBuf,
    pub shim_config_default: Option<PathBuf>,
    pub restart: Restart,
    pub force: bool,
}

/// Parses `install …` / `uninstall …` (`words` starts with the action).
pub fn parse_args(words: &[String]) -> Result<Args, InstallError> {
    let usage = |m: String| InstallError::Usage(m);
    let mut it = words.iter();
    let action = match it.next().map(String::as_str) {
        Some("install") => Action::Install,
        Some("uninstall") => Action::Uninstall,
        other => return Err(usage(format!("expected install or uninstall, got {other:?}"))),
    };
    let mut a = Args {
        action,
        binary: None,
        root: PathBuf::from("/"),
        prefix: PathBuf::from("/usr/local/bin"),
        config: PathBuf::from("/etc/containerd/config.toml"),
        shim_config: PathBuf::from("/etc/containerd/dockerish.toml"),
        shim_config_default: None,
        restart: Restart::Auto,
        force: false,
    };
    while let Some(w) = it.next() {
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (w.as_str(), None),
        };
        let mut value = || -> Result<String, InstallError> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(usage(format!("{name} needs a value"))),
            }
        };
        match name {
            "--binary" if action == Action::Install => a.binary = Some(PathBuf::from(value()?)),
            "--root" => a.root = PathBuf::from(value()?),
            "--prefix" => a.prefix = PathBuf::from(value()?),
            "--config" => a.config = PathBuf::from(value()?),
            "--shim-config" => a.shim_config = PathBuf::from(value()?),
            "--shim-config-default" => a.shim_config_default = Some(PathBuf::from(value()?)),
            "--restart" => {
                a.restart = match value()?.as_str() {
                    "auto" => Restart::Auto,
                    "systemd" => Restart::Systemd,
                    "none" => Restart::None,
                    other => return Err(usage(format!("--restart {other:?}: expected auto, systemd or none"))),
                }
            }
            "--no-restart" if inline.is_none() => a.restart = Restart::None,
            "--force" if inline.is_none() && action == Action::Uninstall => a.force = true,
            "-h" | "--help" => return Err(usage("help".into())),
            other => return Err(usage(format!("unknown argument {other:?} for {}", words[0]))),
        }
    }
    if !a.root.is_absolute() {
        return Err(usage(format!("--root {}: must be an absolute path", a.root.display())));
    }
    // Node paths go into containerd's config, which resolves them as given: absolute. On the
    // node itself a relative one means "from here"; seen through --root it means nothing.
    let on_node = a.root == Path::new("/");
    let cwd = std::env::current_dir().map_err(|e| InstallError::System(format!("current directory: {e}")))?;
    for (flag, p) in [("--prefix", &mut a.prefix), ("--config", &mut a.config), ("--shim-config", &mut a.shim_config)] {
        if p.is_relative() {
            if !on_node {
                return Err(usage(format!("{flag} {}: must be an absolute path on the node with --root", p.display())));
            }
            *p = cwd.join(&*p);
        }
        if p.to_str().is_none() {
            return Err(usage(format!("{flag} {}: not valid UTF-8 (containerd's config is text)", p.display())));
        }
    }
    Ok(a)
}

/// Entry point of the `install` / `uninstall` actions.
pub fn main(words: &[String]) -> Result<(), InstallError> {
    let args = parse_args(words)?;
    let node = Node { root: args.root.clone() };
    match args.action {
        Action::Install => install(&args, &node),
        Action::Uninstall => uninstall(&args, &node),
    }
}

// ---------------------------------------------------------------------------------------------
// The config edit: pure functions over the file's text.

/// Why a config cannot be edited.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

/// The file without the managed block(s): exactly the text before install added them.
pub fn strip_block(text: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut in_block: Option<(usize, bool)> = None; // (line number of BEGIN, no final newline)
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        match in_block {
            None if bare.starts_with(BEGIN_PREFIX) => {
                // The separator install put before the block: one newline when the file ended
                // with one (a blank line), two when it did not.
                if bare.ends_with(NO_FINAL_NEWLINE) {
                    if out.ends_with("\n\n") {
                        out.truncate(out.len() - 2);
                    }
                } else if out.ends_with("\n\n") {
                    out.pop();
                }
                in_block = Some((n + 1, bare.ends_with(NO_FINAL_NEWLINE)));
            }
            None => out.push_str(line),
            Some(_) if bare == END => in_block = None,
            Some(_) => {}
        }
    }
    if let Some((line, _)) = in_block {
        return Err(ConfigError(format!("line {line} begins a containerd-shim-dockerish-v2 block that never ends (no '{END}' line): fix the file by hand")));
    }
    Ok(out)
}

/// `stripped` with `block` (its body lines, without markers) appended so that [`strip_block`]
/// gives `stripped` back.
pub fn add_block(stripped: &str, body: &str) -> String {
    let mut s = String::with_capacity(stripped.len() + body.len() + 200);
    s.push_str(stripped);
    let mut begin = BEGIN.to_string();
    if stripped.is_empty() {
    } else if stripped.ends_with('\n') {
        s.push('\n');
    } else {
        s.push_str("\n\n");
        begin.push_str(NO_FINAL_NEWLINE);
    }
    s.push_str(&begin);
    s.push('\n');
    s.push_str(body);
    if !body.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(END);
    s.push('\n');
    s
}

fn lookup<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut v = t.get(*first)?;
    for k in rest {
        v = v.as_table()?.get(*k)?;
    }
    Some(v)
}

fn parse_toml(text: &str, what: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError(format!("{} is not valid TOML: {}", what.display(), e.to_string().trim_end())))
}

/// The top-level `version` of a containerd config.
pub fn config_version(t: &toml::Table, path: &Path) -> Result<i64, ConfigError> {
    match t.get("version") {
        Some(toml::Value::Integer(v)) => Ok(*v),
        Some(other) => Err(ConfigError(format!("{}: 'version' is {other}, not a number", path.display()))),
        // Without it every containerd reads the file as the old version 1 layout (2.x migrates
        // it from "version 0"), which the installer does not write.
        None => Err(ConfigError(format!(
            "{} has no top-level 'version = 2|3|4' line: add one (containerd 1.6/1.7: 2, containerd 2.x: what 'containerd config default' writes)",
            path.display()
        ))),
    }
}

/// The CRI plugin holding the runtimes table for config version `v`.
pub fn cri_plugin(v: i64) -> Option<&'static str> {
    match v {
        2 => Some(CRI_PLUGIN_V2),
        // Version 4 (2.3's default) moved only the server settings; the CRI runtimes table of 3
        // is read unchanged (checked with 2.3.4's `config default` and `config migrate`).
        3 | 4 => Some(CRI_PLUGIN_V3),
        _ => None,
    }
}

/// The body of the managed block for config version `version`, with `ConfigPath` = `shim_config`.
/// `stripped` is the file without the block (what decides whether `runc` must be declared).
pub fn block_body(stripped: &toml::Table, version: i64, shim_config: &str, path: &Path) -> Result<String, ConfigError> {
    let (snippet, plugin) = match (version, cri_plugin(version)) {
        (2, Some(p)) => (SNIPPET_V2, p),
        (3 | 4, Some(p)) => (SNIPPET_V3, p),
        _ => return Err(ConfigError(format!("{}: config version {version} is not supported (use version 2, 3 or 4)", path.display()))),
    };
    let runtimes = lookup(stripped, &["plugins", plugin, "containerd", "runtimes"]);
    if runtimes.and_then(|r| r.as_table()).is_some_and(|r| r.contains_key(HANDLER)) {
        return Err(ConfigError(format!("{} already defines a '{HANDLER}' runtime outside this installer's block: remove it or rename it", path.display())));
    }
    let mut body = String::new();
    // containerd 1.6/1.7 decode the `runtimes` table over the built-in defaults by REPLACING the
    // map: a config that declares no runtime at all (Debian's default config.toml) would lose the
    // built-in `runc` handler, and the CRI plugin then refuses to load ("no corresponding runtime
    // configured in `containerd.runtimes` for `containerd` `default_runtime_name = "runc"`").
    // Declare the default handler too in that case (same values as containerd's default).
    if version == 2 && runtimes.and_then(|r| r.as_table()).is_none_or(|r| r.is_empty()) {
        body.push_str(&format!("[plugins.\"{plugin}\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n"));
    }
    let quoted = toml::Value::String(shim_config.to_string()).to_string();
    for line in snippet.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with("version") {
            continue;
        }
        match t.strip_prefix("ConfigPath").map(str::trim_start) {
            Some(rest) if rest.starts_with('=') => {
                let indent = &line[..line.len() - t.len()];
                body.push_str(&format!("{indent}ConfigPath = {quoted}\n"));
            }
            _ => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    Ok(body)
}

/// The config text with the handler registered (replacing an earlier block), checked to parse
/// with the handler where containerd looks for it. Returns (new text, version).
pub fn edited_config(original: &str, shim_config: &str, path: &Path) -> Result<(String, i64), ConfigError> {
    let stripped = strip_block(original)?;
    let table = parse_toml(&stripped, path)?;
    let version = config_version(&table, path)?;
    let body = block_body(&table, version, shim_config, path)?;
    let text = add_block(&stripped, &body);
    let check = parse_toml(&text, path).map_err(|e| ConfigError(format!("the edited config would not parse ({}); {} left unchanged", e.0, path.display())))?;
    let plugin = cri_plugin(version).expect("block_body accepted the version");
    let ty = lookup(&check, &["plugins", plugin, "containerd", "runtimes", HANDLER, "runtime_type"]).and_then(|v| v.as_str());
    if ty != Some(RUNTIME_TYPE) {
        return Err(ConfigError(format!("the edited config would not register the handler (plugins.\"{plugin}\".containerd.runtimes.{HANDLER}.runtime_type is {ty:?}); {} left unchanged", path.display())));
    }
    Ok((text, version))
}

// ---------------------------------------------------------------------------------------------
// The node: its files (seen through --root) and its systemd.

/// The node as seen from this process.
pub struct Node {
    /// Where the node's `/` is mounted here (`/` when running on the node itself).
    pub root: PathBuf,
}

impl Node {
    pub fn on_node(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The local path of the node's path `p` (absolute).
    pub fn path(&self, p: &Path) -> PathBuf {
        if self.on_node() {
            p.to_path_buf()
        } else {
            self.root.join(p.strip_prefix("/").unwrap_or(p))
        }
    }
}

/// The node's systemd, reachable from here: its `systemctl`, run on the node itself or in the
/// mount namespace of the node's PID 1 (a pod with hostPID and the node's root mounted).
struct Systemd {
    systemctl: PathBuf,
    /// (the node's mount namespace, ours) when running in a pod.
    namespaces: Option<(OwnedFd, OwnedFd)>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn open_ns(path: &str) -> Result<OwnedFd, String> {
    std::fs::File::open(path).map(OwnedFd::from).map_err(|e| format!("open {path}: {e}"))
}

impl Systemd {
    /// The node's systemd, or why it cannot be used.
    fn find(node: &Node) -> Result<Systemd, String> {
        if !node.path(Path::new("/run/systemd/system")).is_dir() {
            return Err("systemd does not run this node (no /run/systemd/system)".into());
        }
        let systemctl = ["/usr/bin/systemctl", "/bin/systemctl"]
            .iter()
            .map(PathBuf::from)
            .find(|p| node.path(p).is_file())
            .ok_or("the node has no systemctl in /usr/bin or /bin")?;
        if node.on_node() {
            return Ok(Systemd { systemctl, namespaces: None });
        }
        // In a pod: the node's PID 1 must be visible (hostPID) and its root must be ours.
        if !same_file(Path::new("/proc/1/root"), &node.root) {
            return Err(format!(
                "PID 1 here is not the node's init (its root is not {}): the installer needs the node's PID namespace (hostPID: true) to reach the node's systemd",
                node.root.display()
            ));
        }
        Ok(Systemd { systemctl, namespaces: Some((open_ns("/proc/1/ns/mnt")?, open_ns("/proc/self/ns/mnt")?)) })
    }

    /// Runs `program args` on the node (the node's files, binaries and systemd). The process
    /// enters the node's mount namespace for the spawn and comes back: it is single-threaded
    /// here, which `setns(CLONE_NEWNS)` requires.
    fn run_on_node(&self, program: &Path, args: &[&str]) -> Result<Output, String> {
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear().env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").env("SYSTEMD_PAGER", "").current_dir("/");
        let Some((node_ns, own_ns)) = &self.namespaces else {
            return cmd.output().map_err(|e| format!("{}: {e}", program.display()));
        };
        nix::sched::setns(node_ns, CloneFlags::CLONE_NEWNS).map_err(|e| format!("enter the node's mount namespace: {e}"))?;
        let _ = nix::unistd::chdir("/");
        let out = cmd.output().map_err(|e| format!("{} (on the node): {e}", program.display()));
        // Not coming back would make every later path wrong: stop rather than go on.
        if let Err(e) = nix::sched::setns(own_ns, CloneFlags::CLONE_NEWNS) {
            eprintln!("containerd-shim-dockerish-v2 install: cannot return to the installer's mount namespace: {e}");
            std::process::exit(1);
        }
        let _ = nix::unistd::chdir("/");
        out
    }

    fn systemctl(&self, args: &[&str]) -> Result<Output, String> {
        self.run_on_node(&self.systemctl, args)
    }

    fn show(&self, prop: &str) -> Result<String, String> {
        let o = self.systemctl(&["show", "-p", prop, "--value", CONTAINERD_UNIT])?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    /// Checks that restarting containerd through systemd is possible and keeps running
    /// containers alive.
    fn preflight(&self) -> Result<(), String> {
        let o = self.systemctl(&["is-active", CONTAINERD_UNIT])?;
        let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state != "active" {
            return Err(format!("{CONTAINERD_UNIT} is not active under systemd (is-active: {state:?}): containerd runs some other way on this node"));
        }
        // control-group (systemd's default) would stop every shim, and so every container.
        let kill_mode = self.show("KillMode")?;
        if kill_mode != "process" && kill_mode != "none" {
            return Err(format!("{CONTAINERD_UNIT} has KillMode={kill_mode}: restarting it would stop every running container (containerd's own unit sets KillMode=process)"));
        }
        Ok(())
    }

    /// The containerd binary the unit runs (from `ExecStart`), as a path on the node.
    fn containerd_binary(&self) -> Option<PathBuf> {
        let exec = self.show("ExecStart").ok()?;
        let path = exec.split(';').find_map(|f| f.trim().trim_start_matches('{').trim().strip_prefix("path="))?;
        Some(PathBuf::from(path.trim()))
    }

    fn restart(&self) -> Result<(), String> {
        let o = self.systemctl(&["restart", CONTAINERD_UNIT])?;
        if o.status.success() {
            return Ok(());
        }
        let status = self.systemctl(&["status", "--no-pager", "-n", "15", CONTAINERD_UNIT]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        Err(format!("systemctl restart {CONTAINERD_UNIT} failed: {}\n{status}", String::from_utf8_lossy(&o.stderr).trim()))
    }
}

/// How containerd will be restarted, decided before anything changes.
enum Restarter {
    Systemd(Systemd),
    /// Told not to, or nothing to restart for.
    Skip,
}

fn restarter(args: &Args, node: &Node, config_changes: bool) -> Result<Restarter, InstallError> {
    if args.restart == Restart::None || !config_changes {
        return Ok(Restarter::Skip);
    }
    let refuse = |why: String| {
        InstallError::Refused(format!(
            "cannot restart containerd: {why}. Nothing was changed. Restart containerd another way after installing with --no-restart (RESTART=none for the node installer)"
        ))
    };
    let sd = Systemd::find(node).map_err(refuse)?;
    sd.preflight().map_err(refuse)?;
    Ok(Restarter::Systemd(sd))
}

/// The containerd binary to check a config with: the one systemd runs, else (on the node) the
/// one on PATH. `None` when none can be run from here.
fn containerd_for_check(node: &Node, r: &Restarter) -> Option<(PathBuf, bool)> {
    if let Restarter::Systemd(sd) = r {
        if let Some(p) = sd.containerd_binary() {
            return Some((p, true));
        }
    }
    if node.on_node() {
        let path = std::env::var_os("PATH")?;
        return std::env::split_paths(&path).map(|d| d.join("containerd")).find(|p| p.is_file()).map(|p| (p, false));
    }
    None
}

/// Runs `containerd --config FILE config dump` with the node's containerd (which knows the
/// version and plugins the file is for).
fn check_with_containerd(node: &Node, r: &Restarter, file_on_node: &Path) -> Result<(), String> {
    let Some((bin, via_systemd)) = containerd_for_check(node, r) else { return Ok(()) };
    let f = file_on_node.to_string_lossy().into_owned();
    let args = ["--config", f.as_str(), "config", "dump"];
    let out = match (r, via_systemd) {
        (Restarter::Systemd(sd), true) => sd.run_on_node(&bin, &args)?,
        _ => Command::new(&bin).args(args).output().map_err(|e| format!("{}: {e}", bin.display()))?,
    };
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{} rejects the edited config: {}", bin.display(), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The version `containerd config default` writes (its native one), for a new config file.
fn native_config_version(node: &Node, r: &Restarter) -> i64 {
    let Some((bin, via_systemd)) = containerd_for_check(node, r) else { return 2 };
    let out = match (r, via_systemd) {
        (Restarter::Systemd(sd), true) => sd.run_on_node(&bin, &["config", "default"]).ok(),
        _ => Command::new(&bin).args(["config", "default"]).output().ok(),
    };
    out.filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("version").and_then(|v| v.as_integer()))
        .unwrap_or(2)
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Writes `data` to `dst` atomically: a temporary file beside it, fsync, rename. `mode` is the
/// new file's mode (`None`: keep the existing file's mode and owner, else 0644).
fn write_atomic(dst: &Path, data: &[u8], mode: Option<u32>) -> Result<(), InstallError> {
    let dir = dst.parent().ok_or_else(|| InstallError::System(format!("{} has no parent directory", dst.display())))?;
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.dockerish-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(data).map_err(io_err("write", &tmp))?;
        let old = std::fs::metadata(dst).ok();
        let perm = match (mode, &old) {
            (Some(m), _) => m,
            (None, Some(m)) => m.permissions().mode() & 0o7777,
            (None, None) => 0o644,
        };
        f.set_permissions(std::fs::Permissions::from_mode(perm)).map_err(io_err("chmod", &tmp))?;
        if let (None, Some(m)) = (mode, &old) {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid())).map_err(io_err("chown", &tmp))?;
        }
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        std::fs::rename(&tmp, dst).map_err(io_err("rename into place", dst))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_if_exists(p: &Path) -> Result<Option<Vec<u8>>, InstallError> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(InstallError::Io { what: "read", path: p.to_path_buf(), source: e }),
    }
}

fn shim_config_default(args: &Args) -> Result<Vec<u8>, InstallError> {
    match &args.shim_config_default {
        Some(p) => std::fs::read(p).map_err(io_err("read the default shim config", p)),
        None => Ok(DEFAULT_SHIM_CONFIG.as_bytes().to_vec()),
    }
}

fn config_error(e: ConfigError) -> InstallError {
    InstallError::Refused(e.0)
}

/// Task bundles of this runtime under containerd's state directory: `namespace/id` of each.
fn our_containers(node: &Node, config: Option<&toml::Table>) -> Vec<String> {
    let state = config.and_then(|t| t.get("state")).and_then(|s| s.as_str()).unwrap_or(DEFAULT_STATE);
    let dir = node.path(Path::new(state)).join(TASK_DIR);
    let mut found = Vec::new();
    for ns in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for b in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            if b.path().join(crate::bundle::STATE_FILE).is_file() {
                found.push(format!("{}/{}", ns.file_name().to_string_lossy(), b.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    found
}

/// Replaces the config with `new`, restarts containerd, and puts `old` back (restarting again)
/// when containerd does not come up with `new`.
fn apply_config(node: &Node, r: &Restarter, path_on_node: &Path, old: &[u8], new: &str) -> Result<(), InstallError> {
    let local = node.path(path_on_node);
    write_atomic(&local, new.as_bytes(), None)?;
    let Restarter::Systemd(sd) = r else { return Ok(()) };
    match sd.restart() {
        Ok(()) => {
            println!("restarted {CONTAINERD_UNIT} (running containers keep running: KillMode=process)");
            Ok(())
        }
        Err(e) => {
            write_atomic(&local, old, None)?;
            let again = match sd.restart() {
                Ok(()) => "containerd runs again with the previous config".to_string(),
                Err(e2) => format!("and containerd did not come back with the previous config either: {e2}"),
            };
            Err(InstallError::System(format!("{e}\n{} was put back as it was; {again}", path_on_node.display())))
        }
    }
}

fn install(args: &Args, node: &Node) -> Result<(), InstallError> {
    let config_local = node.path(&args.config);
    let shim_config = args.shim_config.to_str().expect("checked by parse_args");
    let existing = read_if_exists(&config_local)?;
    if existing.is_none() && !node.on_node() {
        return Err(InstallError::Refused(format!(
            "{} does not exist on the node: the installer edits containerd's config and does not guess one (create it with `containerd config default`, or point --config / CONTAINERD_CONFIG at the file containerd reads)",
            args.config.display()
        )));
    }
    // Decide everything before changing anything.
    let (new_text, version, changes, r) = match &existing {
        Some(b) => {
            let old = std::str::from_utf8(b).map_err(|_| InstallError::Refused(format!("{} is not UTF-8 text", args.config.display())))?;
            let (new_text, version) = edited_config(old, shim_config, &args.config).map_err(config_error)?;
            let changes = new_text != old;
            (new_text, version, changes, restarter(args, node, changes)?)
        }
        None => {
            let r = restarter(args, node, true)?;
            let (new_text, version) = edited_config(&format!("version = {}\n", native_config_version(node, &r)), shim_config, &args.config).map_err(config_error)?;
            (new_text, version, true, r)
        }
    };

    // 1. The binary.
    let source = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| InstallError::System(format!("this binary's path: {e}")))?,
    };
    let bytes = std::fs::read(&source).map_err(io_err("read the shim binary", &source))?;
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(InstallError::Refused(format!("{} is not an ELF executable", source.display())));
    }
    let prefix = node.path(&args.prefix);
    std::fs::create_dir_all(&prefix).map_err(io_err("create", &prefix))?;
    let target = prefix.join(BINARY_NAME);
    let target_on_node = args.prefix.join(BINARY_NAME);
    if read_if_exists(&target)?.as_deref() == Some(&bytes[..]) {
        println!("{} is up to date", target_on_node.display());
    } else {
        write_atomic(&target, &bytes, Some(0o755))?;
        println!("installed {} (running shims keep their binary; new ones start this one)", target_on_node.display());
    }

    // 2. The shim's config, unless the node has one.
    let sc = node.path(&args.shim_config);
    if read_if_exists(&sc)?.is_none() {
        if let Some(d) = sc.parent() {
            std::fs::create_dir_all(d).map_err(io_err("create", d))?;
        }
        write_atomic(&sc, &shim_config_default(args)?, Some(0o644))?;
        println!("installed {}", args.shim_config.display());
    }

    // 3. containerd's config, and the restart that makes containerd read it.
    if !changes {
        println!("runtime handler '{HANDLER}' already registered in {} (config version {version}): containerd not restarted", args.config.display());
        return Ok(());
    }
    if let Some(d) = config_local.parent() {
        std::fs::create_dir_all(d).map_err(io_err("create", d))?;
    }
    // containerd's own verdict, on a copy next to the file (containerd resolves its imports
    // relative to it).
    let check = config_local.with_file_name(format!(".{}.dockerish-check-{}", config_local.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    std::fs::write(&check, &new_text).map_err(io_err("write", &check))?;
    let verdict = check_with_containerd(node, &r, &args.config.with_file_name(check.file_name().unwrap_or_default()));
    let _ = std::fs::remove_file(&check);
    verdict.map_err(|e| InstallError::Refused(format!("{e}; {} left unchanged", args.config.display())))?;
    apply_config(node, &r, &args.config, existing.as_deref().unwrap_or_default(), &new_text)?;
    println!("registered runtime handler '{HANDLER}' in {} (config version {version})", args.config.display());
    if args.restart == Restart::None {
        println!("containerd not restarted (--no-restart): restart it to pick up the runtime");
    }
    Ok(())
}

fn uninstall(args: &Args, node: &Node) -> Result<(), InstallError> {
    let config_local = node.path(&args.config);
    let existing = read_if_exists(&config_local)?;
    let text = match &existing {
        Some(b) => Some(String::from_utf8(b.clone()).map_err(|_| InstallError::Refused(format!("{} is not UTF-8 text", args.config.display())))?),
        None => None,
    };
    let stripped = match &text {
        Some(t) => Some(strip_block(t).map_err(config_error)?),
        None => None,
    };
    let parsed = stripped.as_deref().and_then(|s| s.parse::<toml::Table>().ok());
    let busy = our_containers(node, parsed.as_ref());
    if !busy.is_empty() && !args.force {
        return Err(InstallError::Refused(format!(
            "{} container(s) of {RUNTIME_TYPE} still exist on this node ({}): remove them first (their shims need the binary to be cleaned up), or pass --force. Nothing was changed",
            busy.len(),
            busy.join(", ")
        )));
    }
    let changes = matches!((&text, &stripped), (Some(t), Some(s)) if t != s);
    let r = restarter(args, node, changes)?;
    if let (true, Some(old), Some(new)) = (changes, &text, &stripped) {
        apply_config(node, &r, &args.config, old.as_bytes(), new)?;
        println!("removed the '{HANDLER}' runtime handler from {}", args.config.display());
        if args.restart == Restart::None {
            println!("containerd not restarted (--no-restart): restart it to drop the runtime");
        }
    } else {
        println!("{} has no '{HANDLER}' block: left as it is", args.config.display());
    }
    let target = node.path(&args.prefix).join(BINARY_NAME);
    match std::fs::remove_file(&target) {
        Ok(()) => println!("removed {}", args.prefix.join(BINARY_NAME).display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(InstallError::Io { what: "remove", path: target, source: e }),
    }
    let sc = node.path(&args.shim_config);
    match read_if_exists(&sc)? {
        Some(b) if b == shim_config_default(args)? => {
            std::fs::remove_file(&sc).map_err(io_err("remove", &sc))?;
            println!("removed {} (it was the default this installs)", args.shim_config.display());
        }
        Some(_) => println!("left {} in place (your settings); delete it by hand if unwanted", args.shim_config.display()),
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn strip_gives_back_exactly_what_add_was_given() {
        for original in ["", "\n", "version = 2\n", "version = 2", "version = 2\n\n\n", "version = 2\r\n", "a = 1\n# comment at the end"] {
            let added = add_block(original, "x = 1\n");
            assert_eq!(added.matches(BEGIN_PREFIX).count(), 1);
            assert_eq!(strip_block(&added).unwrap(), original, "round trip of {original:?} via {added:?}");
            // Twice: the second install replaces the block.
            let again = add_block(&strip_block(&added).unwrap(), "x = 2\n");
            assert_eq!(strip_block(&again).unwrap(), original);
        }
    }

    #[test]
    fn text_after_the_block_survives_uninstall() {
        let added = add_block("version = 2\n", "x = 1\n");
        let with_more = format!("{added}# added by the admin later\n");
        assert_eq!(strip_block(&with_more).unwrap(), "version = 2\n# added by the admin later\n");
    }

    #[test]
    fn a_block_written_by_the_old_install_sh_is_recognised() {
        let old = "version = 2\n\n# BEGIN containerd-shim-dockerish-v2 (managed by deploy/install.sh)\n[x]\n# END containerd-shim-dockerish-v2\n";
        assert_eq!(strip_block(old).unwrap(), "version = 2\n");
    }

    #[test]
    fn an_unterminated_block_is_refused() {
        let e = strip_block("version = 2\n# BEGIN containerd-shim-dockerish-v2 x\n[a]\n").unwrap_err();
        assert!(e.0.contains("line 2") && e.0.contains("never ends"), "{}", e.0);
    }

    #[test]
    fn version_2_gets_the_1x_table_and_runc_when_no_runtime_is_declared() {
        let (text, v) = edited_config("version = 2\n", "/etc/containerd/dockerish.toml", Path::new("c.toml")).unwrap();
        assert_eq!(v, 2);
        let t: toml::Table = text.parse().unwrap();
        let rt = lookup(&t, &["plugins", CRI_PLUGIN_V2, "containerd", "runtimes"]).unwrap();
        assert_eq!(rt["dockerish"]["runtime_type"].as_str(), Some(RUNTIME_TYPE));
        assert_eq!(rt["dockerish"]["options"]["ConfigPath"].as_str(), Some("/etc/containerd/dockerish.toml"));
        assert_eq!(rt["runc"]["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
        assert!(!text.contains(CRI_PLUGIN_V3));
    }

    #[test]
    fn version_2_with_its_own_runtimes_gets_no_runc_table() {
        let original = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun]\n  runtime_type = \"io.containerd.runc.v2\"\n";
        let (text, _) = edited_config(original, "/d.toml", Path::new("c.toml")).unwrap();
        assert!(!text.contains("runtimes.runc]"), "{text}");
    }

    #[test]
    fn versions_3_and_4_get_the_2x_table() {
        for v in [3, 4] {
            let (text, got) = edited_config(&format!("version = {v}\n"), "/d.toml", Path::new("c.toml")).unwrap();
            assert_eq!(got, v);
            let t: toml::Table = text.parse().unwrap();
            let h = lookup(&t, &["plugins", CRI_PLUGIN_V3, "containerd", "runtimes", HANDLER]).unwrap();
            assert_eq!(h["runtime_type"].as_str(), Some(RUNTIME_TYPE));
            assert_eq!(h["sandboxer"].as_str(), Some("podsandbox"));
            assert!(!text.contains(CRI_PLUGIN_V2), "{text}");
        }
    }

    #[test]
    fn config_path_is_quoted_as_toml() {
        let (text, _) = edited_config("version = 2\n", "/etc/odd \"dir\"/d.toml", Path::new("c.toml")).unwrap();
        let t: toml::Table = text.parse().unwrap();
        let p = lookup(&t, &["plugins", CRI_PLUGIN_V2, "containerd", "runtimes", HANDLER, "options", "ConfigPath"]).unwrap();
        assert_eq!(p.as_str(), Some("/etc/odd \"dir\"/d.toml"));
    }

    #[test]
    fn refusals_name_the_problem() {
        let p = Path::new("/etc/containerd/config.toml");
        let e = edited_config("[plugins.\"io.containerd.grpc.v1.cri\"]\n  version = 2\n", "/d", p).unwrap_err();
        assert!(e.0.contains("no top-level 'version = 2|3|4' line"), "{}", e.0);
        let e = edited_config("version = 1\n", "/d", p).unwrap_err();
        assert!(e.0.contains("config version 1 is not supported"), "{}", e.0);
        let e = edited_config("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.dockerish]\n", "/d", p).unwrap_err();
        assert!(e.0.contains("already defines a 'dockerish' runtime"), "{}", e.0);
        let e = edited_config("version = 2\n[plugins\n", "/d", p).unwrap_err();
        assert!(e.0.contains("is not valid TOML"), "{}", e.0);
    }

    #[test]
    fn a_second_edit_changes_nothing() {
        let (once, _) = edited_config("version = 2\nroot = \"/var/lib/containerd\"\n", "/d.toml", Path::new("c")).unwrap();
        let (twice, _) = edited_config(&once, "/d.toml", Path::new("c")).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn args_defaults_and_errors() {
        let a = parse_args(&words("install")).unwrap();
        assert_eq!(a.prefix, Path::new("/usr/local/bin"));
        assert_eq!(a.config, Path::new("/etc/containerd/config.toml"));
        assert_eq!(a.restart, Restart::Auto);
        let a = parse_args(&words("uninstall --root /host --restart=none --force --config /etc/c.toml")).unwrap();
        assert_eq!((a.action, a.restart, a.force), (Action::Uninstall, Restart::None, true));
        assert_eq!(Node { root: a.root.clone() }.path(&a.config), Path::new("/host/etc/c.toml"));
        for bad in ["install --force", "install --restart sometimes", "install --root host", "install --root /host --config etc/c.toml", "install --prefix", "install --what"] {
            let e = parse_args(&words(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }
}
