//! Cgroup path and driver: CG-1 (`linux.cgroupsPath`, and the guard against sharing another
//! container's cgroup), CG-2 (cgroup driver), CG-3 (a systemd parent must be a slice).
//!
//! The final `--systemd-cgroup` decision for runc is taken at the end of `fill` (mod.rs).

use super::Ctx;
use crate::config::{CgroupDriver, Origin, CG3_TEXT};
use crate::error::SpecError;
use crate::parse;

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
        let path = match driver {
            CgroupDriver::Systemd => format!("{parent}:{}:{}", self.cfg.cgroup_scope_prefix, self.id),
            CgroupDriver::Cgroupfs => parse::join_path(&parent, self.id),
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

    /// CG-1 guard (not Docker's: dockerd has one namespace and 64-hex ids). `/docker/<id>` drops
    /// containerd's namespace from the path, so the same id in two namespaces would silently
    /// share one cgroup (merged limits, mixed stats, `kill --all` reaching the other container).
    /// Refuse a cgroup that already holds processes instead.
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
                    "cgroup {path:?} already holds the processes of another container (the same id in another containerd namespace?): choose another id, or set cgroup-parent (annotation {}cgroup-parent or config cgroup-parent)",
                    self.cfg.annotation_prefix
                ),
            });
        }
        Ok(())
    }
}
