//! Fuzz target bodies: one `pub fn <target>(&[u8])` per parser the shim runs on input it does
//! not control. Each feeds the bytes to the same public functions the shim calls and checks two
//! things: no panic (the release shim is `panic = "abort"`: a panic would kill the supervisor of
//! every container it serves), and every rejected input gets a non-empty error that says which
//! input it was (annotation key, config key, options type URL, start input).
//!
//! The same bodies are used three ways:
//! - `fuzz_targets/*.rs`: cargo-fuzz / libFuzzer (`RUSTC_BOOTSTRAP=1 cargo fuzz run <target>`);
//! - `tests/tests/hostile.rs`: [`run_bounded`], a libFuzzer-free mutation loop, a few seconds per
//!   target in the normal test suite;
//! - `scripts/soak`: the same loop for minutes (`DOCKERISH_FUZZ_SECS`).
//!
//! This file is included by path from the tests crate, so it depends only on crates both have
//! (the shim's own parsers come from its library, `dockerish_shim`).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use dockerish_proto::protos::protobuf::well_known_types::any::Any;
use dockerish_proto::protos::protobuf::Message;
use dockerish_spec::annotations::{self, KEYS};
use dockerish_spec::config::Origin;
use dockerish_spec::{mountinfo, passwd, DaemonConfig};
use serde_json::{Map, Value};

use dockerish_shim::args as shim_args;
use dockerish_shim::stdio::{Output, StdioPaths, StdioSpec};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target: (name, body). Names match `fuzz_targets/<name>.rs`.
pub const TARGETS: &[(&str, Target)] = &[
    ("annotations", annotations),
    ("daemon_config", daemon_config),
    ("mountinfo", mountinfo),
    ("passwd_group", passwd_group),
    ("runtime_options", runtime_options),
    ("bootstrap_params", bootstrap_params),
    ("shim_flags", shim_flags),
    ("stdio", stdio),
];

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

#[track_caller]
fn clear_error(target: &str, msg: &str, must_contain: &str) {
    assert!(!msg.trim().is_empty(), "{target}: rejected input with an empty error");
    assert!(msg.contains(must_contain), "{target}: error does not name the input ({must_contain:?}): {msg}");
}

const PREFIX: &str = "io.containerd.dockerish/";

/// Annotations: lines `key=value`. A key that is a number picks one of the known keys (so the
/// fuzzer reaches every value parser); any other key is used as written (unknown keys, CRI
/// annotations, other prefixes). Goes through origin detection, `annotations::collect` for every
/// origin, and the whole `fill` with a fake host (joins, devices, tmpfs, users…).
pub fn annotations(data: &[u8]) {
    let s = text(data);
    let mut ann = Map::new();
    for line in s.split('\n') {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let key = match k.parse::<usize>() {
            Ok(n) => format!("{PREFIX}{}", KEYS[n % KEYS.len()]),
            Err(_) => k.to_string(),
        };
        ann.insert(key, Value::String(v.to_string()));
    }
    let cfg = DaemonConfig::default();
    let _ = annotations::detect_origin(Some(&ann), "default", &cfg);
    for origin in [Origin::Ctr, Origin::Nerdctl, Origin::Cri { sandbox: false }, Origin::Cri { sandbox: true }, Origin::Moby] {
        if let Err(e) = annotations::collect(Some(&ann), origin, &cfg) {
            clear_error("annotations", &e.to_string(), "annotation \"");
        }
    }
    // A JSON object as annotations (non-string values must be refused, not unwrapped).
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(data) {
        if let Err(e) = annotations::collect(Some(&m), Origin::Ctr, &cfg) {
            clear_error("annotations", &e.to_string(), "annotation \"");
        }
    }
    // The whole fill, as the shim runs it, on a minimal ctr-like spec.
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid"]}],
        "annotations": Value::Object(ann),
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
                  "cgroupsPath": "/default/fz"}
    });
    let mut host = dockerish_spec::testing::FakeHost::default();
    host.siblings.push(dockerish_spec::SiblingTask { id: "donor".into(), pid: 1, running: true, shm_path: Some("/x/shm".into()), ..Default::default() });
    host.rootfs.insert("/etc/passwd".into(), b"root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/h:/bin/sh\n".to_vec());
    host.rootfs.insert("/etc/group".into(), b"root:x:0:\ng:x:2000:u\n".to_vec());
    let inputs = dockerish_spec::Inputs { id: "fz", namespace: "default", config: &cfg, runc_systemd_cgroup: None };
    let _ = dockerish_spec::fill(spec, &inputs, &host);
}

