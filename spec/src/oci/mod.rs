//! The OCI runtime-spec document as the rules see it: every `config.json` key string lives in
//! this file, and rules read and edit the document only through the accessors below.
//!
//! The document stays a `serde_json::Value` on purpose: a producer may write fields this crate
//! does not know (newer runtime-spec fields, vendor extensions, `hooks`, `windows`, …) and they
//! must reach runc untouched. The accessors edit the tree in place, so everything they do not
//! name passes through. Typed crates (`oci-spec`) deserialize into structs without a catch-all
//! field, so a round trip through them would drop those unknown fields; see `docs/RULES.md`.

mod doc;
mod mount;

pub use doc::Doc;
pub use mount::{Mount, NsEntry};

use crate::error::SpecError;
use serde_json::{Map, Value};

/// Field names of `config.json` (runtime-spec `config.md`, `config-linux.md`).
pub mod key {
    pub const ANNOTATIONS: &str = "annotations";
    pub const HOSTNAME: &str = "hostname";
    pub const PROCESS: &str = "process";
    pub const LINUX: &str = "linux";
    pub const MOUNTS: &str = "mounts";
    pub const ROOT: &str = "root";
    pub const HOOKS: &str = "hooks";

    // process
    pub const ENV: &str = "env";
    pub const ARGS: &str = "args";
    pub const USER: &str = "user";
    pub const CAPABILITIES: &str = "capabilities";
    pub const RLIMITS: &str = "rlimits";
    pub const OOM_SCORE_ADJ: &str = "oomScoreAdj";
    pub const NO_NEW_PRIVILEGES: &str = "noNewPrivileges";
    pub const APPARMOR_PROFILE: &str = "apparmorProfile";
    // process.user
    pub const UID: &str = "uid";
    pub const GID: &str = "gid";
    pub const ADDITIONAL_GIDS: &str = "additionalGids";
    // process.capabilities
    pub const BOUNDING: &str = "bounding";
    pub const EFFECTIVE: &str = "effective";
    pub const PERMITTED: &str = "permitted";
    pub const INHERITABLE: &str = "inheritable";
    // process.rlimits[]
    pub const RLIMIT_TYPE: &str = "type";
    pub const HARD: &str = "hard";
    pub const SOFT: &str = "soft";

    // root
    pub const READONLY: &str = "readonly";
    pub const PATH: &str = "path";

    // linux
    pub const NAMESPACES: &str = "namespaces";
    pub const CGROUPS_PATH: &str = "cgroupsPath";
    pub const SYSCTL: &str = "sysctl";
    pub const RESOURCES: &str = "resources";
    pub const DEVICES: &str = "devices";
    pub const UID_MAPPINGS: &str = "uidMappings";
    pub const GID_MAPPINGS: &str = "gidMappings";
    pub const MASKED_PATHS: &str = "maskedPaths";
    pub const READONLY_PATHS: &str = "readonlyPaths";
    pub const SECCOMP: &str = "seccomp";
    pub const ROOTFS_PROPAGATION: &str = "rootfsPropagation";
    // linux.namespaces[]
    pub const NS_TYPE: &str = "type";
    pub const NS_PATH: &str = "path";
    // linux.uidMappings[]
    pub const CONTAINER_ID: &str = "containerID";
    pub const HOST_ID: &str = "hostID";
    pub const SIZE: &str = "size";

    // mounts[]
    pub const DESTINATION: &str = "destination";
    pub const MOUNT_TYPE: &str = "type";
    pub const SOURCE: &str = "source";
    pub const OPTIONS: &str = "options";

    // linux.resources
    pub const MEMORY: &str = "memory";
    pub const CPU: &str = "cpu";
    pub const PIDS: &str = "pids";
    pub const BLOCK_IO: &str = "blockIO";
    // linux.resources.memory
    pub const LIMIT: &str = "limit";
    pub const RESERVATION: &str = "reservation";
    pub const SWAP: &str = "swap";
    pub const SWAPPINESS: &str = "swappiness";
    pub const DISABLE_OOM_KILLER: &str = "disableOOMKiller";
    // linux.resources.cpu
    pub const SHARES: &str = "shares";
    pub const QUOTA: &str = "quota";
    pub const PERIOD: &str = "period";
    pub const CPUS: &str = "cpus";
    pub const MEMS: &str = "mems";
    pub const REALTIME_PERIOD: &str = "realtimePeriod";
    pub const REALTIME_RUNTIME: &str = "realtimeRuntime";
    // linux.resources.blockIO
    pub const WEIGHT: &str = "weight";

    // linux.devices[] and linux.resources.devices[]
    pub const DEV_PATH: &str = "path";
    pub const DEV_TYPE: &str = "type";
    pub const MAJOR: &str = "major";
    pub const MINOR: &str = "minor";
    pub const FILE_MODE: &str = "fileMode";
    pub const ALLOW: &str = "allow";
    pub const ACCESS: &str = "access";

    // linux.seccomp
    pub const DEFAULT_ACTION: &str = "defaultAction";
    pub const DEFAULT_ERRNO_RET: &str = "defaultErrnoRet";
    pub const ARCHITECTURES: &str = "architectures";
    pub const SYSCALLS: &str = "syscalls";
    pub const NAMES: &str = "names";
    pub const ACTION: &str = "action";
    pub const ERRNO_RET: &str = "errnoRet";
    pub const INDEX: &str = "index";
    pub const VALUE: &str = "value";
    pub const OP: &str = "op";
    pub const SYSCALL_ARGS: &str = "args";
    /// Every `linux.seccomp` field copied from a Docker profile as is (SC-2).
    pub const SECCOMP_COPIED: &[&str] = &[DEFAULT_ACTION, DEFAULT_ERRNO_RET, "flags", "listenerPath", "listenerMetadata", ARCHITECTURES];
    /// Every syscall-rule field copied from a Docker profile as is (SC-2).
    pub const SYSCALL_COPIED: &[&str] = &[ACTION, ERRNO_RET, SYSCALL_ARGS];
}

