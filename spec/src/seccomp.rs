//! Seccomp: SC-3, Docker's default profile, and SC-2, the profile → `linux.seccomp` conversion
//! of moby/profiles `setupSeccomp` (arch map, caps and kernel-version filtering).
//!
//! The default profile below is data from moby/profiles `seccomp/default.json`
//! (https://github.com/moby/profiles, Copyright The Moby Authors, Apache-2.0), embedded as Rust
//! data so that `fill` does not parse 17 kB of JSON on every Create. Regenerate it from a new
//! moby/profiles release when Docker updates its profile. The `socket` rule allows every family
//! except AF_ALG (38) and AF_VSOCK (40), as Docker's profile; it is written as three
//! single-comparison rules (`< 38`, `== 39`, `> 40`) because libseccomp compares an argument at
//! most once per rule.

use crate::oci::key;
use serde_json::{Map, Value};

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["SC-2", "SC-3"];

/// Architecture map (profile `archMap`): native arch → libseccomp arches (main + sub-arches).
const ARCH_MAP: &[(&str, &[&str])] = &[
    ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
    ("SCMP_ARCH_MIPS64", &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]),
    ("SCMP_ARCH_MIPS64N32", &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]),
    ("SCMP_ARCH_MIPSEL64", &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]),
    ("SCMP_ARCH_MIPSEL64N32", &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]),
    ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", &[]),
    ("SCMP_ARCH_LOONGARCH64", &[]),
];

/// Go `GOARCH` → the "native" names profiles use in `includes.arches` (moby/profiles `goToNative`).
pub fn go_to_native(goarch: &str) -> &str {
    match goarch {
        "386" => "x86",
        "mips64le" => "mipsel64",
        "mipsle" => "mipsel",
        "loong64" => "loongarch64",
        other => other,
    }
}

/// native → libseccomp arch (moby/profiles `nativeToSeccomp`).
fn native_to_seccomp(native: &str) -> Option<&'static str> {
    Some(match native {
        "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "mips" => "SCMP_ARCH_MIPS",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64n32" => "SCMP_ARCH_MIPS64N32",
        "mipsel" => "SCMP_ARCH_MIPSEL",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        "mipsel64n32" => "SCMP_ARCH_MIPSEL64N32",
        "ppc" => "SCMP_ARCH_PPC",
        "ppc64" => "SCMP_ARCH_PPC64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390" => "SCMP_ARCH_S390",
        "s390x" => "SCMP_ARCH_S390X",
        "loongarch64" => "SCMP_ARCH_LOONGARCH64",
        _ => return None,
    })
}

struct Group {
    names: &'static [&'static str],
    action: &'static str,
    errno: Option<u32>,
    /// (index, value, op)
    args: &'static [(u32, u64, &'static str)],
    inc_arches: &'static [&'static str],
    inc_caps: &'static [&'static str],
    inc_min_kernel: Option<(u32, u32)>,
    exc_arches: &'static [&'static str],
    exc_caps: &'static [&'static str],
}

const ALLOW: &str = "SCMP_ACT_ALLOW";
const fn g(names: &'static [&'static str]) -> Group {
    Group { names, action: ALLOW, errno: None, args: &[], inc_arches: &[], inc_caps: &[], inc_min_kernel: None, exc_arches: &[], exc_caps: &[] }
}
const fn cap(names: &'static [&'static str], caps: &'static [&'static str]) -> Group {
    Group { inc_caps: caps, ..g(names) }
}
const fn arch(names: &'static [&'static str], arches: &'static [&'static str]) -> Group {
    Group { inc_arches: arches, ..g(names) }
}
const fn arg(names: &'static [&'static str], args: &'static [(u32, u64, &'static str)]) -> Group {
    Group { args, ..g(names) }
}
const EQ: &str = "SCMP_CMP_EQ";
/// The socket families Docker's profile denies (`AF_ALG`, `AF_VSOCK`).
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

