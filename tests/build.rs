//! Decides which containerd builds the version matrix runs against: for each build of
//! `src/builds.rs` found (all three binaries present), `cfg(dockerish_containerd_<module>)` is
//! set; the tests of a missing build are compiled as ignored, with the reason, so a clone
//! without `../shared/containerd` passes and says what it skipped. The resolved folder is
//! handed to the harness as `DOCKERISH_CONTAINERD_BUILDS_DIR`, so both read the same place.

#[path = "src/builds.rs"]
mod builds;

use std::path::Path;

fn main() {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest).parent().expect("tests/ has a parent").to_path_buf();
    let root = builds::builds_root(&workspace, std::env::var_os(builds::BUILDS_ENV));
    let root = std::fs::canonicalize(&root).unwrap_or(root);

    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/builds.rs");
    println!("cargo::rerun-if-env-changed={}", builds::BUILDS_ENV);
    // A folder added later changes the root's listing; a root that does not exist is not
    // watched (cargo would rerun this script on every build): set the variable or touch
    // build.rs after adding the builds.
    if root.is_dir() {
        println!("cargo::rerun-if-changed={}", root.display());
    }
    let names: Vec<String> = builds::FOLDERS.iter().map(|(m, _)| format!("dockerish_containerd_{m}")).collect();
    println!("cargo::rustc-check-cfg=cfg({})", names.join(", "));
    for ((module, folder), cfg) in builds::FOLDERS.iter().zip(&names) {
        let dir = root.join(folder);
        if builds::missing_binaries(&dir).is_empty() {
            println!("cargo::rustc-cfg={cfg}");
        } else {
            println!("cargo::warning=containerd {folder} not found in {} ({module} tests are ignored; set {})", dir.display(), builds::BUILDS_ENV);
        }
    }
    println!("cargo::rustc-env=DOCKERISH_CONTAINERD_BUILDS_DIR={}", root.display());
}
