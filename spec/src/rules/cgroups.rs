//! Cgroup path and driver: CG-1 (`linux.cgroupsPath`, and the guards against sharing another
//! container's cgroup), CG-2 (cgroup driver), CG-3 (a systemd parent must be a slice).
//!
//! The final `--systemd-cgroup` decision for runc is taken at the end of `fill` (mod.rs), and
//! so is the claim of the final cgroup ([`cgroup_claims`]).
//!
//! CG-1 layout. dockerd has one namespace, so Docker's cgroup is named after the id alone:
//! `/docker/<id>`, systemd `docker-<id>.scope`. containerd ids are unique per namespace only,
//! so that name is kept for the namespace `default` (where ctr and nerdctl put containers)
//! and every other namespace's containers are named `<namespace>--<id>`:
//! `/docker/<ns>--<id>`, `docker-<ns>--<id>.scope`. containerd allows `-`, `.` and `_` in
//! namespaces and ids but never two of them in a row, so `--` splits exactly one way: no two
//! (namespace, id) pairs share a name, and no name is another one's parent.

use super::Ctx;
use crate::config::{CgroupDriver, Origin, CG3_TEXT};
use crate::error::SpecError;
use crate::{claim_class, parse, ClaimScope, HostAction};

/// The containerd namespace whose containers get Docker's own cgroup name (`<id>`).
pub const UNQUALIFIED_NAMESPACE: &str = "default";
/// Between namespace and id in every other namespace's cgroup names.
pub const NAMESPACE_SEPARATOR: &str = "--";

/// CG-1: the last component of a container's cgroup (systemd: the scope's name after the prefix).
pub fn cgroup_leaf(namespace: &str, id: &str) -> String {
    if namespace == UNQUALIFIED_NAMESPACE {
        id.to_string()
    } else {
        format!("{namespace}{NAMESPACE_SEPARATOR}{id}")
    }
}

/// CG-1: what makes a container's cgroup its own, as [`HostAction::Claim`]s taken host-wide
/// before `runc create`: two creates racing for one cgroup cannot both win, whoever computed
/// the path (the rules, the client, the kubelet). cgroupfs: the cleaned absolute path; systemd:
/// the unit runc creates (unit names are global, whatever the slice). A relative cgroupfs path
/// (runc resolves it against its own cgroup) and an empty one are not claimed.
pub fn cgroup_claims(cgroups_path: &str, systemd: bool) -> Vec<HostAction> {
    let claim = |class: &str, key: String| HostAction::Claim { scope: ClaimScope::Host, class: class.into(), key };
    if systemd {
        // runc: `slice:prefix:name` is the unit `prefix-name.scope` (or the slice `name`).
        let parts: Vec<&str> = cgroups_path.split(':').collect();
        return match parts.as_slice() {
            [_, prefix, name] if !name.is_empty() => {
                let unit = if name.ends_with(".slice") { name.to_string() } else { format!("{prefix}-{name}.scope") };
                vec![claim(claim_class::SYSTEMD_UNIT, unit)]
            }
            _ => vec![],
        };
    }
    if !cgroups_path.starts_with('/') {
        return vec![];
    }
    let path = parse::clean_path(cgroups_path);
    if path == "/" {
        return vec![];
    }
    vec![claim(claim_class::CGROUP, path)]
}

pub(crate) const IDS: &[&str] = &["CG-1", "CG-2", "CG-3"];

impl Ctx<'_> {
    /// CG-2: the driver CG-1 writes the path for. runc's driver, where someone chose it, wins so
    /// that the path and `--systemd-cgroup` agree; CRI's unset means cgroupfs, as in
    /// `cgroup_driver::decide`; then `exec-opts`; then Docker's auto rule.
    pub(crate) fn cgroup_driver(&self) -> CgroupDriver {
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
    pub(crate) fn cgroups(&mut self) -> Result<(), SpecError> {
        let current = self.doc.cgroups_path().to_string();
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
        let leaf = cgroup_leaf(self.ns, self.id);
        let path = match driver {
            CgroupDriver::Systemd => format!("{parent}:{}:{leaf}", self.cfg.cgroup_scope_prefix),
            CgroupDriver::Cgroupfs => parse::join_path(&parent, &leaf),
        };
        if driver == CgroupDriver::Cgroupfs {
            self.refuse_busy_cgroup(&path)?;
        }
        if path != current {
            self.doc.set_cgroups_path(&path)?;
            self.note("CG-1", format!("cgroupsPath {path}"));
        }
        Ok(())
    }

    /// CG-1 guard (not Docker's). The layout keeps namespaces apart and the claim keeps this
    /// shim's containers apart; a container of another runtime (dockerd's own `/docker/<id>`,
    /// the Go shim with a client's path) holds no claim, so a cgroup that already holds
    /// processes is refused too (sharing it means merged limits, mixed stats, a freeze or
    /// `kill --all` reaching the other container).
    fn refuse_busy_cgroup(&self, path: &str) -> Result<(), SpecError> {
        if !path.starts_with('/') {
            return Ok(()); // relative: runc resolves it against its own cgroup
        }
        let procs = self.host.cgroup_processes(path).map_err(|source| SpecError::Host { rule: "CG-1", source })?;
        // Our own running init in there means this is our cgroup (dry-run of a live bundle).
        let own = self.host.own_init_pid();
        let busy = !procs.is_empty() && !own.is_some_and(|pid| procs.contains(&pid));
        if busy {
            return Err(SpecError::Rule {
                rule: "CG-1",
                msg: format!(
                    "cgroup {path:?} already holds the processes of another container (containers never share a cgroup): choose another id, or set cgroup-parent (annotation {}cgroup-parent or config cgroup-parent)",
                    self.cfg.annotation_prefix
                ),
            });
        }
        Ok(())
    }
}
