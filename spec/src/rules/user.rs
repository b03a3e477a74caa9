//! User and groups: US-1 (`user` resolved against the container's own `/etc/passwd` and
//! `/etc/group`), US-2 (`additionalGids` = primary gid + supplementary groups + group-add),
//! US-3 (`group-add`).

use super::Ctx;
use crate::error::SpecError;
use crate::passwd;

pub(crate) const IDS: &[&str] = &["US-1", "US-2", "US-3"];

/// moby's cap on files read from the rootfs (US-1).
const ROOTFS_READ_LIMIT: usize = 10 * 1024 * 1024;

impl Ctx<'_> {
    fn rootfs_text(&self, path: &str) -> Result<Option<String>, SpecError> {
        let b = self.host.rootfs_file(path).map_err(|e| Self::host_err("US-1", e))?;
        match b {
            None => Ok(None),
            Some(b) if b.len() > ROOTFS_READ_LIMIT => Err(self.ann_err("user", format!("{path}: file exceeds {ROOTFS_READ_LIMIT} bytes"))),
            Some(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        }
    }

    /// US-1, US-2, US-3.
    pub(crate) fn user(&mut self) -> Result<(), SpecError> {
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
            let (uid, gid, mut g) = self.doc.user();
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
        if self.doc.set_user(uid, gid, &gids)? {
            self.note("US-1", format!("user {uid}:{gid} additionalGids {}", serde_json::Value::from(gids.clone())));
        }
        Ok(())
    }
}
