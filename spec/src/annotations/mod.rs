//! Producer detection (§0.4) and the per-container annotation schema (§2): every
//! `<prefix><key>` annotation is parsed with Docker's CLI grammar into [`Settings`] *before*
//! anything is changed (§2.5.1), then gated by `annotation-policy` (§2.5.3). NS-9: the namespace
//! modes Docker accepts; OOM-1: the oom-score-adj range.

use crate::config::{AnnotationPolicy, DaemonConfig, Origin, Policy};
use crate::error::SpecError;
use crate::parse::{self, DeviceMapping, DeviceRule, ExtraHost, SecurityOpts, SeccompChoice, TmpfsMount, Ulimit};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

mod hostconfig;
use hostconfig::hostconfig_pairs;

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["NS-9", "OOM-1"];

/// CRI annotation keys (ECOSYSTEM §2.6).
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const CRI_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";

/// nerdctl's annotations (DOCKER-RULES §2.4): every key starts with this prefix.
pub const NERDCTL_PREFIX: &str = "nerdctl/";
pub const NERDCTL_NAME: &str = "nerdctl/name";
pub const NERDCTL_PRIVILEGED: &str = "nerdctl/privileged";
pub const NERDCTL_IPC: &str = "nerdctl/ipc";
pub const NERDCTL_PID_CONTAINER: &str = "nerdctl/pid-container";

/// Every key of §2.3 (after the prefix).
pub const KEYS: &[&str] = &[
    "network", "ipc", "pid", "uts", "userns", "cgroupns", "privileged", "cap-add", "cap-drop",
    "security-opt", "read-only", "ulimits", "devices", "device-cgroup-rules", "tmpfs", "sysctls",
    "cgroup-parent", "shm-size", "init", "oom-score-adj", "pids-limit", "cpus", "cpu-shares",
    "cpu-period", "cpu-quota", "cpuset-cpus", "cpuset-mems", "cpu-rt-period", "cpu-rt-runtime",
    "memory", "memory-reservation", "memory-swap", "memory-swappiness", "oom-kill-disable",
    "blkio-weight", "user", "group-add", "domainname", "masked-paths", "readonly-paths", "name",
    "hostconfig", "policy", "hostname", "dns", "dns-search", "dns-option", "add-host",
];

/// §0.4: who wrote this spec, from what the client wrote (annotations) and chose (the
/// namespace). Nothing here is proof: it selects what the shim does for that producer
/// (`policy`), and the annotation gate never gets wider than ctr's for it
/// (`DaemonConfig::annotation_gate`).
pub fn detect_origin(annotations: Option<&Map<String, Value>>, namespace: &str, cfg: &DaemonConfig) -> Origin {
    if namespace == cfg.containerd_namespace || namespace == cfg.containerd_plugin_namespace {
        return Origin::Moby;
    }
    if let Some(a) = annotations {
        if let Some(t) = a.get(CRI_CONTAINER_TYPE).and_then(Value::as_str) {
            return Origin::Cri { sandbox: t == "sandbox" };
        }
        if a.keys().any(|k| k.starts_with(NERDCTL_PREFIX)) {
            return Origin::Nerdctl;
        }
    }
    Origin::Ctr
}

/// Docker-style settings requested through annotations. `None` = not requested.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub network: Option<String>,
    pub ipc: Option<String>,
    pub pid: Option<String>,
    pub uts: Option<String>,
    pub userns: Option<String>,
    pub cgroupns: Option<String>,
    pub privileged: Option<bool>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub security_opt: Option<SecurityOpts>,
    pub read_only: Option<bool>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub devices: Option<Vec<DeviceMapping>>,
    pub device_cgroup_rules: Option<Vec<DeviceRule>>,
    pub tmpfs: Option<Vec<TmpfsMount>>,
    pub sysctls: Option<Vec<(String, String)>>,
    pub cgroup_parent: Option<String>,
    pub shm_size: Option<i64>,
    pub init: Option<bool>,
    pub oom_score_adj: Option<i64>,
    pub pids_limit: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub cpu_rt_period: Option<i64>,
    pub cpu_rt_runtime: Option<i64>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub blkio_weight: Option<i64>,
    pub user: Option<String>,
    pub group_add: Option<Vec<String>>,
    pub domainname: Option<String>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<ExtraHost>>,
    pub policy: Option<Policy>,
    /// short key → the full annotation key that set it (errors name the real key).
    pub source: BTreeMap<&'static str, String>,
}

