//! File-system helpers: atomic writes, rootfs-scoped opens, the shm tmpfs.

use crate::path_str;
use dockerish_spec::HostError;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub(crate) fn exists_nofollow(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn last_os_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn cstr(p: &Path) -> Result<CString, HostError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| HostError::Invalid { path: path_str(p), msg: "path contains a NUL byte".into() })
}

/// Write `data` to `path` atomically: a temp file in the same directory (O_EXCL, 0600), then
/// rename over `path`. On any error the temp file is removed and `path` keeps its old content.
///
/// No fsync: bundles live in containerd's state directory, runtime state that containerd
/// discards after a reboot (tmpfs `/run/containerd` by default), so durability buys nothing,
/// while two fsyncs on a disk-backed state dir cost every Create ~0.4 ms on this machine and far
/// more on a busy disk. Readers see the
/// old or the new file either way (rename), and ENOSPC/EROFS still surface at create/write.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), HostError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| HostError::io("create", path_str(&tmp), e))?;
        f.write_all(data).map_err(|e| HostError::io("write", path_str(&tmp), e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| HostError::io("rename", path_str(path), e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// MT-13: write one of the files Docker gives a container (`hosts`, `hostname`,
/// `resolv.conf`): atomically, mode 0644, owned by the container's root so that a user-namespaced
/// root can rewrite it as in Docker.
pub(crate) fn write_etc_file(path: &Path, data: &[u8], uid: u32, gid: u32) -> Result<(), HostError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        // 0711 like the bundle: runc (as the container's root, in a user namespace too) passes
        // through, nobody lists it.
        match std::fs::create_dir(dir) {
            Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(|e| HostError::io("chmod", path_str(dir), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(HostError::io("mkdir", path_str(dir), e)),
        }
    }
    write_atomic(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(|e| HostError::io("chmod", path_str(path), e))?;
    if uid != 0 || gid != 0 {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| HostError::io("chown", path_str(path), e))?;
    }
    Ok(())
}

/// Undo of [`write_etc_file`]: the file, then its directory once empty.
pub(crate) fn remove_etc_file(path: &Path) -> Result<(), HostError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(HostError::io("remove", path_str(path), e)),
        _ => {}
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir); // not empty yet: the other files' undo removes it
    }
    Ok(())
}

/// Maximum bytes read from the rootfs (moby: 10 MiB cap, one more byte to detect excess).
pub(crate) const ROOTFS_READ_CAP: u64 = 10 * 1024 * 1024 + 1;

/// Open `path_in_rootfs` inside `rootfs` with every symlink resolved as if `rootfs` were `/`
/// (openat2 RESOLVE_IN_ROOT; a manual component walk on kernels without openat2). Returns
/// `None` when the file does not exist or is not a regular file.
pub(crate) fn read_in_root(rootfs: &Path, path_in_rootfs: &str) -> Result<Option<Vec<u8>>, HostError> {
    let root = open_dir(rootfs)?;
    let rel = path_in_rootfs.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let fd = match openat2_in_root(&root, rel) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) || e.raw_os_error() == Some(libc::EPERM) => match walk_in_root(&root, rel) {
            Ok(fd) => fd,
            Err(e) => return not_found_is_none(e, rootfs, path_in_rootfs),
        },
        Err(e) => return not_found_is_none(e, rootfs, path_in_rootfs),
    };
    let f = File::from(fd);
    let md = f.metadata().map_err(|e| HostError::io("fstat", format!("{}{}", path_str(rootfs), path_in_rootfs), e))?;
    if !md.is_file() {
        return Ok(None);
    }
    let mut buf = Vec::new();
    f.take(ROOTFS_READ_CAP)
        .read_to_end(&mut buf)
        .map_err(|e| HostError::io("read", format!("{}{}", path_str(rootfs), path_in_rootfs), e))?;
    Ok(Some(buf))
}

fn not_found_is_none(e: std::io::Error, rootfs: &Path, p: &str) -> Result<Option<Vec<u8>>, HostError> {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) | Some(libc::EXDEV) => Ok(None),
        _ => Err(HostError::io("open", format!("{}{}", path_str(rootfs), p), e)),
    }
}

fn open_dir(p: &Path) -> Result<OwnedFd, HostError> {
    let c = cstr(p)?;
    // SAFETY: c is a valid NUL-terminated path; the returned fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(HostError::io("open", path_str(p), last_os_error()));
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat2_in_root(root: &OwnedFd, rel: &str) -> std::io::Result<OwnedFd> {
    let c = CString::new(rel).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain data; zeroed is a valid initial value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: arguments match the openat2(2) ABI; `how` outlives the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, root.as_raw_fd(), c.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>())
    };
    if fd < 0 {
        return Err(last_os_error());
    }
    // SAFETY: the syscall returned a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// FollowSymlinkInScope-style walk for kernels without openat2: each component is opened with
