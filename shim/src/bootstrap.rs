//! The short-lived invocations containerd makes: `start`, `delete`, `-info`, `-v`; plus
//! `dry-run` for users. We own this layer because no library reply works on every containerd
//! (ECOSYSTEM.md §0): a plain address to containerd < 2.3, a `BootstrapResult` to 2.3+.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use containerd_shim_protos::protobuf::Message;
use sha2::{Digest, Sha256};

use crate::args::Flags;

const SOCKET_ROOT: &str = "/run/containerd/s";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0}")]
    Proto(#[from] dockerish_proto::ProtoError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    #[error("missing flag -{0}")]
    MissingFlag(&'static str),
    #[error("{0}")]
    Other(String),
}

fn io_err(what: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let path = path.as_ref().display().to_string();
    move |source| BootstrapError::Io { what, path, source }
}

/// The grouping id: containers of one pod (or an explicit group) share a daemon, as with the
/// Go runc shim.
fn grouping_id(bundle: &Path, id: &str) -> String {
    let Ok(bytes) = std::fs::read(bundle.join("config.json")) else { return id.to_string() };
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return id.to_string() };
    let ann = &spec["annotations"];
    for key in ["io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id"] {
        if let Some(g) = ann.get(key).and_then(|v| v.as_str()) {
            if !g.is_empty() {
                return g.to_string();
            }
        }
    }
    id.to_string()
}

/// `unix:///run/containerd/s/<sha256(address/namespace/group)>`, as every containerd shim
/// computes it, so containerd instances with different addresses never collide.
pub fn socket_path(socket_dir: Option<&str>, address: &str, namespace: &str, group: &str) -> PathBuf {
    let joined = Path::new(address).join(namespace).join(group);
    let digest = Sha256::digest(joined.to_string_lossy().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Path::new(socket_dir.unwrap_or(SOCKET_ROOT)).join(hex)
}

fn bundle_dir(flags: &Flags) -> Result<PathBuf, BootstrapError> {
    if !flags.bundle.is_empty() {
        return Ok(PathBuf::from(&flags.bundle));
    }
    std::env::current_dir().map_err(io_err("current directory", "."))
}

fn write_address(bundle: &Path, address: &str) -> Result<(), BootstrapError> {
    let path = bundle.join("address");
    let tmp = bundle.join(".address.tmp");
    crate::fsutil::write_private(&tmp, address.as_bytes()).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))
}

pub fn start(flags: &Flags) -> Result<(), BootstrapError> {
    if flags.id.is_empty() {
        return Err(BootstrapError::MissingFlag("id"));
    }
    if flags.namespace.is_empty() {
        return Err(BootstrapError::MissingFlag("namespace"));
    }
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let input = dockerish_proto::parse_start_input(&stdin, &flags.id, &flags.namespace)?;
    // Validate the options now: a bad type fails `ctr run` before a daemon is spawned.
    dockerish_proto::decode_options(input.options())?;
    let (socket_dir, ttrpc_address) = match &input {
        dockerish_proto::StartInput::Bootstrap(p) => (p.socket_dir.clone(), Some(p.containerd_ttrpc_address.clone()).filter(|s| !s.is_empty())),
        dockerish_proto::StartInput::Legacy(_) => (None, None),
    };

    let bundle = bundle_dir(flags)?;
    let group = grouping_id(&bundle, &flags.id);
    let path = socket_path(socket_dir.as_deref(), &flags.address, &flags.namespace, &group);
    let address = format!("unix://{}", path.display());
    let dir = path.parent().unwrap_or(Path::new(SOCKET_ROOT));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(dir).map_err(io_err("create", dir))?;
    }

    let listener = match bind_owner_only(&path) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                // A daemon for this group is alive: join it.
                None
            } else {
                let _ = std::fs::remove_file(&path);
                Some(bind_owner_only(&path).map_err(io_err("bind", &path))?)
            }
        }
        Err(e) => return Err(io_err("bind", &path)(e)),
    };

    if let Some(listener) = listener {
        if let Err(e) = spawn_daemon(flags, &bundle, &path, &listener, ttrpc_address.as_deref()) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    }
    write_address(&bundle, &address)?;
    let reply = match input {
        dockerish_proto::StartInput::Bootstrap(_) => dockerish_proto::bootstrap_result(&address)?,
        dockerish_proto::StartInput::Legacy(_) => address.into_bytes(),
    };
    std::io::stdout().write_all(&reply).map_err(io_err("write", "stdout"))?;
    Ok(())
}

