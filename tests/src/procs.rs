//! Looking at processes, mounts, cgroups and sockets: what tests use to find leaks.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One process from `/proc`.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// `R`, `S`, `Z`, …
    pub state: char,
    pub comm: String,
    pub cmdline: Vec<String>,
}

impl Proc {
    /// Value following a flag in the command line (`-id X` → `X`).
    pub fn arg_after(&self, flag: &str) -> Option<&str> {
        self.cmdline.iter().position(|a| a == flag).and_then(|i| self.cmdline.get(i + 1)).map(|s| s.as_str())
    }
}

/// Reads `/proc/<pid>`; `None` if the process is gone.
pub fn read_proc(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(Proc { pid, ppid, state, comm, cmdline })
}

/// All processes.
pub fn all() -> Vec<Proc> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                if let Some(p) = read_proc(pid) {
                    v.push(p);
                }
            }
        }
    }
    v
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    read_proc(pid).map(|p| p.state != 'Z' && p.state != 'X').unwrap_or(false)
}

/// Shim processes started by the containerd listening on `grpc_address` (matched by their
/// `-address` argument), any runtime.
pub fn shims_of(grpc_address: &str) -> Vec<Proc> {
    all()
        .into_iter()
        .filter(|p| p.state != 'Z' && p.arg_after("-address") == Some(grpc_address) && p.cmdline.iter().any(|a| a.contains("containerd-shim")))
        .collect()
}

/// Number of threads of a process.
pub fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// Number of open file descriptors of a process.
pub fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Resident set size in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Zombie processes whose parent is one of `parents`.
pub fn zombies_of(parents: &[i32]) -> Vec<Proc> {
    all().into_iter().filter(|p| p.state == 'Z' && parents.contains(&p.ppid)).collect()
}

/// Children of `pid`.
pub fn children_of(pid: i32) -> Vec<Proc> {
    all().into_iter().filter(|p| p.ppid == pid).collect()
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points (of this mount namespace) at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// Mount points whose path contains `needle` (e.g. a container id).
pub fn mounts_containing(needle: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m.contains(needle))
        .collect()
}

/// Lazily unmounts everything at or below `dir`.
pub fn unmount_all_under(dir: &Path) {
    for _ in 0..3 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Cgroup directories `/sys/fs/cgroup/<controller>/<ns>/<id>` (v1, hybrid) or
/// `/sys/fs/cgroup/<ns>/<id>` (v2) that exist.
pub fn cgroups_of(ns: &str, id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut v = Vec::new();
    let direct = root.join(ns).join(id);
    if direct.is_dir() {
        v.push(direct);
    }
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path().join(ns).join(id);
            if p.is_dir() {
                v.push(p);
            }
        }
    }
    v
}

/// Cgroup directories named after container `id` (`<id>`, our shim's `<ns>--<id>` outside the
/// namespace `default`, or systemd's `*-<id>.scope`) up to three levels below `/sys/fs/cgroup`:
/// `/sys/fs/cgroup/memory/<ns>/<id>` (ctr's default), `/sys/fs/cgroup/memory/docker/<id>`
/// (Docker's), `/sys/fs/cgroup/docker/<ns>--<id>`… Container ids must be unique on the machine
/// for this to mean anything (see `Containerd::id`).
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    let scope = format!("-{id}.scope");
    let qualified = format!("--{id}");
    let mut found = Vec::new();
    let mut level = vec![PathBuf::from("/sys/fs/cgroup")];
    for _ in 0..3 {
        let mut next = Vec::new();
        for d in &level {
            let Ok(rd) = std::fs::read_dir(d) else { continue };
            for e in rd.flatten() {
                if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name == id || name.ends_with(&qualified) || name.ends_with(&scope) {
                    found.push(e.path());
                } else {
                    next.push(e.path());
                }
            }
        }
        level = next;
    }
    found
}

/// Where our shim keeps its claims (container names, cgroups): `dockerish_host::claims::CLAIMS_DIR`.
pub const CLAIMS_DIR: &str = "/run/containerd-shim-dockerish/claims";

/// Removes the shim's claims owned by bundles of `namespaces` under `task_dir` (containerd's
/// `<state>/io.containerd.runtime.v2.task`): a shim killed by the harness never ran its undo.
pub fn remove_claims_of(task_dir: &Path, namespaces: &[String]) {
    let task_dir = std::fs::canonicalize(task_dir).unwrap_or_else(|_| task_dir.to_path_buf());
    let prefixes: Vec<PathBuf> = namespaces.iter().map(|ns| task_dir.join(ns)).collect();
    let mut dirs = vec![PathBuf::from(CLAIMS_DIR)];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(p),
                Ok(t) if t.is_file() && !e.file_name().to_string_lossy().starts_with('.') => {
                    let owner = std::fs::read(&p).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()).and_then(|v| v["owner"].as_str().map(PathBuf::from));
                    if owner.is_some_and(|o| prefixes.iter().any(|pre| o.starts_with(pre))) {
                        let _ = std::fs::remove_file(&p);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Removes the (empty) cgroup directories of a namespace: `<ns>/<id>` first, then `<ns>`.
pub fn remove_cgroups_of_ns(ns: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(ns)];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            candidates.push(e.path().join(ns));
        }
    }
    for c in candidates {
        if let Ok(rd) = std::fs::read_dir(&c) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
            let _ = std::fs::remove_dir(&c);
        }
    }
}

/// The shim socket containerd's Go shim (and ours) uses for a container:
/// `/run/containerd/s/<hex sha256 of "<grpc address>/<ns>/<id>">`.
pub fn shim_socket(grpc_address: &str, ns: &str, id: &str) -> PathBuf {
    let joined = Path::new(grpc_address).join(ns).join(id);
    let mut h = Sha256::new();
    h.update(joined.as_os_str().as_encoded_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from("/run/containerd/s").join(hex)
}

/// The debug socket a Go shim also listens on when it runs at debug level (containerd's
/// `SocketAddress(…, debug = true)`: the hash of `"<grpc address>/<ns>/<id>/debug"`).
pub fn shim_debug_socket(grpc_address: &str, ns: &str, id: &str) -> PathBuf {
    shim_socket(grpc_address, ns, &format!("{id}/debug"))
}

/// runc's state directory for a container started by a shim in namespace `ns`.
pub fn runc_state(ns: &str, id: &str) -> PathBuf {
    PathBuf::from("/run/containerd/runc").join(ns).join(id)
}

/// Sends a signal; ignores errors.
pub fn kill(pid: i32, sig: i32) {
    if pid > 0 {
        unsafe { libc::kill(pid, sig) };
    }
}
