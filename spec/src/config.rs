//! The shim's daemon-level configuration (DOCKER-RULES §3.2 Docker keys, §3.3 shim keys).
//! JSON (a file, like `/etc/docker/daemon.json`) and TOML (containerd's `config_body`) use the
//! same key names; both are first turned into a JSON value and then read key by key, so that
//! every error names the key and the offending value (serde's own messages name neither).
//! Daemon-level validation of CG-2 (`exec-opts` cgroup driver), CG-3 (`cgroup-parent` slice),
//! IPC-1 (`default-shm-size`), IPC-7 (`default-ipc-mode`), NS-6 (`default-cgroupns-mode`).

use crate::error::SpecError;
use crate::parse::{self, Ulimit};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["CG-2", "CG-3", "IPC-1", "IPC-7", "NS-6"];

/// Which producer wrote the spec (§0.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Origin {
    Cri { sandbox: bool },
    Nerdctl,
    Ctr,
    Moby,
}

impl Origin {
    /// Key used in the `policy` / `annotation-policy` maps.
    pub fn producer(&self) -> &'static str {
        match self {
            Origin::Cri { .. } => "cri",
            Origin::Nerdctl => "nerdctl",
            Origin::Ctr => "ctr",
            Origin::Moby => "moby",
        }
    }
}

/// What `fill` does for a producer (§3.3 `policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Policy {
    /// Make a containerd default spec a Docker spec (table 4.10), then apply annotations.
    Fill,
    /// Apply only what annotations (and the admin's config) explicitly ask for.
    Explicit,
    /// Pass the spec through untouched.
    Off,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "fill" => Some(Policy::Fill),
            "explicit" => Some(Policy::Explicit),
            "off" => Some(Policy::Off),
            _ => None,
        }
    }
}

/// Gate on privilege-raising annotations per producer (§2.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationPolicy {
    All,
    UnprivilegedOnly,
    None,
}

impl AnnotationPolicy {
    /// How much it lets through (0: nothing).
    fn width(self) -> u8 {
        match self {
            AnnotationPolicy::None => 0,
            AnnotationPolicy::UnprivilegedOnly => 1,
            AnnotationPolicy::All => 2,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationPolicy::All => "all",
            AnnotationPolicy::UnprivilegedOnly => "unprivileged-only",
            AnnotationPolicy::None => "none",
        }
    }
}

/// The annotation gate a container gets, and whose `annotation-policy` entry set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnotationGate {
    pub policy: AnnotationPolicy,
    /// The producer whose entry decided: the container's own, or `ctr` when that is stricter.
    pub entry: &'static str,
}

/// `systemd-cgroup` (§3.3): runc `--systemd-cgroup` decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SystemdCgroup {
    /// Infer from the `cgroupsPath` syntax (`slice:prefix:name`), ECOSYSTEM §0.6.
    #[default]
    Auto,
    On,
    Off,
}

/// Cgroup driver from `exec-opts` (CG-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Systemd,
    Cgroupfs,
}