fn bind_owner_only(path: &Path) -> std::io::Result<UnixListener> {
    // umask would be process-wide; chmod right after bind, before anyone can know the path.
    let l = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

fn spawn_daemon(flags: &Flags, bundle: &Path, socket: &Path, listener: &UnixListener, ttrpc: Option<&str>) -> Result<(), BootstrapError> {
    let exe = std::env::current_exe().map_err(io_err("resolve", "/proc/self/exe"))?;
    let mut cmd = Command::new(&exe);
    cmd.args(["-namespace", &flags.namespace, "-id", &flags.id, "-address", &flags.address, "-publish-binary", &flags.publish_binary]);
    cmd.arg("-socket").arg(socket);
    cmd.arg("-bundle").arg(bundle);
    if flags.debug {
        cmd.arg("-debug");
    }
    if let Some(t) = ttrpc {
        cmd.env("TTRPC_ADDRESS", t);
    }
    // containerd reads start's combined output until EOF: the daemon must not inherit it.
    cmd.current_dir(bundle).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let fd = listener.as_raw_fd();
    // SAFETY: setsid and dup2 are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 clears FD_CLOEXEC on fd 3; if fd already is 3, clear it by hand.
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(io_err("spawn", &exe))?;
    adjust_oom_score(child.id());
    // The daemon outlives us; it is reparented once we exit, nobody needs to wait for it here.
    drop(child);
    Ok(())
}

/// Shim OOM score = containerd's + 1: the kernel should pick a shim before containerd.
fn adjust_oom_score(pid: u32) {
    let ppid = std::os::unix::process::parent_id();
    let Ok(s) = std::fs::read_to_string(format!("/proc/{ppid}/oom_score_adj")) else { return };
    let Ok(v) = s.trim().parse::<i32>() else { return };
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), (v + 1).min(1000).to_string());
}

