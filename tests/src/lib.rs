//! Test harness for `containerd-shim-dockerish-v2`.
//!
//! Every integration test runs against a private containerd ([`Containerd`]) in a temporary
//! directory (own root, state, gRPC and ttrpc sockets), with the directory of our shim binary
//! first in the daemon's `PATH`, and imports a busybox image built locally from `/bin/busybox`
//! ([`image`]): a daemon of its own, or its own namespace in a daemon shared by the tests of
//! the same test binary. Tests then drive containers with that containerd's `ctr`, exactly as a
//! user would, against either runtime ([`Runtime`]): the Go shim `io.containerd.runc.v2` of the
//! same containerd version (validates the harness and the expectations) or ours,
//! `io.containerd.dockerish.v2`. The core tests run against every containerd of the matrix
//! ([`Version`], [`matrix_tests!`]): Debian's 1.6 and the 1.7 and 2.3 builds.
//!
//! Everything a test creates is removed by `Drop` guards, also when the test fails: containers
//! (`runc delete --force`), shims, containerd, mounts, cgroups, shim sockets and the temp dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod builds;
pub mod cmd;
pub mod containerd;
pub mod cri;
pub mod events;
pub mod image;
pub mod k8s;
pub mod matrix;
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
pub use matrix::Version;

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

    /// The shim binary containerd 1.6 resolves the runtime name to (for another version:
    /// [`Containerd::runtime_binary`]).
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

/// Generates one `#[test]` per containerd version of the matrix and per runtime for a function
/// `fn(Version, Runtime)`, named `<fn>::<version>::<runtime>`, so that a failure says which
/// containerd and which shim:
///
/// ```ignore
/// matrix_tests!(exit_codes, stats);               // exit_codes::v1_6::runc_v2, …, stats::v2_3::dockerish
/// matrix_tests!(dockerish_only: stress);          // stress::v1_6::dockerish, stress::v1_7::dockerish, …
/// matrix_tests!(versions_only: containerd_crash); // containerd_crash::v1_6, …; fn(Version)
/// matrix_tests!(dockerish_only on [v2_3]: socket_dir); // socket_dir::v2_3::dockerish only
/// ```
///
/// `on [<versions>]` (after `dockerish_only` or `versions_only`, or alone for both runtimes)
/// limits a test to the versions named, for a subject that exists only there (a 2.3-only
/// protocol field) or that no containerd takes part in (the shim binary run by hand); the
/// other versions get no test at all, not an ignored one.
///
/// Tests of a version whose build is missing (see [`matrix::builds_dir`]) are ignored with the
/// reason. A known failure of one version and runtime is marked after the name, with the reason
/// shown by `cargo test` (`versions_only:` entries leave the runtime out):
///
/// ```ignore
/// matrix_tests!(exit_codes [v2_3 dockerish: "issue 12: …", v1_7 runc_v2: "…"], stats);
/// ```
#[macro_export]
macro_rules! matrix_tests {
    (dockerish_only on $vs:tt : $($name:ident),+ $(,)?) => {
        $( $crate::__matrix_some!($name $vs [dockerish]); )+
    };
    (versions_only on $vs:tt : $($name:ident),+ $(,)?) => {
        $( $crate::__matrix_some!($name $vs []); )+
    };
    (on $vs:tt : $($name:ident),+ $(,)?) => {
        $( $crate::__matrix_some!($name $vs [runc_v2 dockerish]); )+
    };
    (dockerish_only: $($name:ident $([$($kv:ident $kr:ident : $why:literal),* $(,)?])?),+ $(,)?) => {
        $( $crate::__matrix_module!($name [dockerish] [$($($kv $kr : $why),*)?]); )+
    };
    (versions_only: $($name:ident $([$($kv:ident : $why:literal),* $(,)?])?),+ $(,)?) => {
        $( $crate::__matrix_module!($name [] [$($($kv : $why),*)?]); )+
    };
    ($($name:ident $([$($kv:ident $kr:ident : $why:literal),* $(,)?])?),+ $(,)?) => {
        $( $crate::__matrix_module!($name [runc_v2 dockerish] [$($($kv $kr : $why),*)?]); )+
    };
}

/// Implementation of [`matrix_tests!`]: the module of one test function.
#[doc(hidden)]
#[macro_export]
macro_rules! __matrix_module {
    ($name:ident $rts:tt $known:tt) => {
        mod $name {
            $crate::__matrix_at!($name v1_6 $rts $known);
            $crate::__matrix_at!($name v1_7 $rts $known);
            $crate::__matrix_at!($name v2_3 $rts $known);
        }
    };
}

/// Implementation of `matrix_tests!(… on [versions]: …)`: the module of one test function,
/// with only the versions named.
#[doc(hidden)]
#[macro_export]
macro_rules! __matrix_some {
    ($name:ident [$($v:ident)+] $rts:tt) => {
        mod $name {
            $( $crate::__matrix_at!($name $v $rts []); )+
        }
    };
}

