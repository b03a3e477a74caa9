//! Pure parsers for the value grammars Docker's CLI and daemon accept (DOCKER-RULES §2.2 and the
//! "C" rules). Every function takes a `&str` and returns a typed value or Docker's error text, so
//! each one can be a fuzz target. Nothing here panics on any input.

/// Go `strconv.ParseBool` (§2.2 "bool").
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", go_quote(s))),
    }
}

/// Go `strconv.ParseInt(s, 10, 64)` with Go's error texts.
pub fn parse_i64(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.ParseInt: parsing {}: value out of range", go_quote(s)))
}

/// Go's `%q` for the strings we echo back (enough for error messages: escapes `"` and `\`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// go-units `RAMInBytes` (§2.2 "size"): binary multiples, optional `b`/`ib`, case-insensitive.
/// Returns Docker's `invalid size: '%s'` / `invalid suffix: '%s'` texts.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let sep = match s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') {
        Some(i) => i,
        None => return Err(format!("invalid size: '{s}'")),
    };
    let (num, sfx) = if s.as_bytes()[sep] != b' ' {
        (&s[..sep + 1], &s[sep + 1..])
    } else {
        (&s[..sep], &s[sep + 1..])
    };
    let size = parse_go_float(num)?;
    if size < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    if sfx.is_empty() {
        return Ok(float_to_i64(size));
    }
    let bad = || format!("invalid suffix: '{}'", sfx.to_ascii_lowercase());
    if sfx.len() > 3 {
        return Err(format!("invalid suffix: '{sfx}'"));
    }
    let l = sfx.to_ascii_lowercase();
    let b = l.as_bytes();
    if b[0] == b'b' {
        if b.len() > 1 {
            return Err(bad());
        }
        return Ok(float_to_i64(size));
    }
    let mul: f64 = match b[0] {
        b'k' => 1024.0,
        b'm' => 1024f64.powi(2),
        b'g' => 1024f64.powi(3),
        b't' => 1024f64.powi(4),
        b'p' => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &l[1..] != "ib") {
        return Err(bad());
    }
    Ok(float_to_i64(size * mul))
}

fn parse_go_float(s: &str) -> Result<f64, String> {
    // Go ParseFloat accepts more (hex, inf); the size grammar only ever reaches here with digits
    // and dots, so Rust's parser is equivalent for every input that can arrive.
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(s)))
}

fn float_to_i64(f: f64) -> i64 {
    // Go's int64(float) truncates; out-of-range values are clamped instead of being undefined.
    if f >= i64::MAX as f64 {
        i64::MAX
    } else {
        f as i64
    }
}

/// Ulimit names Docker accepts (RL-2; no `as`).
pub const ULIMIT_NAMES: &[&str] = &[
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack",
];

/// One `--ulimit` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    /// The OCI rlimit object (RL-1): `-1` becomes RLIM_INFINITY through Go's uint64 cast.
    pub fn to_oci(&self) -> serde_json::Value {
        serde_json::json!({
            "type": format!("RLIMIT_{}", self.name.to_ascii_uppercase()),
            "hard": self.hard as u64,
            "soft": self.soft as u64,
        })
    }
}

/// go-units `ParseUlimit` (RL-2): `name=soft[:hard]`.
pub fn parse_ulimit(val: &str) -> Result<Ulimit, String> {
    let (name, limits) = val
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {val}"))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [s] => {
            let s = parse_i64(s)?;
            (s, s)
        }
        [s, h] => {
            let h = parse_i64(h)?;
            (parse_i64(s)?, h)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(Ulimit { name: name.to_string(), soft, hard })
}

/// Go `path.Clean` (lexical; keeps a relative path relative).
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|c| *c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go `filepath.Join(a, b)`.
pub fn join_path(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean_path(b),
        (false, true) => clean_path(a),
        (false, false) => clean_path(&format!("{a}/{b}")),
    }
}

/// Number of separators in the cleaned path (MT-3 sort key).
pub fn path_depth(p: &str) -> usize {
    clean_path(p).matches('/').count()
}

