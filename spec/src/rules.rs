//! The rules, applied in moby's `createSpec` order (DOCKER-RULES §0.3 step 5). Each function
//! names its rule ids; `Ctx::note` records what changed in `Filled::applied`.
//!
//! Two modes (§0.4, §3.3 `policy`): `fill` turns containerd's default spec into Docker's (table
//! 4.10) *and* applies the annotations; `explicit` applies only what annotations ask for. Every
//! step is written so that running `fill` on its own output changes nothing (§2.5.4).

use crate::annotations::{self, Settings, CRI_SANDBOX_ID};
use crate::cgroup_driver;
use crate::config::{CgroupDriver, DaemonConfig, Origin, Policy, CG3_TEXT};
use crate::error::SpecError;
use crate::mountinfo::{self, MountInfo};
use crate::parse::{self, go_quote, DeviceRule, SeccompChoice};
use crate::passwd;
use crate::seccomp;
use crate::{Applied, Filled, Host, HostAction, HostDevice, Inputs, SiblingTask};
use serde_json::{json, Map, Value};

/// Docker's default `PATH` (GEN-1).
const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Mounts that are part of a base spec (Docker's table 4.3 or containerd's, table 4.10), by
/// (destination, type); anything else is a "user" mount (MT-1 shim edge).
fn is_default_mount(m: &Value) -> bool {
    let d = m.get("destination").and_then(Value::as_str).unwrap_or("");
    let t = m.get("type").and_then(Value::as_str).unwrap_or("");
    matches!(
        (d, t),
        ("/proc", "proc")
            | ("/dev", "tmpfs")
            | ("/dev/pts", "devpts")
            | ("/dev/shm", "tmpfs")
            | ("/dev/mqueue", "mqueue")
            | ("/sys", "sysfs")
            | ("/sys/fs/cgroup", "cgroup")
            | ("/run", "tmpfs")
    )
}

fn dest(m: &Value) -> &str {
    m.get("destination").and_then(Value::as_str).unwrap_or("")
}

fn opts(m: &Value) -> Vec<String> {
    m.get("options")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn is_bind(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("bind") || opts(m).iter().any(|o| o == "bind" || o == "rbind")
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Get (creating if absent or null) the object at `path` under `root`.
fn obj<'a>(root: &'a mut Value, path: &[&str]) -> Result<&'a mut Map<String, Value>, SpecError> {
    let mut cur = root;
    let mut walked = String::new();
    for p in path {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(p);
        let m = cur.as_object_mut().ok_or_else(|| SpecError::spec(&walked, "expected an object"))?;
        let e = m.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if e.is_null() {
            *e = Value::Object(Map::new());
        }
        if !e.is_object() {
            return Err(SpecError::spec(&walked, "expected an object"));
        }
        cur = e;
    }
    cur.as_object_mut().ok_or_else(|| SpecError::spec(&walked, "expected an object"))
}

/// Get (creating if absent or null) the array at `parent.key`.
fn arr<'a>(parent: &'a mut Map<String, Value>, key: &str, field: &str) -> Result<&'a mut Vec<Value>, SpecError> {
    let e = parent.entry(key.to_string()).or_insert_with(|| Value::Array(vec![]));
    if e.is_null() {
        *e = Value::Array(vec![]);
    }
    e.as_array_mut().ok_or_else(|| SpecError::spec(field, "expected an array"))
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    Some(cur)
}

/// Kind of namespace join, for Docker's error texts (NS-2..4).
#[derive(Clone, Copy)]
enum Join {
    Network,
    Ipc,
    Pid,
}

struct Ctx<'a> {
    spec: Value,
    s: Settings,
    cfg: &'a DaemonConfig,
    host: &'a dyn Host,
    id: &'a str,
    ns: &'a str,
    origin: Origin,
    fill: bool,
    /// The runc cgroup driver a client or the admin chose (CG-2, `cgroup_driver::explicit`).
    runc_driver: Option<cgroup_driver::Setting>,
    privileged: bool,
    userns_remap: bool,
    applied: Vec<Applied>,
    actions: Vec<HostAction>,
    mountinfo: Option<Vec<MountInfo>>,
}

pub(crate) fn fill(spec: Value, inputs: &Inputs, host: &dyn Host) -> Result<Filled, SpecError> {
    if !spec.is_object() {
        return Err(SpecError::spec("(document)", "expected a JSON object"));
    }
    let cfg = inputs.config;
    let ann = spec.get("annotations").and_then(Value::as_object);
    let origin = annotations::detect_origin(ann, inputs.namespace, cfg);
    let mut policy = match origin {
        // Never touch CRI sandbox (pause) containers (§0.4, §2.1).
        Origin::Cri { sandbox: true } => Policy::Off,
        o => cfg.policy_for(o),
    };
    let settings = if policy == Policy::Off { Settings::default() } else { annotations::collect(ann, origin, cfg)? };
    if let Some(p) = settings.policy {
        policy = p;
    }
    let runc_driver = cgroup_driver::explicit(inputs.runc_systemd_cgroup, cfg);
    let mut ctx = Ctx {
        spec,
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
    };
    if policy != Policy::Off {
        ctx.run()?;
    }
    // CG-2 (shim edge): runc's driver for the final path, also for specs left untouched.
    let path = get(&ctx.spec, &["linux", "cgroupsPath"]).and_then(Value::as_str).unwrap_or("");
    let driver = cgroup_driver::decide(origin, runc_driver, path, host.systemd_running())?;
    let warnings = driver.warning.into_iter().collect();
    Ok(Filled { spec: ctx.spec, applied: ctx.applied, origin, policy, systemd_cgroup: driver.systemd, warnings, actions: ctx.actions })
}

impl<'a> Ctx<'a> {
    fn note(&mut self, rule: &'static str, change: impl Into<String>) {
        self.applied.push(Applied { rule, change: change.into() });
    }

    fn ann_err(&self, short: &str, msg: impl Into<String>) -> SpecError {
        SpecError::annotation(self.s.key(short), msg)
    }

    fn host_err(rule: &'static str, source: crate::HostError) -> SpecError {
        SpecError::Host { rule, source }
    }

    fn is_cri(&self) -> bool {
        matches!(self.origin, Origin::Cri { .. })
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        get(&self.spec, &["annotations", key]).and_then(Value::as_str)
    }

    fn mounts(&self) -> Vec<Value> {
        self.spec.get("mounts").and_then(Value::as_array).cloned().unwrap_or_default()
    }

    fn set_mounts(&mut self, m: Vec<Value>) -> Result<(), SpecError> {
        let root = self.spec.as_object_mut().ok_or_else(|| SpecError::spec("(document)", "expected an object"))?;
        root.insert("mounts".into(), Value::Array(m));
        Ok(())
    }

    fn get_mountinfo(&mut self) -> Result<&[MountInfo], SpecError> {
        if self.mountinfo.is_none() {
            self.mountinfo = Some(self.host.mountinfo().map_err(|e| Self::host_err("MT-7", e))?);
        }
        Ok(self.mountinfo.as_deref().unwrap_or(&[]))
    }

    // ---- namespaces helpers (NS-8) ----

