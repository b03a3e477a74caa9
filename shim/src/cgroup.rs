//! The container's cgroup as seen from the shim: metrics for `Stats` and OOM detection.
//! Paths are read once from `/proc/<init pid>/cgroup` after `runc create`, so they stay valid
//! (for stats of a stopped task) until `runc delete` removes the cgroup. Also the shim's own
//! cgroup (runc `Options.ShimCgroup`).

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone)]
pub enum Cgroup {
    V1(HashMap<String, PathBuf>),
    V2(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("ShimCgroup {0:?}: must be an absolute cgroup path without \"..\"")]
    InvalidPath(String),
    #[error("ShimCgroup {path:?}: no such cgroup under {root}")]
    Missing { path: String, root: &'static str },
    #[error("ShimCgroup {path:?}: write {file}: {source}")]
    Write { path: String, file: String, source: std::io::Error },
}

/// Moves `pid` into the cgroup `path` (runc `Options.ShimCgroup`, as the Go shim does at
/// `start`): the unified hierarchy on cgroup v2, every v1 hierarchy that has it otherwise.
pub fn join(pid: u32, path: &str) -> Result<(), JoinError> {
    let rel = Path::new(path);
    if !rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(JoinError::InvalidPath(path.to_string()));
    }
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let dirs: Vec<PathBuf> = if dockerish_host::cgroup_v2() {
        vec![Path::new(CGROUP_ROOT).join(rel)]
    } else {
        v1_hierarchies().into_iter().map(|h| h.join(rel)).filter(|d| d.is_dir()).collect()
    };
    if dirs.is_empty() || !dirs.iter().all(|d| d.is_dir()) {
        return Err(JoinError::Missing { path: path.to_string(), root: CGROUP_ROOT });
    }
    for d in dirs {
        let file = d.join("cgroup.procs");
        fs::write(&file, pid.to_string()).map_err(|source| JoinError::Write { path: path.to_string(), file: file.display().to_string(), source })?;
    }
    Ok(())
}

/// Mount points of the cgroup v1 hierarchies (`cgroup` entries of our mountinfo).
fn v1_hierarchies() -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    dockerish_spec::parse_mountinfo(&text).unwrap_or_default().iter().filter(|m| m.fs_type() == "cgroup").map(|m| PathBuf::from(m.mount_point())).collect()
}