static DEFAULT_ALLOW: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget", "capset", "chdir", "chmod",
    "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range",
    "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
    "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
    "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
    "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
    "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
    "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename",
    "renameat", "renameat2", "restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg",
    "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
    "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat",
    "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
    "unlink", "unlinkat", "uretprobe", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4",
    "waitid", "waitpid", "write", "writev",
];

static GROUPS: &[Group] = &[
    g(DEFAULT_ALLOW),
    Group { inc_min_kernel: Some((4, 8)), ..g(&["process_vm_readv", "process_vm_writev", "ptrace"]) },
    // Every family but AF_ALG (38) and AF_VSOCK (40): one comparison per rule, as every
    // libseccomp version accepts (SC-3, issue 11 item 6).
    arg(&["socket"], &[(0, AF_ALG, "SCMP_CMP_LT")]),
    arg(&["socket"], &[(0, AF_ALG + 1, EQ)]),
    arg(&["socket"], &[(0, AF_VSOCK, "SCMP_CMP_GT")]),
    arg(&["personality"], &[(0, 0, EQ)]),
    arg(&["personality"], &[(0, 8, EQ)]),
    arg(&["personality"], &[(0, 131072, EQ)]),
    arg(&["personality"], &[(0, 131080, EQ)]),
    arg(&["personality"], &[(0, 4294967295, EQ)]),
    arch(&["sync_file_range2", "swapcontext"], &["ppc64le"]),
    arch(&["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"], &["arm", "arm64"]),
    arch(&["arch_prctl"], &["amd64", "x32"]),
    arch(&["modify_ldt"], &["amd64", "x32", "x86"]),
    arch(&["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], &["s390", "s390x"]),
    arch(&["riscv_flush_icache"], &["riscv64"]),
    cap(&["open_by_handle_at"], &["CAP_DAC_READ_SEARCH"]),
    cap(
        &["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
          "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount", "mount_setattr", "move_mount", "open_tree",
          "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
          "umount2", "unshare"],
        &["CAP_SYS_ADMIN"],
    ),
    Group { args: &[(0, 2114060288, "SCMP_CMP_MASKED_EQ")], exc_caps: &["CAP_SYS_ADMIN"], exc_arches: &["s390", "s390x"], ..g(&["clone"]) },
    Group { args: &[(1, 2114060288, "SCMP_CMP_MASKED_EQ")], inc_arches: &["s390", "s390x"], exc_caps: &["CAP_SYS_ADMIN"], ..g(&["clone"]) },
    Group { action: "SCMP_ACT_ERRNO", errno: Some(38), exc_caps: &["CAP_SYS_ADMIN"], ..g(&["clone3"]) },
    cap(&["reboot"], &["CAP_SYS_BOOT"]),
    cap(&["chroot"], &["CAP_SYS_CHROOT"]),
    cap(&["delete_module", "init_module", "finit_module"], &["CAP_SYS_MODULE"]),
    cap(&["acct"], &["CAP_SYS_PACCT"]),
    cap(&["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"], &["CAP_SYS_PTRACE"]),
    cap(&["iopl", "ioperm"], &["CAP_SYS_RAWIO"]),
    cap(&["settimeofday", "stime", "clock_settime", "clock_settime64"], &["CAP_SYS_TIME"]),
    cap(&["vhangup"], &["CAP_SYS_TTY_CONFIG"]),
    cap(&["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], &["CAP_SYS_NICE"]),
    cap(&["syslog"], &["CAP_SYSLOG"]),
    cap(&["bpf"], &["CAP_BPF"]),
    cap(&["perf_event_open"], &["CAP_PERFMON"]),
];

/// The facts `setupSeccomp` filters on.
pub struct Target<'a> {
    /// Go arch name of the host (`amd64`, `arm64`, ...).
    pub goarch: &'a str,
    /// `process.capabilities.bounding` (seccomp runs after capabilities, §0.3).
    pub bounding: &'a [String],
    /// Running kernel `(major, minor)`; unknown = treat minKernel conditions as satisfied.
    pub kernel: Option<(u32, u32)>,
}

fn keep(
    t: &Target,
    native: &str,
    inc: (&[&str], &[&str], Option<(u32, u32)>),
    exc: (&[&str], &[&str], Option<(u32, u32)>),
) -> bool {
    let has_cap = |c: &&str| t.bounding.iter().any(|b| b == c);
    let kernel_ge = |k: (u32, u32)| t.kernel.is_none_or(|cur| cur >= k);
    if exc.0.contains(&native) || exc.1.iter().any(has_cap) || exc.2.is_some_and(kernel_ge) {
        return false;
    }
    if !inc.0.is_empty() && !inc.0.contains(&native) {
        return false;
    }
    if !inc.1.iter().all(has_cap) {
        return false;
    }
    if inc.2.is_some_and(|k| !kernel_ge(k)) {
        return false;
    }
    true
}

fn architectures<A: AsRef<str>, S: AsRef<[A]>>(native: &str, map: &[(A, S)]) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(sa) = native_to_seccomp(native) {
        if let Some((a, subs)) = map.iter().find(|(a, _)| a.as_ref() == sa) {
            out.push(Value::from(a.as_ref()));
            out.extend(subs.as_ref().iter().map(|s| Value::from(s.as_ref())));
        }
    }
    out
}

/// Docker's default profile as `linux.seccomp` for the target (SC-2, SC-3).
pub fn default_linux_seccomp(t: &Target) -> Value {
    let native = go_to_native(t.goarch);
    let mut syscalls = Vec::with_capacity(GROUPS.len());
    for gr in GROUPS {
        if !keep(t, native, (gr.inc_arches, gr.inc_caps, gr.inc_min_kernel), (gr.exc_arches, gr.exc_caps, None)) {
            continue;
        }
        // Built by hand (no `json!`): this runs on every Create and is the bulk of `fill`'s time.
        let mut m = Map::new();
        let names: Vec<Value> = gr.names.iter().map(|n| Value::String((*n).to_string())).collect();
        m.insert(key::NAMES.into(), Value::Array(names));
        m.insert(key::ACTION.into(), Value::String(gr.action.to_string()));
        if let Some(e) = gr.errno {
            m.insert(key::ERRNO_RET.into(), Value::from(e));
        }
        if !gr.args.is_empty() {
            let args: Vec<Value> = gr
                .args
                .iter()
                .map(|(i, v, op)| {
                    let mut a = Map::new();
                    a.insert(key::INDEX.into(), Value::from(*i));
                    a.insert(key::VALUE.into(), Value::from(*v));
                    a.insert(key::OP.into(), Value::String((*op).to_string()));
                    Value::Object(a)
                })
                .collect();
            m.insert(key::SYSCALL_ARGS.into(), Value::Array(args));
        }
        syscalls.push(Value::Object(m));
    }
    // Not `json!`: it would serialize `syscalls` into a second, deep copy of every value.
    let mut profile = Map::new();
    profile.insert(key::DEFAULT_ACTION.into(), Value::from("SCMP_ACT_ERRNO"));
    profile.insert(key::DEFAULT_ERRNO_RET.into(), Value::from(1));
    profile.insert(key::ARCHITECTURES.into(), Value::Array(architectures(native, ARCH_MAP)));
    profile.insert(key::SYSCALLS.into(), Value::Array(syscalls));
    Value::Object(profile)
}

/// Number of syscall rules in a `linux.seccomp` object (for the rule's log line).
pub fn rule_count(p: &Value) -> usize {
    p.get(key::SYSCALLS).and_then(Value::as_array).map_or(0, Vec::len)
}

fn str_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("Decoding seccomp profile failed: {what}: expected strings")))
            .collect(),
        Some(_) => Err(format!("Decoding seccomp profile failed: {what}: expected a list")),
    }
}