/// One `--device` value (DV-3/DV-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// cli `validDeviceMode`: non-empty subset of `rwm`, each letter once.
pub fn valid_device_mode(mode: &str) -> bool {
    if mode.is_empty() || mode.len() > 3 {
        return false;
    }
    let mut seen = [false; 3];
    for c in mode.chars() {
        let i = match c {
            'r' => 0,
            'w' => 1,
            'm' => 2,
            _ => return false,
        };
        if seen[i] {
            return false;
        }
        seen[i] = true;
    }
    true
}

/// cli `validateDevice` + `parseLinuxDevice` (DV-4): `host[:container][:perms]`.
pub fn parse_device(val: &str) -> Result<DeviceMapping, String> {
    // validateLinuxPath
    if val.matches(':').count() > 2 {
        return Err(format!("bad format for path: {val}"));
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(format!("bad format for path: {val}"));
    }
    let container_path = match split.as_slice() {
        [p] => *p,
        [h, second] => {
            if valid_device_mode(second) {
                h
            } else {
                second
            }
        }
        [_, c, mode] => {
            if !valid_device_mode(mode) {
                return Err(format!("bad mode specified: {mode}"));
            }
            c
        }
        _ => return Err(format!("invalid device specification: {val}")),
    };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    // parseLinuxDevice
    let mut perms = "rwm".to_string();
    let mut dst = String::new();
    if split.len() >= 2 {
        if split.len() == 3 {
            perms = split[2].to_string();
        }
        if valid_device_mode(split[1]) {
            perms = split[1].to_string();
        } else {
            dst = split[1].to_string();
        }
    }
    let src = split[0].to_string();
    if dst.is_empty() {
        dst = src.clone();
    }
    Ok(DeviceMapping {
        path_on_host: clean_path(&src),
        path_in_container: clean_path(&dst),
        cgroup_permissions: perms,
    })
}

/// A device-cgroup rule (DV-5) in OCI form; `None` major/minor = wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: String,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl DeviceRule {
    pub fn to_oci(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("allow".into(), self.allow.into());
        if !self.kind.is_empty() {
            m.insert("type".into(), self.kind.clone().into());
        }
        if let Some(x) = self.major {
            m.insert("major".into(), x.into());
        }
        if let Some(x) = self.minor {
            m.insert("minor".into(), x.into());
        }
        m.insert("access".into(), self.access.clone().into());
        serde_json::Value::Object(m)
    }
}

/// moby `AppendDevicePermissionsFromCgroupRules` grammar (DV-5):
/// `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`; `*` becomes `-1` as in moby.
pub fn parse_device_cgroup_rule(rule: &str) -> Result<DeviceRule, String> {
    let bad = || format!("invalid device cgroup rule format: '{rule}'");
    let mut it = rule.split(' ');
    let (kind, nums, access) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(k), Some(n), Some(a), None) => (k, n, a),
        _ => return Err(bad()),
    };
    if !matches!(kind, "a" | "c" | "b") {
        return Err(bad());
    }
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad());
    }
    let (maj, min) = nums.split_once(':').ok_or_else(bad)?;
    let num = |s: &str, what: &str| -> Result<i64, String> {
        if s == "*" {
            return Ok(-1);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>()
            .map_err(|_| format!("invalid {what} value in device cgroup rule format: '{rule}'"))
    };
    let major = num(maj, "major")?;
    let minor = num(min, "minor")?;
    Ok(DeviceRule {
        allow: true,
        kind: kind.to_string(),
        major: Some(major),
        minor: Some(minor),
        access: access.to_string(),
    })
}

/// Tmpfs data keys moby/sys/mount accepts (`validFlags`).
const TMPFS_DATA_KEYS: &[&str] = &["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"];