/// dockerish.toml / daemon.json: TOML and JSON forms.
pub fn daemon_config(data: &[u8]) {
    let s = text(data);
    if let Err(e) = DaemonConfig::from_toml(&s) {
        clear_error("daemon_config", &e.to_string(), "config");
    }
    if let Err(e) = DaemonConfig::from_json(&s) {
        clear_error("daemon_config", &e.to_string(), "config");
    }
}

/// /proc/self/mountinfo and the source-mount lookup the propagation rules use.
pub fn mountinfo(data: &[u8]) {
    let s = text(data);
    match mountinfo::parse_mountinfo(&s) {
        Ok(m) => {
            for p in ["/", "/srv/x", "/dev/shm", "", "relative", "/a/../b"] {
                if let Some(mi) = mountinfo::source_mount(&m, p) {
                    let _ = (mi.mount_point(), mi.root(), mi.options(), mi.fs_type(), mi.source(), mi.super_options());
                    let _ = mi.optional().count();
                    let _ = mi.has_optional(&["shared:", "master:"]);
                }
            }
        }
        Err(e) => clear_error("mountinfo", &e, ""),
    }
}

/// A user spec, /etc/passwd and /etc/group from the rootfs, separated by NUL bytes.
pub fn passwd_group(data: &[u8]) {
    let s = text(data);
    let mut parts = s.splitn(3, '\0');
    let (spec, pw, gr) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let _ = passwd::parse_passwd(pw);
    let _ = passwd::parse_group(gr);
    for (p, g) in [(Some(pw), Some(gr)), (None, None), (Some(pw), None)] {
        if let Err(e) = passwd::resolve_user(spec, p, g) {
            clear_error("passwd_group", &e, "");
        }
    }
    let wanted: Vec<String> = spec.split(',').map(str::to_string).collect();
    if let Err(e) = passwd::additional_groups(&wanted, Some(gr)) {
        clear_error("passwd_group", &e, "");
    }
}

const OPTION_TYPES: &[&str] = &[
    dockerish_proto::RUNTIMEOPTIONS_TYPE,
    dockerish_proto::RUNC_OPTIONS_TYPE,
    "",
    "containerd.linux.runc.CreateOptions",
    "containerd.linux.runc.RuncOptions",
    "types.containerd.io/runtimeoptions.v1.Options",
    "example.com/unknown.v1.Options",
];

/// Runtime options (`CreateTaskRequest.options`, the `start` stdin before 2.3): first byte picks
/// the type URL, the rest is the value; then the whole input as a serialized `Any`.
pub fn runtime_options(data: &[u8]) {
    if let Some((first, rest)) = data.split_first() {
        let any = Any { type_url: OPTION_TYPES[*first as usize % OPTION_TYPES.len()].to_string(), value: rest.to_vec(), ..Default::default() };
        if let Err(e) = dockerish_proto::decode_options(Some(&any)) {
            clear_error("runtime_options", &e.to_string(), &format!("{:?}", any.type_url));
        }
    }
    if let Ok(any) = Any::parse_from_bytes(data) {
        if let Err(e) = dockerish_proto::decode_options(Some(&any)) {
            clear_error("runtime_options", &e.to_string(), &format!("{:?}", any.type_url));
        }
    }
}

fn check_start_input(buf: &[u8]) {
    match dockerish_proto::parse_start_input(buf, "fz-id", "fz-ns") {
        Ok(input) => {
            if let Err(e) = dockerish_proto::decode_options(input.options()) {
                clear_error("bootstrap_params", &e.to_string(), "runtime options");
            }
        }
        Err(e) => clear_error("bootstrap_params", &e.to_string(), "start input"),
    }
}