/// The daemon configuration. `Default` gives Docker's defaults plus the §3.3 defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// `exec-opts` → `native.cgroupdriver` (CG-2); `None` = auto.
    pub cgroup_driver: Option<CgroupDriver>,
    /// `cgroup-parent` (CG-1); empty = driver default.
    pub cgroup_parent: String,
    /// `default-ulimits` (RL-1).
    pub default_ulimits: Vec<Ulimit>,
    /// `userns-remap` (NS-1); empty = off.
    pub userns_remap: String,
    /// `seccomp-profile`: `builtin` (default), `unconfined` or a host path (SC-1 steps 6-8).
    pub seccomp_profile: String,
    /// `no-new-privileges` (NNP-1).
    pub no_new_privileges: bool,
    /// `default-shm-size` in bytes (IPC-1).
    pub default_shm_size: i64,
    /// `default-ipc-mode`: `private` | `shareable` (IPC-7).
    pub default_ipc_mode: String,
    /// `default-cgroupns-mode`: `None` = `private` on v2, `host` on v1 (NS-6).
    pub default_cgroupns_mode: Option<String>,
    /// `init`, `init-path`, `default-init` (INIT-1).
    pub init: bool,
    pub init_path: String,
    pub default_init: String,
    /// `features` (NS-7 `time-namespaces`).
    pub features: BTreeMap<String, bool>,
    /// `containerd-namespace`, `containerd-plugin-namespace` (§0.4: dockerd's namespaces → off).
    pub containerd_namespace: String,
    pub containerd_plugin_namespace: String,
    /// `runc-binary`, `runc-root` (§3.3).
    pub runc_binary: Option<String>,
    pub runc_root: Option<String>,
    /// `systemd-cgroup` (§3.3).
    pub systemd_cgroup: SystemdCgroup,
    /// `policy` per producer (§3.3).
    pub policy: BTreeMap<String, Policy>,
    /// `annotation-prefix` (§2.1).
    pub annotation_prefix: String,
    /// `annotation-policy` per producer (§2.5).
    pub annotation_policy: BTreeMap<String, AnnotationPolicy>,
    /// `allow-policy-annotation` (§2.3 `policy`).
    pub allow_policy_annotation: bool,
    /// `default-capabilities` (CP-1 base).
    pub default_capabilities: Vec<String>,
    /// `apparmor-profile`, `apparmor-load-default` (AA-1, AA-2).
    pub apparmor_profile: String,
    pub apparmor_load_default: bool,
    /// `seccomp-profile-root` (`security-opt seccomp=file:<name>`).
    pub seccomp_profile_root: String,
    /// `cgroup-scope-prefix` (CG-1: `/<prefix>/<id>` or `<parent>:<prefix>:<id>`).
    pub cgroup_scope_prefix: String,
    /// `name-resolution`: only the bundle scan is implemented; both values are accepted.
    pub name_resolution: String,
    /// `shm-root` (IPC-4); `None` = the bundle directory.
    pub shm_root: Option<String>,
    /// `masked-paths` (MP-1); `None` = table 4.2 + thermal_throttle per possible CPU.
    pub masked_paths: Option<Vec<String>>,
    /// `readonly-paths` (MP-1).
    pub readonly_paths: Vec<String>,
}

/// Every key of dockerish.toml, in the order deploy/dockerish.toml documents them.
pub const CONFIG_KEYS: &[&str] = &[
    "exec-opts", "cgroup-parent", "default-ulimits", "userns-remap", "seccomp-profile", "no-new-privileges",
    "default-shm-size", "default-ipc-mode", "default-cgroupns-mode", "init", "init-path", "default-init",
    "selinux-enabled", "cpu-rt-period", "cpu-rt-runtime", "rootless", "features", "containerd-namespace",
    "containerd-plugin-namespace", "runc-binary", "runc-root", "systemd-cgroup", "policy", "annotation-prefix",
    "annotation-policy", "allow-policy-annotation", "default-capabilities", "apparmor-profile",
    "apparmor-load-default", "seccomp-profile-root", "cgroup-scope-prefix", "name-resolution", "shm-root",
    "masked-paths", "readonly-paths",
];

/// Keys that arrive from a CRI runtime `options` table (containerd 1.7+ config_body): runc's
/// field names for the same settings, and containerd's own generic keys.
pub const CRI_OPTION_KEYS: &[&str] = &["BinaryName", "Root", "SystemdCgroup", "TypeUrl", "ConfigPath"];

/// Docker's masked paths (table 4.2), sorted.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
];

/// Docker's read-only paths (table 4.2).
pub const DEFAULT_READONLY_PATHS: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

