//! Running a command (e.g. `ctr run -t`) on a pseudo-terminal of a given size.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Result of [`run_in_pty`].
#[derive(Debug)]
pub struct PtyOut {
    pub code: i32,
    /// Everything the terminal showed (with `\r\n` line ends).
    pub output: String,
}

/// Runs `cmd` with stdin, stdout and stderr on a new pty of `rows`×`cols` as its controlling
/// terminal; writes `input` after `input_delay`; kills it after `timeout`.
pub fn run_in_pty(mut cmd: Command, rows: u16, cols: u16, input: Option<(&[u8], Duration)>, timeout: Duration) -> PtyOut {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    let slave_fd = unsafe { OwnedFd::from_raw_fd(slave) };
    let mut master_file = unsafe { File::from_raw_fd(master) };
    cmd.stdin(Stdio::from(slave_fd.try_clone().unwrap()))
        .stdout(Stdio::from(slave_fd.try_clone().unwrap()))
        .stderr(Stdio::from(slave_fd.try_clone().unwrap()));
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn on pty");
    drop(slave_fd);
    drop(cmd); // closes the parent's copies of the slave
    let buf = Arc::new(Mutex::new(Vec::new()));
    let mut reader = master_file.try_clone().unwrap();
    let b = buf.clone();
    let rt = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break, // EIO once every slave fd is closed
                Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
    let start = Instant::now();
    let mut input = input;
    let code = loop {
        if let Some((data, delay)) = input {
            if start.elapsed() >= delay {
                let _ = master_file.write_all(data);
                input = None;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            use std::os::unix::process::ExitStatusExt;
            break st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "command on pty did not finish within {timeout:?}; output so far: {:?}",
                String::from_utf8_lossy(&buf.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while !rt.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(master_file);
    let output = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    PtyOut { code, output }
}
