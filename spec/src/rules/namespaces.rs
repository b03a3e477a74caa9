//! Namespaces: NS-1 (user namespace from `userns-remap`), NS-2 (network), NS-3 (IPC, namespace
//! side; the `/dev/shm` side is in mounts.rs), NS-4 (PID), NS-5 (UTS), NS-6 (cgroup), NS-7
//! (time), NS-8 (list editing, `Doc::set_ns`/`remove_ns`), NS-10 (`container:<name|id>` to a
//! running sibling), NS-11 (user-namespace conflicts, checked in `validate`), NAME-1 (a
//! container name is unique in the namespace: the name is what `container:<name>` resolves).

use super::Ctx;
use crate::annotations::{CRI_SANDBOX_ID, NERDCTL_IPC, NERDCTL_PID_CONTAINER};
use crate::config::Origin;
use crate::error::{HostError, SpecError};
use crate::oci::ns;
use crate::parse::{self, go_quote};
use crate::{name_conflict, ClaimScope, HostAction, HostFile, SiblingTask};

pub(crate) const IDS: &[&str] = &["NS-1", "NS-2", "NS-3", "NS-4", "NS-5", "NS-6", "NS-7", "NS-8", "NS-10", "NS-11", "NAME-1"];

/// Kind of namespace join, for Docker's error texts (NS-2..4).
#[derive(Clone, Copy)]
pub(crate) enum Join {
    Network,
    Ipc,
    Pid,
}