impl Cgroup {
    pub fn of_pid(pid: u32) -> Option<Cgroup> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        Some(Self::parse(&text, dockerish_host::cgroup_v2()))
    }

    fn parse(text: &str, v2: bool) -> Cgroup {
        let mut v1 = HashMap::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let rel = path.trim_start_matches('/');
            if ctrls.is_empty() {
                if v2 {
                    return Cgroup::V2(Path::new(CGROUP_ROOT).join(rel));
                }
                continue;
            }
            for c in ctrls.split(',') {
                let c = c.trim_start_matches("name=");
                v1.insert(c.to_string(), Path::new(CGROUP_ROOT).join(c).join(rel));
            }
        }
        Cgroup::V1(v1)
    }

    fn v1_file(&self, ctrl: &str, file: &str) -> Option<PathBuf> {
        match self {
            Cgroup::V1(m) => m.get(ctrl).map(|p| p.join(file)),
            Cgroup::V2(_) => None,
        }
    }

    /// The counter of OOM kills in this cgroup (v1 `memory.oom_control`, v2 `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self {
            Cgroup::V1(_) => (self.v1_file("memory", "memory.oom_control"), "oom_kill"),
            Cgroup::V2(p) => (Some(p.join("memory.events")), "oom_kill"),
        };
        file.and_then(|f| fs::read_to_string(f).ok()).map(|t| flat_keyed(&t).get(key).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// A pollable fd that becomes readable on OOM events (v1: eventfd on memory.oom_control;
    /// v2: inotify on memory.events).
    pub fn oom_notifier(&self) -> Option<OwnedFd> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        match self {
            Cgroup::V1(m) => {
                let dir = m.get("memory")?;
                let control = fs::File::open(dir.join("memory.oom_control")).ok()?;
                let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).ok()?;
                fs::write(dir.join("cgroup.event_control"), format!("{} {}", efd.as_raw_fd(), control.as_raw_fd())).ok()?;
                Some(efd.into())
            }
            Cgroup::V2(p) => {
                let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
                ino.add_watch(&p.join("memory.events"), AddWatchFlags::IN_MODIFY).ok()?;
                // The watch belongs to the open file description: a duplicate keeps it.
                ino.as_fd().try_clone_to_owned().ok()
            }
        }
    }

    pub fn metrics(&self) -> Any {
        match self {
            Cgroup::V1(_) => Any {
                type_url: "io.containerd.cgroups.v1.Metrics".into(),
                value: self.metrics_v1().write_to_bytes().unwrap_or_default(),
                ..Default::default()
            },
            Cgroup::V2(p) => Any {
                type_url: "io.containerd.cgroups.v2.Metrics".into(),
                value: metrics_v2(p).write_to_bytes().unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    fn read_u64(&self, ctrl: &str, file: &str) -> u64 {
        self.v1_file(ctrl, file).map(|f| read_u64(&f)).unwrap_or(0)
    }

    fn read_kv(&self, ctrl: &str, file: &str) -> HashMap<String, u64> {
        self.v1_file(ctrl, file).and_then(|f| fs::read_to_string(f).ok()).map(|t| flat_keyed(&t)).unwrap_or_default()
    }

    fn metrics_v1(&self) -> v1::Metrics {
        let mut m = v1::Metrics::new();
        m.pids = Some(v1::PidsStat {
            current: self.read_u64("pids", "pids.current"),
            limit: self.read_u64("pids", "pids.max"),
            ..Default::default()
        })
        .into();
        let ticks = 100u64; // USER_HZ
        let cpustat = self.read_kv("cpuacct", "cpuacct.stat");
        let per_cpu = self
            .v1_file("cpuacct", "cpuacct.usage_percpu")
            .and_then(|f| fs::read_to_string(f).ok())
            .map(|t| t.split_whitespace().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let thr = self.read_kv("cpu", "cpu.stat");
        m.cpu = Some(v1::CPUStat {
            usage: Some(v1::CPUUsage {
                total: self.read_u64("cpuacct", "cpuacct.usage"),
                kernel: cpustat.get("system").copied().unwrap_or(0) * 1_000_000_000 / ticks,
                user: cpustat.get("user").copied().unwrap_or(0) * 1_000_000_000 / ticks,
                per_cpu,
                ..Default::default()
            })
            .into(),
            throttling: Some(v1::Throttle {
                periods: thr.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: thr.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: thr.get("throttled_time").copied().unwrap_or(0),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into();
        let s = self.read_kv("memory", "memory.stat");
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        let entry = |prefix: &str| v1::MemoryEntry {
            usage: self.read_u64("memory", &format!("{prefix}usage_in_bytes")),
            max: self.read_u64("memory", &format!("{prefix}max_usage_in_bytes")),
            limit: self.read_u64("memory", &format!("{prefix}limit_in_bytes")),
            failcnt: self.read_u64("memory", &format!("{prefix}failcnt")),
            ..Default::default()
        };
        m.memory = Some(v1::MemoryStat {
            cache: g("cache"),
            rss: g("rss"),
            rss_huge: g("rss_huge"),
            mapped_file: g("mapped_file"),
            dirty: g("dirty"),
            writeback: g("writeback"),
            pg_pg_in: g("pgpgin"),
            pg_pg_out: g("pgpgout"),
            pg_fault: g("pgfault"),
            pg_maj_fault: g("pgmajfault"),
            inactive_anon: g("inactive_anon"),
            active_anon: g("active_anon"),
            inactive_file: g("inactive_file"),
            active_file: g("active_file"),
            unevictable: g("unevictable"),
            hierarchical_memory_limit: g("hierarchical_memory_limit"),
            hierarchical_swap_limit: g("hierarchical_memsw_limit"),
            total_cache: g("total_cache"),
            total_rss: g("total_rss"),
            total_rss_huge: g("total_rss_huge"),
            total_mapped_file: g("total_mapped_file"),
            total_dirty: g("total_dirty"),
            total_writeback: g("total_writeback"),
            total_pg_pg_in: g("total_pgpgin"),
            total_pg_pg_out: g("total_pgpgout"),
            total_pg_fault: g("total_pgfault"),
            total_pg_maj_fault: g("total_pgmajfault"),
            total_inactive_anon: g("total_inactive_anon"),
            total_active_anon: g("total_active_anon"),
            total_inactive_file: g("total_inactive_file"),
            total_active_file: g("total_active_file"),
            total_unevictable: g("total_unevictable"),
            usage: Some(entry("memory.")).into(),
            swap: Some(entry("memory.memsw.")).into(),
            kernel: Some(entry("memory.kmem.")).into(),
            kernel_tcp: Some(entry("memory.kmem.tcp.")).into(),
            ..Default::default()
        })
        .into();
        let oc = self.read_kv("memory", "memory.oom_control");
        m.memory_oom_control = Some(v1::MemoryOomControl {
            oom_kill_disable: oc.get("oom_kill_disable").copied().unwrap_or(0),
            under_oom: oc.get("under_oom").copied().unwrap_or(0),
            oom_kill: oc.get("oom_kill").copied().unwrap_or(0),
            ..Default::default()
        })
        .into();
        m
    }
}

fn metrics_v2(dir: &Path) -> v2::Metrics {
    let kv = |f: &str| fs::read_to_string(dir.join(f)).map(|t| flat_keyed(&t)).unwrap_or_default();
    let mut m = v2::Metrics::new();
    m.pids = Some(v2::PidsStat { current: read_u64(&dir.join("pids.current")), limit: read_u64(&dir.join("pids.max")), ..Default::default() }).into();
    let c = kv("cpu.stat");
    let g = |h: &HashMap<String, u64>, k: &str| h.get(k).copied().unwrap_or(0);
    m.cpu = Some(v2::CPUStat {
        usage_usec: g(&c, "usage_usec"),
        user_usec: g(&c, "user_usec"),
        system_usec: g(&c, "system_usec"),
        nr_periods: g(&c, "nr_periods"),
        nr_throttled: g(&c, "nr_throttled"),
        throttled_usec: g(&c, "throttled_usec"),
        ..Default::default()
    })
    .into();
    let s = kv("memory.stat");
    m.memory = Some(v2::MemoryStat {
        anon: g(&s, "anon"),
        file: g(&s, "file"),
        kernel_stack: g(&s, "kernel_stack"),
        slab: g(&s, "slab"),
        sock: g(&s, "sock"),
        shmem: g(&s, "shmem"),
        file_mapped: g(&s, "file_mapped"),
        file_dirty: g(&s, "file_dirty"),
        file_writeback: g(&s, "file_writeback"),
        pgfault: g(&s, "pgfault"),
        pgmajfault: g(&s, "pgmajfault"),
        inactive_anon: g(&s, "inactive_anon"),
        active_anon: g(&s, "active_anon"),
        inactive_file: g(&s, "inactive_file"),
        active_file: g(&s, "active_file"),
        unevictable: g(&s, "unevictable"),
        usage: read_u64(&dir.join("memory.current")),
        usage_limit: read_u64(&dir.join("memory.max")),
        swap_usage: read_u64(&dir.join("memory.swap.current")),
        swap_limit: read_u64(&dir.join("memory.swap.max")),
        ..Default::default()
    })
    .into();
    let e = kv("memory.events");
    m.memory_events = Some(v2::MemoryEvents {
        low: g(&e, "low"),
        high: g(&e, "high"),
        max: g(&e, "max"),
        oom: g(&e, "oom"),
        oom_kill: g(&e, "oom_kill"),
        ..Default::default()
    })
    .into();
    m
}

/// "max" (no limit) reads as 0, as containerd's cgroups library reports it.
fn read_u64(p: &Path) -> u64 {
    fs::read_to_string(p).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// OOM kills already reported for one container, shared by the watcher and the exit path so
/// that each kill is published once and always before the container's exit.
#[derive(Clone, Default)]
pub struct OomState(Arc<Mutex<u64>>);

impl OomState {
    /// Returns true when the cgroup counted a kill we have not reported yet.
    pub fn take_new(&self, cg: &Cgroup) -> bool {
        let now = cg.oom_kills();
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if now > *seen {
            *seen = now;
            true
        } else {
            false
        }
    }

    pub fn prime(&self, cg: &Cgroup) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = cg.oom_kills();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_proc_cgroup_parsed() {
        let t = "12:memory:/default/c1\n11:cpu,cpuacct:/default/c1\n1:name=systemd:/default/c1\n0::/\n";
        match Cgroup::parse(t, false) {
            Cgroup::V1(m) => {
                assert_eq!(m["memory"], PathBuf::from("/sys/fs/cgroup/memory/default/c1"));
                assert_eq!(m["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpuacct/default/c1"));
                assert_eq!(m["systemd"], PathBuf::from("/sys/fs/cgroup/systemd/default/c1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v2_proc_cgroup_parsed() {
        match Cgroup::parse("0::/system.slice/x.scope\n", true) {
            Cgroup::V2(p) => assert_eq!(p, PathBuf::from("/sys/fs/cgroup/system.slice/x.scope")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flat_keyed_ignores_junk() {
        let m = flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\ngarbage\n");
        assert_eq!(m["oom_kill"], 3);
        assert_eq!(m.len(), 3);
    }
}
