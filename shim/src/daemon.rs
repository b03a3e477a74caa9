//! The long-lived shim process: one tokio thread serving the task API until containerd says
//! Shutdown and no container is left.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::args::Flags;
use crate::events::Publisher;
use crate::monitor::Monitor;
use crate::service::Service;

/// containerd opened `<bundle>/log` (a FIFO) before running `start`; pointing stderr at it
/// puts our log lines and any crash output into containerd's log.
fn redirect_stderr_to_log(bundle: &str) {
    let path = PathBuf::from(bundle).join("log");
    let Ok(f) = std::fs::OpenOptions::new().write(true).custom_flags_nonblock().open(&path) else { return };
    // Writes must block rather than fail while the FIFO is full; EPIPE is ignored by the logger.
    let _ = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()));
    // SAFETY: dup2 onto stderr with an fd we own.
    unsafe {
        libc::dup2(f.as_raw_fd(), 2);
    }
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: fail instead of hanging if nobody reads the FIFO.
        self.custom_flags(libc::O_NONBLOCK)
    }
}

pub fn run(flags: &Flags) -> i32 {
    redirect_stderr_to_log(&flags.bundle);
    crate::logger::init(flags.debug, &flags.id, &flags.namespace);
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        log::error!("cannot become a child subreaper: {}", std::io::Error::last_os_error());
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("tokio runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(serve(flags));
    if !flags.socket.is_empty() {
        let _ = std::fs::remove_file(&flags.socket);
    }
    code
}

async fn serve(flags: &Flags) -> i32 {
    let (monitor, exits) = match Monitor::start() {
        Ok(m) => m,
        Err(e) => {
            log::error!("SIGCHLD handler: {e}");
            return 1;
        }
    };
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_else(|_| format!("{}.ttrpc", flags.address));
    let publisher = Publisher::start(ttrpc_address, flags.namespace.clone());
    let service = Service::new(flags.namespace.clone(), monitor, publisher.clone());
    tokio::spawn(service.clone().handle_exits(exits));

    // SAFETY: fd 3 is the listening socket `start` bound for us; nothing else uses it.
    let server = match unsafe { ttrpc::r#async::Server::new().add_unix_listener(3) } {
        Ok(s) => s,
        Err(e) => {
            log::error!("listener on fd 3: {e:?}");
            return 1;
        }
    };
    let mut server = server.register_service(dockerish_proto::task_services(service.clone()));
    if let Err(e) = server.start().await {
        log::error!("ttrpc server: {e:?}");
        return 1;
    }
    log::debug!("serving task API v2+v3 on {}", flags.socket);

    let mut sigterm = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("SIGTERM handler: {e}");
            return 1;
        }
    };
    loop {
        tokio::select! {
            _ = service.shutdown.notified() => break,
            _ = sigterm.recv() => {
                if service.is_empty() {
                    break;
                }
                log::warn!("SIGTERM ignored: containers are still running");
            }
        }
    }
    // Deliver the last events (TaskDelete) and let the Shutdown reply go out.
    publisher.drain(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server.shutdown()).await;
    0
}
