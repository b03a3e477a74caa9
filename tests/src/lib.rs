//! Test harness for `containerd-shim-dockerish-v2`.
//!
//! Every integration test starts its own private containerd 1.6 ([`Containerd`]) in a temporary
//! directory (own root, state, gRPC and ttrpc sockets), with the directory of our shim binary
//! first in the daemon's `PATH`, and imports a busybox image built locally from `/bin/busybox`
//! ([`image`]). Tests then drive containers with `ctr`, exactly as a user would, against either
//! runtime ([`Runtime`]): the Go shim `io.containerd.runc.v2` (validates the harness and the
//! expectations) or ours, `io.containerd.dockerish.v2`.
//!
//! Everything a test creates is removed by `Drop` guards, also when the test fails: containers
//! (`runc delete --force`), shims, containerd, mounts, cgroups, shim sockets and the temp dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod cmd;
pub mod containerd;
pub mod events;
pub mod image;
pub mod pb;
pub mod procs;
pub mod pty;
pub mod shim_direct;
pub mod systemd_env;
pub mod ttrpc_raw;

pub use cmd::{run_cmd, Out};
pub use containerd::{Containerd, Options, RunOpts};
pub use events::{Event, Events};
pub use image::IMAGE;

/// The two runtimes a lifecycle test can run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// containerd's Go shim `containerd-shim-runc-v2` (the reference behaviour).
    RuncV2,
    /// Our shim `containerd-shim-dockerish-v2`.
    Dockerish,
}

impl Runtime {
    /// The runtime name given to containerd (`ctr run --runtime`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::RuncV2 => "io.containerd.runc.v2",
            Runtime::Dockerish => "io.containerd.dockerish.v2",
        }
    }

    /// The shim binary containerd resolves the runtime name to.
    pub fn binary(self) -> PathBuf {
        match self {
            Runtime::RuncV2 => which("containerd-shim-runc-v2")
                .unwrap_or_else(|| PathBuf::from("/usr/bin/containerd-shim-runc-v2")),
            Runtime::Dockerish => shim_path(),
        }
    }

    pub fn is_dockerish(self) -> bool {
        self == Runtime::Dockerish
    }
}

/// Generates one `#[test]` per runtime for a function `fn(Runtime)`:
/// `runtime_tests!(exit_codes);` gives `exit_codes::runc_v2` and `exit_codes::dockerish`;
/// `runtime_tests!(dockerish_only: stress);` gives only `stress::dockerish`.
#[macro_export]
macro_rules! runtime_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn runc_v2() {
                    super::$name($crate::Runtime::RuncV2)
                }
                #[test]
                fn dockerish() {
                    super::$name($crate::Runtime::Dockerish)
                }
            }
        )+
    };
    (dockerish_only: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn dockerish() {
                    super::$name($crate::Runtime::Dockerish)
                }
            }
        )+
    };
}

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent directory")
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Path of our shim binary: `$DOCKERISH_SHIM` if set, else `<target>/debug/containerd-shim-dockerish-v2`.
/// Panics with instructions when it does not exist.
pub fn shim_path() -> PathBuf {
    let p = match std::env::var_os("DOCKERISH_SHIM") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => target_dir().join("debug").join("containerd-shim-dockerish-v2"),
    };
    if !p.is_file() {
        panic!(
            "shim binary {} not found: run `cargo build --bins` in {} first (or set DOCKERISH_SHIM to the binary)",
            p.display(),
            workspace_root().display()
        );
    }
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// Looks a program up in `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique within this machine for the lifetime of this process: `<prefix><pid>-<n>`.
/// Used for namespaces, so that runc state under `/run/containerd/runc/<ns>` never collides.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Polls `f` every 50 ms until it returns true or `timeout` elapses; returns the last result.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `job(i)` for every `i` in `range` on `workers` threads (a pool of concurrent clients)
/// and returns the errors. Stops handing out work once `max_errors` errors were seen: when the
/// system under test is clearly broken, each further hung client would only cost a deadline.
pub fn run_parallel(
    range: std::ops::Range<usize>,
    workers: usize,
    max_errors: usize,
    job: impl Fn(usize) -> Result<(), String> + Sync,
) -> Vec<String> {
    let next = AtomicUsize::new(range.start);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= range.end || errors.lock().unwrap_or_else(|e| e.into_inner()).len() >= max_errors {
                    break;
                }
                if let Err(e) = job(i) {
                    errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                }
            });
        }
    });
    errors.into_inner().unwrap_or_else(|e| e.into_inner())
}
