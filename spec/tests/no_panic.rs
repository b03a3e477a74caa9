//! Pseudo-random inputs through every pure parser and through `fill` (annotation values and
//! mutated specs): errors are fine, panics are not. A cheap stand-in until cargo-fuzz targets
//! exist; the parsers are the same `pub fn`s a fuzz target would call.

use dockerish_spec::testing::{FakeHost, Rng};
use dockerish_spec::*;
use serde_json::json;

trait Strings {
    fn string(&mut self) -> String;
}

impl Strings for Rng {
    fn string(&mut self) -> String {
        const ALPHA: &[&str] = &[
            "a", "0", "9", "-", ":", "=", "/", ".", "..", ",", " ", "*", "[", "]", "{", "}", "\"", "\\", "\\040", "k", "m", "g", "ib",
            "rwm", "c ", "b ", "container:", "host", "-1", "99999999999999999999", "é", "\u{0}", "\n", "size=", "ALL", "CAP_", "shared:1", "-",
        ];
        let n = self.next() % 12;
        (0..n).map(|_| self.pick(ALPHA)).collect()
    }
}

#[test]
fn parsers_never_panic() {
    let mut r = Rng(0x9e3779b97f4a7c15);
    for _ in 0..20000 {
        let s = r.string();
        let _ = parse::parse_bool(&s);
        let _ = parse::parse_i64(&s);
        let _ = parse::parse_size(&s);
        let _ = parse::parse_ulimit(&s);
        let _ = parse::parse_device(&s);
        let _ = parse::parse_device_cgroup_rule(&s);
        let _ = parse::parse_tmpfs(&s);
        let _ = parse::parse_sysctl(&s);
        let _ = parse::parse_cpus(&s);
        let _ = parse::parse_cpuset(&s);
        let _ = parse::parse_list(&s);
        let _ = parse::parse_map(&s);
        let _ = parse::clean_path(&s);
        let _ = parse::parse_security_opts(&[s.clone()]);
        let _ = parse::normalize_capability(&s, None);
        let _ = parse_mountinfo(&s);
        let _ = parse_mountinfo(&format!("1 2 0:1 {s} {s} rw {s} - {s} {s} {s}"));
        let _ = passwd::resolve_user(&s, Some(&s), Some(&s));
        let _ = passwd::additional_groups(&[s.clone()], Some(&s));
        let _ = DaemonConfig::from_json(&s);
        let _ = DaemonConfig::from_toml(&s);
        let _ = seccomp::profile_to_linux_seccomp(&s, &seccomp::Target { goarch: "amd64", bounding: &[], kernel: None });
    }
}

#[test]
fn fill_never_panics_on_random_annotations() {
    let p = format!("{}/tests/fixtures/ctr_default.json", env!("CARGO_MANIFEST_DIR"));
    let base: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let mut h = FakeHost::default();
    h.siblings.push(SiblingTask { id: "donor".into(), pid: 1, running: true, shm_path: Some("/x/shm".into()), ..Default::default() });
    h.devices.push(testing::FakeHost::chardev("/dev/fuse", 10, 229));
    h.paths.insert("/usr/bin/docker-init".into());
    let cfg = DaemonConfig::default();
    let keys = annotations::KEYS;
    let mut r = Rng(42);
    let values = ["true", "host", "container:donor", "shareable", "none", "1m", "[\"/dev/fuse\"]", "-1", "0", "{\"a\":\"b\"}", "[\"x\"]", "private"];
    for i in 0..3000 {
        let mut spec = base.clone();
        let mut ann = serde_json::Map::new();
        for _ in 0..(1 + r.next() % 4) {
            let k = keys[(r.next() % keys.len() as u64) as usize];
            let v = if i % 2 == 0 { r.pick(&values).to_string() } else { r.string() };
            ann.insert(format!("io.containerd.dockerish/{k}"), json!(v));
        }
        spec["annotations"] = Value::Object(ann);
        // occasionally break the spec's shape too
        match r.next() % 8 {
            0 => spec["linux"]["namespaces"] = json!("x"),
            1 => spec["mounts"] = json!([1, {"destination": 5}]),
            2 => spec["process"]["capabilities"] = json!(null),
            3 => spec["linux"]["resources"] = json!([]),
            _ => {}
        }
        let _ = fill(spec, &Inputs { id: "t", namespace: "default", config: &cfg, runc_systemd_cgroup: None }, &h);
    }
}