impl Default for DaemonConfig {
    fn default() -> Self {
        let policy = [("moby", Policy::Off), ("cri", Policy::Explicit), ("nerdctl", Policy::Explicit), ("ctr", Policy::Fill)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let annotation_policy = [
            ("ctr", AnnotationPolicy::All),
            ("nerdctl", AnnotationPolicy::All),
            ("cri", AnnotationPolicy::UnprivilegedOnly),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        DaemonConfig {
            cgroup_driver: None,
            cgroup_parent: String::new(),
            default_ulimits: Vec::new(),
            userns_remap: String::new(),
            seccomp_profile: "builtin".into(),
            no_new_privileges: false,
            default_shm_size: 64 * 1024 * 1024,
            default_ipc_mode: "private".into(),
            default_cgroupns_mode: None,
            init: false,
            init_path: String::new(),
            default_init: "docker-init".into(),
            features: BTreeMap::new(),
            containerd_namespace: "moby".into(),
            containerd_plugin_namespace: "plugins.moby".into(),
            runc_binary: None,
            runc_root: None,
            systemd_cgroup: SystemdCgroup::Auto,
            policy,
            annotation_prefix: "io.containerd.dockerish/".into(),
            annotation_policy,
            allow_policy_annotation: false,
            default_capabilities: parse::DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect(),
            apparmor_profile: "docker-default".into(),
            apparmor_load_default: true,
            seccomp_profile_root: "/etc/containerd-shim-dockerish/seccomp".into(),
            cgroup_scope_prefix: "docker".into(),
            name_resolution: "bundle-scan".into(),
            shm_root: None,
            masked_paths: None,
            readonly_paths: DEFAULT_READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

fn type_err(key: &str, want: &str, v: &Value) -> SpecError {
    SpecError::config(key, format!("expected {want}, got {v}"))
}
fn get_bool(key: &str, v: &Value) -> Result<bool, SpecError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => parse::parse_bool(s).map_err(|e| SpecError::config(key, e)),
        _ => Err(type_err(key, "a boolean", v)),
    }
}
fn get_str(key: &str, v: &Value) -> Result<String, SpecError> {
    v.as_str().map(str::to_string).ok_or_else(|| type_err(key, "a string", v))
}
fn get_i64(key: &str, v: &Value) -> Result<i64, SpecError> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| type_err(key, "an integer", v)),
        Value::String(s) => parse::parse_i64(s).map_err(|e| SpecError::config(key, e)),
        _ => Err(type_err(key, "an integer", v)),
    }
}
fn get_list(key: &str, v: &Value) -> Result<Vec<String>, SpecError> {
    match v {
        Value::Array(a) => a.iter().map(|x| get_str(key, x)).collect(),
        _ => Err(type_err(key, "a list of strings", v)),
    }
}
fn get_obj<'a>(key: &str, v: &'a Value) -> Result<&'a Map<String, Value>, SpecError> {
    v.as_object().ok_or_else(|| type_err(key, "an object", v))
}

impl DaemonConfig {
    /// Parse `daemon.json`-style JSON.
    pub fn from_json(s: &str) -> Result<Self, SpecError> {
        let v: Value = serde_json::from_str(s).map_err(|e| SpecError::config("(document)", format!("invalid JSON: {e}")))?;
        Self::from_value(&v)
    }

    /// Parse TOML (containerd `config_body`, or a `.toml` file).
    pub fn from_toml(s: &str) -> Result<Self, SpecError> {
        let t: toml::Table = toml::from_str(s).map_err(|e| SpecError::config("(document)", format!("invalid TOML: {e}")))?;
        let v = serde_json::to_value(t).map_err(|e| SpecError::config("(document)", format!("invalid TOML value: {e}")))?;
        Self::from_value(&v)
    }