/// The `start` stdin: containerd 2.3's `BootstrapParams` or an older `Any`. The input is tried
/// raw, and appended to a header whose identity matches our flags (protobuf merges repeated
/// fields), so mutations reach the 2.3 path and its extensions.
pub fn bootstrap_params(data: &[u8]) {
    check_start_input(data);
    let header = dockerish_proto::protos::bootstrap_api::BootstrapParams {
        instance_id: "fz-id".into(),
        namespace: "fz-ns".into(),
        ..Default::default()
    };
    let mut buf = header.write_to_bytes().unwrap_or_default();
    buf.extend_from_slice(data);
    check_start_input(&buf);
}

/// The shim's command line: arguments separated by NUL bytes.
pub fn shim_flags(data: &[u8]) {
    let s = text(data);
    let args: Vec<String> = s.split('\0').map(str::to_string).collect();
    if let Err(e) = shim_args::parse(args) {
        clear_error("shim_flags", &e.0, "");
    }
}

/// The stdio of a Create or Exec (issue 10, item 2: one pair once reached an `unreachable!`):
/// the first byte's low bit is the terminal flag, the rest is stdin, stdout and stderr
/// separated by NUL bytes. Accepted requests keep the strings and form a combination the
/// shim handles; refused ones name the field and its value.
pub fn stdio(data: &[u8]) {
    let (flags, rest) = data.split_first().map(|(f, r)| (*f, r)).unwrap_or((0, &[]));
    let s = text(rest);
    let mut parts = s.splitn(3, '\0');
    let paths = StdioPaths {
        stdin: parts.next().unwrap_or("").to_string(),
        stdout: parts.next().unwrap_or("").to_string(),
        stderr: parts.next().unwrap_or("").to_string(),
        terminal: flags & 1 == 1,
    };
    match StdioSpec::parse(paths.clone()) {
        Ok(spec) => {
            assert_eq!(spec.paths, paths, "stdio: the request's strings must be kept as sent");
            match &spec.output {
                Output::Terminal(_) => assert!(paths.terminal, "stdio: a terminal output without the terminal flag"),
                Output::Logger(_) => assert!(!paths.terminal && paths.stdout.starts_with("binary://"), "stdio: a logging driver not named on stdout: {paths:?}"),
                Output::Streams { .. } => assert!(!paths.terminal && !paths.stdout.starts_with("binary://") && !paths.stderr.starts_with("binary://"), "stdio: {paths:?}"),
            }
        }
        Err(e) => {
            let given = match e.field {
                "stdin" => &paths.stdin,
                "stdout" => &paths.stdout,
                "stderr" => &paths.stderr,
                other => panic!("stdio: error names an unknown field {other:?}"),
            };
            assert_eq!(&e.value, given, "stdio: the error must quote the field's value");
            clear_error("stdio", &e.to_string(), e.field);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds and a libFuzzer-free mutation loop.

/// Realistic inputs per target (also written to `fuzz/corpus/<target>/` by scripts/soak).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let v: Vec<Vec<u8>> = match target {
        "annotations" => vec![
            b"0=host".to_vec(),
            b"6=true\n7=NET_ADMIN,SYS_TIME\n10=true".to_vec(),
            format!("{PREFIX}ipc=container:donor\n{PREFIX}shm-size=64m\n{PREFIX}tmpfs=/run:rw,size=1m").into_bytes(),
            format!("{PREFIX}ulimits=nofile=1024:2048\n{PREFIX}devices=/dev/fuse:/dev/fuse:rwm\n{PREFIX}user=u:g").into_bytes(),
            format!("{PREFIX}hostconfig={{\"Privileged\":true,\"CapAdd\":[\"ALL\"],\"ShmSize\":1048576}}").into_bytes(),
            format!("io.kubernetes.cri.container-type=container\nio.kubernetes.cri.container-name=app\n{PREFIX}app.memory=64m").into_bytes(),
            format!("{PREFIX}security-opt=seccomp=unconfined\n{PREFIX}sysctls=net.ipv4.ip_forward=1\n{PREFIX}cpus=1.5").into_bytes(),
            format!("{{\"{PREFIX}privileged\": true, \"{PREFIX}memory\": \"1g\"}}").into_bytes(),
        ],
        "daemon_config" => {
            let mut v = vec![
                b"default-shm-size = \"64m\"\ninit = true\n[policy]\nctr = \"fill\"\n[annotation-policy]\ncri = \"all\"\n".to_vec(),
                b"{\"default-ulimits\": {\"nofile\": {\"Name\": \"nofile\", \"Hard\": 64000, \"Soft\": 64000}}, \"runc-binary\": \"/usr/bin/runc\"}".to_vec(),
                b"no-such-key = 1\n".to_vec(),
            ];
            if let Ok(t) = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dockerish.toml")) {
                v.push(t);
            }
            v
        }
        "mountinfo" => {
            let mut v = vec![
                b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw\n".to_vec(),
                b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n".to_vec(),
                b"40 22 0:41 / /a\\040b rw shared:5 master:3 propagate_from:2 unbindable - tmpfs tmpfs rw\n".to_vec(),
            ];
            if let Ok(t) = std::fs::read("/proc/self/mountinfo") {
                v.push(t);
            }
            v
        }
        "passwd_group" => vec![
            b"u\0root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n\0root:x:0:\nwheel:x:10:u,root\n".to_vec(),
            b"1000:wheel\0u:x:1000:1000::/h:/bin/sh\n\0wheel:x:10:u\n".to_vec(),
            b"nobody:nogroup\0+:::::\n-x\n\0:::\n".to_vec(),
            b"wheel,2000,audio\0\0wheel:x:10:\naudio:x:29:\n".to_vec(),
        ],
        "runtime_options" => {
            let runc = dockerish_proto::protos::shim::oci::Options {
                binary_name: "/usr/bin/runc".into(),
                root: "/run/x".into(),
                systemd_cgroup: true,
                ..Default::default()
            };
            let runc_bytes = runc.write_to_bytes().unwrap_or_default();
            let mut ro = vec![0u8];
            ro.extend_from_slice(b"\x12\x0f/etc/x/d.toml\x1a\x0binit = true");
            let mut rc = vec![1u8];
            rc.extend_from_slice(&runc_bytes);
            let any = Any { type_url: dockerish_proto::RUNC_OPTIONS_TYPE.into(), value: runc_bytes, ..Default::default() };
            vec![ro, rc, any.write_to_bytes().unwrap_or_default(), vec![6, 1, 2, 3]]
        }
        "bootstrap_params" => {
            let any = Any { type_url: dockerish_proto::RUNTIMEOPTIONS_TYPE.into(), value: b"\x12\x05/x/cf".to_vec(), ..Default::default() };
            let mut ext = dockerish_proto::protos::bootstrap_api::Extension::new();
            ext.value = Some(any.clone()).into();
            let p = dockerish_proto::protos::bootstrap_api::BootstrapParams {
                instance_id: "fz-id".into(),
                namespace: "fz-ns".into(),
                containerd_grpc_address: "/run/containerd/containerd.sock".into(),
                extensions: vec![ext],
                ..Default::default()
            };
            vec![p.write_to_bytes().unwrap_or_default(), any.write_to_bytes().unwrap_or_default(), vec![]]
        }
        "shim_flags" => vec![
            b"-namespace\0default\0-address\0/run/containerd/containerd.sock\0-publish-binary\0/usr/bin/containerd\0-id\0c1\0-debug\0start".to_vec(),
            b"--namespace=k8s.io\0-id=x\0-bundle\0/b\0delete".to_vec(),
            b"-info\0-v=false\0--\0dry-run\0/b".to_vec(),
        ],
        "stdio" => vec![
            b"\0/run/containerd/fifo/1/c-stdin\0/run/containerd/fifo/1/c-stdout\0/run/containerd/fifo/1/c-stderr".to_vec(),
            b"\x01/run/f/in\0/run/f/out\0".to_vec(),
            b"\0\0binary:///usr/bin/logger?id=1&flag\0binary:///usr/bin/logger?id=1&flag".to_vec(),
            b"\0\0\0binary:///bin/true".to_vec(),
            b"\0\0file:///var/log/c%20x.log\0file:///var/log/c%20x.log".to_vec(),
            b"\x01\0fifo:///run/f/o\0/ignored".to_vec(),
            b"\0relative\0http://x/y\0fifo://".to_vec(),
        ],
        _ => vec![],
    };
    v
}

