//! `--hostname` (GEN-3), `--name` (NAME-1), `--dns`, `--dns-search`, `--dns-option`,
//! `--add-host` (MT-13): the Docker CLI's validators (`opts/opts.go`, `opts/hosts.go`).

use super::go_quote;
use std::net::IpAddr;

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["GEN-3", "NAME-1", "MT-13"];

/// The kernel's `HOST_NAME_MAX`: Docker refuses longer hostnames (GEN-3).
pub const HOSTNAME_MAX: usize = 64;

/// What `--add-host` accepts instead of an address: Docker maps it to its bridge gateway.
pub const HOST_GATEWAY: &str = "host-gateway";

/// GEN-3: a hostname Docker accepts (at most 64 bytes; the kernel refuses more).
pub fn parse_hostname(val: &str) -> Result<String, String> {
    if val.len() > HOSTNAME_MAX {
        return Err(format!("hostname {} is too long (maximum {HOSTNAME_MAX} bytes)", go_quote(val)));
    }
    Ok(val.to_string())
}

/// NAME-1: moby `validContainerNamePattern` `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`; the leading `/`
/// Docker keeps internally is dropped.
pub fn parse_container_name(val: &str) -> Result<String, String> {
    let name = val.strip_prefix('/').unwrap_or(val);
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        return Err(format!("Invalid container name ({val}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
    }
    Ok(name.to_string())
}

/// cli `ValidateIPAddress`: surrounding spaces allowed, the address normalised.
pub fn parse_ip(val: &str) -> Result<String, String> {
    val.trim().parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| format!("IP address is not correctly formatted: {val}"))
}

fn is_label(l: &str) -> bool {
    let b = l.as_bytes();
    match b {
        [] => false,
        [c] => c.is_ascii_alphanumeric(),
        [first, mid @ .., last] => first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && mid.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-'),
    }
}

/// cli `ValidateDNSSearch`: `.` (no search domain) or a domain of letters, digits and inner
/// dashes; a trailing dot and trailing spaces are dropped; at most 254 characters.
pub fn parse_dns_search(val: &str) -> Result<String, String> {
    let v = val.trim_matches(' ');
    if v == "." {
        return Ok(v.to_string());
    }
    let bad = || format!("{v} is not a valid domain");
    if !v.bytes().any(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let d = v.trim_end_matches(char::is_whitespace);
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.len() >= 255 || !d.split('.').all(is_label) {
        return Err(bad());
    }
    Ok(d.to_string())
}

/// One `--add-host` value: `name:ip`, `name=ip`, the address optionally in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    /// As the user wrote it (the CLI keeps the original form for `/etc/hosts`).
    pub ip: String,
}

/// cli `ValidateExtraHost`. `host-gateway` is refused: it names Docker's bridge gateway, and this
/// shim creates no bridge.
pub fn parse_extra_host(val: &str) -> Result<ExtraHost, String> {
    let (k, v) = match val.split_once('=') {
        Some(kv) => Some(kv),
        None => val.split_once(':'),
    }
    .filter(|(k, _)| !k.is_empty() && !k.contains(':'))
    .ok_or_else(|| format!("bad format for add-host: {}", go_quote(val)))?;
    if v == HOST_GATEWAY {
        return Err(format!("{HOST_GATEWAY} in add-host is not supported: it names Docker's bridge gateway and this runtime sets up no bridge network: {}", go_quote(val)));
    }
    let v = if v.len() > 2 && v.starts_with('[') && v.ends_with(']') { &v[1..v.len() - 1] } else { v };
    parse_ip(v).map_err(|_| format!("invalid IP address in add-host: {}", go_quote(v)))?;
    Ok(ExtraHost { name: k.to_string(), ip: v.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_3_hostname_and_name_1_names() {
        assert_eq!(parse_hostname("web-1.example").unwrap(), "web-1.example");
        let long = "a".repeat(65);
        assert_eq!(parse_hostname(&long).unwrap_err(), format!("hostname \"{long}\" is too long (maximum 64 bytes)"));
        assert!(parse_hostname(&"a".repeat(64)).is_ok());
        assert_eq!(parse_container_name("/web_1.a-b").unwrap(), "web_1.a-b");
        for bad in ["a", "-web", "we b", "", "/", "web/1"] {
            assert_eq!(parse_container_name(bad).unwrap_err(), format!("Invalid container name ({bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
        }
    }

    #[test]
    fn mt_13_dns_grammar() {
        assert_eq!(parse_ip(" 8.8.8.8 ").unwrap(), "8.8.8.8");
        assert_eq!(parse_ip("0:0:0:0:0:0:0:1").unwrap(), "::1");
        assert_eq!(parse_ip("8.8.8").unwrap_err(), "IP address is not correctly formatted: 8.8.8");
        assert_eq!(parse_dns_search("example.com.").unwrap(), "example.com");
        assert_eq!(parse_dns_search(" . ").unwrap(), ".");
        assert_eq!(parse_dns_search("a-b.c").unwrap(), "a-b.c");
        for bad in ["-a.com", "a..b", "123", "a_b.com", "a.-b"] {
            assert_eq!(parse_dns_search(bad).unwrap_err(), format!("{bad} is not a valid domain"));
        }
        assert_eq!(parse_extra_host("db:10.0.0.2").unwrap(), ExtraHost { name: "db".into(), ip: "10.0.0.2".into() });
        assert_eq!(parse_extra_host("db=::1").unwrap().ip, "::1");
        assert_eq!(parse_extra_host("db:[fe80::1]").unwrap().ip, "fe80::1");
        assert_eq!(parse_extra_host("db:::1").unwrap().ip, "::1");
        assert_eq!(parse_extra_host("db").unwrap_err(), "bad format for add-host: \"db\"");
        assert_eq!(parse_extra_host(":1.2.3.4").unwrap_err(), "bad format for add-host: \":1.2.3.4\"");
        assert_eq!(parse_extra_host("db:1.2.3").unwrap_err(), "invalid IP address in add-host: \"1.2.3\"");
        assert!(parse_extra_host("gw:host-gateway").unwrap_err().starts_with("host-gateway in add-host is not supported"));
    }
}
