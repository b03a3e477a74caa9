//! `dockerish-testenv up DIR` starts a private containerd in DIR (busybox image imported, our
//! shim first in its PATH), prints shell exports and leaves it running;
//! `dockerish-testenv down DIR` stops it and removes everything it left.
//! The same code the integration tests use (`dockerish_tests::Containerd`).

use std::path::PathBuf;

use dockerish_tests::{Containerd, Options, IMAGE};

fn usage() -> ! {
    eprintln!("usage: dockerish-testenv up DIR | down DIR");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
            let c = Containerd::start_with(Options { dir: Some(dir), log_level: "info".into(), ..Options::default() });
            println!("export CONTAINERD_ADDRESS={}", c.grpc);
            println!("export CONTAINERD_NAMESPACE={}", c.ns);
            println!("export DOCKERISH_IMAGE={IMAGE}");
            println!("export DOCKERISH_CONTAINERD_LOG={}", c.log_path().display());
            println!("export DOCKERISH_SHIM={}", dockerish_tests::shim_path().display());
            let dir = c.detach();
            eprintln!("dockerish-testenv: private containerd running in {}", dir.display());
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