    /// Read a JSON object of config keys.
    pub fn from_value(v: &Value) -> Result<Self, SpecError> {
        let obj = get_obj("(document)", v)?;
        let mut c = DaemonConfig::default();
        for (key, val) in obj {
            c.set(key, val)?;
        }
        // runc's driver chosen explicitly wins over exec-opts for the paths CG-1 writes: a
        // contradiction would leave one of them silently ignored.
        let runc_driver = match c.systemd_cgroup {
            SystemdCgroup::On => Some(CgroupDriver::Systemd),
            SystemdCgroup::Off => Some(CgroupDriver::Cgroupfs),
            SystemdCgroup::Auto => None,
        };
        if let (Some(daemon), Some(runc)) = (c.cgroup_driver, runc_driver) {
            if daemon != runc {
                let name = |d: CgroupDriver| if d == CgroupDriver::Systemd { "systemd" } else { "cgroupfs" };
                return Err(SpecError::config(
                    "systemd-cgroup",
                    format!("{} contradicts exec-opts native.cgroupdriver={}: set both to the same driver, or systemd-cgroup = \"auto\"", runc == CgroupDriver::Systemd, name(daemon)),
                ));
            }
        }
        // CG-3 for the daemon option, once the driver is known whatever the key order.
        if c.cgroup_driver == Some(CgroupDriver::Systemd) && !c.cgroup_parent.is_empty() && !valid_slice(&c.cgroup_parent) {
            return Err(SpecError::config("cgroup-parent", CG3_TEXT));
        }
        Ok(c)
    }