/// Tokens the mutator splices in (protobuf tags, annotation grammar, path tricks).
const DICT: &[&[u8]] = &[
    b"=", b"\n", b"\0", b":", b",", b"/", b"..", b"../../", b"container:", b"host", b"true", b"-1", b"9223372036854775808",
    b"\\040", b"shared:", b"master:", b" - ", b"[", b"]", b"{", b"}", b"\"", b"m", b"g", b"k", b"ALL", b"CAP_", b"rwm",
    b"\x0a", b"\x12", b"\x1a", b"\x42", b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"\xc3\xa9",
    b"io.containerd.dockerish/", b"runtimeoptions.v1.Options", b"containerd.runc.v1.Options",
    b"binary://", b"file://", b"fifo://", b"?", b"&", b"%", b"%2F",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(r: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=r.below(4) {
        let len = input.len();
        match r.below(9) {
            0 if len > 0 => {
                let i = r.below(len);
                input[i] ^= 1 << r.below(8);
            }
            1 if len > 0 => {
                let i = r.below(len);
                input[i] = r.next() as u8;
            }
            2 => {
                let i = r.below(len + 1);
                input.insert(i, r.next() as u8);
            }
            3 if len > 0 => {
                let a = r.below(len);
                let b = (a + 1 + r.below(16)).min(len);
                input.drain(a..b);
            }
            4 => {
                let t = DICT[r.below(DICT.len())];
                let i = r.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            5 if len > 0 => {
                // duplicate a chunk (long lines, repeated fields)
                let a = r.below(len);
                let b = (a + 1 + r.below(64)).min(len);
                let chunk = input[a..b].to_vec();
                let i = r.below(len + 1);
                input.splice(i..i, chunk);
            }
            6 if !corpus.is_empty() => {
                // splice with another input
                let other = &corpus[r.below(corpus.len())];
                let cut = r.below(input.len() + 1);
                let from = r.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => input.truncate(r.below(len)),
            _ => {
                let i = r.below(len + 1);
                let n = r.below(4) + 1;
                let digit = b"0123456789"[r.below(10)];
                input.splice(i..i, (0..n).map(|_| digit));
            }
        }
    }
    input.truncate(64 * 1024);
}

/// Result of a bounded run.
#[derive(Debug, Clone)]
pub struct RunStats {
    pub target: &'static str,
    pub inputs: u64,
    pub elapsed: Duration,
}

/// Runs `target` on its seeds and then on mutations of them for `budget` (at least one pass over
/// the seeds). A panic is re-raised after the offending input was printed (hex) and written to
/// `<crash_dir>/<target>-crash-<n>` when `crash_dir` is given.
pub fn run_bounded(name: &'static str, target: fn(&[u8]), budget: Duration, seed: u64, crash_dir: Option<&std::path::Path>) -> RunStats {
    let mut corpus = seeds(name);
    let mut r = Rng(seed | 1);
    let started = Instant::now();
    let mut n: u64 = 0;
    let check = |input: &[u8], n: u64| {
        if let Err(p) = std::panic::catch_unwind(|| target(input)) {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("fuzz target {name}: PANIC on input #{n} ({} bytes): {hex}\nas text: {:?}", input.len(), String::from_utf8_lossy(input));
            if let Some(d) = crash_dir {
                let _ = std::fs::create_dir_all(d);
                let _ = std::fs::write(d.join(format!("{name}-crash-{n}")), input);
            }
            std::panic::resume_unwind(p);
        }
    };
    for s in &corpus {
        check(s, n);
        n += 1;
    }
    let mut input = Vec::new();
    while started.elapsed() < budget {
        for _ in 0..64 {
            input.clear();
            if corpus.is_empty() || r.below(16) == 0 {
                input.extend((0..r.below(64)).map(|_| r.next() as u8));
            } else {
                input.extend_from_slice(&corpus[r.below(corpus.len())]);
            }
            mutate(&mut r, &mut input, &corpus);
            check(&input, n);
            n += 1;
            // Keep a few mutants as new parents (cheap stand-in for coverage feedback).
            if r.below(256) == 0 && corpus.len() < 512 {
                corpus.push(input.clone());
            }
        }
    }
    RunStats { target: name, inputs: n, elapsed: started.elapsed() }
}