/// The collision slot of a mount flag word (moby/sys/mount `flags` table): words that set or
/// clear the same bit share a slot; all propagation words share one slot.
fn tmpfs_flag_slot(word: &str) -> Option<&'static str> {
    Some(match word {
        "ro" | "rw" => "rdonly",
        "suid" | "nosuid" => "nosuid",
        "dev" | "nodev" => "nodev",
        "exec" | "noexec" => "noexec",
        "sync" | "async" => "sync",
        "dirsync" => "dirsync",
        "remount" => "remount",
        "mand" | "nomand" => "mand",
        "atime" | "noatime" => "noatime",
        "diratime" | "nodiratime" => "nodiratime",
        "bind" => "bind",
        "rbind" => "rbind",
        "relatime" | "norelatime" => "relatime",
        "strictatime" | "nostrictatime" => "strictatime",
        "unbindable" | "runbindable" | "private" | "rprivate" | "shared" | "rshared" | "slave"
        | "rslave" => "propagation",
        _ => return None,
    })
}

/// moby/sys/mount `MergeTmpfsOptions` (MT-4): right-to-left, the last occurrence of a slot wins.
pub fn merge_tmpfs_options(options: &[String]) -> Result<Vec<String>, String> {
    let mut flag_seen: Vec<&str> = Vec::new();
    let mut data_seen: Vec<&str> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for option in options.iter().rev() {
        if option == "defaults" {
            continue;
        }
        if let Some(slot) = tmpfs_flag_slot(option) {
            if !flag_seen.contains(&slot) {
                out.push(option.clone());
                flag_seen.push(slot);
            }
            continue;
        }
        let key = match option.split_once('=') {
            Some((k, _)) if TMPFS_DATA_KEYS.contains(&k) => k,
            Some((k, _)) => return Err(format!("invalid tmpfs option {}", go_quote(k))),
            None => return Err(format!("invalid tmpfs option {}", go_quote(option))),
        };
        if !data_seen.contains(&key) {
            out.push(option.clone());
            data_seen.push(key);
        }
    }
    out.reverse();
    Ok(out)
}

/// One `--tmpfs dest[:opts]` value after MT-4/MT-5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub destination: String,
    pub options: Vec<String>,
}

/// `--tmpfs dest[:opts]` (MT-4, MT-5): split at the first `:`, validate, merge with Docker's
/// defaults `noexec,nosuid,nodev,rprivate`.
pub fn parse_tmpfs(val: &str) -> Result<TmpfsMount, String> {
    let (dest, data) = match val.split_once(':') {
        Some((d, o)) => (d, o),
        None => (val, ""),
    };
    if !dest.starts_with('/') {
        return Err(format!("invalid mount path: '{dest}' mount path must be absolute"));
    }
    let dest = clean_path(dest);
    if dest == "/" {
        return Err("invalid specification: destination can't be '/'".to_string());
    }
    let mut opts: Vec<String> =
        ["noexec", "nosuid", "nodev", "rprivate"].iter().map(|s| s.to_string()).collect();
    if !data.is_empty() {
        opts.extend(data.split(',').map(str::to_string));
    }
    Ok(TmpfsMount { destination: dest, options: merge_tmpfs_options(&opts)? })
}

/// Sysctls the Docker CLI allows (SY-4).
const SYSCTL_ALLOWED: &[&str] = &[
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
];

/// cli `ValidateSysctl` (SY-4) and the `k=v` split: returns `(key, value)`.
pub fn parse_sysctl(val: &str) -> Result<(String, String), String> {
    let not_allowed = || format!("sysctl '{val}' is not allowed");
    let (k, v) = val.split_once('=').ok_or_else(not_allowed)?;
    check_sysctl_key(k).map_err(|_| not_allowed())?;
    Ok((k.to_string(), v.to_string()))
}

/// The SY-4 allow-list on a key alone (for map-form values).
pub fn check_sysctl_key(k: &str) -> Result<(), String> {
    if SYSCTL_ALLOWED.contains(&k) || k.starts_with("net.") || k.starts_with("fs.mqueue.") {
        Ok(())
    } else {
        Err(format!("sysctl '{k}' is not allowed"))
    }
}

/// How the seccomp profile was chosen by `--security-opt seccomp=…` (SC-1, SC-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    Builtin,
    Unconfined,
    /// Inline JSON profile text (what the Docker CLI sends after reading the file).
    Inline(String),
    /// Extension: `file:<name>` under the config's `seccomp-profile-root`.
    File(String),
}