    fn set(&mut self, key: &str, v: &Value) -> Result<(), SpecError> {
        // CONFIG_KEYS is the single list of documented keys (deploy/dockerish.toml is checked
        // against it); the CamelCase forms are the names containerd's CRI options table uses.
        if !CONFIG_KEYS.contains(&key) && !CRI_OPTION_KEYS.contains(&key) {
            return Err(SpecError::config(key, "unknown key"));
        }
        let k = key;
        match key {
            "exec-opts" => {
                for opt in get_list(k, v)? {
                    let (name, val) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
                    if name.trim() != "native.cgroupdriver" {
                        return Err(SpecError::config(k, format!("exec-opt {} not supported (only native.cgroupdriver)", parse::go_quote(&opt))));
                    }
                    self.cgroup_driver = Some(match val.trim() {
                        "systemd" => CgroupDriver::Systemd,
                        "cgroupfs" => CgroupDriver::Cgroupfs,
                        "none" => return Err(SpecError::config(k, "native.cgroupdriver option none is internally used and cannot be specified manually")),
                        other => return Err(SpecError::config(k, format!("native.cgroupdriver option {other} not supported"))),
                    });
                }
            }
            "cgroup-parent" => {
                self.cgroup_parent = get_str(k, v)?;
            }
            "default-ulimits" => self.default_ulimits = parse_default_ulimits(k, v)?,
            "userns-remap" => {
                let s = get_str(k, v)?;
                if s.split(':').count() > 2 || s.starts_with(':') {
                    return Err(SpecError::config(k, format!("Invalid user/group specification in --userns-remap: {}", parse::go_quote(&s))));
                }
                self.userns_remap = s;
            }
            "seccomp-profile" => self.seccomp_profile = get_str(k, v)?,
            "no-new-privileges" => self.no_new_privileges = get_bool(k, v)?,
            "default-shm-size" => {
                let n = match v {
                    Value::Number(_) => get_i64(k, v)?,
                    Value::String(s) => parse::parse_size(s).map_err(|e| SpecError::config(k, e))?,
                    _ => return Err(type_err(k, "a size", v)),
                };
                if n < 0 {
                    return Err(SpecError::config(k, "SHM size can not be less than 0"));
                }
                self.default_shm_size = n;
            }
            "default-ipc-mode" => {
                let s = get_str(k, v)?;
                match s.as_str() {
                    "private" | "shareable" => self.default_ipc_mode = s,
                    "" | "none" | "host" => return Err(SpecError::config(k, format!("IPC mode \"{s}\" is not supported as default value; use \"shareable\" or \"private\""))),
                    x if x.starts_with("container:") => return Err(SpecError::config(k, format!("IPC mode \"{s}\" is not supported as default value; use \"shareable\" or \"private\""))),
                    _ => return Err(SpecError::config(k, format!("default IPC mode setting ({s}) is invalid; use \"shareable\" or \"private\""))),
                }
            }
            "default-cgroupns-mode" => {
                let s = get_str(k, v)?;
                if s != "host" && s != "private" {
                    return Err(SpecError::config(k, format!("invalid default cgroup namespace ({s}): use \"host\" or \"private\"")));
                }
                self.default_cgroupns_mode = Some(s);
            }
            "init" => self.init = get_bool(k, v)?,
            "init-path" => self.init_path = get_str(k, v)?,
            "default-init" => self.default_init = get_str(k, v)?,
            "selinux-enabled" => {
                if get_bool(k, v)? {
                    return Err(SpecError::config(k, "SELinux labelling (SE-1) is not supported by this shim; set false"));
                }
            }
            "cpu-rt-period" | "cpu-rt-runtime" => {
                if get_i64(k, v)? != 0 {
                    return Err(SpecError::config(k, "realtime parent cgroups (CG-8) are not supported by this shim; set 0"));
                }
            }
            "rootless" => {
                if get_bool(k, v)? {
                    return Err(SpecError::config(k, "rootless mode (RLS-*) is not supported by this shim; set false"));
                }
            }
            "features" => {
                for (fk, fv) in get_obj(k, v)? {
                    self.features.insert(fk.clone(), get_bool(&format!("{k}.{fk}"), fv)?);
                }
            }
            "containerd-namespace" => self.containerd_namespace = get_str(k, v)?,
            "containerd-plugin-namespace" => self.containerd_plugin_namespace = get_str(k, v)?,
            "runc-binary" | "BinaryName" => self.runc_binary = Some(get_str(k, v)?).filter(|s| !s.is_empty()),
            "runc-root" | "Root" => self.runc_root = Some(get_str(k, v)?).filter(|s| !s.is_empty()),
            "systemd-cgroup" | "SystemdCgroup" => {
                self.systemd_cgroup = match v {
                    Value::String(s) if s == "auto" => SystemdCgroup::Auto,
                    _ => {
                        if get_bool(k, v).map_err(|_| type_err(k, "\"auto\" or a boolean", v))? {
                            SystemdCgroup::On
                        } else {
                            SystemdCgroup::Off
                        }
                    }
                }
            }
            "policy" => {
                for (pk, pv) in get_obj(k, v)? {
                    check_producer(k, pk, &["moby", "cri", "nerdctl", "ctr"])?;
                    let s = get_str(&format!("{k}.{pk}"), pv)?;
                    let p = Policy::parse(&s).ok_or_else(|| {
                        SpecError::config(format!("{k}.{pk}"), format!("invalid policy {}: use \"fill\", \"explicit\" or \"off\"", parse::go_quote(&s)))
                    })?;
                    self.policy.insert(pk.clone(), p);
                }
            }
            "annotation-prefix" => {
                let s = get_str(k, v)?;
                if s.is_empty() {
                    return Err(SpecError::config(k, "must not be empty"));
                }
                self.annotation_prefix = s;
            }
            "annotation-policy" => {
                for (pk, pv) in get_obj(k, v)? {
                    check_producer(k, pk, &["cri", "nerdctl", "ctr"])?;
                    let s = get_str(&format!("{k}.{pk}"), pv)?;
                    let p = match s.as_str() {
                        "all" => AnnotationPolicy::All,
                        "unprivileged-only" => AnnotationPolicy::UnprivilegedOnly,
                        "none" => AnnotationPolicy::None,
                        _ => {
                            return Err(SpecError::config(
                                format!("{k}.{pk}"),
                                format!("invalid annotation policy {}: use \"all\", \"unprivileged-only\" or \"none\"", parse::go_quote(&s)),
                            ))
                        }
                    };
                    self.annotation_policy.insert(pk.clone(), p);
                }
            }
            "allow-policy-annotation" => self.allow_policy_annotation = get_bool(k, v)?,
            "default-capabilities" => {
                self.default_capabilities = get_list(k, v)?
                    .iter()
                    .map(|c| parse::normalize_capability(c, None).map_err(|e| SpecError::config(k, e)))
                    .collect::<Result<_, _>>()?;
            }
            "apparmor-profile" => self.apparmor_profile = get_str(k, v)?,
            "apparmor-load-default" => self.apparmor_load_default = get_bool(k, v)?,
            "seccomp-profile-root" => self.seccomp_profile_root = get_str(k, v)?,
            "cgroup-scope-prefix" => {
                let s = get_str(k, v)?;
                if s.is_empty() || s.contains([':', '/']) {
                    return Err(SpecError::config(k, format!("invalid scope prefix {}: must be non-empty without ':' or '/'", parse::go_quote(&s))));
                }
                self.cgroup_scope_prefix = s;
            }
            "name-resolution" => {
                let s = get_str(k, v)?;
                if s != "bundle-scan" && s != "containerd-api" {
                    return Err(SpecError::config(k, format!("invalid value {}: use \"bundle-scan\" or \"containerd-api\"", parse::go_quote(&s))));
                }
                self.name_resolution = s;
            }
            "shm-root" => self.shm_root = Some(get_str(k, v)?).filter(|s| !s.is_empty()),
            "masked-paths" => self.masked_paths = Some(abs_list(k, v)?),
            "readonly-paths" => self.readonly_paths = abs_list(k, v)?,
            // containerd copies these into a runtime's options table; they carry no shim setting.
            "TypeUrl" | "ConfigPath" => {}
            _ => return Err(SpecError::config(key, "unknown key")),
        }
        Ok(())
    }