/// Namespace types of `linux.namespaces[].type`.
pub mod ns {
    pub const PID: &str = "pid";
    pub const NETWORK: &str = "network";
    pub const MOUNT: &str = "mount";
    pub const IPC: &str = "ipc";
    pub const UTS: &str = "uts";
    pub const USER: &str = "user";
    pub const CGROUP: &str = "cgroup";
    pub const TIME: &str = "time";

    /// The `/proc/<pid>/ns/<name>` entry of an OCI namespace type.
    pub fn proc_name(kind: &str) -> &str {
        match kind {
            NETWORK => "net",
            MOUNT => "mnt",
            other => other,
        }
    }
}

/// Strings of a JSON array (non-strings skipped; absent or not an array = empty).
pub fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
}

/// The object at `k` inside `m` (created if absent or null).
pub fn obj_in<'a>(m: &'a mut Map<String, Value>, k: &str, field: &str) -> Result<&'a mut Map<String, Value>, SpecError> {
    let e = m.entry(k.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if e.is_null() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut().ok_or_else(|| SpecError::spec(field, "expected an object"))
}

/// The array at `k` inside `m` (created if absent or null).
pub fn arr_in<'a>(m: &'a mut Map<String, Value>, k: &str, field: &str) -> Result<&'a mut Vec<Value>, SpecError> {
    let e = m.entry(k.to_string()).or_insert_with(|| Value::Array(vec![]));
    if e.is_null() {
        *e = Value::Array(vec![]);
    }
    e.as_array_mut().ok_or_else(|| SpecError::spec(field, "expected an array"))
}

/// A `linux.devices[]` entry.
pub fn device_json(path: &str, kind: char, major: i64, minor: i64, file_mode: u32, uid: u32, gid: u32) -> Value {
    let mut m = Map::new();
    m.insert(key::DEV_PATH.into(), path.into());
    m.insert(key::DEV_TYPE.into(), kind.to_string().into());
    m.insert(key::MAJOR.into(), major.into());
    m.insert(key::MINOR.into(), minor.into());
    m.insert(key::FILE_MODE.into(), file_mode.into());
    m.insert(key::UID.into(), uid.into());
    m.insert(key::GID.into(), gid.into());
    Value::Object(m)
}

/// A `linux.resources.devices[]` rule; `None` fields are omitted (wildcards).
pub fn device_rule_json(allow: bool, kind: Option<&str>, major: Option<i64>, minor: Option<i64>, access: &str) -> Value {
    let mut m = Map::new();
    m.insert(key::ALLOW.into(), allow.into());
    if let Some(k) = kind {
        m.insert(key::DEV_TYPE.into(), k.into());
    }
    if let Some(x) = major {
        m.insert(key::MAJOR.into(), x.into());
    }
    if let Some(x) = minor {
        m.insert(key::MINOR.into(), x.into());
    }
    m.insert(key::ACCESS.into(), access.into());
    Value::Object(m)
}

/// A `process.rlimits[]` entry.
pub fn rlimit_json(kind: &str, hard: u64, soft: u64) -> Value {
    let mut m = Map::new();
    m.insert(key::RLIMIT_TYPE.into(), kind.into());
    m.insert(key::HARD.into(), hard.into());
    m.insert(key::SOFT.into(), soft.into());
    Value::Object(m)
}

/// `allow a *:* rwm` (type absent or `a`, wildcards, all of `rwm`).
pub fn is_allow_all(r: &Value) -> bool {
    r.get(key::ALLOW) == Some(&Value::Bool(true))
        && matches!(r.get(key::DEV_TYPE).and_then(Value::as_str), None | Some("a"))
        && r.get(key::MAJOR).is_none_or(|m| m.is_null() || m == -1)
        && r.get(key::MINOR).is_none_or(|m| m.is_null() || m == -1)
        && r.get(key::ACCESS).and_then(Value::as_str).is_some_and(|a| a.contains('r') && a.contains('w') && a.contains('m'))
}

/// The `type` of a device rule or rlimit entry.
pub fn type_of(v: &Value) -> Option<&str> {
    v.get(key::DEV_TYPE).and_then(Value::as_str)
}

/// Whether a device rule allows exactly the node `dev` (a `linux.devices[]` entry).
pub fn rule_matches_device(rule: &Value, dev: &Value) -> bool {
    rule.get(key::ALLOW) == Some(&Value::Bool(true))
        && rule.get(key::DEV_TYPE) == dev.get(key::DEV_TYPE)
        && rule.get(key::MAJOR) == dev.get(key::MAJOR)
        && rule.get(key::MINOR) == dev.get(key::MINOR)
}

/// The `path` of a `linux.devices[]` entry.
pub fn device_path(dev: &Value) -> Option<&str> {
    dev.get(key::DEV_PATH).and_then(Value::as_str)
}

/// `runc features` (runtime-spec `features.md`): the runtime knows this namespace type (NS-7).
pub fn features_have_namespace(features: &Value, kind: &str) -> bool {
    features.get(key::LINUX).and_then(|l| l.get(key::NAMESPACES)).and_then(Value::as_array).is_some_and(|a| a.iter().any(|n| n == kind))
}

/// `runc features`: the runtime accepts this mount option (MT-8 `rro`).
pub fn features_have_mount_option(features: &Value, option: &str) -> bool {
    features.get("mountOptions").and_then(Value::as_array).is_some_and(|a| a.iter().any(|o| o == option))
}
