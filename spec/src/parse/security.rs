//! `--sysctl` (SY-4), `--security-opt` (SO-1, SO-2; SC-4: an inline profile is what the CLI
//! sends), `--cap-add`/`--cap-drop` (CP-1 list, CP-2 names, CP-3 tweak).

use super::{go_quote, parse_bool};

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["SY-4", "SO-1", "SO-2", "SC-4", "CP-2"];

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
        // CLI (SO-2): only `no-new-privileges` may be bare; empty values are rejected. The
        // daemon (SO-1) also takes a bare `writable-cgroups`, and so does the annotation grammar
        // (`writable-cgroups[=bool]`), as API clients and nerdctl can send it.
        let (mut k, mut v, mut ok) = match opt.split_once('=') {
            Some((k, v)) => (k, v, true),
            None => (opt.as_str(), "", false),
        };
        let bare_ok = |k: &str| k == "no-new-privileges" || k == "writable-cgroups";
        if !ok && !bare_ok(k) {
            if let Some((k2, v2)) = opt.split_once(':') {
                (k, v, ok) = (k2, v2, true);
            }
        }
        if (!ok && !bare_ok(k)) || (ok && v.is_empty() && k != "no-new-privileges") {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // SO-1 (issue 11 item 10): the daemon's bare form of writable-cgroups, as the grammar says
        let o = parse_security_opts(&["writable-cgroups".into()]).unwrap();
        assert_eq!(o.writable_cgroups, Some(true));
        assert_eq!(parse_security_opts(&["writable-cgroups=".into()]).unwrap_err(), "invalid --security-opt: \"writable-cgroups=\"");
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
}
