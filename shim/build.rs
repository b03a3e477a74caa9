//! Records the version-control revision the binary is built from (`-info`, `-v`):
//! `DOCKERISH_REVISION` from the environment if set (a packager's build), else
//! `git rev-parse HEAD` of this checkout, else "unknown" (a source tree without git).

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=DOCKERISH_REVISION");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let revision = std::env::var("DOCKERISH_REVISION").ok().filter(|r| !r.is_empty()).or_else(|| {
        let rev = git(&dir, &["rev-parse", "HEAD"])?;
        // Rebuild when HEAD moves: HEAD itself, the branch it points to, packed refs. Only
        // files that exist (a missing one would rerun this script on every build).
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        watched.extend(git(&dir, &["symbolic-ref", "-q", "HEAD"]));
        for name in watched {
            if let Some(p) = git(&dir, &["rev-parse", "--git-path", &name]) {
                let p = if Path::new(&p).is_absolute() { PathBuf::from(p) } else { dir.join(p) };
                if p.exists() {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
        }
        Some(rev)
    });
    println!("cargo:rustc-env=DOCKERISH_REVISION={}", revision.as_deref().unwrap_or("unknown"));
}
