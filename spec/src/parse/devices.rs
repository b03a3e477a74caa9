//! `--device` (DV-4) and `--device-cgroup-rule` (DV-5).

use super::clean_path;

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["DV-4", "DV-5"];

/// One `--device` value (DV-3/DV-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// cli `validDeviceMode`: non-empty subset of `rwm`, each letter once.
pub fn valid_device_mode(mode: &str) -> bool {
    if mode.is_empty() || mode.len() > 3 {
        return false;
    }
    let mut seen = [false; 3];
    for c in mode.chars() {
        let i = match c {
            'r' => 0,
            'w' => 1,
            'm' => 2,
            _ => return false,
        };
        if seen[i] {
            return false;
        }
        seen[i] = true;
    }
    true
}

/// cli `validateDevice` + `parseLinuxDevice` (DV-4): `host[:container][:perms]`.
pub fn parse_device(val: &str) -> Result<DeviceMapping, String> {
    // validateLinuxPath
    if val.matches(':').count() > 2 {
        return Err(format!("bad format for path: {val}"));
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(format!("bad format for path: {val}"));
    }
    let container_path = match split.as_slice() {
        [p] => *p,
        [h, second] => {
            if valid_device_mode(second) {
                h
            } else {
                second
            }
        }
        [_, c, mode] => {
            if !valid_device_mode(mode) {
                return Err(format!("bad mode specified: {mode}"));
            }
            c
        }
        _ => return Err(format!("invalid device specification: {val}")),
    };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    // parseLinuxDevice
    let mut perms = "rwm".to_string();
    let mut dst = String::new();
    if split.len() >= 2 {
        if split.len() == 3 {
            perms = split[2].to_string();
        }
        if valid_device_mode(split[1]) {
            perms = split[1].to_string();
        } else {
            dst = split[1].to_string();
        }
    }
    let src = split[0].to_string();
    if dst.is_empty() {
        dst = src.clone();
    }
    Ok(DeviceMapping {
        path_on_host: clean_path(&src),
        path_in_container: clean_path(&dst),
        cgroup_permissions: perms,
    })
}

/// A device-cgroup rule (DV-5) in OCI form; `None` major/minor = wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: String,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl DeviceRule {
    pub fn to_oci(&self) -> serde_json::Value {
        let kind = Some(self.kind.as_str()).filter(|k| !k.is_empty());
        crate::oci::device_rule_json(self.allow, kind, self.major, self.minor, &self.access)
    }
}

/// moby `AppendDevicePermissionsFromCgroupRules` grammar (DV-5):
/// `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`; `*` becomes `-1` as in moby.
pub fn parse_device_cgroup_rule(rule: &str) -> Result<DeviceRule, String> {
    let bad = || format!("invalid device cgroup rule format: '{rule}'");
    let mut it = rule.split(' ');
    let (kind, nums, access) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(k), Some(n), Some(a), None) => (k, n, a),
        _ => return Err(bad()),
    };
    if !matches!(kind, "a" | "c" | "b") {
        return Err(bad());
    }
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad());
    }
    let (maj, min) = nums.split_once(':').ok_or_else(bad)?;
    let num = |s: &str, what: &str| -> Result<i64, String> {
        if s == "*" {
            return Ok(-1);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>()
            .map_err(|_| format!("invalid {what} value in device cgroup rule format: '{rule}'"))
    };
    let major = num(maj, "major")?;
    let minor = num(min, "minor")?;
    Ok(DeviceRule {
        allow: true,
        kind: kind.to_string(),
        major: Some(major),
        minor: Some(minor),
        access: access.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dv_4_device_grammar() {
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!((d.path_on_host.as_str(), d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/fuse", "/dev/fuse", "rwm"));
        let d = parse_device("/dev/sda:r").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/sda", "r"));
        let d = parse_device("/dev/sda:/dev/xvda:rw").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/xvda", "rw"));
        assert_eq!(parse_device("/a:/b:c:d").unwrap_err(), "bad format for path: /a:/b:c:d");
        assert_eq!(parse_device(":/b").unwrap_err(), "bad format for path: :/b");
        assert_eq!(parse_device("/a:/b:rr").unwrap_err(), "bad mode specified: rr");
        assert_eq!(parse_device("/a:b").unwrap_err(), "b is not an absolute path");
    }
    #[test]
    fn dv_5_cgroup_rule_grammar() {
        let r = parse_device_cgroup_rule("c 1:3 mr").unwrap();
        assert_eq!((r.kind.as_str(), r.major, r.minor, r.access.as_str()), ("c", Some(1), Some(3), "mr"));
        let r = parse_device_cgroup_rule("b *:* rrr").unwrap();
        assert_eq!((r.major, r.minor), (Some(-1), Some(-1)));
        for bad in ["c 1:3", "x 1:3 r", "c 1:3 rwmx", "c a:3 r", "c 1:3  r", ""] {
            assert_eq!(parse_device_cgroup_rule(bad).unwrap_err(), format!("invalid device cgroup rule format: '{bad}'"));
        }
        assert!(parse_device_cgroup_rule("c 99999999999999999999:1 r").unwrap_err().starts_with("invalid major value"));
    }
}
