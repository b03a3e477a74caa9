//! Real host facts for dockerish-spec, and the bundle file handling around `fill`:
//! [`prepare`] (read the original spec, run the rules with [`RealHost`]), [`commit`] (write the
//! new config.json atomically, keep the original), [`apply_actions`] / [`undo_actions`] (the S~
//! side effects, persisted in the bundle so `shim delete` can undo them after a crash), and
//! [`load_config`].

pub mod claims;
mod fsutil;
pub mod realhost;

pub use dockerish_spec::{DaemonConfig, Filled, HostAction, HostError};
pub use realhost::{FeaturesRunner, RealHost};

use dockerish_spec::annotations;
use dockerish_spec::oci::{key, Doc};
use dockerish_spec::{Inputs, SpecError, Value};
use std::path::{Path, PathBuf};

/// The spec containerd wrote (kept by [`commit`]).
pub const ORIG_SPEC: &str = "config.json.orig";
/// The spec runc reads.
pub const SPEC: &str = "config.json";
/// Actions the shim performed for this bundle (JSON list of [`HostAction`]).
pub const ACTIONS_FILE: &str = "dockerish-actions.json";
/// Default host config file (ECOSYSTEM §2.5).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/containerd/dockerish.toml";
/// Env var naming a config file (the ctr/nerdctl wrapper-script pattern).
pub const CONFIG_ENV: &str = "DOCKERISH_CONFIG";

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Read the bundle's original spec (`config.json.orig` if a previous Create kept one, else
/// `config.json`), resolve the rootfs, and run `fill` with the real host. `runc_systemd_cgroup`
/// is runc `Options.SystemdCgroup` if the client sent runc options.
pub fn prepare(bundle: &Path, id: &str, namespace: &str, config: &DaemonConfig, runc_binary: &str, runc_systemd_cgroup: Option<bool>) -> Result<Filled, HostError> {
    fill_spec(bundle, read_spec(bundle)?, id, namespace, config, runc_systemd_cgroup, RealHost::new(bundle, Path::new(""), runc_binary))
}

/// The bundle's original spec: `config.json.orig` if a previous Create kept one, else
/// `config.json`.
pub fn read_spec(bundle: &Path) -> Result<Value, HostError> {
    let orig = bundle.join(ORIG_SPEC);
    let src = if fsutil::exists_nofollow(&orig) { orig } else { bundle.join(SPEC) };
    let bytes = std::fs::read(&src).map_err(|e| HostError::io("read", path_str(&src), e))?;
    serde_json::from_slice(&bytes).map_err(|e| HostError::Invalid { path: path_str(&src), msg: format!("invalid JSON: {e}") })
}

/// [`prepare`] for a spec already read ([`read_spec`]) and a host the caller configured
/// ([`RealHost::new`], e.g. with [`RealHost::with_features_runner`]); the rootfs and the scope
/// are set here from the spec.
pub fn fill_spec(
    bundle: &Path,
    spec: Value,
    id: &str,
    namespace: &str,
    config: &DaemonConfig,
    runc_systemd_cgroup: Option<bool>,
    mut host: RealHost,
) -> Result<Filled, HostError> {
    let spec = Doc(spec);
    let root = spec.root_path().unwrap_or("rootfs");
    let rootfs = if Path::new(root).is_absolute() { PathBuf::from(root) } else { bundle.join(root) };
    host.set_rootfs(&rootfs);
    host.set_scope(id, &config.annotation_prefix, spec.annotation(dockerish_spec::annotations::CRI_SANDBOX_ID));
    dockerish_spec::fill(spec.0, &Inputs { id, namespace, config, runc_systemd_cgroup }, &host).map_err(HostError::from)
}