fn min_kernel(v: Option<&Value>) -> Result<Option<(u32, u32)>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let bad = || format!("Decoding seccomp profile failed: invalid kernel version: {s}");
            let (a, b) = s.split_once('.').ok_or_else(bad)?;
            Ok(Some((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)))
        }
        Some(_) => Err("Decoding seccomp profile failed: minKernel: expected a string".into()),
    }
}

/// (arches, caps, minKernel) of an includes/excludes block.
type CondOwned = (Vec<String>, Vec<String>, Option<(u32, u32)>);

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A custom profile (Docker's profile JSON format) → `linux.seccomp` (SC-2). `Ok(None)` when the
/// profile has neither `defaultAction` nor syscalls (seccomp disabled).
pub fn profile_to_linux_seccomp(profile_json: &str, t: &Target) -> Result<Option<Value>, String> {
    let p: Map<String, Value> =
        serde_json::from_str(profile_json).map_err(|e| format!("Decoding seccomp profile failed: {e}"))?;
    let default_action = p.get(key::DEFAULT_ACTION).and_then(Value::as_str).unwrap_or("");
    let calls = match p.get(key::SYSCALLS) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err("Decoding seccomp profile failed: syscalls: expected a list".into()),
    };
    if default_action.is_empty() && calls.is_empty() {
        return Ok(None);
    }
    let has = |k: &str| p.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if has(key::ARCHITECTURES) && has("archMap") {
        return Err("both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
    }
    let native = go_to_native(t.goarch);
    let mut out = Map::new();
    for &k in key::SECCOMP_COPIED {
        if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(am) = p.get("archMap").and_then(Value::as_array) {
        let mut map = Vec::new();
        for a in am {
            let main = a.get("architecture").and_then(Value::as_str).unwrap_or("").to_string();
            map.push((main, str_list(a.get("subArchitectures"), "subArchitectures")?));
        }
        let arches = architectures(native, &map);
        if !arches.is_empty() {
            out.insert(key::ARCHITECTURES.into(), arches.into());
        }
    }
    let mut syscalls = Vec::new();
    for c in &calls {
        let c = c.as_object().ok_or("Decoding seccomp profile failed: syscall entries must be objects")?;
        let mut names = str_list(c.get(key::NAMES), key::NAMES)?;
        if let Some(n) = c.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            if !names.is_empty() {
                return Err("both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'".into());
            }
            names = vec![n.to_string()];
        }
        let cond = |k: &str| -> Result<CondOwned, String> {
            let o = c.get(k);
            Ok((
                str_list(o.and_then(|x| x.get("arches")), "arches")?,
                str_list(o.and_then(|x| x.get("caps")), "caps")?,
                min_kernel(o.and_then(|x| x.get("minKernel")))?,
            ))
        };
        let (ia, ic, ik) = cond("includes")?;
        let (ea, ec, ek) = cond("excludes")?;
        if !keep(t, native, (&refs(&ia), &refs(&ic), ik), (&refs(&ea), &refs(&ec), ek)) {
            continue;
        }
        let mut m = Map::new();
        m.insert(key::NAMES.into(), names.into());
        for &k in key::SYSCALL_COPIED {
            if let Some(v) = c.get(k).filter(|v| !v.is_null()) {
                m.insert(k.into(), v.clone());
            }
        }
        syscalls.push(Value::Object(m));
    }
    out.insert(key::SYSCALLS.into(), syscalls.into());
    Ok(Some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(v: &Value) -> Vec<String> {
        v["syscalls"].as_array().unwrap().iter().flat_map(|s| s["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string())).collect()
    }

    #[test]
    fn sc_3_default_profile_per_arch_and_caps() {
        let caps: Vec<String> = crate::parse::DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        let amd = default_linux_seccomp(&Target { goarch: "amd64", bounding: &caps, kernel: Some((6, 1)) });
        assert_eq!(amd["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        assert_eq!(amd["defaultAction"], "SCMP_ACT_ERRNO");
        let n = names(&amd);
        assert!(n.contains(&"arch_prctl".to_string()) && n.contains(&"chroot".to_string()));
        assert!(!n.contains(&"mount".to_string()) && !n.contains(&"set_tls".to_string()));
        // clone limited by flags, clone3 → ENOSYS without CAP_SYS_ADMIN
        assert!(amd["syscalls"].as_array().unwrap().iter().any(|s| s["names"] == json!(["clone3"]) && s["errnoRet"] == 38));
        let arm = default_linux_seccomp(&Target { goarch: "arm64", bounding: &caps, kernel: Some((6, 1)) });
        assert_eq!(arm["architectures"], json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]));
        assert!(names(&arm).contains(&"set_tls".to_string()) && !names(&arm).contains(&"arch_prctl".to_string()));
        let mut admin = caps.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let a = default_linux_seccomp(&Target { goarch: "amd64", bounding: &admin, kernel: Some((6, 1)) });
        assert!(names(&a).contains(&"mount".to_string()));
        assert!(!a["syscalls"].as_array().unwrap().iter().any(|s| s["names"] == json!(["clone3"])));
        let old = default_linux_seccomp(&Target { goarch: "amd64", bounding: &caps, kernel: Some((4, 4)) });
        assert!(!names(&old).contains(&"ptrace".to_string()));
    }

    /// Whether the profile's `socket` rules allow an address family (one comparison on arg 0 per
    /// rule, as libseccomp evaluates them: any matching allow rule allows).
    fn socket_allowed(profile: &Value, family: u64) -> bool {
        profile["syscalls"].as_array().unwrap().iter().filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == "socket") && r["action"] == "SCMP_ACT_ALLOW").any(|r| {
            r.get("args").and_then(Value::as_array).is_none_or(|args| {
                args.iter().all(|a| {
                    assert_eq!(a["index"], 0, "socket rules compare the family");
                    let v = a["value"].as_u64().unwrap();
                    match a["op"].as_str().unwrap() {
                        "SCMP_CMP_EQ" => family == v,
                        "SCMP_CMP_NE" => family != v,
                        "SCMP_CMP_LT" => family < v,
                        "SCMP_CMP_LE" => family <= v,
                        "SCMP_CMP_GT" => family > v,
                        "SCMP_CMP_GE" => family >= v,
                        op => panic!("unexpected op {op}"),
                    }
                })
            })
        })
    }

    /// SC-3 (issue 11 item 6): Docker's profile denies exactly AF_ALG (38) and AF_VSOCK (40);
    /// every other family, including ones newer kernels add, is allowed.
    #[test]
    fn sc_3_socket_families_denied_are_exactly_docker_s() {
        let caps: Vec<String> = crate::parse::DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        let p = default_linux_seccomp(&Target { goarch: "amd64", bounding: &caps, kernel: Some((6, 1)) });
        let denied: Vec<u64> = (0..=128).chain([1000, u64::from(u32::MAX)]).filter(|f| !socket_allowed(&p, *f)).collect();
        assert_eq!(denied, vec![38, 40]);
    }

    #[test]
    fn sc_2_custom_profile() {
        let t = Target { goarch: "amd64", bounding: &[], kernel: Some((5, 10)) };
        let p = r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[{"name":"chmod","action":"SCMP_ACT_ERRNO"},{"names":["mount"],"action":"SCMP_ACT_ERRNO","includes":{"arches":["arm64"]}}]}"#;
        let v = profile_to_linux_seccomp(p, &t).unwrap().unwrap();
        assert_eq!(v["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]));
        assert_eq!(v["syscalls"].as_array().unwrap().len(), 1);
        assert_eq!(profile_to_linux_seccomp("{}", &t).unwrap(), None);
        assert!(profile_to_linux_seccomp("{x", &t).unwrap_err().starts_with("Decoding seccomp profile failed: "));
        assert!(profile_to_linux_seccomp(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["a"],"archMap":[{"architecture":"a"}]}"#, &t).unwrap_err().starts_with("both 'architectures' and 'archMap'"));
        assert!(profile_to_linux_seccomp(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"]}]}"#, &t).unwrap_err().starts_with("both 'name' and 'names'"));
    }
}