    /// The policy for a producer (missing entries fall back to the §3.3 defaults).
    pub fn policy_for(&self, origin: Origin) -> Policy {
        self.policy.get(origin.producer()).copied().unwrap_or(match origin {
            Origin::Moby => Policy::Off,
            Origin::Ctr => Policy::Fill,
            _ => Policy::Explicit,
        })
    }

    /// The `annotation-policy` entry of a producer as configured.
    fn configured_annotation_policy(&self, origin: Origin) -> AnnotationPolicy {
        self.annotation_policy.get(origin.producer()).copied().unwrap_or(match origin {
            Origin::Cri { .. } => AnnotationPolicy::UnprivilegedOnly,
            _ => AnnotationPolicy::All,
        })
    }

    /// The annotation gate of a container whose spec says it comes from `origin` (§2.5.3).
    /// The producer is told by what the client wrote (annotations, the namespace it chose), and
    /// any client can write anything there: a ctr user can add `nerdctl/x=1` or CRI's
    /// `io.kubernetes.cri.container-type`. So a claimed producer can only narrow the gate:
    /// the container gets the stricter of its producer's entry and `ctr`'s, the entry of a
    /// client that claims nothing.
    pub fn annotation_gate(&self, origin: Origin) -> AnnotationGate {
        let own = AnnotationGate { policy: self.configured_annotation_policy(origin), entry: origin.producer() };
        let ctr = AnnotationGate { policy: self.configured_annotation_policy(Origin::Ctr), entry: Origin::Ctr.producer() };
        if ctr.policy.width() < own.policy.width() {
            ctr
        } else {
            own
        }
    }

    /// The annotation policy in effect for a container from `origin` ([`Self::annotation_gate`]).
    pub fn annotation_policy_for(&self, origin: Origin) -> AnnotationPolicy {
        self.annotation_gate(origin).policy
    }
}

/// CG-3 text.
pub const CG3_TEXT: &str = "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\"";

/// CG-3: `len(parent) <= 6 || !HasSuffix(parent, ".slice")` is invalid.
pub fn valid_slice(p: &str) -> bool {
    p.len() > 6 && p.ends_with(".slice")
}

fn check_producer(k: &str, pk: &str, allowed: &[&str]) -> Result<(), SpecError> {
    if allowed.contains(&pk) {
        Ok(())
    } else {
        Err(SpecError::config(format!("{k}.{pk}"), format!("unknown producer (use one of {})", allowed.join(", "))))
    }
}

fn abs_list(k: &str, v: &Value) -> Result<Vec<String>, SpecError> {
    let l = get_list(k, v)?;
    for p in &l {
        if !p.starts_with('/') {
            return Err(SpecError::config(k, format!("{p} is not an absolute path")));
        }
    }
    Ok(l)
}