/// Whether `/sys/fs/cgroup` is the unified (v2) hierarchy: the one probe host and shim use.
pub fn cgroup_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Unmounts everything stacked on `target` (never following a symlink there), the one unmount
/// loop of host and shim. `detach`: lazily from the start; otherwise a busy mount is detached
/// as a last resort, so that it cannot make the bundle's removal fail forever. Not mounted or
/// gone is success.
pub fn unmount_all(target: &Path, detach: bool) -> Result<(), HostError> {
    use nix::mount::{umount2, MntFlags};
    let mut flags = MntFlags::UMOUNT_NOFOLLOW | if detach { MntFlags::MNT_DETACH } else { MntFlags::empty() };
    // Bounded: each round removes one mount (or turns to detaching); a target that keeps being
    // mounted again is not ours to fight.
    for _ in 0..64 {
        match umount2(target, flags) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) if !flags.contains(MntFlags::MNT_DETACH) => flags |= MntFlags::MNT_DETACH,
            Err(e) => return Err(HostError::io("umount", path_str(target), e.into())),
        }
    }
    Err(HostError::Invalid { path: path_str(target), msg: "still mounted after 64 unmounts".into() })
}

/// What US-1/US-2 need at an exec from its container (Docker resolves exec users as container
/// users), taken once at Create so that an exec re-reads no spec: the container's original user,
/// its rootfs and its `group-add` setting.
#[derive(Debug, Clone, Default)]
pub struct ExecUsers {
    container_user: (i64, i64),
    rootfs: PathBuf,
    group_add: Vec<String>,
}

impl ExecUsers {
    /// `original`: the spec the client wrote; `filled`: what `fill` made of it.
    pub fn new(bundle: &Path, original: &Value, filled: &Filled, config: &DaemonConfig) -> ExecUsers {
        // A Doc owns its Value: give each only the parts read here. A copy of the whole filled
        // spec (Docker's seccomp profile is ~1,500 values) was a fifth of a Create's
        // instructions in the daemon, building and freeing it.
        let part = |v: &Value, keys: &[&str]| Doc(Value::Object(keys.iter().filter_map(|k| Some((k.to_string(), v.get(*k)?.clone()))).collect()));
        let (filled_doc, original_doc) = (part(&filled.spec, &[key::ROOT, key::ANNOTATIONS]), part(original, &[key::PROCESS]));
        let (uid, gid, _) = original_doc.user();
        let root = filled_doc.root_path().unwrap_or("rootfs");
        let rootfs = if Path::new(root).is_absolute() { PathBuf::from(root) } else { bundle.join(root) };
        // The container's settings were accepted by this Create; what they say about group-add holds.
        let settings = annotations::collect(filled_doc.annotations(), filled.origin, config).unwrap_or_default();
        ExecUsers { container_user: (uid, gid), rootfs, group_add: settings.group_add.unwrap_or_default() }
    }

    /// When the client chose the exec's user (`ctr task exec --user`), its additional gids
    /// become the primary gid, the user's groups from the container's own `/etc/group`, and the
    /// container's `group-add` gids. Reads the rootfs only in that case (blocking: call it off
    /// the async runtime). Returns whether the process changed.
    pub fn resolve(&self, process: &mut Value) -> Result<bool, HostError> {
        if !dockerish_spec::exec_user_chosen(process, self.container_user) {
            return Ok(false);
        }
        let text = |p: &str| -> Result<Option<String>, HostError> { Ok(fsutil::read_in_root(&self.rootfs, p)?.map(|b| String::from_utf8_lossy(&b).into_owned())) };
        let (passwd, group) = (text("/etc/passwd")?, text("/etc/group")?);
        let group_add = if self.group_add.is_empty() { Vec::new() } else { dockerish_spec::passwd::additional_groups(&self.group_add, group.as_deref()).unwrap_or_default() };
        Ok(dockerish_spec::exec_user_groups(process, self.container_user, passwd.as_deref(), group.as_deref(), &group_add))
    }
}

