//! `fill_bundle <bundle> <id> <namespace> [config]`: run prepare + commit + apply_actions on a
//! bundle and print the rules applied (manual check of a bundle with runc).
fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: fill_bundle <bundle> <id> <namespace> [config]");
        std::process::exit(2);
    }
    let bundle = std::path::Path::new(&a[1]);
    let cfg = match dockerish_host::load_config(a.get(4).map(std::path::Path::new), None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let r = dockerish_host::prepare(bundle, &a[2], &a[3], &cfg, "runc", None)
        .and_then(|f| dockerish_host::commit(bundle, &f).map(|_| f))
        .and_then(|f| dockerish_host::apply_actions(bundle, &f.actions).map(|_| f));
    match r {
        Ok(f) => {
            for x in &f.applied {
                println!("{:8} {}", x.rule, x.change);
            }
            println!("systemd_cgroup={} actions={:?}", f.systemd_cgroup, f.actions);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
