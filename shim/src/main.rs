//! containerd-shim-dockerish-v2: a containerd shim v2 that runs containers through runc after
//! filling their OCI spec with the rules `docker run` applies.

mod args;
mod bootstrap;
mod cgroup;
mod daemon;
mod events;
mod execfifo;
mod fsutil;
mod logger;
mod monitor;
mod mount;
mod process;
mod rules;
mod runc;
mod service;
mod stdio;

fn main() {
    let flags = match args::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if flags.version {
        bootstrap::version();
        return;
    }
    let result = if flags.info {
        bootstrap::info()
    } else {
        match flags.action.as_str() {
            "start" => bootstrap::start(&flags),
            "delete" => bootstrap::delete(&flags),
            "dry-run" => bootstrap::dry_run(&flags),
            "" => std::process::exit(daemon::run(&flags)),
            other => {
                eprintln!("unknown action {other:?}: expected start, delete, dry-run, -v or -info");
                std::process::exit(2);
            }
        }
    };
    if let Err(e) = result {
        eprintln!("containerd-shim-dockerish-v2 {}: {e}", flags.action);
        std::process::exit(1);
    }
}
