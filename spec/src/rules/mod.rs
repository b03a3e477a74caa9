//! The rules, applied in moby's `createSpec` order (DOCKER-RULES §0.3 step 5), one file per
//! rule group. Each file starts with the rule ids it implements and declares them in its `IDS`
//! table ([`crate::RULE_FILES`]); `docs/RULES.md` is checked against those tables.
//!
//! Two modes (§0.4, §3.3 `policy`): `fill` turns containerd's default spec into Docker's (table
//! 4.10) *and* applies the annotations; `explicit` applies only what annotations ask for. Every
//! step is written so that running `fill` on its own output changes nothing (§2.5.4).
//!
//! Cross-key validation Docker does at create time (NS-11, NS-5, SE-1 texts, producer limits)
//! lives here, before any rule changes the document.

mod cgroups;
mod devices;
mod files;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod security;
mod sysctls;
mod user;

use crate::annotations::{self, Settings};
use crate::cgroup_driver;
use crate::config::{DaemonConfig, Origin, Policy};
use crate::error::{HostError, SpecError};
use crate::mountinfo::MountInfo;
use crate::oci::{ns, Doc};
use crate::parse::go_quote;
use crate::{Applied, Filled, Host, HostAction, Inputs, SiblingTask};
use serde_json::Value;

pub use cgroups::{cgroup_claims, cgroup_leaf, NAMESPACE_SEPARATOR, UNQUALIFIED_NAMESPACE};
pub(crate) use files::{ETC_FILES, ETC_FILES_DIR};
pub use user::{exec_user_chosen, exec_user_groups};

/// Every rule group: (file under `src/`, rule ids it implements), in application order.
pub(crate) const GROUPS: &[(&str, &[&str])] = &[
    ("rules/process.rs", process::IDS),
    ("rules/files.rs", files::IDS),
    ("rules/sysctls.rs", sysctls::IDS),
    ("rules/cgroups.rs", cgroups::IDS),
    ("rules/resources.rs", resources::IDS),
    ("rules/user.rs", user::IDS),
    ("rules/devices.rs", devices::IDS),
    ("rules/namespaces.rs", namespaces::IDS),
    ("rules/security.rs", security::IDS),
    ("rules/mounts.rs", mounts::IDS),
];

pub(crate) struct Ctx<'a> {
    pub(crate) doc: Doc,
    pub(crate) s: Settings,
    pub(crate) cfg: &'a DaemonConfig,
    pub(crate) host: &'a dyn Host,
    pub(crate) id: &'a str,
    pub(crate) ns: &'a str,
    pub(crate) origin: Origin,
    pub(crate) fill: bool,
    /// The runc cgroup driver a client or the admin chose (CG-2, `cgroup_driver::explicit`).
    pub(crate) runc_driver: Option<cgroup_driver::Setting>,
    pub(crate) privileged: bool,
    pub(crate) userns_remap: bool,
    pub(crate) applied: Vec<Applied>,
    pub(crate) actions: Vec<HostAction>,
    pub(crate) mountinfo: Option<Vec<MountInfo>>,
    /// GEN-3: Docker's `Config.Hostname` (also `HOSTNAME` and `/etc/hostname`).
    pub(crate) container_hostname: Option<String>,
    /// NS-10 result for `network=container:<X>` (GEN-3, NS-2 and MT-13 use it).
    pub(crate) net_donor: Option<SiblingTask>,
}

pub(crate) fn fill(spec: Value, inputs: &Inputs, host: &dyn Host) -> Result<Filled, SpecError> {
    if !spec.is_object() {
        return Err(SpecError::spec("(document)", "expected a JSON object"));
    }
    let doc = Doc(spec);
    let cfg = inputs.config;
    let origin = annotations::detect_origin(doc.annotations(), inputs.namespace, cfg);
    let mut policy = match origin {
        // Never touch CRI sandbox (pause) containers (§0.4, §2.1).
        Origin::Cri { sandbox: true } => Policy::Off,
        o => cfg.policy_for(o),
    };
    let settings = if policy == Policy::Off { Settings::default() } else { annotations::collect(doc.annotations(), origin, cfg)? };
    if let Some(p) = settings.policy {
        policy = p;
    }
    let runc_driver = cgroup_driver::explicit(inputs.runc_systemd_cgroup, cfg);
    let mut ctx = Ctx {
        doc,
        s: settings,
        cfg,
        host,
        id: inputs.id,
        ns: inputs.namespace,
        origin,
        fill: policy == Policy::Fill,
        runc_driver,
        privileged: false,
        userns_remap: false,
        applied: Vec::new(),
        actions: Vec::new(),
        mountinfo: None,
        container_hostname: None,
        net_donor: None,
    };
    if policy != Policy::Off {
        ctx.run()?;
    }
    // CG-2 (shim edge): runc's driver for the final path, also for specs left untouched.
    let driver = cgroup_driver::decide(origin, runc_driver, ctx.doc.cgroups_path(), host.systemd_running())?;
    let warnings = driver.warning.into_iter().collect();
    // CG-1: the final cgroup is this container's alone, whoever chose it.
    ctx.actions.extend(cgroups::cgroup_claims(ctx.doc.cgroups_path(), driver.systemd));
    Ok(Filled { spec: ctx.doc.0, applied: ctx.applied, origin, policy, systemd_cgroup: driver.systemd, warnings, actions: ctx.actions })
}

impl<'a> Ctx<'a> {
    pub(crate) fn note(&mut self, rule: &'static str, change: impl Into<String>) {
        self.applied.push(Applied { rule, change: change.into() });
    }