/// `--security-opt` values after the CLI (SO-2) and the daemon (SO-1) grammar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub no_new_privileges: Option<bool>,
    pub writable_cgroups: Option<bool>,
    pub seccomp: Option<SeccompChoice>,
    pub apparmor: Option<String>,
    pub label: Vec<String>,
    /// `systempaths=unconfined` (MP-3).
    pub systempaths_unconfined: bool,
}

/// Parse a list of `--security-opt` values with the CLI rules then the daemon rules.
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts, String> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        // CLI (SO-2): only `no-new-privileges` may be bare; empty values are rejected.
        let (mut k, mut v, mut ok) = match opt.split_once('=') {
            Some((k, v)) => (k, v, true),
            None => (opt.as_str(), "", false),
        };
        if !ok && k != "no-new-privileges" {
            if let Some((k2, v2)) = opt.split_once(':') {
                (k, v, ok) = (k2, v2, true);
            }
        }
        if (!ok || v.is_empty()) && k != "no-new-privileges" {
            return Err(format!("invalid --security-opt: {}", go_quote(opt)));
        }
        if opt == "systempaths=unconfined" {
            out.systempaths_unconfined = true;
            continue;
        }
        // Daemon (SO-1).
        if opt == "no-new-privileges" {
            out.no_new_privileges = Some(true);
            continue;
        }
        if opt == "writable-cgroups" {
            out.writable_cgroups = Some(true);
            continue;
        }
        if opt == "disable" {
            out.label.push("disable".into());
            continue;
        }
        let bad2 = || format!("invalid --security-opt 2: {}", go_quote(opt));
        match k {
            "label" => out.label.push(v.to_string()),
            "apparmor" => out.apparmor = Some(v.to_string()),
            "seccomp" => {
                out.seccomp = Some(match v {
                    "builtin" => SeccompChoice::Builtin,
                    "unconfined" => SeccompChoice::Unconfined,
                    v if v.starts_with("file:") => SeccompChoice::File(v[5..].to_string()),
                    v => SeccompChoice::Inline(v.to_string()),
                })
            }
            "no-new-privileges" => out.no_new_privileges = Some(parse_bool(v).map_err(|_| bad2())?),
            "writable-cgroups" => out.writable_cgroups = Some(parse_bool(v).map_err(|_| bad2())?),
            _ => return Err(bad2()),
        }
    }
    Ok(out)
}

/// cli `ParseCPUs` (CPU-1): a rational number of CPUs → nano-CPUs.
pub fn parse_cpus(value: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {value} as a rational number");
    let (num, den) = parse_rational(value).ok_or_else(bad)?;
    let nano = num.checked_mul(1_000_000_000).ok_or_else(bad)?;
    if den == 0 {
        return Err(bad());
    }
    if nano % den != 0 {
        return Err("value is too precise".to_string());
    }
    i64::try_from(nano / den).map_err(|_| bad())
}

/// `big.Rat.SetString` subset: `a/b`, or a decimal with optional fraction and exponent.
fn parse_rational(s: &str) -> Option<(i128, i128)> {
    if let Some((a, b)) = s.split_once('/') {
        let a: i128 = a.parse().ok()?;
        let b: i128 = b.parse().ok()?;
        if b <= 0 {
            return None;
        }
        return Some((a, b));
    }
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant.strip_prefix('+').unwrap_or(mant)),
    };
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    if (ip.is_empty() && fp.is_empty())
        || !ip.bytes().all(|b| b.is_ascii_digit())
        || !fp.bytes().all(|b| b.is_ascii_digit())
        || ip.len() + fp.len() > 30
        || !(-30..=30).contains(&exp)
    {
        return None;
    }
    let digits = format!("{ip}{fp}");
    let mut num: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let mut den: i128 = 10i128.checked_pow(fp.len() as u32)?;
    if exp >= 0 {
        num = num.checked_mul(10i128.checked_pow(exp as u32)?)?;
    } else {
        den = den.checked_mul(10i128.checked_pow((-exp) as u32)?)?;
    }
    Some((if neg { -num } else { num }, den))
}

