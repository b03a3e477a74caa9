//! The long-lived shim process: one tokio thread serving the task API until containerd says
//! Shutdown and no container is left. Blocking work goes to tokio's blocking pool, whose
//! threads end soon after they go idle.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::args::Flags;
use crate::events::Publisher;
use crate::monitor::Monitor;
use crate::oci::RuncRuntime;
use crate::service::Service;

/// Idle blocking-pool threads end after this: an idle shim is one thread.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// containerd opened `<bundle>/log` (a FIFO) before running `start`; pointing stderr at it
/// puts our log lines and any crash output into containerd's log.
fn redirect_stderr_to_log(bundle: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = PathBuf::from(bundle).join("log");
    // O_NONBLOCK: fail instead of hanging if nobody reads the FIFO.
    let Ok(f) = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&path) else { return };
    // Writes must block rather than fail while the FIFO is full; EPIPE is ignored by the logger.
    let _ = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()));
    let _ = nix::unistd::dup2(f.as_raw_fd(), 2);
}

/// One malloc arena for the whole daemon. glibc gives every thread that allocates an arena of
/// its own and keeps its pages after the thread ends: blocking-pool threads that run a Create
/// (the rules build the spec) would leave ~0.2 MiB per container resident in every shim.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    // No safe wrapper exists (nix has none).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the heap's free pages back to the kernel. A Create builds and drops a whole filled
/// spec (Docker's seccomp profile alone is hundreds of allocations); glibc keeps the freed
/// pages resident, ~80 KiB per shim that an idle shim never uses again. Blocking pool only
/// (it walks the heap).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it is
    // thread-safe in glibc and touches no memory the program owns. No safe wrapper exists.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub fn run(flags: &Flags) -> i32 {
    one_malloc_arena();
    redirect_stderr_to_log(&flags.bundle);
    crate::logger::init(flags.debug, &flags.id, &flags.namespace);
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log::error!("cannot become a child subreaper: {e}");
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().thread_keep_alive(BLOCKING_KEEP_ALIVE).build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("tokio runtime: {e}");
            return 1;
        }
    };
    rt.block_on(serve(flags))
}

async fn serve(flags: &Flags) -> i32 {
    let socket = Some(PathBuf::from(&flags.socket)).filter(|s| !s.as_os_str().is_empty());
    let fail = |what: String| {
        log::error!("{what}");
        if let Some(s) = &socket {
            let _ = std::fs::remove_file(s);
        }
        1
    };
    let (monitor, exits) = match Monitor::start() {
        Ok(m) => m,
        Err(e) => return fail(format!("SIGCHLD handler: {e}")),
    };
    let mut sigterm = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(format!("SIGTERM handler: {e}")),
    };
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_else(|_| format!("{}.ttrpc", flags.address));
    let publisher = Publisher::start(ttrpc_address, flags.namespace.clone());
    let service = Service::new(RuncRuntime::new(flags.namespace.clone(), monitor), publisher.clone(), socket.clone());
    tokio::spawn(service.clone().handle_exits(exits));

    // `start` had to pass the listener through exec, so it arrives without close-on-exec: every
    // runc and log driver the daemon starts would inherit the shim's socket (a log driver can
    // outlive the daemon).
    if let Err(e) = nix::fcntl::fcntl(3, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)) {
        return fail(format!("listener on fd 3: {e}"));
    }
    // SAFETY: fd 3 is the listening socket `start` bound and passed to us; nothing else in this
    // process uses it, and ttrpc takes it over (it only offers this raw-fd constructor).
    let server = match unsafe { ttrpc::r#async::Server::new().add_unix_listener(3) } {
        Ok(s) => s,
        Err(e) => return fail(format!("listener on fd 3: {e:?}")),
    };
    let mut server = server.register_service(dockerish_proto::task_services(service.clone()));
    if let Err(e) = server.start().await {
        return fail(format!("ttrpc server: {e:?}"));
    }
    log::debug!("serving task API v2+v3 on {}", flags.socket);

    loop {
        tokio::select! {
            _ = service.shutdown.notified() => break,
            _ = sigterm.recv() => {
                if service.is_empty() {
                    service.request_shutdown();
                    break;
                }
                log::warn!("SIGTERM ignored: containers are still running");
            }
        }
    }
    // The socket is already gone (removed before the Shutdown reply). Deliver the last events
    // (TaskDelete) and let the Shutdown reply go out.
    publisher.drain(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server.shutdown()).await;
    0
}
