//! containerd-shim-dockerish-v2: the binary containerd runs (`start`, `delete`, `-info`, `-v`,
//! the daemon), `dry-run` for users and `install`/`uninstall` for a node's admin. Everything
//! lives in the library (`dockerish_shim`).

use dockerish_shim::{args, bootstrap, daemon, dry_run, install};

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
            "dry-run" => dry_run::dry_run(&flags),
            "install" | "uninstall" => {
                let words: Vec<String> = std::iter::once(flags.action.clone()).chain(flags.rest.iter().cloned()).collect();
                if let Err(e) = install::main(&words) {
                    eprintln!("containerd-shim-dockerish-v2 {}: {e}", flags.action);
                    std::process::exit(e.exit_code());
                }
                return;
            }
            "" => std::process::exit(daemon::run(&flags)),
            other => {
                eprintln!("unknown action {other:?}: expected start, delete, dry-run, install, uninstall, -v or -info");
                std::process::exit(2);
            }
        }
    };
    if let Err(e) = result {
        eprintln!("containerd-shim-dockerish-v2 {}: {e}", flags.action);
        std::process::exit(1);
    }
}