/// Keep the original spec as `config.json.orig` (only the first time) and write the filled
/// spec to `config.json` atomically. On error `config.json` is untouched and no temp file is left.
/// Both are owner-only: a spec holds the process environment, often secrets, and containerd
/// writes its file 0644.
pub fn commit(bundle: &Path, filled: &Filled) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt;
    let spec = bundle.join(SPEC);
    let orig = bundle.join(ORIG_SPEC);
    if !fsutil::exists_nofollow(&orig) {
        // A hard link keeps the original inode under the new name; the rename below then
        // replaces only the `config.json` name. Atomic, and no copy.
        match std::fs::hard_link(&spec, &orig) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // File systems without hard links: fall back to an atomic copy.
            Err(_) => {
                let bytes = std::fs::read(&spec).map_err(|e| HostError::io("read", path_str(&spec), e))?;
                fsutil::write_atomic(&orig, &bytes)?;
            }
        }
    }
    // The linked inode keeps containerd's mode (0644); once config.json is renamed over, only
    // `config.json.orig` names it. One chmod, no copy (also for an orig a previous Create kept).
    std::fs::set_permissions(&orig, std::fs::Permissions::from_mode(0o600)).map_err(|e| HostError::io("chmod", path_str(&orig), e))?;
    let data = serde_json::to_vec(&filled.spec).map_err(|e| HostError::Invalid { path: path_str(&spec), msg: e.to_string() })?;
    fsutil::write_atomic(&spec, &data)
}

/// Perform the actions before `runc create`. The list is persisted first, so that a crash in
/// the middle still leaves [`undo_actions_from_bundle`] enough to clean up.
pub fn apply_actions(bundle: &Path, actions: &[HostAction]) -> Result<(), HostError> {
    if actions.is_empty() {
        return Ok(());
    }
    for a in actions {
        validate_action(bundle, a)?;
    }
    let file = bundle.join(ACTIONS_FILE);
    let data = serde_json::to_vec(actions).map_err(|e| HostError::Invalid { path: path_str(&file), msg: e.to_string() })?;
    fsutil::write_atomic(&file, &data)?;
    for a in actions {
        match a {
            HostAction::ShmTmpfs { path, size } => fsutil::mount_shm(Path::new(path), *size)?,
            HostAction::EtcFile { path, content, uid, gid } => fsutil::write_etc_file(Path::new(path), content.as_bytes(), *uid, *gid)?,
            HostAction::Claim { scope, class, key } => claims::claim(Path::new(claims::CLAIMS_DIR), bundle, *scope, class, key)?,
        }
    }
    Ok(())
}

/// Undo actions (unmount, remove); idempotent: missing mounts and directories are fine.
pub fn undo_actions(bundle: &Path, actions: &[HostAction]) -> Result<(), HostError> {
    let mut first_err = None;
    for a in actions.iter().rev() {
        if validate_action(bundle, a).is_err() {
            continue;
        }
        let r = match a {
            HostAction::ShmTmpfs { path, .. } => fsutil::unmount_and_remove(Path::new(path)),
            HostAction::EtcFile { path, .. } => fsutil::remove_etc_file(Path::new(path)),
            HostAction::Claim { scope, class, key } => claims::release(Path::new(claims::CLAIMS_DIR), bundle, *scope, class, key),
        };
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let file = bundle.join(ACTIONS_FILE);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HostError::io("remove", path_str(&file), e)),
    }
}

/// Undo whatever the persisted action list in the bundle says (the `shim delete` path).
pub fn undo_actions_from_bundle(bundle: &Path) -> Result<(), HostError> {
    let actions = read_actions(bundle)?;
    undo_actions(bundle, &actions)
}

