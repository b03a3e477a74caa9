//! File-system helpers: atomic writes, reads of regular files only (rootfs-scoped, or host
//! files), the shm tmpfs.

use crate::path_str;
use dockerish_spec::HostError;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub(crate) fn exists_nofollow(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
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

/// A descriptor from nix 0.29, which hands out raw fds: closed on drop through nix's safe
/// `close`, so that owning one needs no `unsafe`.
struct Fd(RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = nix::unistd::close(self.0);
    }
}

fn errno(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// What a non-regular file is, for the error that refuses it.
fn kind_of(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    }
}

/// Read at most `cap` bytes of the regular file an `O_PATH` descriptor names. Opening a device
/// node runs its driver and opening a FIFO waits for a writer, so the type is checked on the
/// `O_PATH` descriptor (which opens nothing) and only a regular file is opened for reading,
/// through the descriptor itself (`/proc/self/fd/N`: no path is resolved again).
fn read_regular(fd: &Fd, shown: &str, cap: u64) -> Result<Vec<u8>, HostError> {
    let st = nix::sys::stat::fstat(fd.0).map_err(|e| HostError::io("fstat", shown, errno(e)))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(HostError::Refused { path: shown.to_string(), msg: format!("not a regular file ({})", kind_of(st.st_mode)) });
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", fd.0))
        .map_err(|e| HostError::io("open", shown, e))?;
    // The magic link reopens the inode the O_PATH descriptor holds; check it anyway, it is cheap.
    let md = f.metadata().map_err(|e| HostError::io("fstat", shown, e))?;
    {
        use std::os::unix::fs::MetadataExt;
        if (md.dev(), md.ino()) != (st.st_dev, st.st_ino) || !md.is_file() {
            return Err(HostError::Refused { path: shown.to_string(), msg: "the file changed while it was opened".into() });
        }
    }
    let mut buf = Vec::new();
    f.take(cap).read_to_end(&mut buf).map_err(|e| HostError::io("read", shown, e))?;
    Ok(buf)
}

/// A host file, at most `cap` bytes; `None` if it does not exist. Anything but a regular file
/// (after symlinks) is refused without being opened.
pub(crate) fn read_host_file(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, HostError> {
    let shown = path_str(path);
    let fd = match nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => Fd(fd),
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(HostError::io("open", shown, errno(e))),
    };
    read_regular(&fd, &shown, cap).map(Some)
}

/// Read `path_in_rootfs` inside `rootfs` with every symlink resolved as if `rootfs` were `/`
/// (openat2 RESOLVE_IN_ROOT; a manual component walk on kernels without openat2), at most
/// [`ROOTFS_READ_CAP`] bytes. `None` when it does not exist; anything that exists but is not a
/// regular file (a device node, a FIFO, a socket, a directory, a symlink loop) is an error
/// naming the file, and is never opened for reading.
pub(crate) fn read_in_root(rootfs: &Path, path_in_rootfs: &str) -> Result<Option<Vec<u8>>, HostError> {
    let shown = format!("{}/{}", path_str(rootfs).trim_end_matches('/'), path_in_rootfs.trim_start_matches('/'));
    let root = open_dir(rootfs)?;
    let rel = path_in_rootfs.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let fd = match open_in_root(&root, rel) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => return Ok(None),
        Err(e) => return Err(HostError::io("open", shown, e)),
    };
    read_regular(&fd, &shown, ROOTFS_READ_CAP).map(Some)
}

fn open_dir(p: &Path) -> Result<Fd, HostError> {
    nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).map(Fd).map_err(|e| HostError::io("open", path_str(p), errno(e)))
}

/// An `O_PATH` descriptor of `rel` resolved inside `root`.
fn open_in_root(root: &Fd, rel: &str) -> std::io::Result<Fd> {
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // EAGAIN: a concurrent rename made the kernel unsure a `..` stayed inside; it may be retried.
    for _ in 0..3 {
        match nix::fcntl::openat2(root.0, rel, how) {
            Ok(fd) => return Ok(Fd(fd)),
            Err(nix::errno::Errno::EAGAIN) => continue,
            // No openat2 (kernel < 5.6, or a seccomp filter that refuses it).
            Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EPERM) => return walk_in_root(root, rel),
            Err(e) => return Err(errno(e)),
        }
    }
    Err(errno(nix::errno::Errno::EAGAIN))
}

/// FollowSymlinkInScope-style walk for kernels without openat2: each component is opened
/// `O_PATH|O_NOFOLLOW` relative to the previous one; symlink targets are re-walked from the
/// rootfs (absolute targets) or the current directory; `..` never goes above the rootfs.
/// Returns an `O_PATH` descriptor, like `open_in_root`.
fn walk_in_root(root: &Fd, rel: &str) -> std::io::Result<Fd> {
    // The directories below the rootfs that lead to the current one (empty: at the rootfs).
    let mut stack: Vec<Fd> = Vec::new();
    let mut todo: Vec<String> = rel.split('/').rev().filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == ".." {
            stack.pop();
            continue;
        }
        let cur = stack.last().unwrap_or(root);
        let fd = Fd(nix::fcntl::openat(Some(cur.0), comp.as_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()).map_err(errno)?);
        let st = nix::sys::stat::fstat(fd.0).map_err(errno)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            links += 1;
            if links > 40 {
                return Err(errno(nix::errno::Errno::ELOOP));
            }
            // An empty path reads the link the O_PATH descriptor itself names.
            let target = nix::fcntl::readlinkat(Some(fd.0), "").map_err(errno)?;
            let target = target.to_string_lossy();
            if target.starts_with('/') {
                stack.clear();
            }
            todo.extend(target.split('/').rev().filter(|c| !c.is_empty() && *c != ".").map(str::to_string));
            continue;
        }
        stack.push(fd);
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        // The path named the rootfs itself.
        None => nix::fcntl::fcntl(root.0, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0)).map(Fd).map_err(errno),
    }
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
    use nix::mount::MsFlags;
    nix::mount::mount(Some("shm"), p, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some(format!("mode=1777,size={size}").as_str()))
        .map_err(|e| wrap(HostError::io("mount", path_str(p), errno(e))))?;
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
        let read = |p: &str| walk_in_root(&root, p).map(|fd| String::from_utf8(read_regular(&fd, p, 100).unwrap()).unwrap());
        assert_eq!(read("etc/up").unwrap(), "in-root");
        assert_eq!(read("etcl/group").unwrap(), "in-root");
        assert_eq!(read("../../etc/group").unwrap(), "in-root");
        assert_eq!(read("etc/shadow-link").unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(read("loop").unwrap_err().raw_os_error(), Some(libc::ELOOP));
        // The rootfs itself, and `..` above it, is the rootfs (a directory: refused by the reader).
        let fd = walk_in_root(&root, "..").unwrap();
        assert!(read_regular(&fd, "..", 100).unwrap_err().to_string().contains("not a regular file (a directory)"));
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