    fn namespaces(&self) -> Vec<Value> {
        get(&self.spec, &["linux", "namespaces"]).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    fn ns_entry(&self, t: &str) -> Option<Value> {
        self.namespaces().into_iter().find(|n| n.get("type").and_then(Value::as_str) == Some(t))
    }

    /// `setNamespace`: replace the entry of that type in place, or append.
    fn set_ns(&mut self, t: &str, path: Option<&str>) -> Result<bool, SpecError> {
        let mut e = json!({"type": t});
        if let Some(p) = path {
            e["path"] = p.into();
        }
        let linux = obj(&mut self.spec, &["linux"])?;
        let list = arr(linux, "namespaces", "linux.namespaces")?;
        match list.iter_mut().find(|n| n.get("type").and_then(Value::as_str) == Some(t)) {
            Some(n) if *n == e => Ok(false),
            Some(n) => {
                *n = e;
                Ok(true)
            }
            None => {
                list.push(e);
                Ok(true)
            }
        }
    }

    /// `RemoveNamespace`: delete the first of that type.
    fn remove_ns(&mut self, t: &str) -> Result<bool, SpecError> {
        let linux = obj(&mut self.spec, &["linux"])?;
        let list = arr(linux, "namespaces", "linux.namespaces")?;
        match list.iter().position(|n| n.get("type").and_then(Value::as_str) == Some(t)) {
            Some(i) => {
                list.remove(i);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn effective_network(&self) -> String {
        if let Some(n) = &self.s.network {
            return n.clone();
        }
        match self.ns_entry("network") {
            None => "host".into(),
            Some(n) if n.get("path").is_some() => "container:".into(),
            Some(_) => "private".into(),
        }
    }

    fn run(&mut self) -> Result<(), SpecError> {
        self.validate()?;
        self.privileged = self.s.privileged == Some(true) || (self.s.privileged != Some(false) && self.spec_is_privileged());
        self.userns_remap = self.fill && !self.cfg.userns_remap.is_empty() && self.s.userns.as_deref() != Some("host");
        // §0.3 step 5 order.
        self.common_options()?; // GEN-1, GEN-3, INIT-1, SY-1
        self.cgroups()?; // CG-1..3
        self.resources()?; // CG-4..7, CPU-1, PID-1
        self.sysctls()?; // SY-2, SY-3
        self.user()?; // US-1..3
        self.devices()?; // DV-1, DV-3, DV-5, DV-6
        self.rlimits()?; // RL-1
        self.namespaces_rules()?; // NS-1..11, IPC namespace side
        self.capabilities()?; // CP-1..4
        self.seccomp()?; // SC-1..3 (after capabilities)
        self.mounts_rules()?; // MT-*, IPC-2..8, RO-1, PV-1 (/sys)
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
        let caps = str_list(get(&self.spec, &["process", "capabilities", "bounding"]));
        let allow_all = get(&self.spec, &["linux", "resources", "devices"])
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(is_allow_all));
        (caps.iter().any(|c| c == "CAP_SYS_ADMIN") && allow_all)
            || (self.origin == Origin::Nerdctl && self.annotation("nerdctl/privileged") == Some("true"))
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
        if s.uts.as_deref() == Some("host") && get(&self.spec, &["hostname"]).and_then(Value::as_str).is_some_and(|h| !h.is_empty()) {
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
        if matches!(self.origin, Origin::Cri { .. } | Origin::Nerdctl) && self.s.network.is_some() {
            return Err(self.ann_err("network", format!("not supported for {} containers: the client sets up networking", self.origin.producer())));
        }
        Ok(())
    }

    // ---- withCommonOptions ----

    fn common_options(&mut self) -> Result<(), SpecError> {
        if self.fill {
            // GEN-3: default hostname = first 12 chars of the ID unless the UTS or network
            // namespace is the host's (then the container sees the host name).
            let uts_host = self.s.uts.as_deref() == Some("host") || (self.s.uts.is_none() && self.ns_entry("uts").is_none());
            let has_host = get(&self.spec, &["hostname"]).and_then(Value::as_str).is_some_and(|h| !h.is_empty());
            if !has_host && !uts_host && self.effective_network() != "host" {
                let h: String = self.id.chars().take(12).collect();
                obj(&mut self.spec, &[])?.insert("hostname".into(), h.clone().into());
                self.note("GEN-3", format!("hostname {h}"));
            }
            // GEN-1: PATH and HOSTNAME when absent.
            let hostname = get(&self.spec, &["hostname"]).and_then(Value::as_str).unwrap_or("").to_string();
            let process = obj(&mut self.spec, &["process"])?;
            let env = arr(process, "env", "process.env")?;
            let has = |env: &Vec<Value>, k: &str| env.iter().any(|e| e.as_str().is_some_and(|s| s.starts_with(k)));
            let mut added = Vec::new();
            if !has(env, "PATH=") {
                env.insert(0, DEFAULT_PATH_ENV.into());
                added.push("PATH");
            }
            if !hostname.is_empty() && !has(env, "HOSTNAME=") {
                let at = usize::from(env.first().and_then(Value::as_str).is_some_and(|s| s.starts_with("PATH=")));
                env.insert(at, format!("HOSTNAME={hostname}").into());
                added.push("HOSTNAME");
            }
            if !added.is_empty() {
                self.note("GEN-1", format!("env added {}", added.join(", ")));
            }
        }
        self.init()?;
        if self.fill {
            self.default_sysctls()?;
        }
        Ok(())
    }

    /// INIT-1: docker-init (tini) as PID 1 when the PID namespace is private.
    fn init(&mut self) -> Result<(), SpecError> {
        let want = self.s.init.unwrap_or(self.fill && self.cfg.init);
        if !want {
            return Ok(());
        }
        let pid_private = match self.s.pid.as_deref() {
            Some("host") => false,
            Some(p) if p.starts_with("container:") => false,
            _ => self.ns_entry("pid").is_some_and(|n| n.get("path").is_none()),
        };
        if !pid_private {
            return Ok(());
        }
        // Double-apply guard: args[0] is already a bind-mounted /sbin/* binary (ours or nerdctl's tini).
        let arg0 = get(&self.spec, &["process", "args", "0"]).or_else(|| get(&self.spec, &["process", "args"]).and_then(|a| a.get(0)));
        let arg0 = arg0.and_then(Value::as_str).unwrap_or("").to_string();
        if arg0.starts_with("/sbin/") && self.mounts().iter().any(|m| dest(m) == arg0 && is_bind(m)) {
            return Ok(());
        }
        let path = self.init_path()?;
        let process = obj(&mut self.spec, &["process"])?;
        let args = arr(process, "args", "process.args")?;
        args.splice(0..0, [Value::from("/sbin/docker-init"), Value::from("--")]);
        let mut mounts = self.mounts();
        mounts.retain(|m| dest(m) != "/sbin/docker-init");
        // Appended to the base list (a user mount at the same path still wins in Docker; here
        // the incoming spec's mounts are already final, so it simply goes last).
        mounts.push(json!({"destination": "/sbin/docker-init", "type": "bind", "source": path, "options": ["bind", "ro"]}));
        self.set_mounts(mounts)?;
        self.note("INIT-1", format!("init {path} as /sbin/docker-init"));
        Ok(())
    }

    fn init_path(&self) -> Result<String, SpecError> {
        if !self.cfg.init_path.is_empty() {
            return Ok(self.cfg.init_path.clone());
        }
        let name = self.cfg.default_init.as_str();
        if name.starts_with('/') {
            return Ok(name.to_string());
        }
        let mut dirs = vec!["/usr/local/libexec/docker", "/usr/libexec/docker", "/usr/local/lib/docker", "/usr/lib/docker"];
        if name.starts_with("docker-") {
            dirs.extend(["/usr/local/libexec", "/usr/libexec"]);
        }
        dirs.extend(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
        for d in dirs {
            let p = format!("{d}/{name}");
            if self.host.path_exists(&p) {
                return Ok(p);
            }
        }
        let msg = format!("exec: {}: executable file not found in $PATH", go_quote(name));
        Err(if self.s.init.is_some() { self.ann_err("init", msg) } else { SpecError::config("default-init", msg) })
    }

    /// SY-1: Docker's default network sysctls for a private network namespace.
    fn default_sysctls(&mut self) -> Result<(), SpecError> {
        let net = self.effective_network();
        if net == "host" || net.starts_with("container:") {
            return Ok(());
        }
        let mut add = Vec::new();
        if !(self.userns_remap || self.host.in_user_namespace()) && self.host.path_exists("/proc/sys/net/ipv4/ping_group_range") {
            add.push(("net.ipv4.ping_group_range", "0 2147483647"));
        }
        if self.host.path_exists("/proc/sys/net/ipv4/ip_unprivileged_port_start") {
            add.push(("net.ipv4.ip_unprivileged_port_start", "0"));
        }
        let sysctl = obj(&mut self.spec, &["linux", "sysctl"])?;
        let mut done = Vec::new();
        for (k, v) in add {
            if !sysctl.contains_key(k) {
                sysctl.insert(k.into(), v.into());
                done.push(k);
            }
        }
        if !done.is_empty() {
            self.note("SY-1", format!("sysctls {}", done.join(", ")));
        }
        Ok(())
    }

    // ---- withCgroups ----

    /// CG-2: the driver CG-1 writes the path for. runc's driver, where someone chose it, wins so
    /// that the path and `--systemd-cgroup` agree; CRI's unset means cgroupfs, as in
    /// `cgroup_driver::decide`; then `exec-opts`; then Docker's auto rule.
    fn cgroup_driver(&self) -> CgroupDriver {
        let systemd = match (self.runc_driver, self.origin) {
            (Some(s), _) => s.systemd,
            (None, Origin::Cri { .. }) => false,
            (None, _) => match self.cfg.cgroup_driver {
                Some(d) => d == CgroupDriver::Systemd,
                // systemd iff cgroup v2 and booted with systemd.
                None => self.host.cgroup_v2() && self.host.systemd_running(),
            },
        };
        if systemd {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        }
    }

    /// CG-1, CG-2, CG-3: `linux.cgroupsPath`.
    fn cgroups(&mut self) -> Result<(), SpecError> {
        let current = get(&self.spec, &["linux", "cgroupsPath"]).and_then(Value::as_str).unwrap_or("").to_string();
        let containerd_default = current.is_empty() || current == format!("/{}/{}", self.ns, self.id);
        if self.s.cgroup_parent.is_none() && !(self.fill && containerd_default) {
            return Ok(());
        }
        let driver = self.cgroup_driver();
        let (parent, from_ann) = match &self.s.cgroup_parent {
            Some(p) if !p.is_empty() => (p.clone(), true),
            _ if !self.cfg.cgroup_parent.is_empty() => (self.cfg.cgroup_parent.clone(), false),
            _ => (
                match driver {
                    CgroupDriver::Systemd => "system.slice".to_string(),
                    CgroupDriver::Cgroupfs => format!("/{}", self.cfg.cgroup_scope_prefix),
                },
                false,
            ),
        };
        if driver == CgroupDriver::Systemd && !crate::config::valid_slice(&parent) {
            return Err(if from_ann { self.ann_err("cgroup-parent", CG3_TEXT) } else { SpecError::config("cgroup-parent", CG3_TEXT) });
        }
        if driver == CgroupDriver::Systemd && self.runc_driver.is_none() && !self.host.systemd_running() {
            // Only exec-opts gets here (the auto rule needs systemd; an explicit runc driver is
            // checked with the final path). dockerd would leave it to runc to fail; say why.
            return Err(SpecError::config("exec-opts", "native.cgroupdriver=systemd, but systemd is not running on this host: use native.cgroupdriver=cgroupfs (or no exec-opts) here"));
        }
        let path = match driver {
            CgroupDriver::Systemd => format!("{parent}:{}:{}", self.cfg.cgroup_scope_prefix, self.id),
            CgroupDriver::Cgroupfs => parse::join_path(&parent, self.id),
        };
        if driver == CgroupDriver::Cgroupfs {
            self.refuse_busy_cgroup(&path)?;
        }
        if path != current {
            obj(&mut self.spec, &["linux"])?.insert("cgroupsPath".into(), path.clone().into());
            self.note("CG-1", format!("cgroupsPath {path}"));
        }
        Ok(())
    }

    /// CG-1 guard (not Docker's: dockerd has one namespace and 64-hex ids). `/docker/<id>` drops
    /// containerd's namespace from the path, so the same id in two namespaces would silently
    /// share one cgroup (merged limits, mixed stats, `kill --all` reaching the other container).
    /// Refuse a cgroup that already holds processes instead.
    fn refuse_busy_cgroup(&self, path: &str) -> Result<(), SpecError> {
        let Some(rel) = path.strip_prefix('/') else {
            return Ok(()); // relative: runc resolves it against its own cgroup
        };
        let procs = if self.host.cgroup_v2() {
            format!("/sys/fs/cgroup/{rel}/cgroup.procs")
        } else {
            format!("/sys/fs/cgroup/pids/{rel}/cgroup.procs")
        };
        let read = |p: &str| self.host.read_host_file(p).map_err(|source| SpecError::Host { rule: "CG-1", source });
        let procs = read(&procs)?.unwrap_or_default();
        // Our own running init in there means this is our cgroup (dry-run of a live bundle).
        let own = read(&format!("{}/init.pid", self.host.bundle_dir().trim_end_matches('/')))?;
        let own = own.as_deref().map(str::trim).filter(|p| !p.is_empty());
        let busy = !procs.trim().is_empty() && !own.is_some_and(|pid| procs.lines().any(|l| l.trim() == pid));
        if busy {
            return Err(SpecError::Rule {
                rule: "CG-1",
                msg: format!(
                    "cgroup {path:?} already holds the processes of another container (the same id in another containerd namespace?): choose another id, or set cgroup-parent (annotation {}cgroup-parent or config cgroup-parent)",
                    self.cfg.annotation_prefix
                ),
            });
        }
        Ok(())
    }

    // ---- WithResources ----

    fn resources(&mut self) -> Result<(), SpecError> {
        let s = self.s.clone();
        let v2 = self.host.cgroup_v2();
        let e = |k: &str, m: &str| SpecError::annotation(s.key(k), m);
        // CG-4 validation (daemon_unix.go verifyPlatformContainerResources).
        let memory = s.memory.unwrap_or(0);
        if memory > 0 && memory < 6291456 {
            return Err(e("memory", "Minimum memory limit allowed is 6MB"));
        }
        let mut swap = s.memory_swap.unwrap_or(0);
        if swap > 0 && memory == 0 {
            return Err(e("memory-swap", "You should always set the Memory limit when using Memoryswap limit, see usage"));
        }
        if swap > 0 && swap < memory {
            return Err(e("memory-swap", "Minimum memoryswap limit should be larger than memory limit, see usage"));
        }
        let reservation = s.memory_reservation.unwrap_or(0);
        if reservation > 0 && reservation < 6291456 {
            return Err(e("memory-reservation", "Minimum memory reservation allowed is 6MB"));
        }
        if memory > 0 && reservation > 0 && memory < reservation {
            return Err(e("memory-reservation", "Minimum memory limit can not be less than memory reservation limit, see usage"));
        }
        if memory > 0 && swap == 0 {
            swap = memory * 2; // adaptContainerSettings
        }
        // CG-5 / CPU-1 validation.
        if let Some(sh) = s.cpu_shares.filter(|x| *x < 0) {
            return Err(e("cpu-shares", &format!("invalid CPU shares ({sh}): value must be a positive integer")));
        }
        if let Some(p) = s.cpu_period.filter(|p| *p != 0 && !(1000..=1_000_000).contains(p)) {
            let _ = p;
            return Err(e("cpu-period", "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
        }
        if s.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
            return Err(e("cpu-quota", "CPU cfs quota can not be less than 1ms (i.e. 1000)"));
        }
        if let Some(n) = s.nano_cpus.filter(|n| *n != 0) {
            if s.cpu_period.unwrap_or(0) > 0 {
                return Err(e("cpus", "Conflicting options: Nano CPUs and CPU Period cannot both be set"));
            }
            if s.cpu_quota.unwrap_or(0) > 0 {
                return Err(e("cpus", "Conflicting options: Nano CPUs and CPU Quota cannot both be set"));
            }
            let ncpu = self.host.num_cpus().max(1) as i64;
            if n < 0 || n > ncpu * 1_000_000_000 {
                return Err(e("cpus", &format!("range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")));
            }
        }
        let avail = self.host.cpuset_available();
        for (k, val, what, plural) in [("cpuset-cpus", &s.cpuset_cpus, "cpus", "CPUs"), ("cpuset-mems", &s.cpuset_mems, "mems", "memory nodes")] {
            let Some(val) = val else { continue };
            let req = parse::parse_cpuset(val).map_err(|m| e(k, &format!("Invalid value {val} for cpuset {what}: {m}")))?;
            if let Some((cpus, mems)) = &avail {
                let have_s = if what == "cpus" { cpus } else { mems };
                let have = parse::parse_cpuset(have_s).unwrap_or_default();
                if req.iter().any(|c| !have.contains(c)) {
                    return Err(e(k, &format!("Requested {plural} are not available - requested {val}, available: {have_s}")));
                }
            }
        }
        let rt_p = s.cpu_rt_period.unwrap_or(0);
        let rt_r = s.cpu_rt_runtime.unwrap_or(0);
        if rt_p != 0 || rt_r != 0 {
            let k = if rt_r != 0 { "cpu-rt-runtime" } else { "cpu-rt-period" };
            if v2 || !self.host.path_exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us") {
                return Err(e(k, "kernel does not support CPU real-time scheduler"));
            }
            if rt_p != 0 && rt_r > rt_p {
                return Err(e("cpu-rt-runtime", "cpu real-time runtime cannot be higher than cpu real-time period"));
            }
        }
        if let Some(w) = s.blkio_weight.filter(|w| *w != 0 && !(10..=1000).contains(w)) {
            let _ = w;
            return Err(e("blkio-weight", "Range of blkio weight is from 10 to 1000"));
        }

        // Output, merged into the existing object (CG-9: the producer may have set more).
        let fill = self.fill;
        let res = obj(&mut self.spec, &["linux", "resources"])?;
        let mut changes: Vec<String> = Vec::new();
        let set = |m: &mut Map<String, Value>, k: &str, v: Value, changes: &mut Vec<String>| {
            if m.get(k) != Some(&v) {
                changes.push(format!("{k}={v}"));
                m.insert(k.into(), v);
            }
        };
        {
            let mem_req = s.memory.is_some() || s.memory_reservation.is_some() || s.memory_swap.is_some() || s.memory_swappiness.is_some() || s.oom_kill_disable.is_some();
            if mem_req || (fill && !v2) {
                let m = match res.entry("memory").or_insert_with(|| json!({})) {
                    Value::Object(m) => m,
                    other => {
                        *other = json!({});
                        other.as_object_mut().ok_or_else(|| SpecError::spec("linux.resources.memory", "expected an object"))?
                    }
                };
                if memory > 0 {
                    set(m, "limit", memory.into(), &mut changes);
                }
                if reservation > 0 {
                    set(m, "reservation", reservation.into(), &mut changes);
                }
                if s.memory_swap == Some(-1) {
                    set(m, "swap", (-1).into(), &mut changes);
                } else if swap > 0 {
                    set(m, "swap", swap.into(), &mut changes);
                }
                // CG-7: cgroup v2 has no swappiness nor OOM-killer switch; Docker discards them.
                if !v2 {
                    if let Some(sw) = s.memory_swappiness.filter(|x| *x != -1) {
                        set(m, "swappiness", sw.into(), &mut changes);
                    }
                    if let Some(d) = s.oom_kill_disable {
                        set(m, "disableOOMKiller", d.into(), &mut changes);
                    } else if fill && !m.contains_key("disableOOMKiller") {
                        // CG-4: OomKillDisable defaults to &false, so v1 specs carry it.
                        set(m, "disableOOMKiller", false.into(), &mut changes);
                    }
                }
                if m.is_empty() {
                    res.remove("memory");
                }
            }
            let cpu_req = s.nano_cpus.is_some() || s.cpu_shares.is_some() || s.cpu_period.is_some() || s.cpu_quota.is_some() || s.cpuset_cpus.is_some() || s.cpuset_mems.is_some() || rt_p != 0 || rt_r != 0;
            if cpu_req {
                let c = obj_in(res, "cpu", "linux.resources.cpu")?;
                if let Some(n) = s.nano_cpus.filter(|n| *n > 0) {
                    // CPU-1: period 100ms, quota = NanoCPUs * period / 1e9 (integer division).
                    set(c, "period", 100000u64.into(), &mut changes);
                    set(c, "quota", (n * 100000 / 1_000_000_000).into(), &mut changes);
                }
                if let Some(sh) = s.cpu_shares.filter(|x| *x != 0) {
                    set(c, "shares", sh.into(), &mut changes);
                }
                if let Some(x) = &s.cpuset_cpus {
                    set(c, "cpus", x.clone().into(), &mut changes);
                }
                if let Some(x) = &s.cpuset_mems {
                    set(c, "mems", x.clone().into(), &mut changes);
                }
                if let Some(p) = s.cpu_period.filter(|x| *x != 0) {
                    set(c, "period", p.into(), &mut changes);
                }
                if let Some(q) = s.cpu_quota.filter(|x| *x != 0) {
                    set(c, "quota", q.into(), &mut changes);
                }
                if rt_p != 0 {
                    set(c, "realtimePeriod", rt_p.into(), &mut changes);
                }
                if rt_r != 0 {
                    set(c, "realtimeRuntime", rt_r.into(), &mut changes);
                }
            }
            if let Some(p) = s.pids_limit {
                // PID-1: <= 0 means "no limit" (the create route turns it into nil).
                if p > 0 {
                    let pm = obj_in(res, "pids", "linux.resources.pids")?;
                    set(pm, "limit", p.into(), &mut changes);
                } else if res.remove("pids").is_some() {
                    changes.push("pids removed".into());
                }
            }
            // CG-6: blockIO is always present in a Docker spec.
            if s.blkio_weight.is_some() || fill {
                let b = obj_in(res, "blockIO", "linux.resources.blockIO")?;
                if let Some(w) = s.blkio_weight.filter(|w| *w != 0) {
                    set(b, "weight", w.into(), &mut changes);
                }
            }
        }
        if v2 && (s.memory_swappiness.is_some() || s.oom_kill_disable.is_some()) {
            self.note("CG-7", "cgroup v2: memory-swappiness / oom-kill-disable discarded");
        }
        if !changes.is_empty() {
            self.note("CG-4", format!("resources {}", changes.join(", ")));
        }
        Ok(())
    }

    // ---- WithSysctls ----

    fn sysctls(&mut self) -> Result<(), SpecError> {
        let mut kv: Vec<(String, String)> = Vec::new();
        if let Some(d) = &self.s.domainname {
            kv.push(("kernel.domainname".into(), d.clone())); // SY-2
        }
        if let Some(l) = &self.s.sysctls {
            kv.extend(l.iter().cloned()); // SY-3: user sysctls win
        }
        if kv.is_empty() {
            return Ok(());
        }
        let m = obj(&mut self.spec, &["linux", "sysctl"])?;
        let mut changed = Vec::new();
        for (k, v) in kv {
            if m.get(&k).and_then(Value::as_str) != Some(v.as_str()) {
                changed.push(format!("{k}={v}"));
                m.insert(k, v.into());
            }
        }
        if !changed.is_empty() {
            self.note("SY-3", changed.join(", "));
        }
        Ok(())
    }

    // ---- WithUser ----

    fn rootfs_text(&self, path: &str) -> Result<Option<String>, SpecError> {
        let b = self.host.rootfs_file(path).map_err(|e| Self::host_err("US-1", e))?;
        match b {
            None => Ok(None),
            Some(b) if b.len() > 10 * 1024 * 1024 => Err(self.ann_err("user", format!("{path}: file exceeds 10485760 bytes"))),
            Some(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        }
    }

    /// US-1, US-2, US-3.
    fn user(&mut self) -> Result<(), SpecError> {
        if self.s.user.is_none() && self.s.group_add.is_none() {
            return Ok(());
        }
        let group = self.rootfs_text("/etc/group")?;
        let (uid, gid, mut gids) = if let Some(u) = self.s.user.clone() {
            let passwd = self.rootfs_text("/etc/passwd")?;
            let eu = passwd::resolve_user(&u, passwd.as_deref(), group.as_deref()).map_err(|m| self.ann_err("user", m))?;
            // US-2: primary gid first, then supplementary groups.
            let mut g = vec![eu.gid];
            g.extend(eu.sgids);
            (eu.uid, eu.gid, g)
        } else {
            let u = get(&self.spec, &["process", "user"]);
            let uid = u.and_then(|u| u.get("uid")).and_then(Value::as_i64).unwrap_or(0);
            let gid = u.and_then(|u| u.get("gid")).and_then(Value::as_i64).unwrap_or(0);
            let mut g: Vec<i64> = u.and_then(|u| u.get("additionalGids")).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
            if !g.contains(&gid) {
                g.insert(0, gid);
            }
            (uid, gid, g)
        };
        if let Some(ga) = self.s.group_add.clone() {
            let extra = passwd::additional_groups(&ga, group.as_deref()).map_err(|m| self.ann_err("group-add", m))?;
            for x in extra {
                // Re-applying must not duplicate (idempotence); Docker's first pass cannot duplicate either.
                if !gids.contains(&x) || self.s.user.is_some() && !gids[1..].contains(&x) {
                    gids.push(x);
                }
            }
        }
        let process = obj(&mut self.spec, &["process"])?;
        let user = obj_in(process, "user", "process.user")?;
        let new = json!({"uid": uid, "gid": gid, "additionalGids": gids});
        let mut changed = false;
        for k in ["uid", "gid", "additionalGids"] {
            if user.get(k) != new.get(k) {
                user.insert(k.into(), new[k].clone());
                changed = true;
            }
        }
        if changed {
            self.note("US-1", format!("user {uid}:{gid} additionalGids {}", new["additionalGids"]));
        }
        Ok(())
    }

    // ---- WithDevices ----

    fn device_json(d: &HostDevice, container_path: &str) -> Value {
        json!({"path": container_path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
               "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid})
    }

    fn device_rule(d: &HostDevice, access: &str) -> Value {
        json!({"allow": true, "type": d.kind.to_string(), "major": d.major, "minor": d.minor, "access": access})
    }

    /// DV-1, DV-3, DV-5, DV-6.
    fn devices(&mut self) -> Result<(), SpecError> {
        let mappings = self.s.devices.clone().unwrap_or_default();
        let rules = self.s.device_cgroup_rules.clone().unwrap_or_default();
        let priv_new = self.s.privileged == Some(true);
        if !self.fill && mappings.is_empty() && rules.is_empty() && !priv_new {
            return Ok(());
        }
        let linux = obj(&mut self.spec, &["linux"])?;
        let mut devs: Vec<Value> = arr(linux, "devices", "linux.devices")?.clone();
        let existing_rules: Vec<Value> = get(&self.spec, &["linux", "resources", "devices"]).and_then(Value::as_array).cloned().unwrap_or_default();
        let mut cg: Vec<Value> = if self.fill {
            // DV-1: Docker's base rules replace containerd's; keep rules that belong to devices
            // the producer mapped (ctr --device) so they keep working.
            let mut base = docker_base_device_rules();
            for r in &existing_rules {
                let matches_dev = devs.iter().any(|d| {
                    r.get("allow") == Some(&Value::Bool(true)) && r.get("type") == d.get("type") && r.get("major") == d.get("major") && r.get("minor") == d.get("minor")
                });
                if matches_dev && !base.contains(r) {
                    base.push(r.clone());
                }
            }
            base
        } else {
            existing_rules.clone()
        };
        let mut notes = Vec::new();
        if self.privileged {
            // DV-6: every host device, then allow-all.
            if priv_new || self.fill {
                let all = self.host.host_devices("/dev").map_err(|e| Self::host_err("DV-6", e))?;
                let mut n = 0;
                for d in &all {
                    if !devs.iter().any(|x| x.get("path").and_then(Value::as_str) == Some(d.path.as_str())) {
                        devs.push(Self::device_json(d, &d.path));
                        n += 1;
                    }
                }
                if n > 0 {
                    notes.push(format!("{n} host devices"));
                }
            }
            let allow_all = json!({"allow": true, "access": "rwm"});
            if !cg.iter().any(is_allow_all) {
                cg.push(allow_all);
                notes.push("allow a *:* rwm".into());
            }
        }
        for m in &mappings {
            let found = self.devices_from_path(m)?;
            for (d, cpath) in found {
                if devs.iter().any(|x| x.get("path").and_then(Value::as_str) == Some(cpath.as_str())) {
                    continue; // DV-6 "already exists" / idempotence guard
                }
                devs.push(Self::device_json(&d, &cpath));
                let access = if self.privileged { "rwm" } else { m.cgroup_permissions.as_str() };
                let r = Self::device_rule(&d, access);
                if !cg.contains(&r) {
                    cg.push(r);
                }
                notes.push(format!("device {cpath}"));
            }
        }
        if !self.privileged {
            for r in &rules {
                let v = r.to_oci();
                if !cg.contains(&v) {
                    cg.push(v);
                    notes.push(format!("rule {} {:?}:{:?} {}", r.kind, r.major, r.minor, r.access));
                }
            }
        }
        let linux = obj(&mut self.spec, &["linux"])?;
        linux.insert("devices".into(), Value::Array(devs));
        let res = obj(&mut self.spec, &["linux", "resources"])?;
        let changed_rules = cg != existing_rules;
        res.insert("devices".into(), Value::Array(cg));
        if changed_rules && self.fill {
            notes.insert(0, "Docker base device rules".into());
        }
        if !notes.is_empty() {
            self.note("DV-1", notes.join(", "));
        }
        Ok(())
    }

    /// moby `DevicesFromPath` (DV-3): one device node, or every device under a directory.
    fn devices_from_path(&self, m: &parse::DeviceMapping) -> Result<Vec<(HostDevice, String)>, SpecError> {
        let err = |msg: String| self.ann_err("devices", format!("error gathering device information while adding custom device {}: {msg}", go_quote(&m.path_on_host)));
        match self.host.host_device(&m.path_on_host) {
            Ok(Some(d)) => Ok(vec![(d, m.path_in_container.clone())]),
            Ok(None) => {
                let list = self.host.host_devices(&m.path_on_host).map_err(|e| err(e.to_string()))?;
                if list.is_empty() {
                    return Err(err("not a device node".into()));
                }
                Ok(list
                    .into_iter()
                    .map(|d| {
                        let cp = d.path.replacen(&m.path_on_host, &m.path_in_container, 1);
                        (d, cp)
                    })
                    .collect())
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    // ---- withRlimits ----

    /// RL-1: in fill mode `rlimits` is replaced (container ulimits + daemon defaults not
    /// overridden; none → absent); in explicit mode annotation ulimits are merged by type.
    fn rlimits(&mut self) -> Result<(), SpecError> {
        let ann = self.s.ulimits.clone();
        if !self.fill && ann.is_none() {
            return Ok(());
        }
        let existing: Vec<Value> = get(&self.spec, &["process", "rlimits"]).and_then(Value::as_array).cloned().unwrap_or_default();
        let mut out: Vec<Value> = Vec::new();
        if self.fill {
            let mine = ann.clone().unwrap_or_default();
            for u in &mine {
                out.push(u.to_oci());
            }
            for d in &self.cfg.default_ulimits {
                if !mine.iter().any(|u| u.name == d.name) {
                    out.push(d.to_oci());
                }
            }
        } else {
            out = existing.clone();
            for u in ann.unwrap_or_default() {
                let v = u.to_oci();
                match out.iter_mut().find(|r| r.get("type") == v.get("type")) {
                    Some(r) => *r = v,
                    None => out.push(v),
                }
            }
        }
        if out == existing && (!out.is_empty() || get(&self.spec, &["process", "rlimits"]).is_none()) {
            return Ok(());
        }
        let process = obj(&mut self.spec, &["process"])?;
        if out.is_empty() {
            process.remove("rlimits");
            self.note("RL-1", "rlimits removed (inherited from the runtime, as Docker)");
        } else {
            let names: Vec<String> = out.iter().filter_map(|r| r.get("type").and_then(Value::as_str).map(str::to_string)).collect();
            process.insert("rlimits".into(), Value::Array(out));
            self.note("RL-1", format!("rlimits {}", names.join(", ")));
        }
        Ok(())
    }

    // ---- WithNamespaces ----

    /// NS-10: resolve `container:<name|id>` to a running sibling of the same namespace.
    fn resolve(&self, short: &str, target: &str, kind: Join) -> Result<SiblingTask, SpecError> {
        let e = |m: String| self.ann_err(short, m);
        if target.is_empty() {
            return Err(e(match kind {
                Join::Network => "joining network namespace of container: invalid name or ID supplied: \"\"".into(),
                _ => "invalid name or ID supplied: \"\"".into(),
            }));
        }
        let what = match kind {
            Join::Network => "network",
            Join::Ipc => "IPC",
            Join::Pid => "PID",
        };
        let t = match self.host.sibling_task(target) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(e(match kind {
                    Join::Network => format!("joining network namespace of container: No such container: {target}"),
                    _ => format!("No such container: {target}"),
                }))
            }
            Err(crate::HostError::AmbiguousPrefix(p)) => return Err(e(format!("multiple IDs found with provided prefix: {p}"))),
            Err(err) => return Err(Self::host_err("NS-10", err)),
        };
        if t.id == self.id {
            return Err(e(format!("cannot join own {what} namespace")));
        }
        // CRI: never across sandboxes (cross-pod joins are a privilege escalation).
        if self.is_cri() && t.sandbox_id.as_deref() != self.annotation(CRI_SANDBOX_ID) {
            return Err(e(format!("No such container: {target}")));
        }
        if !t.running || t.pid <= 0 {
            return Err(e(match kind {
                Join::Network => format!("cannot join network namespace of a non running container: container {} is exited", t.id),
                Join::Ipc => format!("failed to join IPC namespace: container {} is not running", t.id),
                Join::Pid => format!("failed to join PID namespace: container {} is not running", t.id),
            }));
        }
        Ok(t)
    }

    fn join(&mut self, short: &'static str, nstype: &str, t: &SiblingTask, rule: &'static str) -> Result<(), SpecError> {
        // OCI namespace type → /proc/<pid>/ns entry name.
        let proc_name = match nstype {
            "network" => "net",
            "mount" => "mnt",
            other => other,
        };
        let p = format!("/proc/{}/ns/{}", t.pid, proc_name);
        if self.set_ns(nstype, Some(&p))? {
            self.note(rule, format!("join {nstype} namespace of {} ({p})", t.id));
        }
        // NS-2..4: with a user namespace, also join the donor's (moby#46210: last join wins).
        if self.ns_entry("user").is_some() {
            let up = format!("/proc/{}/ns/user", t.pid);
            self.set_ns("user", Some(&up))?;
        }
        let _ = short;
        Ok(())
    }

    fn namespaces_rules(&mut self) -> Result<(), SpecError> {
        self.userns()?; // NS-1 (first: joins below also join the user ns)
        // NS-2 network (ctr-origin only; validate() refused it for nerdctl/CRI).
        if let Some(net) = self.s.network.clone() {
            let has_path = self.ns_entry("network").is_some_and(|n| n.get("path").is_some());
            match net.as_str() {
                "host" => {
                    if self.remove_ns("network")? {
                        self.note("NS-2", "network namespace removed (host)");
                    }
                }
                n if n.starts_with("container:") => {
                    let t = self.resolve("network", &n[10..], Join::Network)?;
                    self.join("network", "network", &t, "NS-2")?;
                }
                _ => {
                    if !has_path && self.set_ns("network", None)? {
                        self.note("NS-2", "new network namespace");
                    }
                }
            }
        }
        self.ipc_namespace()?; // NS-3
        // NS-4 pid
        if let Some(pid) = self.s.pid.clone() {
            if self.origin == Origin::Nerdctl && self.annotation("nerdctl/pid-container").is_some() {
                self.note("NS-4", "skipped: nerdctl/pid-container already set");
            } else if pid == "host" {
                if self.remove_ns("pid")? {
                    self.note("NS-4", "pid namespace removed (host)");
                }
            } else if let Some(t) = pid.strip_prefix("container:") {
                let t = self.resolve("pid", t, Join::Pid)?;
                self.join("pid", "pid", &t, "NS-4")?;
            } else if self.set_ns("pid", None)? {
                self.note("NS-4", "new pid namespace");
            }
        }
        // NS-5 uts
        if self.s.uts.as_deref() == Some("host") {
            let removed = self.remove_ns("uts")?;
            let had = obj(&mut self.spec, &[])?.remove("hostname").is_some();
            if removed || had {
                self.note("NS-5", "uts namespace removed (host), hostname cleared");
            }
        }
        // NS-6 cgroup namespace
        let mode = match &self.s.cgroupns {
            Some(m) if !m.is_empty() => Some(m.clone()),
            _ if self.fill => Some(if self.privileged && !self.host.cgroup_v2() {
                "host".to_string()
            } else {
                self.cfg.default_cgroupns_mode.clone().unwrap_or_else(|| if self.host.cgroup_v2() { "private".into() } else { "host".into() })
            }),
            _ => None,
        };
        match mode.as_deref() {
            Some("private") => {
                if self.ns_entry("cgroup").is_none() && self.set_ns("cgroup", None)? {
                    self.note("NS-6", "new cgroup namespace");
                }
            }
            Some("host") => {
                if self.remove_ns("cgroup")? {
                    self.note("NS-6", "cgroup namespace removed (host)");
                }
            }
            _ => {}
        }
        // NS-7 time namespace: Docker's base has it; only where runc and the kernel support it.
        if self.fill && self.ns_entry("time").is_none() && self.cfg.features.get("time-namespaces") != Some(&false) && self.host.path_exists("/proc/self/ns/time") {
            let runc_ok = self.host.runc_features().is_some_and(|f| {
                get(&f, &["linux", "namespaces"]).and_then(Value::as_array).is_some_and(|a| a.iter().any(|n| n == "time"))
            });
            if runc_ok {
                self.set_ns("time", None)?;
                self.note("NS-7", "new time namespace");
            }
        }
        Ok(())
    }

    /// NS-1: `userns-remap` (fill mode only): user namespace + mappings from /etc/subuid|subgid.
    fn userns(&mut self) -> Result<(), SpecError> {
        if !self.userns_remap {
            return Ok(());
        }
        let spec = self.cfg.userns_remap.clone();
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u.to_string(), g.to_string()),
            None => (spec.clone(), String::new()),
        };
        let user = if user == "default" { "dockremap".to_string() } else { user };
        let group = if group.is_empty() { user.clone() } else { group };
        let read = |p: &str| self.host.read_host_file(p).map_err(|e| Self::host_err("NS-1", e)).map(|o| o.unwrap_or_default());
        let passwd = read("/etc/passwd")?;
        let groups = read("/etc/group")?;
        let (uname, uid) = lookup_id(&passwd, &user, 2).ok_or_else(|| SpecError::config("userns-remap", format!("Error during uid lookup for {}: no such user", go_quote(&user))))?;
        let (gname, gid) = lookup_id(&groups, &group, 2).ok_or_else(|| SpecError::config("userns-remap", format!("Error during gid lookup for {}: no such group", go_quote(&group))))?;
        if uid == 0 {
            return Ok(()); // remapping to root: user namespaces are off
        }
        let subuid = read("/etc/subuid")?;
        let subgid = read("/etc/subgid")?;
        let um = sub_ranges(&subuid, &uname, uid);
        let gm = sub_ranges(&subgid, &gname, gid);
        if um.is_empty() {
            return Err(SpecError::config("userns-remap", format!("no subuid ranges found for user {}", go_quote(&uname))));
        }
        if gm.is_empty() {
            return Err(SpecError::config("userns-remap", format!("no subuid ranges found for user {}", go_quote(&gname))));
        }
        let linux = obj(&mut self.spec, &["linux"])?;
        let (uv, gv) = (Value::Array(um), Value::Array(gm));
        let changed = linux.get("uidMappings") != Some(&uv) || linux.get("gidMappings") != Some(&gv);
        linux.insert("uidMappings".into(), uv);
        linux.insert("gidMappings".into(), gv);
        if self.ns_entry("user").is_none() {
            self.set_ns("user", None)?;
        }
        if changed {
            self.note("NS-1", format!("user namespace remapped to {uname}:{gname}"));
        }
        Ok(())
    }

    /// NS-3 + IPC-2..8 namespace side; the /dev/shm mount side is done in `ipc_mounts`.
    fn ipc_namespace(&mut self) -> Result<(), SpecError> {
        let Some(mode) = self.ipc_mode() else { return Ok(()) };
        match mode.as_str() {
            "host" => {
                if self.remove_ns("ipc")? {
                    self.note("NS-3", "ipc namespace removed (host)");
                }
            }
            m if m.starts_with("container:") => {
                let t = self.resolve("ipc", &m[10..], Join::Ipc)?;
                if t.shm_path.is_none() && !self.has_user_shm_mount() {
                    return Err(self.ann_err("ipc", format!("failed to join IPC namespace: container {}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)", t.id)));
                }
                self.join("ipc", "ipc", &t, "NS-3")?;
            }
            _ => {
                let has_path = self.ns_entry("ipc").is_some_and(|n| n.get("path").is_some());
                if (!has_path || self.s.ipc.is_some()) && self.set_ns("ipc", None)? {
                    self.note("NS-3", "new ipc namespace");
                }
            }
        }
        Ok(())
    }

    /// The IPC mode to apply: annotation, else (fill) the daemon default. `None` = leave alone.
    fn ipc_mode(&self) -> Option<String> {
        if self.s.ipc.is_some() && self.origin == Origin::Nerdctl && self.annotation("nerdctl/ipc").is_some() {
            return None; // nerdctl already expressed it (§2.3 guard)
        }
        match &self.s.ipc {
            Some(m) if !m.is_empty() => Some(m.clone()),
            Some(_) => Some(self.cfg.default_ipc_mode.clone()),
            None if self.fill => {
                // A ctr spec that already joins or drops the IPC namespace expressed a mode.
                match self.ns_entry("ipc") {
                    Some(n) if n.get("path").is_none() => Some(self.cfg.default_ipc_mode.clone()),
                    _ => None,
                }
            }
            None => None,
        }
    }

    fn shm_dir(&self) -> String {
        let root = self.cfg.shm_root.clone().unwrap_or_else(|| self.host.bundle_dir());
        if self.cfg.shm_root.is_some() {
            parse::join_path(&root, &format!("{}/{}/shm", self.ns, self.id))
        } else {
            parse::join_path(&root, "shm")
        }
    }

    /// A mount at /dev/shm that is not the base tmpfs and not our own shareable bind (IPC-8).
    fn has_user_shm_mount(&self) -> bool {
        let ours = self.shm_dir();
        if self.s.tmpfs.as_ref().is_some_and(|l| l.iter().any(|t| t.destination == "/dev/shm" || t.destination == "/dev")) {
            return true;
        }
        self.mounts().iter().any(|m| {
            dest(m) == "/dev/shm" && !is_default_mount(m) && m.get("source").and_then(Value::as_str) != Some(ours.as_str())
        })
    }

    // ---- WithCapabilities ----

    /// CP-1..CP-4.
    fn capabilities(&mut self) -> Result<(), SpecError> {
        let add = self.s.cap_add.clone().unwrap_or_default();
        let drop = self.s.cap_drop.clone().unwrap_or_default();
        let priv_new = self.s.privileged == Some(true);
        if !priv_new && add.is_empty() && drop.is_empty() {
            return Ok(());
        }
        let own = self.host.own_capabilities();
        let result: Vec<String> = if self.privileged {
            own.clone() // CP-3 step 1: add/drop ignored
        } else {
            for (k, l) in [("cap-add", &add), ("cap-drop", &drop)] {
                for c in l.iter().filter(|c| *c != "ALL") {
                    parse::normalize_capability(c, Some(&own))
                        .map_err(|m| self.ann_err(k, format!("invalid {}: {m}", if k == "cap-add" { "CapAdd" } else { "CapDrop" })))?;
                }
            }
            // fill: Docker's base is always its default list; explicit: the producer's set.
            let base = if self.fill {
                self.cfg.default_capabilities.clone()
            } else {
                str_list(get(&self.spec, &["process", "capabilities", "bounding"]))
            };
            let mut r = parse::tweak_capabilities(&base, &add, &drop, &own);
            if !self.fill {
                let mut seen = Vec::new();
                r.retain(|c| if seen.contains(c) { false } else { seen.push(c.clone()); true });
            }
            r
        };
        let caps = obj(&mut self.spec, &["process", "capabilities"])?;
        let v = Value::from(result.clone());
        let before = caps.get("bounding").cloned();
        for k in ["bounding", "effective", "permitted"] {
            caps.insert(k.into(), v.clone());
        }
        // CP-4: inheritable filtered to the result (nil when empty); ambient untouched.
        if result.is_empty() {
            caps.remove("inheritable");
        } else if let Some(Value::Array(inh)) = caps.get_mut("inheritable") {
            inh.retain(|c| c.as_str().is_some_and(|c| result.iter().any(|r| r == c)));
        }
        if before.as_ref() != Some(&v) {
            self.note("CP-3", format!("capabilities {}", result.join(",")));
        }
        Ok(())
    }

    // ---- WithSeccomp ----

    fn seccomp_target_profile(&self, choice: &SeccompChoice) -> Result<Option<Value>, SpecError> {
        let bounding = str_list(get(&self.spec, &["process", "capabilities", "bounding"]));
        let arch = self.host.arch();
        let t = seccomp::Target { goarch: &arch, bounding: &bounding, kernel: self.host.kernel_version() };
        match choice {
            SeccompChoice::Unconfined => Ok(None),
            SeccompChoice::Builtin => Ok(Some(seccomp::default_linux_seccomp(&t))),
            SeccompChoice::Inline(j) => seccomp::profile_to_linux_seccomp(j, &t).map_err(|m| self.ann_err("security-opt", m)),
            SeccompChoice::File(name) => {
                if name.is_empty() || name.contains('/') || name == ".." || name == "." {
                    return Err(self.ann_err("security-opt", format!("invalid seccomp profile name {}: must be a file name under seccomp-profile-root", go_quote(name))));
                }
                let p = parse::join_path(&self.cfg.seccomp_profile_root, name);
                let text = self
                    .host
                    .read_host_file(&p)
                    .map_err(|e| self.ann_err("security-opt", format!("opening seccomp profile ({p}) failed: {e}")))?
                    .ok_or_else(|| self.ann_err("security-opt", format!("opening seccomp profile ({p}) failed: no such file or directory")))?;
                seccomp::profile_to_linux_seccomp(&text, &t).map_err(|m| self.ann_err("security-opt", m))
            }
        }
    }

    /// SC-1 (profile choice, top to bottom) and SC-2.
    fn seccomp(&mut self) -> Result<(), SpecError> {
        let choice = self.s.security_opt.as_ref().and_then(|o| o.seccomp.clone());
        let has = get(&self.spec, &["linux", "seccomp"]).is_some_and(|v| !v.is_null());
        let result: Option<Option<Value>> = match &choice {
            Some(SeccompChoice::Unconfined) => Some(None),
            // SC-1 step 2 (with the documented divergence: `builtin` = the default profile).
            Some(c) => Some(self.seccomp_target_profile(c)?),
            None if self.privileged && (self.s.privileged == Some(true) || self.fill) => Some(None),
            None if self.fill && !has => {
                let dp = self.cfg.seccomp_profile.as_str();
                match dp {
                    "unconfined" => None,
                    "" | "builtin" => Some(self.seccomp_target_profile(&SeccompChoice::Builtin)?),
                    path => {
                        let text = self
                            .host
                            .read_host_file(path)
                            .map_err(|e| SpecError::config("seccomp-profile", format!("opening seccomp profile ({path}) failed: {e}")))?
                            .ok_or_else(|| SpecError::config("seccomp-profile", format!("opening seccomp profile ({path}) failed: no such file or directory")))?;
                        let bounding = str_list(get(&self.spec, &["process", "capabilities", "bounding"]));
                        let arch = self.host.arch();
                        let t = seccomp::Target { goarch: &arch, bounding: &bounding, kernel: self.host.kernel_version() };
                        Some(seccomp::profile_to_linux_seccomp(&text, &t).map_err(|m| SpecError::config("seccomp-profile", m))?)
                    }
                }
            }
            None => None,
        };
        let Some(result) = result else { return Ok(()) };
        let linux = obj(&mut self.spec, &["linux"])?;
        match result {
            None => {
                if linux.remove("seccomp").is_some() {
                    self.note("SC-1", "seccomp removed (unconfined/privileged)");
                }
            }
            Some(p) => {
                if linux.get("seccomp") != Some(&p) {
                    let n = p.get("syscalls").and_then(Value::as_array).map_or(0, Vec::len);
                    linux.insert("seccomp".into(), p);
                    self.note("SC-2", format!("seccomp profile with {n} syscall rules"));
                }
            }
        }
        Ok(())
    }

    // ---- withMounts ----

    fn mounts_rules(&mut self) -> Result<(), SpecError> {
        let mut mounts = self.mounts();
        let before = mounts.clone();
        let mut added_user = false;
        if self.fill {
            // Table 4.10: containerd's /run tmpfs is not in Docker's spec.
            let n = mounts.len();
            mounts.retain(|m| !(dest(m) == "/run" && is_default_mount(m)));
            if mounts.len() != n {
                self.note("MT-1", "dropped containerd's /run tmpfs");
            }
            // Table 4.3: /sys/fs/cgroup cgroup mount (ro), right after /sys.
            if !mounts.iter().any(|m| dest(m) == "/sys/fs/cgroup") {
                let at = mounts.iter().position(|m| dest(m) == "/sys").map_or(mounts.len(), |i| i + 1);
                mounts.insert(at, json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}));
                self.note("MT-1", "added /sys/fs/cgroup cgroup mount");
            }
        }
        self.ipc_mounts(&mut mounts)?;
        // MT-4, MT-5, MT-12, MT-2: --tmpfs.
        for t in self.s.tmpfs.clone().unwrap_or_default() {
            let new = json!({"destination": t.destination, "type": "tmpfs", "source": "tmpfs", "options": t.options});
            if mounts.contains(&new) {
                continue; // already applied (idempotence)
            }
            if let Some(i) = mounts.iter().position(|m| dest(m) == t.destination) {
                if is_default_mount(&mounts[i]) {
                    mounts.remove(i);
                } else {
                    return Err(self.ann_err("tmpfs", format!("Duplicate mount point: {}", t.destination)));
                }
            }
            if t.destination == "/dev" {
                mounts.retain(|m| !(dest(m).starts_with("/dev/") && is_default_mount(m)));
            }
            mounts.push(new);
            added_user = true;
            self.note("MT-4", format!("tmpfs {}", t.destination));
        }
        // After the loop every mount at a --tmpfs destination is the user's own, even where its
        // (destination, type) looks like a base mount (`--read-only --tmpfs /run` is the classic
        // Docker pattern: that /run must stay writable and count as a user mount).
        let user_tmpfs: Vec<String> = self.s.tmpfs.iter().flatten().map(|t| t.destination.clone()).collect();
        let is_base = |m: &Value| is_default_mount(m) && !user_tmpfs.iter().any(|d| d == dest(m));
        if added_user {
            // MT-3: base mounts first in their order, user mounts stably by depth.
            let (base, mut user): (Vec<Value>, Vec<Value>) = mounts.into_iter().partition(|m| is_base(m));
            user.sort_by_key(|m| parse::path_depth(dest(m)));
            mounts = base.into_iter().chain(user).collect();
        }
        if self.fill {
            self.propagation(&mut mounts)?; // MT-7
            self.recursive_ro(&mut mounts); // MT-8
            if self.userns_remap {
                self.locked_flags(&mut mounts)?; // MT-9
            }
        }
        // MT-11: cgroup mount rw.
        let wc = self.s.security_opt.as_ref().and_then(|o| o.writable_cgroups);
        let cgroup_rw = match wc {
            Some(w) => Some(w),
            None if self.privileged && (self.fill || self.s.privileged == Some(true)) => Some(true),
            None if self.userns_remap => Some(true),
            None => None,
        };
        if let Some(rw) = cgroup_rw {
            for m in mounts.iter_mut().filter(|m| m.get("type").and_then(Value::as_str) == Some("cgroup")) {
                if set_ro(m, !rw) {
                    self.applied.push(Applied { rule: "MT-11", change: format!("cgroup mount {}", if rw { "rw" } else { "ro" }) });
                }
            }
        }
        // RO-1: read-only rootfs; base mounts other than the exceptions get ro.
        if self.s.read_only == Some(true) {
            let root = obj(&mut self.spec, &["root"])?;
            let was = root.get("readonly") == Some(&Value::Bool(true));
            root.insert("readonly".into(), true.into());
            for m in mounts.iter_mut().filter(|m| is_base(m) || dest(m) == "/sbin/docker-init") {
                if !matches!(dest(m), "/proc" | "/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev") {
                    set_ro(m, true);
                }
            }
            if !was {
                self.note("RO-1", "read-only rootfs");
            }
        }
        // PV-1: privileged clears ro on /sys (after RO-1, as Docker).
        if self.privileged && (self.fill || self.s.privileged == Some(true)) {
            for m in mounts.iter_mut().filter(|m| dest(m) == "/sys") {
                if set_ro(m, false) {
                    self.applied.push(Applied { rule: "PV-1", change: "/sys rw".into() });
                }
            }
        }
        if mounts != before {
            self.set_mounts(mounts)?;
        }
        Ok(())
    }

    /// IPC-1..IPC-8, mount side.
    fn ipc_mounts(&mut self, mounts: &mut Vec<Value>) -> Result<(), SpecError> {
        let Some(mode) = self.ipc_mode() else {
            // shm-size alone (explicit mode): resize the base /dev/shm.
            if let Some(sz) = self.s.shm_size {
                self.resize_shm(mounts, sz);
            }
            return Ok(());
        };
        let size = self.s.shm_size.filter(|s| *s > 0).unwrap_or(self.cfg.default_shm_size);
        let user_shm = self.has_user_shm_mount();
        let base_idx = mounts.iter().position(|m| dest(m) == "/dev/shm" && is_default_mount(m));
        let ours = self.shm_dir();
        let bind = |src: &str| json!({"destination": "/dev/shm", "type": "bind", "source": src, "options": ["rbind", "rprivate"]});
        match mode.as_str() {
            "none" => {
                if let Some(i) = base_idx {
                    mounts.remove(i);
                    self.note("IPC-3", "/dev/shm removed (ipc none)");
                }
            }
            "shareable" => {
                if user_shm {
                    return Ok(()); // IPC-8
                }
                self.actions.push(HostAction::ShmTmpfs { path: ours.clone(), size });
                let new = bind(&ours);
                replace_shm(mounts, new.clone());
                self.note("IPC-4", format!("shareable /dev/shm tmpfs at {ours} size={size}"));
            }
            "host" => {
                if user_shm {
                    return Ok(());
                }
                let mi = self.get_mountinfo()?;
                if !mi.iter().any(|m| m.mount_point() == "/dev/shm") {
                    return Err(self.ann_err("ipc", "/dev/shm is not mounted, but must be for --ipc=host"));
                }
                if replace_shm(mounts, bind("/dev/shm")) {
                    self.note("IPC-6", "host /dev/shm bound");
                }
            }
            m if m.starts_with("container:") => {
                if user_shm {
                    return Ok(());
                }
                let t = self.resolve("ipc", &m[10..], Join::Ipc)?;
                if let Some(p) = t.shm_path {
                    if replace_shm(mounts, bind(&p)) {
                        self.note("IPC-5", format!("/dev/shm of {} bound", t.id));
                    }
                }
            }
            _ => {
                // IPC-2 private: base /dev/shm with size=<ShmSize>, replacing containerd's size=.
                if user_shm {
                    return Ok(());
                }
                match base_idx {
                    Some(_) => self.resize_shm(mounts, size),
                    None => {
                        // Our own shareable bind from an earlier pass, or no /dev/shm at all.
                        mounts.retain(|m| !(dest(m) == "/dev/shm" && m.get("source").and_then(Value::as_str) == Some(ours.as_str())));
                        mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                            "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]}));
                        self.note("IPC-2", format!("/dev/shm tmpfs size={size}"));
                    }
                }
            }
        }
        Ok(())
    }

    fn resize_shm(&mut self, mounts: &mut [Value], size: i64) {
        for m in mounts.iter_mut().filter(|m| dest(m) == "/dev/shm" && is_default_mount(m)) {
            let mut o = opts(m);
            let want = format!("size={size}");
            if o.contains(&want) {
                continue;
            }
            o.retain(|x| !x.starts_with("size="));
            o.push(want);
            m["options"] = Value::from(o);
            self.applied.push(Applied { rule: "IPC-2", change: format!("/dev/shm size={size}") });
        }
        // A shareable tmpfs action carries the size too.
        for a in self.actions.iter_mut() {
            let HostAction::ShmTmpfs { size: s, .. } = a;
            *s = size;
        }
    }

    /// MT-7: shared/slave bind propagation needs a shared/slave source mount, and raises
    /// `rootfsPropagation`.
    fn propagation(&mut self, mounts: &mut [Value]) -> Result<(), SpecError> {
        let mut want: Option<&'static str> = None;
        for m in mounts.iter().filter(|m| is_bind(m)) {
            let o = opts(m);
            let shared = o.iter().any(|x| x == "shared" || x == "rshared");
            let slave = o.iter().any(|x| x == "slave" || x == "rslave");
            if !shared && !slave {
                continue;
            }
            let src = m.get("source").and_then(Value::as_str).unwrap_or("").to_string();
            let real = self.host.realpath(&src).map_err(|e| SpecError::Rule { rule: "MT-7", msg: e.to_string() })?;
            let mi = self.get_mountinfo()?;
            let sm = mountinfo::source_mount(mi, &real).ok_or_else(|| SpecError::Rule { rule: "MT-7", msg: format!("Can't find mount point of {src}") })?;
            let mp = sm.mount_point().to_string();
            if shared {
                if !sm.has_optional(&["shared:"]) {
                    return Err(SpecError::Rule { rule: "MT-7", msg: format!("path {src} is mounted on {mp} but it is not a shared mount") });
                }
                want = Some("shared");
            } else {
                if !sm.has_optional(&["shared:", "master:"]) {
                    return Err(SpecError::Rule { rule: "MT-7", msg: format!("path {src} is mounted on {mp} but it is not a shared or slave mount") });
                }
                if want.is_none() {
                    want = Some("rslave");
                }
            }
        }
        let Some(w) = want else { return Ok(()) };
        let cur = get(&self.spec, &["linux", "rootfsPropagation"]).and_then(Value::as_str).unwrap_or("").to_string();
        let keep = match w {
            "shared" => matches!(cur.as_str(), "shared" | "rshared"),
            _ => matches!(cur.as_str(), "shared" | "rshared" | "slave" | "rslave"),
        };
        if !keep {
            obj(&mut self.spec, &["linux"])?.insert("rootfsPropagation".into(), w.into());
            self.note("MT-7", format!("rootfsPropagation {w}"));
        }
        Ok(())
    }

    /// MT-8: read-only recursive binds become `rro` where kernel (≥ 5.12) and runc support it.
    fn recursive_ro(&mut self, mounts: &mut [Value]) {
        let kernel_ok = self.host.kernel_version().is_some_and(|k| k >= (5, 12));
        let runc_ok = self.host.runc_features().is_some_and(|f| f.get("mountOptions").and_then(Value::as_array).is_some_and(|a| a.iter().any(|o| o == "rro")));
        if !kernel_ok || !runc_ok {
            return;
        }
        for m in mounts.iter_mut().filter(|m| is_bind(m)) {
            let o = opts(m);
            if o.iter().any(|x| x == "rbind") && o.iter().any(|x| x == "ro") {
                let n: Vec<String> = o.into_iter().map(|x| if x == "ro" { "rro".to_string() } else { x }).collect();
                let d = dest(m).to_string();
                m["options"] = Value::from(n);
                self.applied.push(Applied { rule: "MT-8", change: format!("{d} rro") });
            }
        }
    }

    /// MT-9: in a user namespace, keep the source mount's locked flags on every bind.
    fn locked_flags(&mut self, mounts: &mut [Value]) -> Result<(), SpecError> {
        let mi = self.get_mountinfo()?.to_vec();
        for m in mounts.iter_mut().filter(|m| is_bind(m)) {
            let src = m.get("source").and_then(Value::as_str).unwrap_or("").to_string();
            let Some(sm) = mountinfo::source_mount(&mi, &src) else { continue };
            let mut o = opts(m);
            let mut added = Vec::new();
            for f in ["ro", "nodev", "noexec", "nosuid", "noatime", "relatime", "nodiratime"] {
                if sm.has_option(f) && !o.iter().any(|x| x == f || (f == "ro" && x == "rro")) {
                    o.push(f.to_string());
                    added.push(f);
                }
            }
            if !added.is_empty() {
                let d = dest(m).to_string();
                m["options"] = Value::from(o);
                self.applied.push(Applied { rule: "MT-9", change: format!("{d} +{}", added.join(",")) });
            }
        }
        Ok(())
    }

    // ---- WithApparmor ----

    /// AA-1 / AA-2.
    fn apparmor(&mut self) -> Result<(), SpecError> {
        if !self.host.apparmor_enabled() {
            return Ok(()); // AA-1: an explicit profile is silently ignored without AppArmor.
        }
        let explicit = self.s.security_opt.as_ref().and_then(|o| o.apparmor.clone());
        let cur = get(&self.spec, &["process", "apparmorProfile"]).and_then(Value::as_str).unwrap_or("").to_string();
        let profile = match explicit {
            Some(p) => p,
            None if self.privileged && (self.fill || self.s.privileged == Some(true)) => "unconfined".into(),
            None if self.fill && cur.is_empty() => self.cfg.apparmor_profile.clone(),
            None => return Ok(()),
        };
        if profile == cur {
            return Ok(());
        }
        if profile == self.cfg.apparmor_profile && profile != "unconfined" && !self.host.apparmor_profile_loaded(&profile) {
            // AA-2 (loading the profile) is not implemented: leave the spec as it was.
            self.note("AA-2", format!("AppArmor profile {profile} not loaded; not set"));
            return Ok(());
        }
        obj(&mut self.spec, &["process"])?.insert("apparmorProfile".into(), profile.clone().into());
        self.note("AA-1", format!("apparmorProfile {profile}"));
        Ok(())
    }

    // ---- WithOOMScore / NNP ----

    fn oom_score(&mut self) -> Result<(), SpecError> {
        let process = obj(&mut self.spec, &["process"])?;
        let want = match self.s.oom_score_adj {
            Some(v) => v,
            None if self.fill && !process.contains_key("oomScoreAdj") => 0,
            None => return Ok(()),
        };
        if process.get("oomScoreAdj").and_then(Value::as_i64) != Some(want) {
            process.insert("oomScoreAdj".into(), want.into());
            self.note("OOM-1", format!("oomScoreAdj {want}"));
        }
        Ok(())
    }

    fn no_new_privileges(&mut self) -> Result<(), SpecError> {
        let explicit = self.s.security_opt.as_ref().and_then(|o| o.no_new_privileges);
        let want = match explicit {
            Some(v) => v,
            None if self.fill => self.cfg.no_new_privileges,
            None => return Ok(()),
        };
        let process = obj(&mut self.spec, &["process"])?;
        let cur = process.get("noNewPrivileges").and_then(Value::as_bool).unwrap_or(false);
        if cur != want {
            process.insert("noNewPrivileges".into(), want.into());
            self.note("NNP-1", format!("noNewPrivileges {want}"));
        }
        Ok(())
    }

    // ---- masked / read-only paths ----

    fn default_masked_paths(&self) -> Result<Vec<String>, SpecError> {
        if let Some(m) = &self.cfg.masked_paths {
            return Ok(m.clone());
        }
        let mut out: Vec<String> = crate::config::DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect();
        let possible = self.host.read_host_file("/sys/devices/system/cpu/possible").map_err(|e| Self::host_err("MP-1", e))?;
        if let Some(p) = possible {
            for n in parse::parse_cpuset(p.trim()).unwrap_or_default() {
                let path = format!("/sys/devices/system/cpu/cpu{n}/thermal_throttle");
                if self.host.path_exists(&path) {
                    out.push(path);
                }
            }
        }
        Ok(out)
    }

    /// MP-1, MP-2, MP-3, MP-4.
    fn masked_paths(&mut self) -> Result<(), SpecError> {
        let so = self.s.security_opt.clone().unwrap_or_default();
        let mut masked: Option<Option<Vec<String>>> = None; // None = untouched, Some(None) = remove
        let mut ro: Option<Option<Vec<String>>> = None;
        if self.privileged && (self.fill || self.s.privileged == Some(true)) {
            masked = Some(None);
            ro = Some(None);
        } else if self.fill {
            masked = Some(Some(self.default_masked_paths()?));
            ro = Some(Some(self.cfg.readonly_paths.clone()));
        }
        if so.systempaths_unconfined {
            masked = Some(Some(vec![]));
            ro = Some(Some(vec![]));
        }
        if let Some(m) = &self.s.masked_paths {
            masked = Some(Some(m.clone()));
        }
        if let Some(r) = &self.s.readonly_paths {
            ro = Some(Some(r.clone()));
        }
        let linux = obj(&mut self.spec, &["linux"])?;
        let mut notes = Vec::new();
        for (k, v) in [("maskedPaths", masked), ("readonlyPaths", ro)] {
            match v {
                None => {}
                Some(None) => {
                    if linux.remove(k).is_some() {
                        notes.push(format!("{k} cleared"));
                    }
                }
                Some(Some(l)) => {
                    let nv = Value::from(l);
                    if linux.get(k) != Some(&nv) {
                        linux.insert(k.into(), nv);
                        notes.push(format!("{k} replaced"));
                    }
                }
            }
        }
        if !notes.is_empty() {
            self.note("MP-1", notes.join(", "));
        }
        Ok(())
    }

    /// SY-5: runc's namespace checks, done early so the error names the sysctl.
    fn check_sysctls(&mut self) -> Result<(), SpecError> {
        let Some(m) = get(&self.spec, &["linux", "sysctl"]).and_then(Value::as_object) else { return Ok(()) };
        let keys: Vec<String> = m.keys().cloned().collect();
        let has = |t: &str| self.ns_entry(t).is_some();
        for k in keys {
            let ipc_key = matches!(k.as_str(), "kernel.msgmax" | "kernel.msgmnb" | "kernel.msgmni" | "kernel.sem" | "kernel.shmall" | "kernel.shmmax" | "kernel.shmmni" | "kernel.shm_rmid_forced")
                || k.starts_with("fs.mqueue.");
            let msg = if ipc_key && !has("ipc") {
                Some(format!("sysctl {} is not allowed in the hosts ipc namespace", go_quote(&k)))
            } else if k.starts_with("net.") && !has("network") {
                Some(format!("sysctl {} not allowed in host network namespace", go_quote(&k)))
            } else if k == "kernel.hostname" {
                Some(format!("sysctl {} is not allowed as it conflicts with the OCI {} field", go_quote(&k), go_quote("hostname")))
            } else if k == "kernel.domainname" && !has("uts") {
                Some(format!("sysctl {} is not in a separate kernel namespace", go_quote(&k)))
            } else if k.starts_with("user.") && !has("user") {
                Some(format!("setting ucounts without a user namespace not allowed: {}", go_quote(&k)))
            } else {
                None
            };
            if let Some(msg) = msg {
                let from_ann = self.s.sysctls.as_ref().is_some_and(|l| l.iter().any(|(x, _)| *x == k)) || (k == "kernel.domainname" && self.s.domainname.is_some());
                return Err(if from_ann {
                    self.ann_err(if k == "kernel.domainname" && self.s.domainname.is_some() { "domainname" } else { "sysctls" }, msg)
                } else {
                    SpecError::Rule { rule: "SY-5", msg }
                });
            }
        }
        Ok(())
    }
}

fn obj_in<'a>(m: &'a mut Map<String, Value>, key: &str, field: &str) -> Result<&'a mut Map<String, Value>, SpecError> {
    let e = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if e.is_null() {
        *e = json!({});
    }
    e.as_object_mut().ok_or_else(|| SpecError::spec(field, "expected an object"))
}

fn is_allow_all(r: &Value) -> bool {
    r.get("allow") == Some(&Value::Bool(true))
        && matches!(r.get("type").and_then(Value::as_str), None | Some("a"))
        && r.get("major").is_none_or(|m| m.is_null() || m == -1)
        && r.get("minor").is_none_or(|m| m.is_null() || m == -1)
        && r.get("access").and_then(Value::as_str).is_some_and(|a| a.contains('r') && a.contains('w') && a.contains('m'))
}

/// Table 4.5: Docker's 8 base device rules.
fn docker_base_device_rules() -> Vec<Value> {
    let c = |maj: i64, min: i64| DeviceRule { allow: true, kind: "c".into(), major: Some(maj), minor: Some(min), access: "rwm".into() }.to_oci();
    let mut fuse = DeviceRule { allow: false, kind: "c".into(), major: Some(10), minor: Some(229), access: "rwm".into() }.to_oci();
    if let Some(m) = fuse.as_object_mut() {
        m.insert("allow".into(), false.into());
    }
    vec![json!({"allow": false, "access": "rwm"}), c(1, 5), c(1, 3), c(1, 9), c(1, 8), c(5, 0), c(5, 1), fuse]
}

/// Replace the /dev/shm mount (whatever it is) with `new`; returns whether anything changed.
fn replace_shm(mounts: &mut Vec<Value>, new: Value) -> bool {
    match mounts.iter().position(|m| dest(m) == "/dev/shm") {
        Some(i) if mounts[i] == new => false,
        Some(i) => {
            mounts[i] = new;
            true
        }
        None => {
            mounts.push(new);
            true
        }
    }
}

/// Add or remove `ro` in a mount's options; returns whether it changed.
fn set_ro(m: &mut Value, ro: bool) -> bool {
    let mut o = opts(m);
    let has = o.iter().any(|x| x == "ro");
    if has == ro {
        return false;
    }
    if ro {
        o.push("ro".into());
    } else {
        o.retain(|x| x != "ro");
    }
    m["options"] = Value::from(o);
    true
}

/// Find `name_or_id` in passwd/group text (`field` = index of the id column): (name, id).
fn lookup_id(text: &str, name_or_id: &str, field: usize) -> Option<(String, i64)> {
    let numeric = parse::parse_i64(name_or_id).ok();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let id = f.get(field)?.parse::<i64>().ok()?;
        let name = f.first()?;
        if *name == name_or_id || numeric == Some(id) {
            Some((name.to_string(), id))
        } else {
            None
        }
    })
}

/// `/etc/subuid`-style ranges for a name or id, as contiguous OCI ID mappings (NS-1).
fn sub_ranges(text: &str, name: &str, id: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next: i64 = 0;
    for l in text.lines() {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() != 3 || (f[0] != name && f[0] != id.to_string()) {
            continue;
        }
        let (Ok(start), Ok(count)) = (f[1].parse::<i64>(), f[2].parse::<i64>()) else { continue };
        out.push(json!({"containerID": next, "hostID": start, "size": count}));
        next = next.saturating_add(count);
    }
    out
}
