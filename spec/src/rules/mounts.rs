//! Mounts: MT-1 (base list: containerd's `/run` dropped, the cgroup mount added), MT-2 (a
//! `/dev` tmpfs replaces every base `/dev/*` mount), MT-3 (user mounts after the base ones, by
//! depth), MT-4 (`tmpfs`), MT-6 (binds get `rprivate` unless a propagation is given), MT-7 (bind propagation needs a matching source mount), MT-8 (`rro`),
//! MT-9 (locked flags in a user namespace), MT-11 (cgroup mount read-write), MT-12 (duplicate
//! mount points), IPC-2 (private: size), IPC-3 (none), IPC-4 (shareable tmpfs), IPC-5
//! (`container:`), IPC-6 (host), IPC-8 (a user `/dev/shm` wins): the `/dev/shm` side, with
//! IPC-1's size (the annotation, else `default-shm-size`); RO-1
//! (read-only rootfs), PV-1 (privileged: `/sys` read-write).

use super::process::INIT_DEST;
use super::Ctx;
use crate::error::SpecError;
use crate::mountinfo::{self, MountInfo};
use crate::oci::Mount;
use crate::parse;
use crate::{Applied, HostAction};

pub(crate) const IDS: &[&str] = &["MT-1", "MT-2", "MT-3", "MT-4", "MT-6", "MT-7", "MT-8", "MT-9", "MT-11", "MT-12", "IPC-1", "IPC-2", "IPC-3", "IPC-4", "IPC-5", "IPC-6", "IPC-8", "RO-1", "PV-1"];

const SHM: &str = "/dev/shm";

/// Base mounts RO-1 leaves writable.
const RO_EXCEPTIONS: &[&str] = &["/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"];

/// Mount propagation options (any of them means the producer chose one, MT-6).
const PROPAGATIONS: &[&str] = &["private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"];

/// Flags the kernel locks on a mount seen from a less privileged user namespace (MT-9).
const LOCKED_FLAGS: &[&str] = &["ro", "nodev", "noexec", "nosuid", "noatime", "relatime", "nodiratime"];

fn shm_bind(src: &str) -> Mount {
    Mount::new(SHM, "bind", src, &["rbind", "rprivate"])
}