/// `default-ulimits`: Docker's `{"nofile": {"Name": "nofile", "Soft": 1, "Hard": 2}}`, or a list
/// of `name=soft[:hard]` strings (the `--default-ulimit` flag form).
fn parse_default_ulimits(k: &str, v: &Value) -> Result<Vec<Ulimit>, SpecError> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (name, u) in m {
                let key = format!("{k}.{name}");
                let o = get_obj(&key, u)?;
                for f in o.keys() {
                    if !matches!(f.as_str(), "Name" | "Soft" | "Hard") {
                        return Err(SpecError::config(format!("{key}.{f}"), "unknown key"));
                    }
                }
                let soft = o.get("Soft").map(|x| get_i64(&key, x)).transpose()?.unwrap_or(0);
                let hard = o.get("Hard").map(|x| get_i64(&key, x)).transpose()?.unwrap_or(0);
                let text = format!("{name}={soft}:{hard}");
                out.push(parse::parse_ulimit(&text).map_err(|e| SpecError::config(&key, e))?);
            }
        }
        Value::Array(_) => {
            for s in get_list(k, v)? {
                out.push(parse::parse_ulimit(&s).map_err(|e| SpecError::config(k, e))?);
            }
        }
        _ => return Err(type_err(k, "an object or a list", v)),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_docker() {
        let c = DaemonConfig::default();
        assert_eq!(c.default_shm_size, 67108864);
        assert_eq!(c.default_capabilities.len(), 14);
        assert_eq!(c.policy_for(Origin::Ctr), Policy::Fill);
        assert_eq!(c.policy_for(Origin::Moby), Policy::Off);
        assert_eq!(c.annotation_policy_for(Origin::Cri { sandbox: false }), AnnotationPolicy::UnprivilegedOnly);
    }

    /// Issue 13: claiming a producer (an annotation, a namespace) never widens the gate.
    #[test]
    fn a_claimed_producer_never_gets_more_than_ctr() {
        let c = DaemonConfig::from_toml("[annotation-policy]\nctr = \"none\"\nnerdctl = \"all\"\ncri = \"all\"\n").unwrap();
        for o in [Origin::Nerdctl, Origin::Cri { sandbox: false }, Origin::Moby, Origin::Ctr] {
            assert_eq!(c.annotation_gate(o), AnnotationGate { policy: AnnotationPolicy::None, entry: "ctr" }, "{o:?}");
        }
        let c = DaemonConfig::from_toml("[annotation-policy]\nctr = \"unprivileged-only\"\nnerdctl = \"all\"\ncri = \"none\"\n").unwrap();
        assert_eq!(c.annotation_gate(Origin::Nerdctl), AnnotationGate { policy: AnnotationPolicy::UnprivilegedOnly, entry: "ctr" });
        // A stricter entry of the producer itself still applies.
        assert_eq!(c.annotation_gate(Origin::Cri { sandbox: false }), AnnotationGate { policy: AnnotationPolicy::None, entry: "cri" });
        // The defaults are unchanged by the rule: ctr and nerdctl all, CRI unprivileged-only.
        let d = DaemonConfig::default();
        assert_eq!(d.annotation_gate(Origin::Nerdctl), AnnotationGate { policy: AnnotationPolicy::All, entry: "nerdctl" });
        assert_eq!(d.annotation_gate(Origin::Cri { sandbox: true }), AnnotationGate { policy: AnnotationPolicy::UnprivilegedOnly, entry: "cri" });
    }

    #[test]
    fn json_and_toml_same_keys() {
        let j = DaemonConfig::from_json(r#"{"exec-opts":["native.cgroupdriver=systemd"],"cgroup-parent":"my.slice","default-shm-size":"128m","default-ulimits":{"nofile":{"Name":"nofile","Soft":10,"Hard":20}},"policy":{"nerdctl":"fill"},"systemd-cgroup":"auto","runc-binary":"/usr/sbin/runc"}"#).unwrap();
        let t = DaemonConfig::from_toml("exec-opts = [\"native.cgroupdriver=systemd\"]\ncgroup-parent = \"my.slice\"\ndefault-shm-size = \"128m\"\nsystemd-cgroup = \"auto\"\nrunc-binary = \"/usr/sbin/runc\"\n[default-ulimits.nofile]\nName = \"nofile\"\nSoft = 10\nHard = 20\n[policy]\nnerdctl = \"fill\"\n").unwrap();
        assert_eq!(j, t);
        assert_eq!(j.default_shm_size, 128 << 20);
        assert_eq!(j.cgroup_driver, Some(CgroupDriver::Systemd));
        assert_eq!(j.default_ulimits[0].hard, 20);
        assert_eq!(j.policy_for(Origin::Nerdctl), Policy::Fill);
        let cri = DaemonConfig::from_toml("SystemdCgroup = true\nBinaryName = \"/x/runc\"\nTypeUrl = \"x\"").unwrap();
        assert_eq!((cri.systemd_cgroup, cri.runc_binary.as_deref()), (SystemdCgroup::On, Some("/x/runc")));
    }

    #[test]
    fn errors_name_key_and_value() {
        let cases: &[(&str, &str)] = &[
            (r#"{"bogus":1}"#, "config \"bogus\": unknown key"),
            (r#"{"init":"yes"}"#, "config \"init\": strconv.ParseBool: parsing \"yes\": invalid syntax"),
            (r#"{"init":3}"#, "config \"init\": expected a boolean, got 3"),
            (r#"{"default-shm-size":"1x"}"#, "config \"default-shm-size\": invalid suffix: 'x'"),
            (r#"{"default-ipc-mode":"host"}"#, "config \"default-ipc-mode\": IPC mode \"host\" is not supported as default value; use \"shareable\" or \"private\""),
            (r#"{"default-ipc-mode":"weird"}"#, "config \"default-ipc-mode\": default IPC mode setting (weird) is invalid; use \"shareable\" or \"private\""),
            (r#"{"default-cgroupns-mode":"x"}"#, "config \"default-cgroupns-mode\": invalid default cgroup namespace (x): use \"host\" or \"private\""),
            (r#"{"exec-opts":["native.cgroupdriver=none"]}"#, "config \"exec-opts\": native.cgroupdriver option none is internally used and cannot be specified manually"),
            (r#"{"exec-opts":["native.cgroupdriver=foo"]}"#, "config \"exec-opts\": native.cgroupdriver option foo not supported"),
            (r#"{"exec-opts":["native.cgroupdriver=systemd"],"systemd-cgroup":false}"#, "config \"systemd-cgroup\": false contradicts exec-opts native.cgroupdriver=systemd: set both to the same driver, or systemd-cgroup = \"auto\""),
            (r#"{"SystemdCgroup":true,"exec-opts":["native.cgroupdriver=cgroupfs"]}"#, "config \"systemd-cgroup\": true contradicts exec-opts native.cgroupdriver=cgroupfs: set both to the same driver, or systemd-cgroup = \"auto\""),
            (r#"{"exec-opts":["native.cgroupdriver=systemd"],"cgroup-parent":"foo"}"#, "config \"cgroup-parent\": cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\""),
            (r#"{"policy":{"ctr":"sometimes"}}"#, "config \"policy.ctr\": invalid policy \"sometimes\": use \"fill\", \"explicit\" or \"off\""),
            (r#"{"policy":{"podman":"fill"}}"#, "config \"policy.podman\": unknown producer (use one of moby, cri, nerdctl, ctr)"),
            (r#"{"default-ulimits":{"nofile":{"Name":"nofile","Soft":5,"Hard":1}}}"#, "config \"default-ulimits.nofile\": ulimit soft limit must be less than or equal to hard limit: 5 > 1"),
            (r#"{"default-capabilities":["CAP_NOPE"]}"#, "config \"default-capabilities\": unknown capability: \"CAP_NOPE\""),
            (r#"[1]"#, "config \"(document)\": expected an object, got [1]"),
        ];
        for (inp, want) in cases {
            assert_eq!(DaemonConfig::from_json(inp).unwrap_err().to_string(), *want, "{inp}");
        }
        assert!(DaemonConfig::from_toml("x = ").unwrap_err().to_string().starts_with("config \"(document)\": invalid TOML"));
    }
}
