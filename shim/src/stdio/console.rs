//! Terminals: runc sends the pty master over a unix socket the shim listens on
//! (`--console-socket`); the shim keeps the master for copying and for resizing.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use super::StdioError;

/// A listening console socket in a private directory of its own.
pub struct ConsoleSocket {
    dir: PathBuf,
    pub path: PathBuf,
    listener: tokio::net::UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<Self, StdioError> {
        // sun_path is 108 bytes: bundle paths can be longer, so use a short private directory
        // (mkdtemp: unique and 0700).
        let template = std::env::temp_dir().join("dockerish-pty-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).map_err(|e| StdioError::Console(format!("{}: {e}", template.display())))?;
        let path = dir.join("pty.sock");
        match tokio::net::UnixListener::bind(&path) {
            Ok(listener) => Ok(ConsoleSocket { dir, path, listener }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(StdioError::Console(format!("bind {}: {e}", path.display())))
            }
        }
    }

    /// Receives the master fd runc sends (SCM_RIGHTS).
    pub async fn receive_master(&self) -> Result<OwnedFd, StdioError> {
        let (stream, _) = self.listener.accept().await.map_err(|e| StdioError::Console(e.to_string()))?;
        loop {
            stream.readable().await.map_err(|e| StdioError::Console(e.to_string()))?;
            match stream.try_io(tokio::io::Interest::READABLE, || recv_fd(stream.as_raw_fd())) {
                Ok(fd) => return Ok(fd),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(StdioError::Console(e.to_string())),
            }
        }
    }
}

fn recv_fd(sock: i32) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us (SCM_RIGHTS); nothing else
                // owns it, and no safe API turns a received descriptor into an OwnedFd.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(std::io::Error::other("runc sent no file descriptor"))
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

nix::ioctl_write_ptr_bad!(set_window_size, libc::TIOCSWINSZ, libc::winsize);

pub fn resize(master: &OwnedFd, width: u32, height: u32) -> std::io::Result<()> {
    let ws = libc::winsize { ws_row: height.min(u16::MAX as u32) as u16, ws_col: width.min(u16::MAX as u32) as u16, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize, which lives on our stack for the call; nix has no
    // safe wrapper for this ioctl.
    unsafe { set_window_size(master.as_raw_fd(), &ws) }?;
    Ok(())
}
