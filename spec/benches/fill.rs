//! `cargo bench -p dockerish-spec --bench fill`: time `fill` on a realistic ctr bundle (the
//! `ctr oci spec` 1.6.20 fixture) with a 300-line mountinfo through `FakeHost` (target < 100 µs).
//! Plain `harness = false` bench: median of 25 batches of 200 fills each. Prints one
//! `RESULT fill_us=<median>` line for tests/bench/run.
use dockerish_spec::testing::FakeHost;
use dockerish_spec::*;
use serde_json::json;
use std::time::Instant;

fn median_us(mut f: impl FnMut()) -> f64 {
    const BATCHES: usize = 25;
    const PER: u32 = 200;
    for _ in 0..PER {
        f();
    }
    let mut v: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..PER {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / PER as f64
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[BATCHES / 2]
}

fn mountinfo() -> String {
    // Shaped like a busy container host: overlay snapshots, shm/tmpfs, bind mounts, nested /sys.
    let mut mi = String::from(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n\
         23 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4008k,nr_inodes=1002,mode=755\n\
         24 23 0:20 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw\n\
         25 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n\
         26 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n\
         27 22 0:23 / /run rw,nosuid,nodev,noexec,relatime shared:4 - tmpfs tmpfs rw,size=812k,mode=755\n",
    );
    for i in 0..294 {
        match i % 3 {
            0 => mi.push_str(&format!(
                "{} 27 0:{} / /run/containerd/io.containerd.runtime.v2.task/default/c{}/rootfs rw,relatime shared:{} - overlay overlay rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/{}/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/{}/fs,workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/{}/work\n",
                100 + i, 50 + i, i, 100 + i, i, i + 1, i + 1
            )),
            1 => mi.push_str(&format!(
                "{} 27 0:{} / /run/containerd/io.containerd.grpc.v1.cri/sandboxes/s{}/shm rw,nosuid,nodev,noexec,relatime shared:{} - tmpfs shm rw,size=65536k\n",
                100 + i, 50 + i, i, 100 + i
            )),
            _ => mi.push_str(&format!("{} 22 8:1 /srv/data{} /mnt/m{} rw,relatime shared:1 - ext4 /dev/sda1 rw\n", 100 + i, i, i)),
        }
    }
    mi
}

fn main() {
    let p = format!("{}/tests/fixtures/ctr_default.json", env!("CARGO_MANIFEST_DIR"));
    let base: Value = serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json");
    let mi = mountinfo();
    assert_eq!(mi.lines().count(), 300);
    let mut h = FakeHost::default();
    h.mountinfo = parse_mountinfo(&mi).expect("mountinfo");
    let cfg = DaemonConfig::default();
    let fill_one = |spec: &Value, cfg: &DaemonConfig| {
        let f = fill(spec.clone(), &Inputs { id: "test", namespace: "default", config: cfg, runc_systemd_cgroup: None }, &h).expect("fill");
        std::hint::black_box(f);
    };
    let clone_only = median_us(|| {
        std::hint::black_box(base.clone());
    });
    let ctr = median_us(|| fill_one(&base, &cfg));
    let mut s = base.clone();
    s["mounts"].as_array_mut().expect("mounts").push(json!({"destination": "/data", "type": "bind", "source": "/mnt/m150/x", "options": ["rbind", "rshared"]}));
    s["annotations"] = json!({"io.containerd.dockerish/ulimits": "nofile=1:2", "io.containerd.dockerish/tmpfs": "/tmp", "io.containerd.dockerish/cap-add": "NET_ADMIN"});
    let ann = median_us(|| fill_one(&s, &cfg));
    let mut c2 = cfg.clone();
    c2.seccomp_profile = "unconfined".into();
    let unconf = median_us(|| fill_one(&base, &c2));
    let parse = median_us(|| {
        std::hint::black_box(parse_mountinfo(&mi).expect("mi"));
    });
    let caps: Vec<String> = parse::DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    let sec = median_us(|| {
        std::hint::black_box(seccomp::default_linux_seccomp(&seccomp::Target { goarch: "amd64", bounding: &caps, kernel: Some((6, 1)) }));
    });
    println!("fill, ctr default spec, 300-line mountinfo:       {ctr:8.1} µs  (median of 25 x 200; includes {clone_only:.1} µs spec clone)");
    println!("fill, + rshared bind mount + 3 annotations:       {ann:8.1} µs");
    println!("fill, seccomp unconfined:                         {unconf:8.1} µs");
    println!("default seccomp profile alone:                    {sec:8.1} µs");
    println!("parse_mountinfo, 300 lines (done by the host):    {parse:8.1} µs");
    println!("RESULT fill_us={ctr:.1} fill_ann_us={ann:.1} seccomp_us={sec:.1} parse_mountinfo_us={parse:.1}");
}