impl Ctx<'_> {
    /// NS-10: resolve `container:<name|id>` to a running sibling of the same namespace.
    pub(crate) fn resolve(&self, short: &str, target: &str, kind: Join) -> Result<SiblingTask, SpecError> {
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
            Err(HostError::AmbiguousPrefix(p)) => return Err(e(format!("multiple IDs found with provided prefix: {p}"))),
            Err(err) => return Err(Self::host_err("NS-10", err)),
        };
        if t.id == self.id {
            return Err(e(format!("cannot join own {what} namespace")));
        }
        // CRI: never across sandboxes (cross-pod joins are a privilege escalation).
        if self.is_cri() && t.sandbox_id.as_deref() != self.doc.annotation(CRI_SANDBOX_ID) {
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

    fn join(&mut self, kind: &str, t: &SiblingTask, rule: &'static str) -> Result<(), SpecError> {
        let p = t.namespace_path(kind);
        if self.doc.set_ns(kind, Some(&p))? {
            self.note(rule, format!("join {kind} namespace of {} ({p})", t.id));
        }
        // NS-2..4: with a user namespace, also join the donor's (moby#46210: last join wins).
        if self.doc.has_ns(ns::USER) {
            self.doc.set_ns(ns::USER, Some(&t.namespace_path(ns::USER)))?;
        }
        Ok(())
    }

    /// NAME-1: a `name` another container of the namespace holds (as its name or its ID) is
    /// refused with Docker's text; a free one is claimed race-free by the first host action.
    fn claim_name(&mut self) -> Result<(), SpecError> {
        let Some(name) = self.s.name.clone() else { return Ok(()) };
        let holders = self.host.containers_named(&name).map_err(|e| Self::host_err("NAME-1", e))?;
        if let Some(id) = holders.into_iter().find(|h| h != self.id) {
            return Err(self.ann_err("name", name_conflict(&name, &id)));
        }
        self.actions.insert(0, HostAction::Claim { scope: ClaimScope::Namespace, class: crate::claim_class::NAME.into(), key: name });
        Ok(())
    }

    pub(crate) fn namespaces(&mut self) -> Result<(), SpecError> {
        self.claim_name()?; // NAME-1
        self.userns()?; // NS-1 (first: joins below also join the user ns)
        // NS-2 network (ctr-origin only; validate() refused it for nerdctl/CRI).
        if let Some(net) = self.s.network.clone() {
            let has_path = self.doc.ns_entry(ns::NETWORK).is_some_and(|n| n.path.is_some());
            match net.as_str() {
                "host" => {
                    if self.doc.remove_ns(ns::NETWORK)? {
                        self.note("NS-2", "network namespace removed (host)");
                    }
                }
                n if n.starts_with("container:") => {
                    if let Some(t) = self.network_donor()? {
                        self.join(ns::NETWORK, &t, "NS-2")?;
                    }
                }
                _ => {
                    if !has_path && self.doc.set_ns(ns::NETWORK, None)? {
                        self.note("NS-2", "new network namespace");
                    }
                }
            }
        }
        self.ipc_namespace()?; // NS-3
        // NS-4 pid
        if let Some(pid) = self.s.pid.clone() {
            if self.origin == Origin::Nerdctl && self.doc.annotation(NERDCTL_PID_CONTAINER).is_some() {
                self.note("NS-4", "skipped: nerdctl/pid-container already set");
            } else if pid == "host" {
                if self.doc.remove_ns(ns::PID)? {
                    self.note("NS-4", "pid namespace removed (host)");
                }
            } else if let Some(t) = pid.strip_prefix("container:") {
                let t = self.resolve("pid", t, Join::Pid)?;
                self.join(ns::PID, &t, "NS-4")?;
            } else if self.doc.set_ns(ns::PID, None)? {
                self.note("NS-4", "new pid namespace");
            }
        }
        // NS-5 uts
        if self.s.uts.as_deref() == Some("host") {
            let removed = self.doc.remove_ns(ns::UTS)?;
            let had = self.doc.remove_hostname()?;
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
                if !self.doc.has_ns(ns::CGROUP) && self.doc.set_ns(ns::CGROUP, None)? {
                    self.note("NS-6", "new cgroup namespace");
                }
            }
            Some("host") => {
                if self.doc.remove_ns(ns::CGROUP)? {
                    self.note("NS-6", "cgroup namespace removed (host)");
                }
            }
            _ => {}
        }
        // NS-7 time namespace: Docker's base has it; only where runc and the kernel support it.
        if self.fill && !self.doc.has_ns(ns::TIME) && self.cfg.features.get("time-namespaces") != Some(&false) && self.host.time_namespace() {
            let runc_ok = self.host.runc_features().is_some_and(|f| crate::oci::features_have_namespace(&f, ns::TIME));
            if runc_ok {
                self.doc.set_ns(ns::TIME, None)?;
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
        let read = |f: HostFile| self.host.host_file(f).map_err(|e| Self::host_err("NS-1", e)).map(|o| o.unwrap_or_default());
        let passwd = read(HostFile::Passwd)?;
        let groups = read(HostFile::Group)?;
        let (uname, uid) = lookup_id(&passwd, &user, 2).ok_or_else(|| SpecError::config("userns-remap", format!("Error during uid lookup for {}: no such user", go_quote(&user))))?;
        let (gname, gid) = lookup_id(&groups, &group, 2).ok_or_else(|| SpecError::config("userns-remap", format!("Error during gid lookup for {}: no such group", go_quote(&group))))?;
        if uid == 0 {
            return Ok(()); // remapping to root: user namespaces are off
        }
        let um = sub_ranges(&read(HostFile::Subuid)?, &uname, uid);
        let gm = sub_ranges(&read(HostFile::Subgid)?, &gname, gid);
        if um.is_empty() {
            return Err(SpecError::config("userns-remap", format!("no subuid ranges found for user {}", go_quote(&uname))));
        }
        if gm.is_empty() {
            return Err(SpecError::config("userns-remap", format!("no subuid ranges found for user {}", go_quote(&gname))));
        }
        let changed = self.doc.set_id_mappings(&um, &gm)?;
        if !self.doc.has_ns(ns::USER) {
            self.doc.set_ns(ns::USER, None)?;
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
                if self.doc.remove_ns(ns::IPC)? {
                    self.note("NS-3", "ipc namespace removed (host)");
                }
            }
            m if m.starts_with("container:") => {
                let t = self.resolve("ipc", &m[10..], Join::Ipc)?;
                if t.shm_path.is_none() && !self.has_user_shm_mount() {
                    return Err(self.ann_err("ipc", format!("failed to join IPC namespace: container {}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)", t.id)));
                }
                self.join(ns::IPC, &t, "NS-3")?;
            }
            _ => {
                let has_path = self.doc.ns_entry(ns::IPC).is_some_and(|n| n.path.is_some());
                if (!has_path || self.s.ipc.is_some()) && self.doc.set_ns(ns::IPC, None)? {
                    self.note("NS-3", "new ipc namespace");
                }
            }
        }
        Ok(())
    }

    /// The IPC mode to apply: annotation, else (fill) the daemon default. `None` = leave alone.
    pub(crate) fn ipc_mode(&self) -> Option<String> {
        if self.s.ipc.is_some() && self.origin == Origin::Nerdctl && self.doc.annotation(NERDCTL_IPC).is_some() {
            return None; // nerdctl already expressed it (§2.3 guard)
        }
        match &self.s.ipc {
            Some(m) if !m.is_empty() => Some(m.clone()),
            Some(_) => Some(self.cfg.default_ipc_mode.clone()),
            None if self.fill => {
                // A ctr spec that already joins or drops the IPC namespace expressed a mode.
                match self.doc.ns_entry(ns::IPC) {
                    Some(n) if n.path.is_none() => Some(self.cfg.default_ipc_mode.clone()),
                    _ => None,
                }
            }
            None => None,
        }
    }

    /// IPC-4: where this container's shareable `/dev/shm` tmpfs lives.
    pub(crate) fn shm_dir(&self) -> String {
        match &self.cfg.shm_root {
            Some(root) => parse::join_path(root, &format!("{}/{}/shm", self.ns, self.id)),
            None => parse::join_path(&self.host.bundle_dir(), "shm"),
        }
    }

    /// A mount at /dev/shm that is not the base tmpfs and not our own shareable bind (IPC-8).
    pub(crate) fn has_user_shm_mount(&self) -> bool {
        let ours = self.shm_dir();
        if self.s.tmpfs.as_ref().is_some_and(|l| l.iter().any(|t| t.destination == "/dev/shm" || t.destination == "/dev")) {
            return true;
        }
        self.doc.mounts().iter().any(|m| m.destination() == "/dev/shm" && !m.is_default() && m.source() != ours)
    }
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

/// `/etc/subuid`-style ranges for a name or id, as contiguous (containerID, hostID, size) (NS-1).
fn sub_ranges(text: &str, name: &str, id: i64) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    let mut next: i64 = 0;
    for l in text.lines() {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() != 3 || (f[0] != name && f[0] != id.to_string()) {
            continue;
        }
        let (Ok(start), Ok(count)) = (f[1].parse::<i64>(), f[2].parse::<i64>()) else { continue };
        out.push((next, start, count));
        next = next.saturating_add(count);
    }
    out
}