/// `parsers.ParseUintList` for cpuset strings (CG-5): `0-3,5`.
pub fn parse_cpuset(val: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("invalid format: {val}");
    let mut out = Vec::new();
    if val.is_empty() {
        return Ok(out);
    }
    for part in val.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad())?;
                let b: u32 = b.parse().map_err(|_| bad())?;
                if b < a || b - a > 65536 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Every Linux capability name (CP-2 "known capability").
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capabilities (CP-1, table 4.1), in order.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/// moby `NormalizeLegacyCapabilities` + validation (CP-2): upper-case, `CAP_` prefix, `ALL` kept;
/// must be known and (when `available` is given) in the daemon's own effective set.
pub fn normalize_capability(c: &str, available: Option<&[String]>) -> Result<String, String> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if !ALL_CAPABILITIES.contains(&name.as_str()) {
        return Err(format!("unknown capability: {}", go_quote(&name)));
    }
    if let Some(av) = available {
        if !av.iter().any(|a| a == &name) {
            return Err(format!(
                "capability not supported by your kernel or not available in the current environment: {}",
                go_quote(&name)
            ));
        }
    }
    Ok(name)
}

/// moby `TweakCapabilities` steps 2–5 (CP-3); privileged (step 1) is handled by the caller.
pub fn tweak_capabilities(base: &[String], add: &[String], drop: &[String], all: &[String]) -> Vec<String> {
    if add.is_empty() && drop.is_empty() {
        return base.to_vec();
    }
    let has_all = |l: &[String]| l.iter().any(|c| c == "ALL");
    if has_all(add) {
        return all.iter().filter(|c| !drop.contains(c)).cloned().collect();
    }
    if has_all(drop) {
        return add.to_vec();
    }
    let mut out: Vec<String> = base.iter().filter(|c| !drop.contains(c)).cloned().collect();
    out.extend(add.iter().cloned());
    out
}

/// §2.2 "list": a JSON array of strings, or a single element.
pub fn parse_list(val: &str) -> Result<Vec<String>, String> {
    if val.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<String>>(val)
            .map_err(|e| format!("invalid list (expected a JSON array of strings): {e}"))
    } else {
        Ok(vec![val.to_string()])
    }
}

