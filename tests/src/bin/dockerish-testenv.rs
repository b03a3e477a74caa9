//! `dockerish-testenv up [--containerd VERSION] DIR` starts a private containerd in DIR (busybox
//! image imported, our shim first in its PATH, then that containerd's own binaries), prints
//! shell exports and leaves it running; `dockerish-testenv down DIR` stops it and removes
//! everything it left; `dockerish-testenv versions [--summary]` lists the containerd builds the
//! tests find (exit status 3 when one is missing).
//! VERSION: `1.6` (Debian's, the default), `1.7` or `2.3` (the builds of the version matrix).
//! The same code the integration tests use (`dockerish_tests::Containerd`).

use std::path::PathBuf;

use dockerish_tests::{Containerd, Options, Version, IMAGE};

fn usage() -> ! {
    eprintln!("usage: dockerish-testenv up [--containerd 1.6|1.7|2.3] DIR | down DIR | versions [--summary]");
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut version = Version::V1_6;
    if let Some(i) = args.iter().position(|a| a == "--containerd") {
        let Some(v) = args.get(i + 1) else { usage() };
        version = Version::parse(v).unwrap_or_else(|| {
            eprintln!("dockerish-testenv: unknown containerd version {v:?} (1.6, 1.7 or 2.3)");
            std::process::exit(2)
        });
        args.drain(i..i + 2);
    }
    if args.first().map(String::as_str) == Some("versions") && args.len() <= 2 {
        let summary = match args.get(1).map(String::as_str) {
            None => false,
            Some("--summary") => true,
            Some(_) => usage(),
        };
        let (found, missing): (Vec<Version>, Vec<Version>) = Version::ALL.into_iter().partition(|v| v.try_build().is_ok());
        if summary {
            let labels = |vs: &[Version]| vs.iter().map(|v| v.label()).collect::<Vec<_>>().join(", ");
            let mut line = format!("containerd matrix: ran {}", labels(&found));
            if !missing.is_empty() {
                line += &format!(
                    "; SKIPPED {} (no build in {}; set {}): their tests were ignored",
                    labels(&missing),
                    dockerish_tests::matrix::builds_dir().display(),
                    dockerish_tests::builds::BUILDS_ENV
                );
            }
            println!("{line}");
        } else {
            for v in Version::ALL {
                match v.try_build() {
                    Ok(b) => println!("{}: {}", v.module(), b.dir.display()),
                    Err(e) => println!("{}: skipped, {e}", v.module()),
                }
            }
        }
        std::process::exit(if missing.is_empty() { 0 } else { 3 });
    }
    if args.len() != 2 {
        usage();
    }
    let dir = PathBuf::from(&args[1]);
    match args[0].as_str() {
        "up" => {
            if dir.join("harness.json").exists() {
                eprintln!("{} already holds a running environment: run `dockerish-testenv down {}` first", dir.display(), dir.display());
                std::process::exit(1);
            }
            if let Err(e) = version.try_build() {
                eprintln!("dockerish-testenv: {e}");
                std::process::exit(1);
            }
            let c = Containerd::start_with(Options { version, dir: Some(dir), log_level: "info".into(), ..Options::default() });
            println!("export CONTAINERD_ADDRESS={}", c.grpc);
            println!("export CONTAINERD_NAMESPACE={}", c.ns);
            println!("export DOCKERISH_IMAGE={IMAGE}");
            println!("export DOCKERISH_CONTAINERD_LOG={}", c.log_path().display());
            println!("export DOCKERISH_SHIM={}", dockerish_tests::shim_path().display());
            if version != Version::V1_6 {
                // This version's ctr first, so that `ctr` speaks the daemon's own version.
                println!("export PATH={}:$PATH", c.build.bin_dir().display());
                println!("export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1");
            }
            let dir = c.detach();
            eprintln!("dockerish-testenv: private {} running in {}", version, dir.display());
        }
        "down" => match Containerd::attach(&dir) {
            Ok(c) => {
                drop(c);
                eprintln!("dockerish-testenv: stopped and cleaned {}", dir.display());
            }
            Err(e) => {
                eprintln!("dockerish-testenv: nothing to stop in {} ({e})", dir.display());
            }
        },
        _ => usage(),
    }
}