/// Replace the /dev/shm mount (whatever it is) with `new`; returns whether anything changed.
fn replace_shm(mounts: &mut Vec<Mount>, new: Mount) -> bool {
    match mounts.iter().position(|m| m.destination() == SHM) {
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

impl Ctx<'_> {
    /// `/proc/self/mountinfo`, read once per fill (MT-7, MT-9, IPC-6).
    fn get_mountinfo(&mut self) -> Result<&[MountInfo], SpecError> {
        if self.mountinfo.is_none() {
            self.mountinfo = Some(self.host.mountinfo().map_err(|e| Self::host_err("MT-7", e))?);
        }
        Ok(self.mountinfo.as_deref().unwrap_or(&[]))
    }

    pub(crate) fn mounts(&mut self) -> Result<(), SpecError> {
        let mut mounts = self.doc.mounts();
        let before = mounts.clone();
        let mut added_user = false;
        if self.fill {
            // MT-1, table 4.10: containerd's /run tmpfs is not in Docker's spec.
            let n = mounts.len();
            mounts.retain(|m| !(m.destination() == "/run" && m.is_default()));
            if mounts.len() != n {
                self.note("MT-1", "dropped containerd's /run tmpfs");
            }
            // Table 4.3: /sys/fs/cgroup cgroup mount (ro), right after /sys.
            if !mounts.iter().any(|m| m.destination() == "/sys/fs/cgroup") {
                let at = mounts.iter().position(|m| m.destination() == "/sys").map_or(mounts.len(), |i| i + 1);
                mounts.insert(at, Mount::new("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid", "noexec", "nodev"]));
                self.note("MT-1", "added /sys/fs/cgroup cgroup mount");
            }
        }
        self.ipc_mounts(&mut mounts)?;
        // MT-4, MT-5, MT-12, MT-2: --tmpfs.
        for t in self.s.tmpfs.clone().unwrap_or_default() {
            let opts: Vec<&str> = t.options.iter().map(String::as_str).collect();
            let new = Mount::new(&t.destination, "tmpfs", "tmpfs", &opts);
            if mounts.contains(&new) {
                continue; // already applied (idempotence)
            }
            if let Some(i) = mounts.iter().position(|m| m.destination() == t.destination) {
                if mounts[i].is_default() {
                    mounts.remove(i);
                } else {
                    return Err(self.ann_err("tmpfs", format!("Duplicate mount point: {}", t.destination)));
                }
            }
            if t.destination == "/dev" {
                mounts.retain(|m| !(m.destination().starts_with("/dev/") && m.is_default()));
            }
            mounts.push(new);
            added_user = true;
            self.note("MT-4", format!("tmpfs {}", t.destination));
        }
        if self.etc_files(&mut mounts)? {
            added_user = true; // MT-13 binds are user mounts
        }
        // After the loop every mount at a --tmpfs destination is the user's own, even where its
        // (destination, type) looks like a base mount (`--read-only --tmpfs /run` is the classic
        // Docker pattern: that /run must stay writable and count as a user mount).
        let user_tmpfs: Vec<String> = self.s.tmpfs.iter().flatten().map(|t| t.destination.clone()).collect();
        let is_base = |m: &Mount| m.is_default() && !user_tmpfs.iter().any(|d| d == m.destination());
        if added_user {
            // MT-3: base mounts first in their order, user mounts stably by depth.
            let (base, mut user): (Vec<Mount>, Vec<Mount>) = mounts.into_iter().partition(|m| is_base(m));
            user.sort_by_key(|m| parse::path_depth(m.destination()));
            mounts = base.into_iter().chain(user).collect();
        }
        if self.fill {
            self.default_propagation(&mut mounts); // MT-6
            self.propagation(&mut mounts)?; // MT-7
            self.recursive_ro(&mut mounts); // MT-8
            if self.userns_remap {
                self.locked_flags(&mut mounts)?; // MT-9
            }
        }
        // RO-1: read-only rootfs; base mounts other than the exceptions get ro.
        if self.s.read_only == Some(true) {
            let was_rw = self.doc.set_root_readonly()?;
            for m in mounts.iter_mut().filter(|m| is_base(m) || m.destination() == INIT_DEST) {
                if !RO_EXCEPTIONS.contains(&m.destination()) {
                    m.set_ro(true);
                }
            }
            if was_rw {
                self.note("RO-1", "read-only rootfs");
            }
        }
        // MT-11: cgroup mount rw, after RO-1 (which made it ro with every base mount).
        let wc = self.s.security_opt.as_ref().and_then(|o| o.writable_cgroups);
        let cgroup_rw = match wc {
            Some(w) => Some(w),
            None if self.privileged_applies() => Some(true),
            None if self.userns_remap => Some(true),
            None => None,
        };
        if let Some(rw) = cgroup_rw {
            for m in mounts.iter_mut().filter(|m| m.kind() == "cgroup") {
                if m.set_ro(!rw) {
                    self.applied.push(Applied { rule: "MT-11", change: format!("cgroup mount {}", if rw { "rw" } else { "ro" }) });
                }
            }
        }
        // PV-1: privileged clears ro on /sys (after RO-1, as Docker).
        if self.privileged_applies() {
            for m in mounts.iter_mut().filter(|m| m.destination() == "/sys") {
                if m.set_ro(false) {
                    self.applied.push(Applied { rule: "PV-1", change: "/sys rw".into() });
                }
            }
        }
        if mounts != before {
            self.doc.set_mounts(mounts)?;
        }
        Ok(())
    }

    /// IPC-1..IPC-8, mount side.
    fn ipc_mounts(&mut self, mounts: &mut Vec<Mount>) -> Result<(), SpecError> {
        let Some(mode) = self.ipc_mode() else {
            // shm-size alone (explicit mode): resize the base /dev/shm.
            if let Some(sz) = self.s.shm_size {
                self.resize_shm(mounts, sz);
            }
            return Ok(());
        };
        let size = self.s.shm_size.filter(|s| *s > 0).unwrap_or(self.cfg.default_shm_size);
        let user_shm = self.has_user_shm_mount();
        let base_idx = mounts.iter().position(|m| m.destination() == SHM && m.is_default());
        let ours = self.shm_dir();
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
                replace_shm(mounts, shm_bind(&ours));
                self.note("IPC-4", format!("shareable /dev/shm tmpfs at {ours} size={size}"));
            }
            "host" => {
                if user_shm {
                    return Ok(());
                }
                let mi = self.get_mountinfo()?;
                if !mi.iter().any(|m| m.mount_point() == SHM) {
                    return Err(self.ann_err("ipc", "/dev/shm is not mounted, but must be for --ipc=host"));
                }
                if replace_shm(mounts, shm_bind(SHM)) {
                    self.note("IPC-6", "host /dev/shm bound");
                }
            }
            m if m.starts_with("container:") => {
                if user_shm {
                    return Ok(());
                }
                let t = self.resolve("ipc", &m[10..], super::namespaces::Join::Ipc)?;
                if let Some(p) = t.shm_path {
                    if replace_shm(mounts, shm_bind(&p)) {
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
                        mounts.retain(|m| !(m.destination() == SHM && m.source() == ours));
                        let size_opt = format!("size={size}");
                        mounts.push(Mount::new(SHM, "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", &size_opt]));
                        self.note("IPC-2", format!("/dev/shm tmpfs size={size}"));
                    }
                }
            }
        }
        Ok(())
    }

    fn resize_shm(&mut self, mounts: &mut [Mount], size: i64) {
        for m in mounts.iter_mut().filter(|m| m.destination() == SHM && m.is_default()) {
            let mut o = m.options();
            let want = format!("size={size}");
            if o.contains(&want) {
                continue;
            }
            o.retain(|x| !x.starts_with("size="));
            o.push(want);
            m.set_options(o);
            self.applied.push(Applied { rule: "IPC-2", change: format!("/dev/shm size={size}") });
        }
        // A shareable tmpfs action carries the size too.
        for a in self.actions.iter_mut() {
            if let HostAction::ShmTmpfs { size: s, .. } = a {
                *s = size;
            }
        }
    }

    /// MT-6: Docker gives every bind a propagation, `rprivate` unless one was asked for; without
    /// it runc leaves the bind a slave of a shared source, which then receives host mounts.
    fn default_propagation(&mut self, mounts: &mut [Mount]) {
        for m in mounts.iter_mut().filter(|m| m.is_bind() && !m.is_default() && m.destination() != INIT_DEST) {
            if PROPAGATIONS.iter().any(|p| m.has_option(p)) {
                continue;
            }
            let mut o = m.options();
            o.push("rprivate".into());
            m.set_options(o);
            self.applied.push(Applied { rule: "MT-6", change: format!("{} rprivate", m.destination()) });
        }
    }

    /// MT-7: shared/slave bind propagation needs a shared/slave source mount, and raises
    /// `rootfsPropagation`.
    fn propagation(&mut self, mounts: &mut [Mount]) -> Result<(), SpecError> {
        let mut want: Option<&'static str> = None;
        for m in mounts.iter().filter(|m| m.is_bind()) {
            let shared = m.has_option("shared") || m.has_option("rshared");
            let slave = m.has_option("slave") || m.has_option("rslave");
            if !shared && !slave {
                continue;
            }
            let src = m.source().to_string();
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
        let cur = self.doc.rootfs_propagation();
        let keep = match w {
            "shared" => matches!(cur, "shared" | "rshared"),
            _ => matches!(cur, "shared" | "rshared" | "slave" | "rslave"),
        };
        if !keep {
            self.doc.set_rootfs_propagation(w)?;
            self.note("MT-7", format!("rootfsPropagation {w}"));
        }
        Ok(())
    }

    /// MT-8: read-only recursive binds become `rro` where kernel (≥ 5.12) and runc support it.
    fn recursive_ro(&mut self, mounts: &mut [Mount]) {
        let kernel_ok = self.host.kernel_version().is_some_and(|k| k >= (5, 12));
        let runc_ok = self.host.runc_features().is_some_and(|f| crate::oci::features_have_mount_option(&f, "rro"));
        if !kernel_ok || !runc_ok {
            return;
        }
        for m in mounts.iter_mut().filter(|m| m.is_bind()) {
            if m.has_option("rbind") && m.has_option("ro") {
                let n: Vec<String> = m.options().into_iter().map(|x| if x == "ro" { "rro".to_string() } else { x }).collect();
                m.set_options(n);
                self.applied.push(Applied { rule: "MT-8", change: format!("{} rro", m.destination()) });
            }
        }
    }

    /// MT-9: in a user namespace, keep the source mount's locked flags on every bind.
    fn locked_flags(&mut self, mounts: &mut [Mount]) -> Result<(), SpecError> {
        let mi = self.get_mountinfo()?.to_vec();
        for m in mounts.iter_mut().filter(|m| m.is_bind()) {
            let Some(sm) = mountinfo::source_mount(&mi, m.source()) else { continue };
            let mut o = m.options();
            let mut added = Vec::new();
            for f in LOCKED_FLAGS {
                if sm.has_option(f) && !o.iter().any(|x| x == f || (*f == "ro" && x == "rro")) {
                    o.push(f.to_string());
                    added.push(*f);
                }
            }
            if !added.is_empty() {
                m.set_options(o);
                self.applied.push(Applied { rule: "MT-9", change: format!("{} +{}", m.destination(), added.join(",")) });
            }
        }
        Ok(())
    }
}
