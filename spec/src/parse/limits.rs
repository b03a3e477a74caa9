//! `--ulimit` (RL-2).

use super::parse_i64;

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["RL-2"];

/// Ulimit names Docker accepts (RL-2; no `as`).
pub const ULIMIT_NAMES: &[&str] = &[
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack",
];

/// One `--ulimit` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    /// The OCI rlimit object (RL-1): `-1` becomes RLIM_INFINITY through Go's uint64 cast.
    pub fn to_oci(&self) -> serde_json::Value {
        crate::oci::rlimit_json(&format!("RLIMIT_{}", self.name.to_ascii_uppercase()), self.hard as u64, self.soft as u64)
    }
}

/// go-units `ParseUlimit` (RL-2): `name=soft[:hard]`.
pub fn parse_ulimit(val: &str) -> Result<Ulimit, String> {
    let (name, limits) = val
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {val}"))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [s] => {
            let s = parse_i64(s)?;
            (s, s)
        }
        [s, h] => {
            let h = parse_i64(h)?;
            (parse_i64(s)?, h)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(Ulimit { name: name.to_string(), soft, hard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rl_2_ulimit_grammar() {
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap(), Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 });
        assert_eq!(parse_ulimit("nproc=512").unwrap().hard, 512);
        assert_eq!(parse_ulimit("core=-1").unwrap().hard, -1);
        assert_eq!(parse_ulimit("nofile").unwrap_err(), "invalid ulimit argument: nofile");
        assert_eq!(parse_ulimit("as=1").unwrap_err(), "invalid ulimit type: as");
        assert_eq!(
            parse_ulimit("nofile=1:2:3").unwrap_err(),
            "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
        );
        assert_eq!(
            parse_ulimit("nofile=10:5").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 10 > 5"
        );
        assert_eq!(
            parse_ulimit("nofile=-1:5").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 5"
        );
        assert_eq!(parse_ulimit("nofile=x").unwrap_err(), "strconv.ParseInt: parsing \"x\": invalid syntax");
        let oci = parse_ulimit("core=-1").unwrap().to_oci();
        assert_eq!(oci["hard"], serde_json::json!(u64::MAX));
        assert_eq!(oci["type"], "RLIMIT_CORE");
    }
}
