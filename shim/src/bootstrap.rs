//! The short-lived invocations containerd makes: `start`, `delete`, `-info`, `-v`. We own this
//! layer because no library reply works on every containerd (ECOSYSTEM.md §0): a plain
//! address to containerd < 2.3, a `BootstrapResult` (task API v3, as the Go shim of 2.3) to
//! 2.3+.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use containerd_shim_protos::protobuf::Message;
use sha2::{Digest, Sha256};

use crate::args::Flags;
use crate::bundle::Bundle;
use crate::runc::{state_root, Runc, RuncError};

const SOCKET_ROOT: &str = "/run/containerd/s";
/// The build's version-control revision (build.rs), or "unknown".
pub const REVISION: &str = env!("DOCKERISH_REVISION");
/// The task API version a 2.3+ containerd is told to use; both are served on the socket.
const TASK_API_FOR_BOOTSTRAP: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0}")]
    Proto(#[from] dockerish_proto::ProtoError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    #[error("missing flag -{0}")]
    MissingFlag(&'static str),
    #[error("invalid -{flag} {value:?}: it names a directory, so it must be one path component (not empty, no '/', not '.' or '..')")]
    NotAPathComponent { flag: &'static str, value: String },
    #[error("{0}")]
    Cgroup(#[from] crate::cgroup::JoinError),
    #[error("{0}")]
    Other(String),
}

fn io_err(what: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let path = path.as_ref().display().to_string();
    move |source| BootstrapError::Io { what, path, source }
}

/// `-namespace` and `-id` name directories (runc's state root, bundles, socket hashes).
fn check_identity(flags: &Flags) -> Result<(), BootstrapError> {
    for (flag, value) in [("namespace", &flags.namespace), ("id", &flags.id)] {
        if value.is_empty() {
            return Err(BootstrapError::MissingFlag(flag));
        }
        if !crate::fsutil::is_path_component(value) {
            return Err(BootstrapError::NotAPathComponent { flag, value: value.clone() });
        }
    }
    Ok(())
}

/// `unix://<socket_dir>/<sha256(address/namespace/group)>`, as every containerd shim computes
/// it, so containerd instances with different addresses never collide.
pub fn socket_path(socket_dir: Option<&str>, address: &str, namespace: &str, group: &str) -> PathBuf {
    let joined = Path::new(address).join(namespace).join(group);
    let digest = Sha256::digest(joined.to_string_lossy().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Path::new(socket_dir.filter(|d| !d.is_empty()).unwrap_or(SOCKET_ROOT)).join(hex)
}

pub fn bundle_dir(flags: &Flags) -> Result<PathBuf, BootstrapError> {
    if !flags.bundle.is_empty() {
        return Ok(PathBuf::from(&flags.bundle));
    }
    std::env::current_dir().map_err(io_err("current directory", "."))
}

pub fn start(flags: &Flags) -> Result<(), BootstrapError> {
    check_identity(flags)?;
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let input = dockerish_proto::parse_start_input(&stdin, &flags.id, &flags.namespace)?;
    // Validate the options now: a bad type fails `ctr run` before a daemon is spawned.
    let options = dockerish_proto::decode_options(input.options())?;
    let (socket_dir, ttrpc_address) = match &input {
        dockerish_proto::StartInput::Bootstrap(p) => (p.socket_dir.clone(), Some(p.containerd_ttrpc_address.clone()).filter(|s| !s.is_empty())),
        dockerish_proto::StartInput::Legacy(_) => (None, None),
    };

    let bundle = Bundle::new(bundle_dir(flags)?);
    let group = bundle.group(&flags.id);
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
        let launched = spawn_daemon(flags, bundle.dir(), &path, &listener, ttrpc_address.as_deref()).and_then(|mut daemon| {
            // runc Options.ShimCgroup, as the Go shim: the daemon, not this short-lived process.
            match options.shim_cgroup.as_deref().map(|cg| crate::cgroup::join(daemon.id(), cg)) {
                Some(Err(e)) => {
                    let _ = daemon.kill();
                    let _ = daemon.wait();
                    Err(e.into())
                }
                _ => {
                    adjust_oom_score(daemon.id());
                    // The daemon outlives us; it is reparented once we exit.
                    drop(daemon);
                    Ok(())
                }
            }
        });
        if let Err(e) = launched {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    }
    bundle.write_address(&address).map_err(io_err("write", bundle.path(crate::bundle::ADDRESS)))?;
    let reply = match input {
        dockerish_proto::StartInput::Bootstrap(_) => dockerish_proto::bootstrap_result(&address, TASK_API_FOR_BOOTSTRAP)?,
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

fn spawn_daemon(flags: &Flags, bundle: &Path, socket: &Path, listener: &UnixListener, ttrpc: Option<&str>) -> Result<std::process::Child, BootstrapError> {
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
    // As the Go shim starts its daemon: runc (a Go program) inherits it from us, and the same
    // runc work should run with the same Go runtime under either shim (containerd gives shims
    // GOMAXPROCS=2). For parity: on a quiet machine `runc create` took the same time with
    // either value; only under heavy load did 4 look faster (tests/bench/RESULTS.md).
    cmd.env("GOMAXPROCS", "4");
    // containerd reads start's combined output until EOF: the daemon must not inherit it.
    cmd.current_dir(bundle).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // A process group of its own, as the Go shim's daemon (Setpgid): signals sent to
    // containerd's group (a terminal's ^C) do not reach it. Not a session of its own: with the
    // kernel's autogroup scheduling (sched_autogroup_enabled, on by default) every session is
    // a scheduling group, and runc, runc init and the container would then share one fresh
    // group's CPU share instead of running in containerd's, as under the Go shim; `runc
    // create` took longer under load that way with the same CPU time (tests/bench/RESULTS.md).
    cmd.process_group(0);
    let fd = listener.as_raw_fd();
    // SAFETY: pre_exec is unsafe by contract (it runs between fork and exec); the closure only
    // makes async-signal-safe calls (fcntl, dup2).
    unsafe {
        cmd.pre_exec(move || {
            // dup2 clears FD_CLOEXEC on fd 3; if fd already is 3, clear it by hand.
            if fd == 3 {
                nix::fcntl::fcntl(3, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))?;
            } else {
                nix::unistd::dup2(fd, 3)?;
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(io_err("spawn", &exe))
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
    check_identity(flags)?;
    let bundle = Bundle::new(bundle_dir(flags)?);
    let saved = bundle.saved_state();
    let runc = Runc {
        binary: saved.as_ref().map(|s| s.runc_binary.clone()).unwrap_or_else(|| "runc".into()),
        origin: if saved.is_some() { "saved at Create" } else { "default, looked up on PATH" },
        root: saved.as_ref().map(|s| s.runc_root.clone()).unwrap_or_else(|| state_root(None, &flags.namespace)),
        systemd_cgroup: saved.as_ref().is_some_and(|s| s.systemd_cgroup),
        log: None,
        reaper: None,
    };
    // containerd 1.6/1.7 call `delete` after *every* shim disconnect (cleanupAfterDeadShim),
    // and `ctr run --rm` waits for it. After a normal Delete RPC runc has already removed the
    // container (the daemon recorded it), so a second `runc delete` would only cost a runc
    // process on that critical path. Without that record runc decides, as with the Go shim.
    if !saved.as_ref().is_some_and(|s| s.runc_deleted) {
        match runc.delete_blocking(&flags.id, true) {
            Ok(()) | Err(RuncError::NotFound { .. }) => {}
            Err(e) => eprintln!("runc delete {}: {e}", flags.id),
        }
    }
    if let Err(e) = bundle.undo() {
        eprintln!("undo create of {}: {e}", flags.id);
    }
    remove_dead_sockets(&bundle, flags);
    let pid = bundle.init_pid().unwrap_or(0);
    let resp = containerd_shim_protos::api::DeleteResponse {
        pid,
        exit_status: crate::process::KILLED,
        exited_at: Some(crate::events::timestamp(std::time::SystemTime::now())).into(),
        ..Default::default()
    };
    let bytes = resp.write_to_bytes().map_err(|e| BootstrapError::Other(e.to_string()))?;
    std::io::stdout().write_all(&bytes).map_err(io_err("write", "stdout"))
}

/// A daemon killed with SIGKILL leaves its socket behind: the one `start` recorded in the
/// bundle (wherever BootstrapParams.socket_dir put it), and the default-named one. A socket
/// something still answers on belongs to a live daemon (of this group) and stays.
fn remove_dead_sockets(bundle: &Bundle, flags: &Flags) {
    let recorded = bundle.address().and_then(|a| a.strip_prefix("unix://").map(PathBuf::from)).filter(|p| p.is_absolute());
    let default = socket_path(None, &flags.address, &flags.namespace, &bundle.group(&flags.id));
    for sock in recorded.into_iter().chain([default]) {
        use std::os::unix::fs::FileTypeExt;
        let is_socket = std::fs::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_socket());
        if is_socket && UnixStream::connect(&sock).is_err() {
            let _ = std::fs::remove_file(&sock);
        }
    }
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
    let features = crate::runc::features_blocking(Path::new(&binary), None).ok();
    let bytes = dockerish_proto::runtime_info("io.containerd.dockerish.v2", env!("CARGO_PKG_VERSION"), REVISION, features)?;
    std::io::stdout().write_all(&bytes).map_err(io_err("write", "stdout"))
}

pub fn version() {
    println!("containerd-shim-dockerish-v2:\n  Runtime: io.containerd.dockerish.v2\n  Version: {}\n  Revision: {REVISION}", env!("CARGO_PKG_VERSION"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_and_id_must_be_path_components() {
        let ok = Flags { namespace: "k8s.io".into(), id: "c1".into(), ..Default::default() };
        check_identity(&ok).unwrap();
        for (ns, id, flag) in [("../../../tmp/c", "v", "namespace"), ("..", "v", "namespace"), ("a/b", "v", "namespace"), ("default", "../v", "id"), ("default", ".", "id"), ("default", "a\0b", "id")] {
            let f = Flags { namespace: ns.into(), id: id.into(), ..Default::default() };
            let e = check_identity(&f).unwrap_err();
            assert!(matches!(&e, BootstrapError::NotAPathComponent { flag: f, .. } if *f == flag), "{ns:?}/{id:?}: {e}");
            assert!(e.to_string().contains(&format!("-{flag}")), "{e}");
        }
        let missing = Flags { id: "c".into(), ..Default::default() };
        assert!(matches!(check_identity(&missing), Err(BootstrapError::MissingFlag("namespace"))));
    }

    #[test]
    fn socket_path_matches_go_shim_layout() {
        // sha256("/run/containerd/containerd.sock/default/c1")
        let p = socket_path(None, "/run/containerd/containerd.sock", "default", "c1");
        let expect: String = Sha256::digest(b"/run/containerd/containerd.sock/default/c1").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(p, Path::new("/run/containerd/s").join(&expect));
        assert!(p.to_string_lossy().len() < 106);
        assert_eq!(socket_path(Some("/run/x"), "/run/containerd/containerd.sock", "default", "c1"), Path::new("/run/x").join(&expect));
        assert_eq!(socket_path(Some(""), "/run/containerd/containerd.sock", "default", "c1"), Path::new("/run/containerd/s").join(&expect));
    }

    #[test]
    fn revision_is_known_or_says_so() {
        assert!(!REVISION.is_empty());
        assert!(REVISION == "unknown" || (REVISION.len() == 40 && REVISION.chars().all(|c| c.is_ascii_hexdigit())), "{REVISION}");
    }
}
