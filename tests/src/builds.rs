//! Where the containerd builds of the version matrix live. Shared by `build.rs` (which decides at
//! compile time which versions' tests run and which are ignored) and the harness, so that both
//! always agree; std only, because the build script includes this file too.

use std::path::{Path, PathBuf};

/// Overrides the folder holding one sub-folder per containerd build (`1.7.34/`, `2.3.4/`, each
/// with `containerd`, `ctr` and `containerd-shim-runc-v2`).
pub const BUILDS_ENV: &str = "DOCKERISH_CONTAINERD_BUILDS";

/// The binaries a build folder must hold.
pub const BINARIES: [&str; 3] = ["containerd", "ctr", "containerd-shim-runc-v2"];

/// The builds beside Debian's 1.6: (test module name, folder name under [`builds_root`]).
pub const FOLDERS: [(&str, &str); 2] = [("v1_7", "1.7.34"), ("v2_3", "2.3.4")];

/// `$DOCKERISH_CONTAINERD_BUILDS`, else `<workspace>/../shared/containerd` (in CI the checkout
/// sits beside `shared/`).
pub fn builds_root(workspace: &Path, env: Option<std::ffi::OsString>) -> PathBuf {
    match env {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace.join(p)
            }
        }
        _ => workspace.join("..").join("shared").join("containerd"),
    }
}

/// The binaries missing from `dir` (empty: the build is usable).
pub fn missing_binaries(dir: &Path) -> Vec<&'static str> {
    BINARIES.iter().copied().filter(|b| !dir.join(b).is_file()).collect()
}