/// `delete`: containerd's cleanup after a shim vanished. Must leave no runc state, mount,
/// host action or socket, and print a DeleteResponse.
pub fn delete(flags: &Flags) -> Result<(), BootstrapError> {
    if flags.id.is_empty() {
        return Err(BootstrapError::MissingFlag("id"));
    }
    let bundle = bundle_dir(flags)?;
    let saved = crate::rules::load_state(&bundle);
    let (binary, root) = match &saved {
        Some(s) => (s.runc_binary.clone(), s.runc_root.clone()),
        None => ("runc".to_string(), crate::runc::state_root(None, &flags.namespace)),
    };
    // containerd 1.6/1.7 call `delete` after *every* shim disconnect (cleanupAfterDeadShim),
    // and `ctr run --rm` waits for it. After a normal Delete RPC runc's state is already gone,
    // so a second `runc delete` would only cost a Go process start on that critical path.
    if runc_state_may_exist(Path::new(&root), &flags.id) {
        let mut cmd = Command::new(&binary);
        cmd.arg("--root").arg(&root);
        if saved.as_ref().is_some_and(|s| s.systemd_cgroup) {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(["delete", "--force", &flags.id]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        match cmd.output() {
            Ok(o) if !o.status.success() => {
                let msg = String::from_utf8_lossy(&o.stderr);
                if !msg.contains("does not exist") && !msg.contains("not found") {
                    eprintln!("runc delete {}: {}", flags.id, msg.trim());
                }
            }
            Err(e) => eprintln!("runc {binary:?}: {e}"),
            Ok(_) => {}
        }
    }
    if let Err(e) = crate::rules::undo(&bundle) {
        eprintln!("undo host actions: {e}");
    }
    crate::mount::unmount_all(&bundle.join("rootfs"));
    // A daemon killed with SIGKILL leaves its socket behind.
    let group = grouping_id(&bundle, &flags.id);
    let sock = socket_path(None, &flags.address, &flags.namespace, &group);
    if UnixStream::connect(&sock).is_err() {
        let _ = std::fs::remove_file(&sock);
    }
    let pid = crate::fsutil::read_pid(&bundle.join(crate::fsutil::INIT_PID)).unwrap_or(0);
    let resp = containerd_shim_protos::api::DeleteResponse {
        pid,
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: Some(crate::events::timestamp(std::time::SystemTime::now())).into(),
        ..Default::default()
    };
    let bytes = resp.write_to_bytes().map_err(|e| BootstrapError::Other(e.to_string()))?;
    std::io::stdout().write_all(&bytes).map_err(io_err("write", "stdout"))
}

/// runc (and crun) keep a container's state in `<root>/<id>`; when that directory is absent,
/// `runc delete --force` has nothing to remove (runc itself only `RemoveAll`s that path then).
/// Anything unexpected (an id that is not one path component, a stat error other than
/// "not found") answers "may exist", so runc still gets to decide.
fn runc_state_may_exist(root: &Path, id: &str) -> bool {
    if !crate::fsutil::is_path_component(id) || !root.is_absolute() {
        return true;
    }
    !matches!(root.join(id).symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// `-info`: RuntimeInfo with `runc features` (containerd 2.x asks on idmap mounts and, from
/// 2.3, on every Create).
pub fn info() -> Result<(), BootstrapError> {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let opts = if stdin.is_empty() {
        dockerish_proto::ShimOptions::default()
    } else {
        let any = containerd_shim_protos::protobuf::well_known_types::any::Any::parse_from_bytes(&stdin)
            .map_err(|e| BootstrapError::Other(format!("-info: stdin is not a protobuf Any: {e}")))?;
        dockerish_proto::decode_options(Some(&any))?
    };
    let binary = opts.binary_name.unwrap_or_else(|| "runc".into());
    let features = Command::new(&binary).arg("features").stdin(Stdio::null()).stderr(Stdio::null()).output().ok().filter(|o| o.status.success()).map(|o| o.stdout);
    let bytes = dockerish_proto::runtime_info("io.containerd.dockerish.v2", env!("CARGO_PKG_VERSION"), option_env!("DOCKERISH_REVISION").unwrap_or(""), features)?;
    std::io::stdout().write_all(&bytes).map_err(io_err("write", "stdout"))
}

pub fn version() {
    println!("containerd-shim-dockerish-v2:\n  Runtime: io.containerd.dockerish.v2\n  Version: {}", env!("CARGO_PKG_VERSION"));
}

const DRY_RUN_USAGE: &str = "usage: containerd-shim-dockerish-v2 [-namespace NS] [-id ID] dry-run [--summary] BUNDLE [CONFIG]

Prints, as JSON, what the shim would do at Create for the bundle (a directory with config.json
and the rootfs it names): the rules applied, host side effects (actions) and the filled spec.
Changes nothing. CONFIG is a dockerish.toml / daemon.json; without it the shim's usual lookup
applies ($DOCKERISH_CONFIG, then /etc/containerd/dockerish.toml, then built-in defaults).
--summary leaves the filled spec out. ID defaults to the bundle directory's name, NS to default.
";

/// `dry-run [--summary] BUNDLE [CONFIG]`: prints the filled spec and the rules applied, changes
/// nothing.
pub fn dry_run(flags: &Flags) -> Result<(), BootstrapError> {
    if flags.rest.iter().any(|a| a == "-h" || a == "--help" || a == "help") {
        print!("{DRY_RUN_USAGE}");
        return Ok(());
    }
    let summary = flags.rest.iter().any(|a| a == "--summary");
    let args: Vec<&String> = flags.rest.iter().filter(|a| *a != "--summary").collect();
    if let Some(bad) = args.iter().find(|a| a.starts_with('-')) {
        return Err(BootstrapError::Other(format!("dry-run: unknown option {bad:?}\n{DRY_RUN_USAGE}")));
    }
    let bundle = match args.first() {
        Some(b) => PathBuf::from(b),
        None => bundle_dir(flags)?,
    };
    let config_path = args.get(1).map(PathBuf::from);
    let config = dockerish_host::load_config(config_path.as_deref(), None).map_err(|e| BootstrapError::Other(e.to_string()))?;
    let source = dockerish_host::config_source(config_path.as_deref(), None);
    let id = if flags.id.is_empty() { bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() } else { flags.id.clone() };
    let namespace = if flags.namespace.is_empty() { "default".to_string() } else { flags.namespace.clone() };
    let binary = config.runc_binary.clone().unwrap_or_else(|| "runc".into());
    let filled = dockerish_host::prepare(&bundle, &id, &namespace, &config, &binary, None).map_err(|e| BootstrapError::Other(e.to_string()))?;
    let mut warnings = filled.warnings.clone();
    if filled.spec["linux"]["cgroupsPath"].as_str() == Some(&format!("/{namespace}")) {
        // `ctr oci spec` writes "/<ns>" without the id; containerd adds it at create time.
        warnings.push(format!("cgroupsPath is \"/{namespace}\" without a container id (as `ctr oci spec` writes it): CG-1 treats only \"/{namespace}/{id}\" as containerd's default, so the cgroup rule was not applied"));
    }
    let mut out = serde_json::json!({
        "id": id,
        "namespace": namespace,
        "config": source,
        "origin": format!("{:?}", filled.origin),
        "policy": format!("{:?}", filled.policy),
        "systemdCgroup": filled.systemd_cgroup,
        "applied": filled.applied.iter().map(|a| serde_json::json!({"rule": a.rule, "change": a.change})).collect::<Vec<_>>(),
        "actions": filled.actions.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
        "warnings": warnings,
    });
    if !summary {
        out["spec"] = filled.spec;
    }
    let text = serde_json::to_string_pretty(&out).map_err(|e| BootstrapError::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_state_lookup_only_trusts_a_plain_id_under_an_absolute_root() {
        let dir = std::env::temp_dir().join(format!("dockerish-state-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("present")).unwrap();
        assert!(runc_state_may_exist(&dir, "present"));
        assert!(!runc_state_may_exist(&dir, "absent"));
        // Not one path component, or a relative root: let runc decide.
        for id in ["", ".", "..", "a/b", "../absent"] {
            assert!(runc_state_may_exist(&dir, id), "{id:?}");
        }
        assert!(runc_state_may_exist(Path::new("relative/root"), "absent"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn socket_path_matches_go_shim_layout() {
        // sha256("/run/containerd/containerd.sock/default/c1")
        let p = socket_path(None, "/run/containerd/containerd.sock", "default", "c1");
        let expect: String = Sha256::digest(b"/run/containerd/containerd.sock/default/c1").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(p, Path::new("/run/containerd/s").join(expect));
        assert!(p.to_string_lossy().len() < 106);
    }

    #[test]
    fn grouping_prefers_explicit_group_then_sandbox() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb"}}"#).unwrap();
        assert_eq!(grouping_id(d.path(), "c"), "sb");
        std::fs::write(d.path().join("config.json"), r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb","io.containerd.runc.v2.group":"g"}}"#).unwrap();
        assert_eq!(grouping_id(d.path(), "c"), "g");
        std::fs::write(d.path().join("config.json"), "not json").unwrap();
        assert_eq!(grouping_id(d.path(), "c"), "c");
    }
}
