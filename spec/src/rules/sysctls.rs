//! Sysctls: SY-1 (Docker's default network sysctls for a private network namespace), SY-2
//! (`domainname` as `kernel.domainname`), SY-3 (annotation sysctls win), SY-5 (runc's namespace
//! checks, done before runc so the error names the sysctl and the annotation).

use super::Ctx;
use crate::error::SpecError;
use crate::oci::ns;
use crate::parse::go_quote;
use serde_json::Value;

pub(crate) const IDS: &[&str] = &["SY-1", "SY-2", "SY-3", "SY-5"];

const PING_GROUP_RANGE: &str = "net.ipv4.ping_group_range";
const UNPRIVILEGED_PORT_START: &str = "net.ipv4.ip_unprivileged_port_start";

/// IPC-namespaced sysctls (runc's validator).
const IPC_SYSCTLS: &[&str] = &["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];

impl Ctx<'_> {
    /// SY-1: Docker's default network sysctls for a private network namespace.
    pub(crate) fn default_sysctls(&mut self) -> Result<(), SpecError> {
        let net = self.effective_network();
        if net == "host" || net.starts_with("container:") {
            return Ok(());
        }
        let mut add = Vec::new();
        // Docker skips ping_group_range with a user namespace: the full range is not mapped
        // there and the kernel refuses it (the producer's own user namespace counts too).
        let userns = self.userns_remap || self.host.in_user_namespace() || self.doc.has_ns(ns::USER);
        if !userns && self.host.sysctl_exists(PING_GROUP_RANGE) {
            add.push((PING_GROUP_RANGE, "0 2147483647"));
        }
        if self.host.sysctl_exists(UNPRIVILEGED_PORT_START) {
            add.push((UNPRIVILEGED_PORT_START, "0"));
        }
        let sysctl = self.doc.sysctl_mut()?;
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

    /// SY-2 (`domainname`) and SY-3 (annotation sysctls, applied last so they win).
    pub(crate) fn sysctls(&mut self) -> Result<(), SpecError> {
        let mut kv: Vec<(String, String)> = Vec::new();
        if let Some(d) = &self.s.domainname {
            kv.push(("kernel.domainname".into(), d.clone())); // SY-2
        }
        if let Some(l) = &self.s.sysctls {
            kv.extend(l.iter().cloned());
        }
        if kv.is_empty() {
            return Ok(());
        }
        let m = self.doc.sysctl_mut()?;
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

    /// SY-5: runc's namespace checks, done early so the error names the sysctl.
    pub(crate) fn check_sysctls(&mut self) -> Result<(), SpecError> {
        let Some(m) = self.doc.sysctls() else { return Ok(()) };
        let keys: Vec<String> = m.keys().cloned().collect();
        let has = |t: &str| self.doc.has_ns(t);
        for k in keys {
            let ipc_key = IPC_SYSCTLS.contains(&k.as_str()) || k.starts_with("fs.mqueue.");
            let msg = if ipc_key && !has(ns::IPC) {
                Some(format!("sysctl {} is not allowed in the hosts ipc namespace", go_quote(&k)))
            } else if k.starts_with("net.") && !has(ns::NETWORK) {
                Some(format!("sysctl {} not allowed in host network namespace", go_quote(&k)))
            } else if k == "kernel.hostname" {
                Some(format!("sysctl {} is not allowed as it conflicts with the OCI {} field", go_quote(&k), go_quote(crate::oci::key::HOSTNAME)))
            } else if k == "kernel.domainname" && !has(ns::UTS) {
                Some(format!("sysctl {} is not in a separate kernel namespace", go_quote(&k)))
            } else if k.starts_with("user.") && !has(ns::USER) {
                Some(format!("setting ucounts without a user namespace not allowed: {}", go_quote(&k)))
            } else {
                None
            };
            if let Some(msg) = msg {
                let from_domainname = k == "kernel.domainname" && self.s.domainname.is_some();
                let from_ann = self.s.sysctls.as_ref().is_some_and(|l| l.iter().any(|(x, _)| *x == k)) || from_domainname;
                return Err(if from_ann {
                    self.ann_err(if from_domainname { "domainname" } else { "sysctls" }, msg)
                } else {
                    SpecError::Rule { rule: "SY-5", msg }
                });
            }
        }
        Ok(())
    }
}