/// The persisted actions of a bundle (empty if none).
pub fn read_actions(bundle: &Path) -> Result<Vec<HostAction>, HostError> {
    let file = bundle.join(ACTIONS_FILE);
    match std::fs::read(&file) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| HostError::Invalid { path: path_str(&file), msg: format!("invalid actions file: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(HostError::io("read", path_str(&file), e)),
    }
}

/// Refuse action paths that could not have come from `fill` (relative, `..`, not a `shm` dir,
/// an etc file outside the bundle), so a tampered actions file cannot unmount or remove
/// arbitrary host paths.
fn validate_action(bundle: &Path, a: &HostAction) -> Result<(), HostError> {
    match a {
        HostAction::Claim { scope, class, key } => claims::claim_path(Path::new(claims::CLAIMS_DIR), bundle, *scope, class, key).map(|_| ()),
        HostAction::EtcFile { path, .. } => {
            let p = Path::new(path);
            let named = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| dockerish_spec::ETC_FILES.iter().any(|(_, f)| *f == n));
            let dir = bundle.join(dockerish_spec::ETC_FILES_DIR);
            let in_bundle = p.parent().is_some_and(|d| d == dir || (std::fs::canonicalize(d).is_ok() && std::fs::canonicalize(d).ok() == std::fs::canonicalize(&dir).ok()));
            if named && in_bundle {
                Ok(())
            } else {
                Err(HostError::Refused { path: path.clone(), msg: "not a shim-owned file of this bundle".into() })
            }
        }
        HostAction::ShmTmpfs { path, size } => {
            let p = Path::new(path);
            let ok = p.is_absolute()
                && p.file_name().is_some_and(|n| n == "shm")
                && !p.components().any(|c| matches!(c, std::path::Component::ParentDir))
                && *size >= 0;
            if ok {
                Ok(())
            } else {
                Err(HostError::Refused { path: path.clone(), msg: "not a shim-owned shm directory".into() })
            }
        }
    }
}

/// Load the daemon configuration. Precedence: `config_path` (JSON, or TOML if it ends in
/// `.toml`) > `config_body` (TOML) > env `DOCKERISH_CONFIG` > `/etc/containerd/dockerish.toml`
/// if it exists > defaults. Errors name the file.
pub fn load_config(config_path: Option<&Path>, config_body: Option<&str>) -> Result<DaemonConfig, HostError> {
    let env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    load_config_from(config_path, config_body, env.as_deref(), Path::new(DEFAULT_CONFIG_PATH))
}

/// [`load_config`] with the env value and default path given (testable).
pub fn load_config_from(config_path: Option<&Path>, config_body: Option<&str>, env_path: Option<&Path>, default_path: &Path) -> Result<DaemonConfig, HostError> {
    match pick_config(config_path, config_body, env_path, default_path) {
        ConfigSource::File(p) => load_file(p),
        ConfigSource::Body(b) => DaemonConfig::from_toml(b).map_err(|e| HostError::ConfigFile { path: "(runtime options config_body)".into(), source: Box::new(e) }),
        ConfigSource::Defaults => Ok(DaemonConfig::default()),
    }
}

/// Where `load_config` takes the configuration from, in words (for `dry-run` and logs).
pub fn config_source(config_path: Option<&Path>, config_body: Option<&str>) -> String {
    let env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    match pick_config(config_path, config_body, env.as_deref(), Path::new(DEFAULT_CONFIG_PATH)) {
        ConfigSource::File(p) => p.display().to_string(),
        ConfigSource::Body(_) => "runtime options config_body".to_string(),
        ConfigSource::Defaults => "built-in defaults".to_string(),
    }
}

enum ConfigSource<'a> {
    File(&'a Path),
    Body(&'a str),
    Defaults,
}

/// The one place that encodes the precedence.
fn pick_config<'a>(config_path: Option<&'a Path>, config_body: Option<&'a str>, env_path: Option<&'a Path>, default_path: &'a Path) -> ConfigSource<'a> {
    if let Some(p) = config_path.filter(|p| !p.as_os_str().is_empty()) {
        return ConfigSource::File(p);
    }
    if let Some(b) = config_body.filter(|b| !b.trim().is_empty()) {
        return ConfigSource::Body(b);
    }
    if let Some(p) = env_path {
        return ConfigSource::File(p);
    }
    if default_path.exists() {
        return ConfigSource::File(default_path);
    }
    ConfigSource::Defaults
}

fn load_file(p: &Path) -> Result<DaemonConfig, HostError> {
    let text = std::fs::read_to_string(p).map_err(|e| HostError::io("read", path_str(p), e))?;
    let is_toml = p.extension().is_some_and(|e| e == "toml");
    let r: Result<DaemonConfig, SpecError> = if is_toml { DaemonConfig::from_toml(&text) } else { DaemonConfig::from_json(&text) };
    r.map_err(|e| HostError::ConfigFile { path: path_str(p), source: Box::new(e) })
}
