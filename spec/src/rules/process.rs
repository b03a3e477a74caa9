//! Process basics: GEN-1 (default `PATH` and `HOSTNAME` in the environment), INIT-1
//! (docker-init as PID 1), RL-1 (rlimits replaced or merged), OOM-1 (`oomScoreAdj` always set).
//!
//! Not in the catalogue's own group names: these are the `process` fields `withCommonOptions`,
//! `withRlimits` and `WithOOMScore` write, so they share a file.

use super::Ctx;
use crate::error::SpecError;
use crate::oci::{key, ns, Mount};
use crate::parse::go_quote;
use serde_json::Value;

pub(crate) const IDS: &[&str] = &["GEN-1", "INIT-1", "RL-1", "OOM-1"];

/// Docker's default `PATH` (GEN-1).
const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the init binary is mounted in the container (INIT-1).
pub(crate) const INIT_DEST: &str = "/sbin/docker-init";

/// Directories Docker searches for the init binary before `$PATH` (moby `lookupBinPath`).
const INIT_DIRS: &[&str] = &["/usr/local/libexec/docker", "/usr/libexec/docker", "/usr/local/lib/docker", "/usr/lib/docker"];
/// Searched too for names starting with `docker-`.
const INIT_DIRS_DOCKER_PREFIX: &[&str] = &["/usr/local/libexec", "/usr/libexec"];

impl Ctx<'_> {
    /// GEN-1: `PATH` and `HOSTNAME` when absent (fill mode, or a `hostname` annotation).
    /// `HOSTNAME` is Docker's `Config.Hostname` (GEN-3), also with the host's UTS namespace.
    pub(crate) fn common_env(&mut self) -> Result<(), SpecError> {
        if !self.fill && self.s.hostname.is_none() {
            return Ok(());
        }
        let hostname = self.container_hostname.clone().or_else(|| self.doc.hostname().map(str::to_string)).unwrap_or_default();
        let env = self.doc.env_mut()?;
        let has = |env: &Vec<Value>, k: &str| env.iter().any(|e| e.as_str().is_some_and(|s| s.starts_with(k)));
        let mut added = Vec::new();
        if self.fill && !has(env, "PATH=") {
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
        Ok(())
    }

    /// INIT-1: docker-init (tini) as PID 1 when the PID namespace is private.
    pub(crate) fn init(&mut self) -> Result<(), SpecError> {
        let want = self.s.init.unwrap_or(self.fill && self.cfg.init);
        if !want {
            return Ok(());
        }
        let pid_private = match self.s.pid.as_deref() {
            Some("host") => false,
            Some(p) if p.starts_with("container:") => false,
            _ => self.doc.ns_entry(ns::PID).is_some_and(|n| n.path.is_none()),
        };
        if !pid_private {
            return Ok(());
        }
        // Double-apply guard: args[0] is already a bind-mounted /sbin/* binary (ours or nerdctl's tini).
        let arg0 = self.doc.args().into_iter().next().unwrap_or_default();
        if arg0.starts_with("/sbin/") && self.doc.mounts().iter().any(|m| m.destination() == arg0 && m.is_bind()) {
            return Ok(());
        }
        let path = self.init_path()?;
        let args = self.doc.args_mut()?;
        args.splice(0..0, [Value::from(INIT_DEST), Value::from("--")]);
        let mut mounts = self.doc.mounts();
        mounts.retain(|m| m.destination() != INIT_DEST);
        // Appended to the base list (a user mount at the same path still wins in Docker; here
        // the incoming spec's mounts are already final, so it simply goes last).
        mounts.push(Mount::new(INIT_DEST, "bind", &path, &["bind", "ro"]));
        self.doc.set_mounts(mounts)?;
        self.note("INIT-1", format!("init {path} as {INIT_DEST}"));
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
        let mut dirs = INIT_DIRS.to_vec();
        if name.starts_with("docker-") {
            dirs.extend(INIT_DIRS_DOCKER_PREFIX);
        }
        if let Some(p) = self.host.lookup_executable(name, &dirs) {
            return Ok(p);
        }
        let msg = format!("exec: {}: executable file not found in $PATH", go_quote(name));
        Err(if self.s.init.is_some() { self.ann_err("init", msg) } else { SpecError::config("default-init", msg) })
    }

    /// RL-1: in fill mode `rlimits` is replaced (container ulimits + daemon defaults not
    /// overridden; none → absent); in explicit mode annotation ulimits are merged by type.
    pub(crate) fn rlimits(&mut self) -> Result<(), SpecError> {
        let ann = self.s.ulimits.clone();
        if !self.fill && ann.is_none() {
            return Ok(());
        }
        let existing: Vec<Value> = self.doc.rlimits().cloned().unwrap_or_default();
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
                match out.iter_mut().find(|r| r.get(key::RLIMIT_TYPE) == v.get(key::RLIMIT_TYPE)) {
                    Some(r) => *r = v,
                    None => out.push(v),
                }
            }
        }
        if out == existing && (!out.is_empty() || !self.doc.has_rlimits_field()) {
            return Ok(());
        }
        if out.is_empty() {
            self.doc.set_rlimits(None)?;
            self.note("RL-1", "rlimits removed (inherited from the runtime, as Docker)");
        } else {
            let names: Vec<String> = out.iter().filter_map(|r| r.get(key::RLIMIT_TYPE).and_then(Value::as_str).map(str::to_string)).collect();
            self.doc.set_rlimits(Some(out))?;
            self.note("RL-1", format!("rlimits {}", names.join(", ")));
        }
        Ok(())
    }

    /// OOM-1: `oomScoreAdj` always present (0 by default) so the container does not inherit
    /// the shim's score.
    pub(crate) fn oom_score(&mut self) -> Result<(), SpecError> {
        let want = match self.s.oom_score_adj {
            Some(v) => v,
            None if self.fill && !self.doc.has_oom_score_adj() => 0,
            None => return Ok(()),
        };
        if self.doc.oom_score_adj() != Some(want) {
            self.doc.set_oom_score_adj(want)?;
            self.note("OOM-1", format!("oomScoreAdj {want}"));
        }
        Ok(())
    }
}