/// O_NOFOLLOW relative to the previous one; symlink targets are re-walked from the rootfs (for
/// absolute targets) or the current directory; `..` never goes above the rootfs.
pub(crate) fn walk_in_root(root: &OwnedFd, rel: &str) -> std::io::Result<OwnedFd> {
    let dup = |fd: &OwnedFd| fd.try_clone();
    let mut stack: Vec<OwnedFd> = vec![dup(root)?];
    let mut todo: Vec<String> = rel.split('/').rev().filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let c = CString::new(comp.as_str()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: valid dirfd and path; O_PATH|O_NOFOLLOW opens the link itself if it is one.
        let fd = unsafe { libc::openat(cur.as_raw_fd(), c.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(last_os_error());
        }
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let md = File::from(fd.try_clone()?).metadata()?;
        if md.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
            }
            let mut buf = vec![0u8; 4096];
            let empty = CString::new("").map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: readlinkat on an O_PATH symlink fd with an empty path reads that link.
            let n = unsafe { libc::readlinkat(fd.as_raw_fd(), empty.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
            if n < 0 {
                return Err(last_os_error());
            }
            buf.truncate(n as usize);
            let target = String::from_utf8_lossy(&buf).into_owned();
            if target.starts_with('/') {
                stack.truncate(1);
            }
            todo.extend(target.split('/').rev().filter(|c| !c.is_empty() && *c != ".").map(str::to_string));
            continue;
        }
        stack.push(fd);
    }
    let last = stack.pop().ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // Re-open the final O_PATH descriptor for reading through /proc/self/fd (no path resolution).
    let p = CString::new(format!("/proc/self/fd/{}", last.as_raw_fd())).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid path; new descriptor owned below.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) };
    if fd < 0 {
        return Err(last_os_error());
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `p` is a mount point (its own mountinfo entry).
fn is_mountpoint(p: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let target = path_str(p);
    dockerish_spec::parse_mountinfo(&text).unwrap_or_default().iter().any(|m| m.mount_point() == target)
}

/// IPC-4: `mkdir -p` the parent, `mkdir` the dir 0700, mount tmpfs `shm` with
/// `nosuid,nodev,noexec` and `mode=1777,size=<size>`; already mounted = done (idempotent).
pub(crate) fn mount_shm(p: &Path, size: i64) -> Result<(), HostError> {
    let wrap = |e: HostError| HostError::Invalid { path: path_str(p), msg: format!("mounting shm tmpfs: {e}") };
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| wrap(HostError::io("mkdir", path_str(parent), e)))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(wrap(HostError::io("mkdir", path_str(p), e))),
    }
    if is_mountpoint(p) {
        return Ok(());
    }
    let target = cstr(p)?;
    let src = CString::new("shm").map_err(|_| wrap(HostError::Invalid { path: path_str(p), msg: "nul".into() }))?;
    let fstype = CString::new("tmpfs").map_err(|_| wrap(HostError::Invalid { path: path_str(p), msg: "nul".into() }))?;
    let data = CString::new(format!("mode=1777,size={size}")).map_err(|_| wrap(HostError::Invalid { path: path_str(p), msg: "nul".into() }))?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let r = unsafe {
        libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, data.as_ptr() as *const libc::c_void)
    };
    if r != 0 {
        return Err(wrap(HostError::io("mount", path_str(p), last_os_error())));
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// Undo [`mount_shm`]: lazy unmount (not mounted or gone is fine), then rmdir.
pub(crate) fn unmount_and_remove(p: &Path) -> Result<(), HostError> {
    crate::unmount_all(p, true)?;
    match std::fs::remove_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HostError::io("rmdir", path_str(p), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The openat2-less fallback must clamp like RESOLVE_IN_ROOT (US-1).
    #[test]
    fn us_1_manual_walk_stays_in_root() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/group"), b"in-root").unwrap();
        symlink("/etc/shadow", r.join("etc/shadow-link")).unwrap();
        symlink("../../../../etc/group", r.join("etc/up")).unwrap();
        symlink("/etc", r.join("etcl")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let root = open_dir(r).unwrap();
        let read = |p: &str| walk_in_root(&root, p).map(|fd| {
            let mut s = String::new();
            File::from(fd).read_to_string(&mut s).unwrap();
            s
        });
        assert_eq!(read("etc/up").unwrap(), "in-root");
        assert_eq!(read("etcl/group").unwrap(), "in-root");
        assert_eq!(read("../../etc/group").unwrap(), "in-root");
        assert_eq!(read("etc/shadow-link").unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(read("loop").unwrap_err().raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn write_atomic_replaces_content() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