    pub(crate) fn ann_err(&self, short: &str, msg: impl Into<String>) -> SpecError {
        SpecError::annotation(self.s.key(short), msg)
    }

    pub(crate) fn host_err(rule: &'static str, source: HostError) -> SpecError {
        SpecError::Host { rule, source }
    }

    pub(crate) fn is_cri(&self) -> bool {
        matches!(self.origin, Origin::Cri { .. })
    }

    /// Rules that apply to the privileged container in both modes: set by the annotation, or
    /// (fill) by the producer's privileged spec.
    pub(crate) fn privileged_applies(&self) -> bool {
        self.privileged && (self.fill || self.s.privileged == Some(true))
    }

    /// The network mode in effect: the annotation, else what the spec expresses.
    pub(crate) fn effective_network(&self) -> String {
        if let Some(n) = &self.s.network {
            return n.clone();
        }
        match self.doc.ns_entry(ns::NETWORK) {
            None => "host".into(),
            Some(n) if n.path.is_some() => "container:".into(),
            Some(_) => "private".into(),
        }
    }

    fn run(&mut self) -> Result<(), SpecError> {
        self.validate()?;
        self.privileged = self.s.privileged == Some(true) || (self.s.privileged != Some(false) && self.spec_is_privileged());
        self.userns_remap = self.fill && !self.cfg.userns_remap.is_empty() && self.s.userns.as_deref() != Some("host");
        // §0.3 step 5 order.
        self.hostname()?; // GEN-3 (files.rs)
        self.common_env()?; // GEN-1
        self.init()?; // INIT-1
        if self.fill {
            self.default_sysctls()?; // SY-1
        }
        self.cgroups()?; // CG-1..3
        self.resources()?; // CG-4..7, CPU-1, PID-1
        self.sysctls()?; // SY-2, SY-3
        self.user()?; // US-1..3
        self.devices()?; // DV-1, DV-3, DV-5, DV-6
        self.rlimits()?; // RL-1
        self.namespaces()?; // NS-1..11, IPC namespace side
        self.capabilities()?; // CP-1..4
        self.seccomp()?; // SC-1..3 (after capabilities)
        self.mounts()?; // MT-*, IPC-2..8, RO-1, PV-1 (/sys)
        self.apparmor()?; // AA-1, AA-2
        self.oom_score()?; // OOM-1
        self.no_new_privileges()?; // NNP-1
        self.masked_paths()?; // MP-1..3 (after the privileged clearing)
        self.check_sysctls()?; // SY-5
        Ok(())
    }

    /// A ctr `--privileged` spec (containerd `WithPrivileged` + `WithAllDevicesAllowed`):
    /// CAP_SYS_ADMIN in bounding and an allow-all device rule.
    fn spec_is_privileged(&self) -> bool {
        let allow_all = self.doc.device_rules().iter().any(crate::oci::is_allow_all);
        (self.doc.bounding_caps().iter().any(|c| c == "CAP_SYS_ADMIN") && allow_all)
            || (self.origin == Origin::Nerdctl && self.doc.annotation(annotations::NERDCTL_PRIVILEGED) == Some("true"))
    }

    /// Cross-key validation Docker does at create time (NS-11, NS-5, CG-5 conflicts).
    fn validate(&mut self) -> Result<(), SpecError> {
        let s = &self.s;
        let remap = self.fill && !self.cfg.userns_remap.is_empty() && s.userns.as_deref() != Some("host");
        if remap {
            if s.privileged == Some(true) {
                return Err(self.ann_err("privileged", "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode"));
            }
            if s.network.as_deref() == Some("host") {
                return Err(self.ann_err("network", "cannot share the host's network namespace when user namespaces are enabled"));
            }
            if s.pid.as_deref() == Some("host") {
                return Err(self.ann_err("pid", "cannot share the host PID namespace when user namespaces are enabled"));
            }
        }
        if s.uts.as_deref() == Some("host") && self.doc.hostname().is_some() {
            return Err(self.ann_err("uts", "conflicting options: hostname and the UTS mode"));
        }
        if let Some(so) = &s.security_opt {
            if so.writable_cgroups.is_some() && remap {
                return Err(self.ann_err("security-opt", "option WritableCgroups conflicts with user namespaces and rootless mode"));
            }
            if !so.label.is_empty() && so.label.iter().any(|l| l != "disable") {
                for l in &so.label {
                    let (k, _) = l.split_once(':').unwrap_or((l, ""));
                    if !matches!(k, "user" | "role" | "type" | "level" | "filetype" | "disable") {
                        return Err(self.ann_err(
                            "security-opt",
                            format!("bad label option {}, valid options 'disable' or \n'user, role, level, type, filetype' followed by ':' and a value", go_quote(l)),
                        ));
                    }
                }
            }
        }
        if self.is_cri() {
            for k in ["cgroup-parent", "masked-paths", "readonly-paths"] {
                if self.s.source.contains_key(k) {
                    return Err(self.ann_err(k, "not supported for CRI containers (kubelet owns this setting)"));
                }
            }
        }
        if matches!(self.origin, Origin::Cri { .. } | Origin::Nerdctl) {
            if self.s.network.is_some() {
                return Err(self.ann_err("network", format!("not supported for {} containers: the client sets up networking", self.origin.producer())));
            }
            for k in ["hostname", "dns", "dns-search", "dns-option", "add-host"] {
                if self.s.source.contains_key(k) {
                    return Err(self.ann_err(k, format!("not supported for {} containers: the client writes /etc/hostname, /etc/hosts and /etc/resolv.conf", self.origin.producer())));
                }
            }
        }
        Ok(())
    }
}
