//! Task Start without a `runc start` process.
//!
//! `runc create` leaves the container's init blocked writing one byte into
//! `<runc root>/<id>/exec.fifo`; `runc start` only opens that FIFO, reads the byte (which lets
//! init exec the user's process) and removes the file (runc reports "created" while it exists).
//! Doing the same here saves a Go process start on every container start: measured with
//! tests/bench (issue 14) as `runc start` 5–15 ms on the critical path of every Start
//! (TaskCreate → TaskStart 17 ms with the Go shim, 2 ms here, on the same spec). This relies on
//! runc's private state layout (`<root>/<id>/exec.fifo`), which holds for runc 1.0 and 1.1
//! (checked: 1.1.5, Debian 12's); when the state directory does not look like that (no
//! `state.json`, no FIFO: crun, another layout) the caller falls back to `runc start`, which
//! tests/tests/start.rs exercises with a runc that keeps its state elsewhere. runc ≥ 1.2 also
//! runs poststart hooks in `runc start`, so containers with poststart hooks are never started
//! this way.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::unix::pipe;

/// How often the init's liveness is checked while waiting (runc start polls at 100 ms).
const LIVENESS_TICK: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("container process is already dead")]
    InitDead,
    #[error("exec fifo {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("exec fifo {path} was closed without the start byte: the container's init failed before it could start")]
    NoStartByte { path: PathBuf },
}

pub enum Outcome {
    Started,
    /// Not runc's layout, or no FIFO: let `runc start` handle it (and produce its own error).
    NotApplicable,
}

/// Starts a created container through its exec FIFO. `init_alive` says whether the init has
/// not exited yet (the shim's reaper knows; polled, so PID reuse cannot fool it).
pub async fn start(state_dir: &Path, init_alive: impl Fn() -> bool) -> Result<Outcome, StartError> {
    if !state_dir.join("state.json").is_file() {
        return Ok(Outcome::NotApplicable);
    }
    let path = state_dir.join("exec.fifo");
    let Some(fd) = open_fifo(&path)? else {
        return Ok(Outcome::NotApplicable);
    };
    let io_err = |source| StartError::Io { path: path.clone(), source };
    // A read end opened before any writer does not report hang-up, so readiness means the
    // byte is there (or init opened and closed the FIFO without writing).
    let rx = pipe::Receiver::from_owned_fd(fd).map_err(io_err)?;
    loop {
        tokio::select! {
            ready = rx.readable() => {
                ready.map_err(io_err)?;
                match read_byte(&rx) {
                    Ok(true) => break,
                    Ok(false) => return Err(StartError::NoStartByte { path }),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(io_err(e)),
                }
            }
            _ = tokio::time::sleep(LIVENESS_TICK) => {
                if !init_alive() {
                    // It may have run to completion between two ticks: its byte is still queued.
                    return match read_byte(&rx) {
                        Ok(true) => break_out(&path),
                        _ => Err(StartError::InitDead),
                    };
                }
            }
        }
    }
    break_out(&path)
}

/// runc removes the FIFO after reading: its absence is what makes the container "running".
fn break_out(path: &Path) -> Result<Outcome, StartError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Outcome::Started),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Outcome::Started),
        Err(source) => Err(StartError::Io { path: path.to_path_buf(), source }),
    }
}

/// Opens the read end without blocking; `None` if there is no FIFO at `path`.
fn open_fifo(path: &Path) -> Result<Option<OwnedFd>, StartError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let io_err = |source| StartError::Io { path: path.to_path_buf(), source };
    let f = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ELOOP)) => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    if !f.metadata().map_err(io_err)?.file_type().is_fifo() {
        return Ok(None);
    }
    Ok(Some(f.into()))
}

/// `Ok(true)`: got data; `Ok(false)`: end of file (every writer gone, nothing written).
fn read_byte(rx: &pipe::Receiver) -> std::io::Result<bool> {
    let mut buf = [0u8; 16];
    Ok(rx.try_read(&mut buf)? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn state_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dockerish-fifo-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("state.json"), "{}").unwrap();
        d
    }

    fn mkfifo(p: &Path) {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o622)).unwrap();
    }

    /// A runc-like state dir with its exec FIFO, as `runc create` leaves it.
    fn created(name: &str) -> (PathBuf, PathBuf) {
        let d = state_dir(name);
        let fifo = d.join("exec.fifo");
        mkfifo(&fifo);
        (d, fifo)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// A writer that shows up later (like runc init finishing its setup) is waited for; the
    /// FIFO is removed afterwards.
    #[test]
    fn waits_for_the_start_byte_then_removes_the_fifo() {
        let (d, fifo) = created("ok");
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            // Blocks until the reader is there, exactly like runc init.
            let mut f = std::fs::OpenOptions::new().write(true).open(&writer_path).unwrap();
            f.write_all(b"0").unwrap();
        });
        let r = rt().block_on(start(&d, || true)).unwrap();
        assert!(matches!(r, Outcome::Started));
        assert!(!fifo.exists(), "exec.fifo must be gone after start (runc state: running)");
        writer.join().unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dead_init_without_byte_is_an_error_and_keeps_the_fifo() {
        let (d, fifo) = created("dead");
        let e = rt().block_on(start(&d, || false)).err().expect("must fail");
        assert!(matches!(e, StartError::InitDead), "{e}");
        assert_eq!(e.to_string(), "container process is already dead");
        assert!(fifo.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn writer_closing_without_byte_is_reported() {
        let (d, fifo) = created("nobyte");
        let p = fifo.clone();
        let writer = std::thread::spawn(move || drop(std::fs::OpenOptions::new().write(true).open(&p).unwrap()));
        let e = rt().block_on(start(&d, || true)).err().expect("must fail");
        assert!(matches!(e, StartError::NoStartByte { .. }), "{e}");
        writer.join().unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn other_layouts_fall_back_to_runc_start() {
        let d = state_dir("layout");
        // No FIFO (already started, or not runc's layout).
        assert!(matches!(rt().block_on(start(&d, || true)).unwrap(), Outcome::NotApplicable));
        // A regular file where the FIFO should be.
        std::fs::write(d.join("exec.fifo"), "0").unwrap();
        assert!(matches!(rt().block_on(start(&d, || true)).unwrap(), Outcome::NotApplicable));
        assert!(d.join("exec.fifo").exists());
        // No state.json: not runc.
        std::fs::remove_file(d.join("state.json")).unwrap();
        std::fs::remove_file(d.join("exec.fifo")).unwrap();
        mkfifo(&d.join("exec.fifo"));
        assert!(matches!(rt().block_on(start(&d, || true)).unwrap(), Outcome::NotApplicable));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