/// One version of the matrix by its module name, with the attribute that ignores its tests
/// when its build is missing.
#[doc(hidden)]
#[macro_export]
macro_rules! __matrix_at {
    ($name:ident v1_6 $rts:tt $known:tt) => {
        $crate::__matrix_version!($name V1_6 v1_6 [] $rts $known);
    };
    ($name:ident v1_7 $rts:tt $known:tt) => {
        $crate::__matrix_version!($name V1_7 v1_7 [#[cfg_attr(not(dockerish_containerd_v1_7), ignore = "containerd 1.7.34 build not found: set DOCKERISH_CONTAINERD_BUILDS (README, Tests)")]] $rts $known);
    };
    ($name:ident v2_3 $rts:tt $known:tt) => {
        $crate::__matrix_version!($name V2_3 v2_3 [#[cfg_attr(not(dockerish_containerd_v2_3), ignore = "containerd 2.3.4 build not found: set DOCKERISH_CONTAINERD_BUILDS (README, Tests)")]] $rts $known);
    };
}

/// One version (with the attribute that ignores it when its build is missing): a module with a
/// test per runtime, or (no runtimes) a test named after the version.
#[doc(hidden)]
#[macro_export]
macro_rules! __matrix_version {
    ($name:ident $V:ident $v:ident $missing:tt [] $known:tt) => {
        $crate::__matrix_fn!(@scan $missing $name $V $v - $known);
    };
    ($name:ident $V:ident $v:ident $missing:tt [$($rt:ident)+] $known:tt) => {
        mod $v {
            $( $crate::__matrix_fn!(@scan $missing $name $V $v $rt $known); )+
        }
    };
}

/// Collects the attributes of one test (missing build, known failures), then emits it.
/// Idents passed on from another macro still match literal tokens, which is how the known
/// failures of this version and runtime are picked out of the list.
#[doc(hidden)]
#[macro_export]
macro_rules! __matrix_fn {
    // A known failure of this version (and runtime): ignored, with the reason, when the build
    // is there (when it is not, the missing build is the reason).
    (@scan [$($a:tt)*] $name:ident V1_6 v1_6 $rt:tt [v1_6 $($kr:ident)? : $why:literal $(, $($rest:tt)*)?]) => {
        $crate::__matrix_fn!(@match [$($a)*] $name V1_6 v1_6 $rt [$($kr)?] [#[ignore = $why]] [$($($rest)*)?]);
    };
    (@scan [$($a:tt)*] $name:ident V1_7 v1_7 $rt:tt [v1_7 $($kr:ident)? : $why:literal $(, $($rest:tt)*)?]) => {
        $crate::__matrix_fn!(@match [$($a)*] $name V1_7 v1_7 $rt [$($kr)?] [#[cfg_attr(dockerish_containerd_v1_7, ignore = $why)]] [$($($rest)*)?]);
    };
    (@scan [$($a:tt)*] $name:ident V2_3 v2_3 $rt:tt [v2_3 $($kr:ident)? : $why:literal $(, $($rest:tt)*)?]) => {
        $crate::__matrix_fn!(@match [$($a)*] $name V2_3 v2_3 $rt [$($kr)?] [#[cfg_attr(dockerish_containerd_v2_3, ignore = $why)]] [$($($rest)*)?]);
    };
    // Another version's entry: skip it.
    (@scan [$($a:tt)*] $name:ident $V:ident $v:ident $rt:tt [$kv:ident $($kr:ident)? : $why:literal $(, $($rest:tt)*)?]) => {
        $crate::__matrix_fn!(@scan [$($a)*] $name $V $v $rt [$($($rest)*)?]);
    };
    // The version matches: does the runtime? (`-` = versions_only, no runtime to compare.)
    (@match [$($a:tt)*] $name:ident $V:ident $v:ident - [] [$($attr:tt)*] $rest:tt) => {
        $crate::__matrix_fn!(@scan [$($a)* $($attr)*] $name $V $v - $rest);
    };
    (@match [$($a:tt)*] $name:ident $V:ident $v:ident runc_v2 [runc_v2] [$($attr:tt)*] $rest:tt) => {
        $crate::__matrix_fn!(@scan [$($a)* $($attr)*] $name $V $v runc_v2 $rest);
    };
    (@match [$($a:tt)*] $name:ident $V:ident $v:ident dockerish [dockerish] [$($attr:tt)*] $rest:tt) => {
        $crate::__matrix_fn!(@scan [$($a)* $($attr)*] $name $V $v dockerish $rest);
    };
    (@match [$($a:tt)*] $name:ident $V:ident $v:ident $rt:tt [$($kr:ident)?] [$($attr:tt)*] $rest:tt) => {
        $crate::__matrix_fn!(@scan [$($a)*] $name $V $v $rt $rest);
    };
    // End of the list: the test.
    (@scan [$($a:tt)*] $name:ident $V:ident $v:ident - []) => {
        #[test]
        $($a)*
        fn $v() {
            super::$name($crate::Version::$V)
        }
    };
    (@scan [$($a:tt)*] $name:ident $V:ident $v:ident $rt:ident []) => {
        #[test]
        $($a)*
        fn $rt() {
            super::super::$name($crate::Version::$V, $crate::__matrix_runtime!($rt))
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __matrix_runtime {
    (runc_v2) => {
        $crate::Runtime::RuncV2
    };
    (dockerish) => {
        $crate::Runtime::Dockerish
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

/// `bash deploy/install.sh` with containerd `v` first on `PATH`, so that the script's own
/// checks (`containerd config dump`, `config default`, `--version`) ask that containerd.
pub fn install_script(v: Version) -> std::process::Command {
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(workspace_root().join("deploy/install.sh"));
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    cmd.env("PATH", format!("{}:{path}", v.build().bin_dir().display()));
    cmd
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