fn mode_err(full: &str, msg: String) -> SpecError {
    SpecError::annotation(full, msg)
}

impl Settings {
    /// The full annotation key for a short key (for error messages).
    pub fn key(&self, short: &str) -> String {
        self.source.get(short).cloned().unwrap_or_else(|| short.to_string())
    }

    /// Parse one key's value (Docker CLI grammar, §2.2) and store it. Later calls win (precedence).
    pub fn set(&mut self, short: &'static str, full: &str, value: &str) -> Result<(), SpecError> {
        let e = |m: String| SpecError::annotation(full, m);
        let list = || parse::parse_list(value).map_err(e);
        let int = || parse::parse_i64(value).map_err(e);
        let boolean = || parse::parse_bool(value).map_err(e);
        let size = || parse::parse_size(value).map_err(e);
        match short {
            "network" => {
                if value == "container:" || value.starts_with("container:") && value.len() == 10 {
                    return Err(mode_err(full, "invalid network mode: invalid container format container:<name|id>".into()));
                }
                self.network = Some(value.to_string());
            }
            "ipc" => {
                let ok = matches!(value, "" | "none" | "private" | "host" | "shareable") || value.starts_with("container:");
                if !ok {
                    return Err(mode_err(full, format!("invalid IPC mode: {value}")));
                }
                self.ipc = Some(value.to_string());
            }
            "pid" => {
                let ok = matches!(value, "" | "host") || (value.starts_with("container:") && value.len() > 10);
                if !ok {
                    return Err(mode_err(full, format!("invalid PID mode: {value}")));
                }
                self.pid = Some(value.to_string());
            }
            "uts" => {
                if !matches!(value, "" | "host") {
                    return Err(mode_err(full, format!("invalid UTS mode: {value}")));
                }
                self.uts = Some(value.to_string());
            }
            "userns" => {
                if !matches!(value, "" | "host") {
                    return Err(mode_err(full, "--userns: invalid USER mode".into()));
                }
                self.userns = Some(value.to_string());
            }
            "cgroupns" => {
                if !matches!(value, "" | "host" | "private") {
                    return Err(mode_err(full, format!("invalid cgroup namespace mode: {value}")));
                }
                self.cgroupns = Some(value.to_string());
            }
            "privileged" => self.privileged = Some(boolean()?),
            "cap-add" | "cap-drop" => {
                let caps = list()?
                    .iter()
                    .map(|c| parse::normalize_capability(c, None))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| e(format!("invalid {}: {m}", if short == "cap-add" { "CapAdd" } else { "CapDrop" })))?;
                if short == "cap-add" {
                    self.cap_add = Some(caps)
                } else {
                    self.cap_drop = Some(caps)
                }
            }
            "security-opt" => self.security_opt = Some(parse::parse_security_opts(&list()?).map_err(e)?),
            "read-only" => self.read_only = Some(boolean()?),
            "ulimits" => {
                let mut out: Vec<Ulimit> = Vec::new();
                for u in list()? {
                    let u = parse::parse_ulimit(&u).map_err(e)?;
                    // The CLI keeps the last value per name.
                    out.retain(|x| x.name != u.name);
                    out.push(u);
                }
                self.ulimits = Some(out);
            }
            "devices" => self.devices = Some(list()?.iter().map(|d| parse::parse_device(d)).collect::<Result<_, _>>().map_err(e)?),
            "device-cgroup-rules" => {
                self.device_cgroup_rules =
                    Some(list()?.iter().map(|d| parse::parse_device_cgroup_rule(d)).collect::<Result<_, _>>().map_err(e)?)
            }
            "tmpfs" => {
                let mut out: Vec<TmpfsMount> = Vec::new();
                for t in list()? {
                    let t = parse::parse_tmpfs(&t).map_err(e)?;
                    if out.iter().any(|x| x.destination == t.destination) {
                        return Err(e(format!("Duplicate mount point: {}", t.destination)));
                    }
                    out.push(t);
                }
                self.tmpfs = Some(out);
            }
            "sysctls" => {
                let kv = parse::parse_map(value).map_err(e)?;
                for (k, v) in &kv {
                    parse::check_sysctl_key(k).map_err(|_| e(format!("sysctl '{k}={v}' is not allowed")))?;
                }
                self.sysctls = Some(kv);
            }
            "cgroup-parent" => self.cgroup_parent = Some(value.to_string()),
            "shm-size" => {
                let n = size()?;
                self.shm_size = Some(n);
            }
            "init" => self.init = Some(boolean()?),
            "oom-score-adj" => {
                let n = int()?;
                if !(-1000..=1000).contains(&n) {
                    return Err(e(format!("Invalid value {n}, range for oom score adj is [-1000, 1000]")));
                }
                self.oom_score_adj = Some(n);
            }
            "pids-limit" => self.pids_limit = Some(int()?),
            "cpus" => self.nano_cpus = Some(parse::parse_cpus(value).map_err(|m| e(format!("invalid argument {}: {m}", parse::go_quote(value))))?),
            "cpu-shares" => self.cpu_shares = Some(int()?),
            "cpu-period" => self.cpu_period = Some(int()?),
            "cpu-quota" => self.cpu_quota = Some(int()?),
            "cpuset-cpus" => self.cpuset_cpus = Some(value.to_string()),
            "cpuset-mems" => self.cpuset_mems = Some(value.to_string()),
            "cpu-rt-period" => self.cpu_rt_period = Some(int()?),
            "cpu-rt-runtime" => self.cpu_rt_runtime = Some(int()?),
            "memory" => self.memory = Some(size()?),
            "memory-reservation" => self.memory_reservation = Some(size()?),
            "memory-swap" => self.memory_swap = Some(if value == "-1" { -1 } else { size()? }),
            "memory-swappiness" => {
                let n = int()?;
                if n != -1 && !(0..=100).contains(&n) {
                    return Err(e(format!("invalid value: {n}. Valid memory swappiness range is 0-100")));
                }
                self.memory_swappiness = Some(n);
            }
            "oom-kill-disable" => self.oom_kill_disable = Some(boolean()?),
            "blkio-weight" => self.blkio_weight = Some(int()?),
            "user" => self.user = Some(value.to_string()),
            "group-add" => self.group_add = Some(list()?),
            "domainname" => self.domainname = Some(value.to_string()),
            "masked-paths" | "readonly-paths" => {
                let l = list()?;
                if let Some(p) = l.iter().find(|p| !p.starts_with('/')) {
                    return Err(e(format!("{p} is not an absolute path")));
                }
                if short == "masked-paths" {
                    self.masked_paths = Some(l)
                } else {
                    self.readonly_paths = Some(l)
                }
            }
            "name" => self.name = Some(parse::parse_container_name(value).map_err(e)?),
            "hostname" => self.hostname = Some(parse::parse_hostname(value).map_err(e)?).filter(|h| !h.is_empty()),
            "dns" => self.dns = Some(list()?.iter().map(|d| parse::parse_ip(d)).collect::<Result<_, _>>().map_err(e)?),
            "dns-search" => self.dns_search = Some(list()?.iter().map(|d| parse::parse_dns_search(d)).collect::<Result<_, _>>().map_err(e)?),
            "dns-option" => self.dns_options = Some(list()?),
            "add-host" => self.extra_hosts = Some(list()?.iter().map(|h| parse::parse_extra_host(h)).collect::<Result<_, _>>().map_err(e)?),
            "policy" => {
                self.policy = Some(Policy::parse(value).ok_or_else(|| e(format!("invalid policy {}: use \"fill\", \"explicit\" or \"off\"", parse::go_quote(value))))?)
            }
            _ => return Err(e("unknown key".into())),
        }
        self.source.insert(short, full.to_string());
        Ok(())
    }

    /// Keys whose current value raises privilege (§2.5.3), with the full annotation key.
    pub fn privileged_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |short: &str, cond: bool| {
            if cond {
                out.push(self.key(short));
            }
        };
        let host_or_join = |m: &Option<String>| m.as_deref().is_some_and(|v| v == "host" || v.starts_with("container:"));
        add("privileged", self.privileged == Some(true));
        add("cap-add", self.cap_add.as_ref().is_some_and(|v| !v.is_empty()));
        add("devices", self.devices.as_ref().is_some_and(|v| !v.is_empty()));
        add("device-cgroup-rules", self.device_cgroup_rules.as_ref().is_some_and(|v| !v.is_empty()));
        if let Some(so) = &self.security_opt {
            let raises = matches!(so.seccomp, Some(SeccompChoice::Unconfined | SeccompChoice::Inline(_) | SeccompChoice::File(_)))
                || so.apparmor.is_some()
                || so.label.iter().any(|l| l == "disable")
                || so.writable_cgroups == Some(true)
                || so.systempaths_unconfined
                || so.no_new_privileges == Some(false);
            add("security-opt", raises);
        }
        add("sysctls", self.sysctls.as_ref().is_some_and(|v| !v.is_empty()));
        add("network", host_or_join(&self.network));
        add("ipc", host_or_join(&self.ipc));
        add("pid", host_or_join(&self.pid));
        add("uts", host_or_join(&self.uts));
        add("userns", host_or_join(&self.userns));
        add("cgroupns", host_or_join(&self.cgroupns));
        add("cgroup-parent", self.cgroup_parent.is_some());
        add("masked-paths", self.masked_paths.is_some());
        add("readonly-paths", self.readonly_paths.is_some());
        // Not in §2.5's list, but each can undo what kubelet set for a pod: who the process runs
        // as, its groups, its OOM protection and its resource limits.
        add("user", self.user.is_some());
        add("group-add", self.group_add.is_some());
        add("oom-score-adj", self.oom_score_adj.is_some_and(|n| n < 0));
        for (k, set) in [
            ("cpus", self.nano_cpus.is_some()),
            ("cpu-shares", self.cpu_shares.is_some()),
            ("cpu-period", self.cpu_period.is_some()),
            ("cpu-quota", self.cpu_quota.is_some()),
            ("cpuset-cpus", self.cpuset_cpus.is_some()),
            ("cpuset-mems", self.cpuset_mems.is_some()),
            ("cpu-rt-period", self.cpu_rt_period.is_some()),
            ("cpu-rt-runtime", self.cpu_rt_runtime.is_some()),
            ("memory", self.memory.is_some()),
            ("memory-reservation", self.memory_reservation.is_some()),
            ("memory-swap", self.memory_swap.is_some()),
            ("memory-swappiness", self.memory_swappiness.is_some()),
            ("oom-kill-disable", self.oom_kill_disable == Some(true)),
            ("pids-limit", self.pids_limit.is_some()),
            ("blkio-weight", self.blkio_weight.is_some()),
        ] {
            add(k, set);
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether any key was set at all.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }
}

