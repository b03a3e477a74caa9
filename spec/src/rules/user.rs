//! User and groups: US-1 (`user` resolved against the container's own `/etc/passwd` and
//! `/etc/group`), US-2 (`additionalGids` = primary gid + supplementary groups + group-add),
//! US-3 (`group-add`).

use super::Ctx;
use crate::error::SpecError;
use crate::oci::key;
use crate::passwd;
use serde_json::Value;

pub(crate) const IDS: &[&str] = &["US-1", "US-2", "US-3"];

/// moby's cap on files read from the rootfs (US-1).
const ROOTFS_READ_LIMIT: usize = 10 * 1024 * 1024;

impl Ctx<'_> {
    /// US-1: a file of the container's rootfs, read because the annotation `key` asked. The
    /// image decides what is there: a device node, a FIFO or a 1 GB file must fail with a message
    /// naming the annotation and the file (the host never opens anything but a regular file).
    fn rootfs_text(&self, key: &str, path: &str) -> Result<Option<String>, SpecError> {
        let b = self.host.rootfs_file(path).map_err(|e| self.ann_err(key, format!("reading {path} of the container's rootfs: {e}")))?;
        match b {
            None => Ok(None),
            Some(b) if b.len() > ROOTFS_READ_LIMIT => Err(self.ann_err(key, format!("reading {path} of the container's rootfs: file exceeds {ROOTFS_READ_LIMIT} bytes"))),
            Some(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        }
    }

    /// US-1, US-2, US-3.
    pub(crate) fn user(&mut self) -> Result<(), SpecError> {
        if self.s.user.is_none() && self.s.group_add.is_none() {
            return Ok(());
        }
        let why = if self.s.user.is_some() { "user" } else { "group-add" };
        let group = self.rootfs_text(why, "/etc/group")?;
        let (uid, gid, mut gids) = if let Some(u) = self.s.user.clone() {
            let passwd = self.rootfs_text("user", "/etc/passwd")?;
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

/// The exec process names a user other than the container's original one (US-2: only then
/// are its groups resolved, so a plain exec reads nothing from the rootfs).
pub fn exec_user_chosen(process: &Value, container_user: (i64, i64)) -> bool {
    let Some(user) = process.get(key::USER).and_then(Value::as_object) else { return false };
    let n = |k: &str| user.get(k).and_then(Value::as_i64).unwrap_or(0);
    (n(key::UID), n(key::GID)) != container_user
}

/// US-1/US-2 for an exec (Docker's `getUser` at exec time). When the client chose the exec's
/// user (its uid/gid differ from the container's original spec, e.g. `ctr task exec --user`),
/// `additionalGids` becomes the primary gid, the user's groups in the container's `/etc/group`
/// (when the uid has a passwd entry with that primary gid, i.e. no group was named), then the
/// container's `group-add` gids. Returns whether the process changed.
pub fn exec_user_groups(process: &mut Value, container_user: (i64, i64), passwd_text: Option<&str>, group_text: Option<&str>, group_add: &[i64]) -> bool {
    if !exec_user_chosen(process, container_user) {
        return false;
    }
    let Some(user) = process.get_mut(key::USER).and_then(Value::as_object_mut) else { return false };
    let n = |k: &str| user.get(k).and_then(Value::as_i64).unwrap_or(0);
    let (uid, gid) = (n(key::UID), n(key::GID));
    let mut gids = vec![gid];
    let entry = passwd::parse_passwd(passwd_text.unwrap_or("")).into_iter().find(|u| u.uid == uid);
    if let Some(u) = entry.filter(|u| u.gid == gid) {
        gids.extend(passwd::parse_group(group_text.unwrap_or("")).into_iter().filter(|g| g.members.contains(&u.name)).map(|g| g.gid));
    }
    for g in group_add {
        if !gids.contains(g) {
            gids.push(*g);
        }
    }
    let v = Value::from(gids);
    if user.get(key::ADDITIONAL_GIDS) == Some(&v) {
        return false;
    }
    user.insert(key::ADDITIONAL_GIDS.into(), v);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n";
    const GROUP: &str = "root:x:0:\ntester:x:1000:\ntestgrp:x:2000:tester\n";

    /// US-2 at exec (issue 11 item 10).
    #[test]
    fn us_2_exec_user_groups() {
        let mut p = json!({"args": ["sh"], "user": {"uid": 1000, "gid": 1000, "additionalGids": [0]}});
        assert!(exec_user_groups(&mut p, (0, 0), Some(PASSWD), Some(GROUP), &[3000]));
        assert_eq!(p["user"], json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000, 3000]}));
        // a named group (gid differs from the passwd entry's): no supplementary groups
        let mut p = json!({"user": {"uid": 1000, "gid": 2000}});
        assert!(exec_user_groups(&mut p, (0, 0), Some(PASSWD), Some(GROUP), &[3000]));
        assert_eq!(p["user"]["additionalGids"], json!([2000, 3000]));
        // no passwd entry: only the primary gid
        let mut p = json!({"user": {"uid": 4242, "gid": 0}});
        exec_user_groups(&mut p, (0, 0), Some(PASSWD), Some(GROUP), &[]);
        assert_eq!(p["user"]["additionalGids"], json!([0]));
        // the container's own user: left as the client (and the container) had it
        let mut p = json!({"user": {"uid": 0, "gid": 0, "additionalGids": [0, 10]}});
        assert!(!exec_user_groups(&mut p, (0, 0), Some(PASSWD), Some(GROUP), &[3000]));
        assert_eq!(p["user"]["additionalGids"], json!([0, 10]));
    }
}
