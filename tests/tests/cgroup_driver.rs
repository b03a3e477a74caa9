//! The cgroup-driver choice on a host without systemd (issue 12 item 3; the same choice where
//! systemd runs is in `systemd.rs`). Asking for the systemd driver here cannot work: runc
//! refuses it. The Go shim (`--runc-systemd-cgroup`) passes runc's error through; ours refuses
//! before runc with an error naming the setting and its value, and leaves nothing behind.

use std::path::Path;

use dockerish_tests::{runtime_tests, Containerd, RunOpts, Runtime};

runtime_tests!(systemd_driver_where_systemd_does_not_run_is_refused);

fn systemd_driver_where_systemd_does_not_run_is_refused(rt: Runtime) {
    assert!(!Path::new("/run/systemd/system").exists(), "this test is about a host without systemd (see tests/tests/systemd.rs for one with)");
    let c = Containerd::start();
    let configs = [
        ("systemd-cgroup.toml", "systemd-cgroup = true\n", "config \"systemd-cgroup\": true selects runc's systemd cgroup driver, but systemd is not running on this host"),
        ("exec-opts.toml", "exec-opts = [\"native.cgroupdriver=systemd\"]\n", "config \"exec-opts\": native.cgroupdriver=systemd, but systemd is not running on this host"),
    ];
    for (i, (file, text, want)) in configs.iter().enumerate() {
        let cfg = c.dir.join(file);
        std::fs::write(&cfg, text).unwrap();
        let id = c.id(&format!("nosd{i}"));
        let opts = match rt {
            Runtime::RuncV2 => RunOpts::rm().flag("--runc-systemd-cgroup").flag("--cgroup").flag(format!("system.slice:docker:{id}")),
            Runtime::Dockerish => RunOpts::rm().flag("--runtime-config-path").flag(cfg.display().to_string()),
        };
        let err = c.run(rt, id, &["true"], opts).expect_err();
        let want = if rt.is_dockerish() { want.to_string() } else { "systemd not running on this host, cannot use systemd cgroups manager".to_string() };
        assert!(err.contains(&want), "{file}: {err}");
        let _ = c.ctr(&["container", "rm", id]);
        c.assert_no_leftovers(id);
        if rt == Runtime::RuncV2 {
            break; // one reference is enough: the Go shim has no daemon config
        }
    }
}
