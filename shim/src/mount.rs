//! Mounting the rootfs containerd hands us (`CreateTaskRequest.rootfs`) at `<bundle>/rootfs`
//! (unmounted by `dockerish_host::unmount_all`, the one unmount loop).

use std::path::Path;

use containerd_shim_protos::types::mount::Mount;
use nix::mount::{mount, MsFlags};

#[derive(Debug, thiserror::Error)]
#[error("mount {kind} {source_path:?} on {target:?}: {errno}")]
pub struct MountError {
    kind: String,
    source_path: String,
    target: String,
    errno: nix::errno::Errno,
}

fn parse_options(opts: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        let (set, f) = match o.as_str() {
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "suid" => (false, MsFlags::MS_NOSUID),
            "nodev" => (true, MsFlags::MS_NODEV),
            "dev" => (false, MsFlags::MS_NODEV),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "bind" => (true, MsFlags::MS_BIND),
            "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (true, MsFlags::MS_STRICTATIME),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            "remount" => (true, MsFlags::MS_REMOUNT),
            "defaults" => (false, MsFlags::empty()),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        if set {
            flags |= f;
        } else {
            flags &= !f;
        }
    }
    (flags, data.join(","))
}

/// Mounts every entry on `target` in order (containerd sends one overlay or bind mount).
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for m in mounts {
        let (flags, data) = parse_options(&m.options);
        let err = |errno| MountError { kind: m.type_.clone(), source_path: m.source.clone(), target: target.display().to_string(), errno };
        let fstype = if flags.contains(MsFlags::MS_BIND) { None } else { Some(m.type_.as_str()) };
        // A bind mount ignores MS_RDONLY on the first call; it is applied by the remount below.
        let first = if fstype.is_none() { flags & !MsFlags::MS_RDONLY } else { flags };
        mount(Some(m.source.as_str()), target, fstype, first, if data.is_empty() { None } else { Some(data.as_str()) })
            .map_err(err)?;
        // A read-only bind needs a remount to take effect.
        if fstype.is_none() && flags.contains(MsFlags::MS_RDONLY) {
            mount(None::<&str>, target, None::<&str>, flags | MsFlags::MS_REMOUNT, None::<&str>).map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_become_data() {
        let (f, d) = parse_options(&["lowerdir=/a:/b".into(), "upperdir=/u".into(), "workdir=/w".into()]);
        assert!(f.is_empty());
        assert_eq!(d, "lowerdir=/a:/b,upperdir=/u,workdir=/w");
    }

    #[test]
    fn bind_flags() {
        let (f, d) = parse_options(&["rbind".into(), "ro".into()]);
        assert!(f.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert!(d.is_empty());
    }
}
