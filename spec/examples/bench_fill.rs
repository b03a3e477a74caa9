//! `cargo run --release -p dockerish-spec --example bench_fill`: time `fill` on a realistic
//! ctr bundle with a 300-line mountinfo (target < 100 µs).
use dockerish_spec::testing::FakeHost;
use dockerish_spec::*;
use serde_json::json;

fn time(label: &str, spec: &Value, cfg: &DaemonConfig, h: &FakeHost) {
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let f = fill(spec.clone(), &Inputs { id: "test", namespace: "default", config: cfg, runc_systemd_cgroup: None }, h).expect("fill");
        std::hint::black_box(f);
    }
    println!("{label}: {:?} per fill", t.elapsed() / n);
}

fn main() {
    let p = format!("{}/tests/fixtures/ctr_default.json", env!("CARGO_MANIFEST_DIR"));
    let base: Value = serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json");
    let mut h = FakeHost::default();
    let mut mi = String::new();
    for i in 0..300 {
        mi.push_str(&format!("{} 22 0:{} / /mnt/m{} rw,relatime shared:{} - tmpfs tmpfs rw\n", 100 + i, 50 + i, i, i));
    }
    h.mountinfo = parse_mountinfo(&mi).expect("mountinfo");
    let cfg = DaemonConfig::default();
    time("ctr default", &base, &cfg, &h);
    let mut s = base.clone();
    s["mounts"].as_array_mut().expect("mounts").push(json!({"destination": "/data", "type": "bind", "source": "/mnt/m150/x", "options": ["rbind", "rshared"]}));
    s["annotations"] = json!({"io.containerd.dockerish/ulimits": "nofile=1:2", "io.containerd.dockerish/tmpfs": "/tmp", "io.containerd.dockerish/cap-add": "NET_ADMIN"});
    time("ctr + rshared bind + annotations", &s, &cfg, &h);
    let mut c2 = cfg.clone();
    c2.seccomp_profile = "unconfined".into();
    time("ctr, seccomp unconfined", &base, &c2, &h);
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        std::hint::black_box(parse_mountinfo(&mi).expect("mi"));
    }
    println!("parse_mountinfo(300 lines): {:?}", t.elapsed() / 2000);
    let caps: Vec<String> = parse::DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        std::hint::black_box(seccomp::default_linux_seccomp(&seccomp::Target { goarch: "amd64", bounding: &caps, kernel: Some((6, 1)) }));
    }
    println!("default seccomp profile: {:?}", t.elapsed() / 2000);
}
