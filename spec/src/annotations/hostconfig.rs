//! The `hostconfig` annotation: moby `HostConfig` JSON turned into per-key annotation values.

use crate::error::SpecError;
use crate::parse;
use serde_json::{Map, Value};

/// Convert `hostconfig` (moby `HostConfig` JSON field names) into (key, value) pairs in the
/// annotation grammar, so the same parsers validate both forms. Zero/empty/null = unset, as in
/// Docker's API.
pub(super) fn hostconfig_pairs(full: &str, value: &str) -> Result<Vec<(&'static str, String)>, SpecError> {
    let e = |m: String| SpecError::annotation(full, m);
    let obj: Map<String, Value> = serde_json::from_str(value).map_err(|x| e(format!("invalid HostConfig JSON: {x}")))?;
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) if n.as_f64() == Some(0.0) => None,
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(a) if a.is_empty() => None,
            Value::Object(o) if o.is_empty() => None,
            other => Some(other.to_string()),
        }
    };
    for (field, v) in &obj {
        let field_err = |what: &str| e(format!("HostConfig.{field}: expected {what}, got {v}"));
        let key: &'static str = match field.as_str() {
            "NetworkMode" => "network",
            "IpcMode" => "ipc",
            "PidMode" => "pid",
            "UTSMode" => "uts",
            "UsernsMode" => "userns",
            "CgroupnsMode" => "cgroupns",
            "Privileged" => "privileged",
            "CapAdd" => "cap-add",
            "CapDrop" => "cap-drop",
            "SecurityOpt" => "security-opt",
            "ReadonlyRootfs" => "read-only",
            "DeviceCgroupRules" => "device-cgroup-rules",
            "Sysctls" => "sysctls",
            "CgroupParent" => "cgroup-parent",
            "ShmSize" => "shm-size",
            "Init" => "init",
            "OomScoreAdj" => "oom-score-adj",
            "PidsLimit" => "pids-limit",
            "CpuShares" => "cpu-shares",
            "CpuPeriod" => "cpu-period",
            "CpuQuota" => "cpu-quota",
            "CpusetCpus" => "cpuset-cpus",
            "CpusetMems" => "cpuset-mems",
            "CpuRealtimePeriod" => "cpu-rt-period",
            "CpuRealtimeRuntime" => "cpu-rt-runtime",
            "Memory" => "memory",
            "MemoryReservation" => "memory-reservation",
            "MemorySwap" => "memory-swap",
            "MemorySwappiness" => "memory-swappiness",
            "OomKillDisable" => "oom-kill-disable",
            "BlkioWeight" => "blkio-weight",
            "GroupAdd" => "group-add",
            "MaskedPaths" => "masked-paths",
            "ReadonlyPaths" => "readonly-paths",
            "Dns" => "dns",
            "DnsSearch" => "dns-search",
            "DnsOptions" => "dns-option",
            "ExtraHosts" => "add-host",
            "NanoCpus" | "NanoCPUs" => {
                if let Some(n) = v.as_i64().filter(|n| *n != 0) {
                    out.push(("cpus", format!("{n}/1000000000")));
                } else if !v.is_null() && v.as_i64().is_none() {
                    return Err(field_err("an integer"));
                }
                continue;
            }
            "Ulimits" => {
                for u in v.as_array().into_iter().flatten() {
                    let name = u.get("Name").and_then(Value::as_str).ok_or_else(|| field_err("[{Name,Soft,Hard}]"))?;
                    let soft = u.get("Soft").and_then(Value::as_i64).unwrap_or(0);
                    let hard = u.get("Hard").and_then(Value::as_i64).unwrap_or(0);
                    out.push(("ulimits", format!("{name}={soft}:{hard}")));
                }
                continue;
            }
            "Devices" => {
                let mut l = Vec::new();
                for d in v.as_array().into_iter().flatten() {
                    let g = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let (h, c, p) = (g("PathOnHost"), g("PathInContainer"), g("CgroupPermissions"));
                    let c = if c.is_empty() { h.clone() } else { c };
                    let p = if p.is_empty() { "rwm".to_string() } else { p };
                    l.push(format!("{h}:{c}:{p}"));
                }
                if !l.is_empty() {
                    out.push(("devices", Value::from(l).to_string()));
                }
                continue;
            }
            "Tmpfs" => {
                let mut l = Vec::new();
                for (dest, opts) in v.as_object().into_iter().flatten() {
                    let o = opts.as_str().unwrap_or("");
                    l.push(if o.is_empty() { dest.clone() } else { format!("{dest}:{o}") });
                }
                if !l.is_empty() {
                    out.push(("tmpfs", Value::from(l).to_string()));
                }
                continue;
            }
            other => return Err(e(format!("HostConfig field {} is not supported by this shim", parse::go_quote(other)))),
        };
        if let Some(s) = scalar(v) {
            out.push((key, s));
        }
    }
    // Ulimits arrive one per entry; join them into one list value.
    let ul: Vec<String> = out.iter().filter(|(k, _)| *k == "ulimits").map(|(_, v)| v.clone()).collect();
    out.retain(|(k, _)| *k != "ulimits");
    if !ul.is_empty() {
        out.push(("ulimits", Value::from(ul).to_string()));
    }
    Ok(out)
}