/// §2.2 "map": a JSON object string→string, or a list of `k=v`.
pub fn parse_map(val: &str) -> Result<Vec<(String, String)>, String> {
    if val.trim_start().starts_with('{') {
        let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(val)
            .map_err(|e| format!("invalid map (expected a JSON object): {e}"))?;
        m.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => Err(format!("invalid map value for {}: {other} (expected a string)", go_quote(&k))),
            })
            .collect()
    } else {
        parse_list(val)?
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(format!("invalid map entry {} (expected k=v)", go_quote(&kv))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_parses_like_go_units() {
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("64m", Ok(67108864)),
            ("64M", Ok(67108864)),
            ("1g", Ok(1 << 30)),
            ("1.5k", Ok(1536)),
            ("10", Ok(10)),
            ("10b", Ok(10)),
            ("2 KiB", Ok(2048)),
            ("2kb", Ok(2048)),
            ("abc", Err("invalid size: 'abc'")),
            ("10x", Err("invalid suffix: 'x'")),
            ("10kx", Err("invalid suffix: 'kx'")),
            ("", Err("invalid size: ''")),
        ];
        for (inp, want) in cases {
            assert_eq!(parse_size(inp), want.map_err(|e| e.to_string()), "{inp}");
        }
    }

    #[test]
    fn rl_2_ulimit_grammar() {
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap(), Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 });
        assert_eq!(parse_ulimit("nproc=512").unwrap().hard, 512);
        assert_eq!(parse_ulimit("core=-1").unwrap().hard, -1);
        assert_eq!(parse_ulimit("nofile").unwrap_err(), "invalid ulimit argument: nofile");
        assert_eq!(parse_ulimit("as=1").unwrap_err(), "invalid ulimit type: as");
        assert_eq!(
            parse_ulimit("nofile=1:2:3").unwrap_err(),
            "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
        );
        assert_eq!(
            parse_ulimit("nofile=10:5").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 10 > 5"
        );
        assert_eq!(
            parse_ulimit("nofile=-1:5").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 5"
        );
        assert_eq!(parse_ulimit("nofile=x").unwrap_err(), "strconv.ParseInt: parsing \"x\": invalid syntax");
        let oci = parse_ulimit("core=-1").unwrap().to_oci();
        assert_eq!(oci["hard"], serde_json::json!(u64::MAX));
        assert_eq!(oci["type"], "RLIMIT_CORE");
    }

    #[test]
    fn dv_4_device_grammar() {
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!((d.path_on_host.as_str(), d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/fuse", "/dev/fuse", "rwm"));
        let d = parse_device("/dev/sda:r").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/sda", "r"));
        let d = parse_device("/dev/sda:/dev/xvda:rw").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/xvda", "rw"));
        assert_eq!(parse_device("/a:/b:c:d").unwrap_err(), "bad format for path: /a:/b:c:d");
        assert_eq!(parse_device(":/b").unwrap_err(), "bad format for path: :/b");
        assert_eq!(parse_device("/a:/b:rr").unwrap_err(), "bad mode specified: rr");
        assert_eq!(parse_device("/a:b").unwrap_err(), "b is not an absolute path");
    }

    #[test]
    fn dv_5_cgroup_rule_grammar() {
        let r = parse_device_cgroup_rule("c 1:3 mr").unwrap();
        assert_eq!((r.kind.as_str(), r.major, r.minor, r.access.as_str()), ("c", Some(1), Some(3), "mr"));
        let r = parse_device_cgroup_rule("b *:* rrr").unwrap();
        assert_eq!((r.major, r.minor), (Some(-1), Some(-1)));
        for bad in ["c 1:3", "x 1:3 r", "c 1:3 rwmx", "c a:3 r", "c 1:3  r", ""] {
            assert_eq!(parse_device_cgroup_rule(bad).unwrap_err(), format!("invalid device cgroup rule format: '{bad}'"));
        }
        assert!(parse_device_cgroup_rule("c 99999999999999999999:1 r").unwrap_err().starts_with("invalid major value"));
    }

    #[test]
    fn mt_4_tmpfs_merge() {
        let t = parse_tmpfs("/run:exec,size=1g").unwrap();
        assert_eq!(t.options, vec!["nosuid", "nodev", "rprivate", "exec", "size=1g"]);
        let t = parse_tmpfs("/tmp").unwrap();
        assert_eq!(t.options, vec!["noexec", "nosuid", "nodev", "rprivate"]);
        let t = parse_tmpfs("/tmp:size=1m,size=2m,rshared").unwrap();
        assert_eq!(t.options, vec!["noexec", "nosuid", "nodev", "size=2m", "rshared"]);
        assert_eq!(parse_tmpfs("/tmp:huge=1").unwrap_err(), "invalid tmpfs option \"huge\"");
        assert_eq!(parse_tmpfs("/tmp:bogus").unwrap_err(), "invalid tmpfs option \"bogus\"");
        assert_eq!(parse_tmpfs("tmp").unwrap_err(), "invalid mount path: 'tmp' mount path must be absolute");
        assert_eq!(parse_tmpfs("/").unwrap_err(), "invalid specification: destination can't be '/'");
    }

    #[test]
    fn cpu_1_parse_cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.0000000001"), Err("value is too precise".to_string()));
        assert_eq!(parse_cpus("abc"), Err("failed to parse abc as a rational number".to_string()));
    }

    #[test]
    fn so_security_opt_grammar() {
        let o = parse_security_opts(&["no-new-privileges".into(), "seccomp=unconfined".into(), "apparmor:foo".into()]).unwrap();
        assert_eq!(o.no_new_privileges, Some(true));
        assert_eq!(o.seccomp, Some(SeccompChoice::Unconfined));
        assert_eq!(o.apparmor.as_deref(), Some("foo"));
        let o = parse_security_opts(&["no-new-privileges=false".into(), "writable-cgroups=true".into(), "systempaths=unconfined".into()]).unwrap();
        assert_eq!((o.no_new_privileges, o.writable_cgroups, o.systempaths_unconfined), (Some(false), Some(true), true));
        assert_eq!(parse_security_opts(&["bogus".into()]).unwrap_err(), "invalid --security-opt: \"bogus\"");
        assert_eq!(parse_security_opts(&["seccomp=".into()]).unwrap_err(), "invalid --security-opt: \"seccomp=\"");
        assert_eq!(parse_security_opts(&["foo=bar".into()]).unwrap_err(), "invalid --security-opt 2: \"foo=bar\"");
        assert_eq!(parse_security_opts(&["no-new-privileges=maybe".into()]).unwrap_err(), "invalid --security-opt 2: \"no-new-privileges=maybe\"");
        let o = parse_security_opts(&["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}".into()]).unwrap();
        assert!(matches!(o.seccomp, Some(SeccompChoice::Inline(_))));
    }

    #[test]
    fn cp_2_normalize_and_cp_3_tweak() {
        assert_eq!(normalize_capability("net_admin", None).unwrap(), "CAP_NET_ADMIN");
        assert_eq!(normalize_capability("all", None).unwrap(), "ALL");
        assert_eq!(normalize_capability("FOO", None).unwrap_err(), "unknown capability: \"CAP_FOO\"");
        let avail = vec!["CAP_CHOWN".to_string()];
        assert!(normalize_capability("CAP_BPF", Some(&avail)).unwrap_err().starts_with("capability not supported"));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let base = s(&["CAP_A", "CAP_B"]);
        let all = s(&["CAP_A", "CAP_B", "CAP_C"]);
        assert_eq!(tweak_capabilities(&base, &[], &[], &all), base);
        assert_eq!(tweak_capabilities(&base, &s(&["ALL"]), &s(&["CAP_B"]), &all), s(&["CAP_A", "CAP_C"]));
        assert_eq!(tweak_capabilities(&base, &s(&["CAP_C"]), &s(&["ALL"]), &all), s(&["CAP_C"]));
        assert_eq!(tweak_capabilities(&base, &s(&["CAP_C"]), &s(&["CAP_A"]), &all), s(&["CAP_B", "CAP_C"]));
    }

    #[test]
    fn sy_4_sysctl_allow_list() {
        assert_eq!(parse_sysctl("net.ipv4.ip_forward=1").unwrap(), ("net.ipv4.ip_forward".into(), "1".into()));
        assert_eq!(parse_sysctl("kernel.shmmax=1=2").unwrap().1, "1=2");
        assert_eq!(parse_sysctl("kernel.panic=1").unwrap_err(), "sysctl 'kernel.panic=1' is not allowed");
        assert_eq!(parse_sysctl("net.x").unwrap_err(), "sysctl 'net.x' is not allowed");
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean_path("/a/../b/"), "/b");
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(join_path("/docker", "abc"), "/docker/abc");
        assert_eq!(join_path("rel/", "x"), "rel/x");
        assert_eq!(path_depth("/a/b/"), 2);
    }

    #[test]
    fn lists_and_maps() {
        assert_eq!(parse_list("[\"a\",\"b,c\"]").unwrap(), vec!["a", "b,c"]);
        assert_eq!(parse_list("one,two").unwrap(), vec!["one,two"]);
        assert!(parse_list("[1]").is_err());
        assert_eq!(parse_map("{\"a\":\"1\"}").unwrap(), vec![("a".to_string(), "1".to_string())]);
        assert_eq!(parse_map("[\"a=1\",\"b=2=3\"]").unwrap()[1], ("b".to_string(), "2=3".to_string()));
        assert!(parse_map("{\"a\":1}").is_err());
        assert_eq!(parse_cpuset("0-2,4").unwrap(), vec![0, 1, 2, 4]);
        assert!(parse_cpuset("2-1").is_err());
    }
}