fn known(short: &str) -> Option<&'static str> {
    KEYS.iter().copied().find(|k| *k == short)
}

/// Collect the settings from the spec's annotations (§2.3, precedence §2.5.2) and gate them (§2.5.3).
pub fn collect(annotations: Option<&Map<String, Value>>, origin: Origin, cfg: &DaemonConfig) -> Result<Settings, SpecError> {
    let mut s = Settings::default();
    let Some(ann) = annotations else { return Ok(s) };
    let prefix = cfg.annotation_prefix.as_str();
    let cri_name = match origin {
        Origin::Cri { .. } => ann.get(CRI_CONTAINER_NAME).and_then(Value::as_str),
        _ => None,
    };
    let mut hostconfig: Option<(&str, &str)> = None;
    let mut per_key: Vec<(&'static str, &str, &str)> = Vec::new();
    let mut per_container: Vec<(&'static str, &str, &str)> = Vec::new();
    for (full, v) in ann {
        let Some(suffix) = full.strip_prefix(prefix) else { continue };
        let value = v.as_str().ok_or_else(|| SpecError::annotation(full, format!("value must be a string, got {v}")))?;
        if let Some(k) = known(suffix) {
            if k == "hostconfig" {
                hostconfig = Some((full, value));
            } else {
                per_key.push((k, full, value));
            }
            continue;
        }
        // CRI per-container targeting: `<prefix><container-name>.<key>` (§2.1).
        if let (Origin::Cri { .. }, Some((cname, key))) = (origin, suffix.split_once('.')) {
            if let Some(k) = known(key).filter(|k| *k != "hostconfig") {
                if Some(cname) == cri_name {
                    per_container.push((k, full, value));
                }
                continue;
            }
        }
        return Err(SpecError::annotation(full, format!("unknown key {}", parse::go_quote(suffix))));
    }
    if let Some((full, value)) = hostconfig {
        for (k, v) in hostconfig_pairs(full, value)? {
            s.set(k, full, &v)?;
        }
    }
    for (k, full, v) in per_key.into_iter().chain(per_container) {
        s.set(k, full, v)?;
    }
    gate(&s, origin, cfg)?;
    Ok(s)
}

fn gate(s: &Settings, origin: Origin, cfg: &DaemonConfig) -> Result<(), SpecError> {
    if s.is_empty() {
        return Ok(());
    }
    let producer = origin.producer();
    if s.policy.is_some() && !cfg.allow_policy_annotation {
        return Err(SpecError::annotation(s.key("policy"), "not allowed: config \"allow-policy-annotation\" is false"));
    }
    let gate = cfg.annotation_gate(origin);
    // When ctr's entry decided for a container that claims another producer, say why.
    let because = if gate.entry == producer {
        String::new()
    } else {
        format!(
            " ({} = {:?} applies: this container's spec says it comes from {producer}, which any client can write, so it gets the stricter of the {producer} and {} entries)",
            gate.entry,
            gate.policy.as_str(),
            gate.entry
        )
    };
    match gate.policy {
        AnnotationPolicy::All => Ok(()),
        AnnotationPolicy::None => {
            let first = s.source.values().next().cloned().unwrap_or_default();
            Err(SpecError::annotation(first, format!("annotations are disabled for {producer} containers by config \"annotation-policy\"{because}")))
        }
        AnnotationPolicy::UnprivilegedOnly => match s.privileged_keys().into_iter().next() {
            Some(k) => Err(SpecError::annotation(
                k,
                format!("raises privileges; not allowed for {producer} containers by config \"annotation-policy\" (unprivileged-only){because}"),
            )),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ann(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn origin_detection_table() {
        let c = DaemonConfig::default();
        let cases = [
            (json!({}), "default", Origin::Ctr),
            (json!({"nerdctl/name": "web"}), "default", Origin::Nerdctl),
            (json!({CRI_CONTAINER_TYPE: "sandbox"}), "k8s.io", Origin::Cri { sandbox: true }),
            (json!({CRI_CONTAINER_TYPE: "container", "nerdctl/x": "y"}), "k8s.io", Origin::Cri { sandbox: false }),
            (json!({"nerdctl/name": "web"}), "moby", Origin::Moby),
            (json!({}), "plugins.moby", Origin::Moby),
        ];
        for (a, ns, want) in cases {
            assert_eq!(detect_origin(Some(&ann(a)), ns, &c), want);
        }
    }

    #[test]
    fn annotation_errors_name_full_key() {
        let c = DaemonConfig::default();
        let cases = [
            (json!({"io.containerd.dockerish/ipc": "bogus"}), "annotation \"io.containerd.dockerish/ipc\": invalid IPC mode: bogus"),
            (json!({"io.containerd.dockerish/pid": "container:"}), "annotation \"io.containerd.dockerish/pid\": invalid PID mode: container:"),
            (json!({"io.containerd.dockerish/nope": "1"}), "annotation \"io.containerd.dockerish/nope\": unknown key \"nope\""),
            (json!({"io.containerd.dockerish/shm-size": "1q"}), "annotation \"io.containerd.dockerish/shm-size\": invalid suffix: 'q'"),
            (json!({"io.containerd.dockerish/oom-score-adj": "2000"}), "annotation \"io.containerd.dockerish/oom-score-adj\": Invalid value 2000, range for oom score adj is [-1000, 1000]"),
            (json!({"io.containerd.dockerish/cap-add": "[\"FOO\"]"}), "annotation \"io.containerd.dockerish/cap-add\": invalid CapAdd: unknown capability: \"CAP_FOO\""),
            (json!({"io.containerd.dockerish/tmpfs": "[\"/a\",\"/a:size=1m\"]"}), "annotation \"io.containerd.dockerish/tmpfs\": Duplicate mount point: /a"),
            (json!({"io.containerd.dockerish/sysctls": "{\"kernel.panic\":\"1\"}"}), "annotation \"io.containerd.dockerish/sysctls\": sysctl 'kernel.panic=1' is not allowed"),
            (json!({"io.containerd.dockerish/privileged": 1}), "annotation \"io.containerd.dockerish/privileged\": value must be a string, got 1"),
            (json!({"io.containerd.dockerish/policy": "off"}), "annotation \"io.containerd.dockerish/policy\": not allowed: config \"allow-policy-annotation\" is false"),
            (json!({"io.containerd.dockerish/hostconfig": "{\"Binds\":[\"/a:/b\"]}"}), "annotation \"io.containerd.dockerish/hostconfig\": HostConfig field \"Binds\" is not supported by this shim"),
        ];
        for (a, want) in cases {
            assert_eq!(collect(Some(&ann(a)), Origin::Ctr, &c).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn precedence_hostconfig_key_cri_container() {
        let mut c = DaemonConfig::default();
        c.annotation_policy.insert("cri".into(), AnnotationPolicy::All);
        let a = ann(json!({
            "io.containerd.dockerish/hostconfig": "{\"ShmSize\": 1048576, \"OomScoreAdj\": 5, \"Ulimits\":[{\"Name\":\"nofile\",\"Soft\":1,\"Hard\":2}], \"NanoCpus\": 1500000000}",
            "io.containerd.dockerish/oom-score-adj": "7",
            "io.containerd.dockerish/web.oom-score-adj": "9",
            "io.containerd.dockerish/db.oom-score-adj": "11",
            CRI_CONTAINER_TYPE: "container",
            CRI_CONTAINER_NAME: "web",
        }));
        let s = collect(Some(&a), Origin::Cri { sandbox: false }, &c).unwrap();
        assert_eq!(s.oom_score_adj, Some(9));
        assert_eq!(s.shm_size, Some(1048576));
        assert_eq!(s.ulimits.as_ref().map(|u| u[0].hard), Some(2));
        assert_eq!(s.nano_cpus, Some(1_500_000_000));
        // non-CRI: dotted keys are unknown
        assert!(collect(Some(&a), Origin::Ctr, &c).is_err());
    }

    #[test]
    fn gating_cri_unprivileged_only() {
        let c = DaemonConfig::default();
        let cri = Origin::Cri { sandbox: false };
        let ok = ann(json!({"io.containerd.dockerish/shm-size": "128m", "io.containerd.dockerish/ulimits": "nofile=10:20"}));
        assert!(collect(Some(&ok), cri, &c).is_ok());
        for (k, v) in [("privileged", "true"), ("cap-add", "NET_ADMIN"), ("ipc", "host"), ("security-opt", "seccomp=unconfined"), ("sysctls", "net.ipv4.ip_forward=1"), ("pid", "container:x"), ("memory", "1g")] {
            let a = ann(json!({format!("io.containerd.dockerish/{k}"): v}));
            let err = collect(Some(&a), cri, &c).unwrap_err().to_string();
            assert!(err.contains("raises privileges; not allowed for cri containers"), "{k}: {err}");
            assert!(collect(Some(&a), Origin::Ctr, &c).is_ok(), "{k} allowed for ctr");
        }
        let mut none = c.clone();
        none.annotation_policy.insert("ctr".into(), AnnotationPolicy::None);
        assert!(collect(Some(&ok), Origin::Ctr, &none).unwrap_err().to_string().contains("annotations are disabled for ctr"));
    }

    /// Issue 13: `nerdctl/x=1` (or CRI's container-type) added by a ctr user makes the origin
    /// nerdctl (CRI), whose entry may be wider; the gate stays ctr's.
    #[test]
    fn a_forged_origin_does_not_widen_the_gate() {
        let cfg = DaemonConfig::from_toml("[annotation-policy]\nctr = \"none\"\nnerdctl = \"all\"\ncri = \"all\"\n").unwrap();
        let forged = ann(json!({"nerdctl/x": "1", "io.containerd.dockerish/privileged": "true"}));
        let origin = detect_origin(Some(&forged), "default", &cfg);
        assert_eq!(origin, Origin::Nerdctl);
        let e = collect(Some(&forged), origin, &cfg).unwrap_err().to_string();
        assert_eq!(
            e,
            "annotation \"io.containerd.dockerish/privileged\": annotations are disabled for nerdctl containers by config \"annotation-policy\" (ctr = \"none\" applies: this container's spec says it comes from nerdctl, which any client can write, so it gets the stricter of the nerdctl and ctr entries)"
        );
        let forged = ann(json!({CRI_CONTAINER_TYPE: "container", "io.containerd.dockerish/cap-add": "SYS_ADMIN"}));
        let origin = detect_origin(Some(&forged), "default", &cfg);
        assert!(collect(Some(&forged), origin, &cfg).unwrap_err().to_string().contains("annotations are disabled for cri containers"));
        let unpriv = DaemonConfig::from_toml("[annotation-policy]\nctr = \"unprivileged-only\"\n").unwrap();
        let forged = ann(json!({"nerdctl/name": "x", "io.containerd.dockerish/privileged": "true"}));
        let e = collect(Some(&forged), Origin::Nerdctl, &unpriv).unwrap_err().to_string();
        assert!(e.contains("raises privileges; not allowed for nerdctl containers by config \"annotation-policy\" (unprivileged-only) (ctr = \"unprivileged-only\" applies"), "{e}");
    }
}
