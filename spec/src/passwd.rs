//! User and group resolution against the container's own `/etc/passwd` and `/etc/group`
//! (US-1, US-2, US-3), ported from moby/sys/user `GetExecUser` / `GetAdditionalGroups`.
//! Pure: the caller passes the file contents (read through the rootfs-scoped host call).

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["US-1", "US-3"];

/// One passwd entry (only the fields resolution uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: i64,
    pub gid: i64,
}

/// One group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: i64,
    pub members: Vec<String>,
}

/// Go `strconv.Atoi` as moby/sys/user uses it in `parseLine`: failures become 0 (quirk kept:
/// a garbage line gets uid 0).
fn atoi_or_zero(s: &str) -> i64 {
    atoi(s).unwrap_or(0)
}

fn atoi(s: &str) -> Option<i64> {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse passwd text. Not comment-aware, as in moby/sys/user (US-1 edge).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(':');
            let name = f.next().unwrap_or("").to_string();
            let _pass = f.next();
            let uid = atoi_or_zero(f.next().unwrap_or(""));
            let gid = atoi_or_zero(f.next().unwrap_or(""));
            PasswdEntry { name, uid, gid }
        })
        .collect()
}

/// Parse group text; `#` lines are skipped (US-1 edge).
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split(':');
            let name = f.next().unwrap_or("").to_string();
            let _pass = f.next();
            let gid = atoi_or_zero(f.next().unwrap_or(""));
            let members = f
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            GroupEntry { name, gid, members }
        })
        .collect()
}

const MAX_ID: i64 = 2147483647;
const ERR_RANGE: &str = "uids and gids must be in range 0-2147483647";

/// Result of US-1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: i64,
    pub gid: i64,
    pub sgids: Vec<i64>,
}

/// moby/sys/user `GetExecUser` with defaults uid 0 / gid 0. `None` file = absent or unusable.
pub fn resolve_user(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser, String> {
    let mut parts = spec.split(':');
    let user_arg = parts.next().unwrap_or("");
    let group_arg = parts.next().unwrap_or("");
    let uid_arg = atoi(user_arg);
    let gid_arg = atoi(group_arg);
    let mut user = ExecUser { uid: 0, gid: 0, sgids: vec![] };

    let users = passwd.map(parse_passwd).unwrap_or_default();
    let matched = users.iter().find(|u| {
        if user_arg.is_empty() {
            u.uid == 0
        } else if let Some(n) = uid_arg {
            u.uid == n
        } else {
            u.name == user_arg
        }
    });
    let mut matched_name = None;
    match matched {
        Some(u) => {
            matched_name = Some(u.name.clone());
            user.uid = u.uid;
            user.gid = u.gid;
        }
        None if !user_arg.is_empty() => match uid_arg {
            None => return Err(format!("unable to find user {user_arg}: no matching entries in passwd file")),
            Some(n) => {
                if !(0..=MAX_ID).contains(&n) {
                    return Err(ERR_RANGE.to_string());
                }
                user.uid = n;
            }
        },
        None => {}
    }
    if !group_arg.is_empty() || matched_name.is_some() {
        let groups = group.map(parse_group).unwrap_or_default();
        if !group_arg.is_empty() {
            let g = groups.iter().find(|g| match gid_arg {
                Some(n) => g.gid == n,
                None => g.name == group_arg,
            });
            match (g, gid_arg) {
                (Some(g), _) => user.gid = g.gid,
                (None, None) => {
                    return Err(format!("unable to find group {group_arg}: no matching entries in group file"))
                }
                (None, Some(n)) => {
                    if !(0..=MAX_ID).contains(&n) {
                        return Err(ERR_RANGE.to_string());
                    }
                    user.gid = n;
                }
            }
        } else if let Some(name) = &matched_name {
            user.sgids = groups.iter().filter(|g| g.members.iter().any(|m| m == name)).map(|g| g.gid).collect();
        }
    }
    Ok(user)
}

/// moby/sys/user `GetAdditionalGroups` (US-3). Docker returns map order; we keep request order.
pub fn additional_groups(wanted: &[String], group: Option<&str>) -> Result<Vec<i64>, String> {
    let groups = group.map(parse_group).unwrap_or_default();
    let mut out: Vec<i64> = Vec::new();
    for ag in wanted {
        let mut found = false;
        for g in &groups {
            // moby: a group already taken does not count as found (quirk kept).
            if (&g.name == ag || g.gid.to_string() == *ag) && !out.contains(&g.gid) {
                out.push(g.gid);
                found = true;
                break;
            }
        }
        if !found {
            let gid = crate::parse::parse_i64(ag)
                .map_err(|_| format!("unable to find group {ag}: no matching entries in group file"))?;
            if !(0..=MAX_ID).contains(&gid) {
                return Err(ERR_RANGE.to_string());
            }
            if !out.contains(&gid) {
                out.push(gid);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1::/:/bin/false\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "# comment\nroot:x:0:\nwheel:x:10:root,app\naudio:x:29:app\napp:x:1000:\n";

    #[test]
    fn us_1_table() {
        type Want = Result<(i64, i64, Vec<i64>), &'static str>;
        let cases: &[(&str, Want)] = &[
            ("", Ok((0, 0, vec![10]))),
            ("app", Ok((1000, 1000, vec![10, 29]))),
            ("1000", Ok((1000, 1000, vec![10, 29]))),
            ("4242", Ok((4242, 0, vec![]))),
            ("app:audio", Ok((1000, 29, vec![]))),
            ("app:77", Ok((1000, 77, vec![]))),
            ("4242:4343", Ok((4242, 4343, vec![]))),
            ("ghost", Err("unable to find user ghost: no matching entries in passwd file")),
            ("app:ghost", Err("unable to find group ghost: no matching entries in group file")),
            ("-5", Err("uids and gids must be in range 0-2147483647")),
            ("1:2147483648", Err("uids and gids must be in range 0-2147483647")),
        ];
        for (spec, want) in cases {
            let got = resolve_user(spec, Some(PASSWD), Some(GROUP)).map(|u| (u.uid, u.gid, u.sgids));
            assert_eq!(got, want.clone().map_err(str::to_string), "user {spec:?}");
        }
        // Files absent: numeric works, names fail.
        assert_eq!(resolve_user("5:6", None, None).unwrap().gid, 6);
        assert!(resolve_user("app", None, None).is_err());
    }

    #[test]
    fn us_3_group_add() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(additional_groups(&s(&["audio", "10", "555"]), Some(GROUP)).unwrap(), vec![29, 10, 555]);
        assert_eq!(
            additional_groups(&s(&["nosuch"]), Some(GROUP)).unwrap_err(),
            "unable to find group nosuch: no matching entries in group file"
        );
        assert_eq!(additional_groups(&s(&["29", "audio"]), Some(GROUP)).unwrap_err(), "unable to find group audio: no matching entries in group file");
    }
}
