//! Every wire type the shim owns.
//!
//! `containerd-shim-protos` generates the task service, events, bootstrap and introspection
//! messages; this crate adds what it lacks (`runtimeoptions.v1.Options`, recognition of the
//! legacy runc option types, the task API under both `v2` and `v3` names) and the two start
//! protocols (raw `Any` before containerd 2.3, `BootstrapParams` from 2.3 on).

use std::collections::HashMap;
use std::sync::Arc;

pub use containerd_shim_protos as protos;
use containerd_shim_protos::bootstrap_api::{BootstrapParams, BootstrapResult};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedInputStream, Message};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

/// Service names containerd uses for the task API: 1.6/1.7 speak only v2, 2.x speaks v3 to
/// version-3 shims and v2 (through its bridge) to version-2 shims.
pub const TASK_V2: &str = "containerd.task.v2.Task";
pub const TASK_V3: &str = "containerd.task.v3.Task";

pub const RUNTIMEOPTIONS_TYPE: &str = "runtimeoptions.v1.Options";
pub const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
const LEGACY_CREATE_OPTIONS: &str = "containerd.linux.runc.CreateOptions";
const LEGACY_RUNC_OPTIONS: &str = "containerd.linux.runc.RuncOptions";
pub const FEATURES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("runtime options of type {type_url:?} are not supported: use runtimeoptions.v1.Options (ConfigPath/ConfigBody) or containerd.runc.v1.Options")]
    UnknownOptionsType { type_url: String },
    #[error("cannot decode runtime options of type {type_url:?}: {reason}")]
    BadOptions { type_url: String, reason: String },
    #[error("cannot decode the start input ({len} bytes on stdin): {reason}")]
    BadStartInput { len: usize, reason: String },
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

/// Registers one task implementation under both task API names on the same socket.
/// The v2 and v3 protos differ only in their package name, so the method tables are identical.
pub fn task_services(
    service: Arc<dyn Task + Send + Sync>,
) -> HashMap<String, ttrpc::r#async::Service> {
    let mut all = containerd_shim_protos::shim_async::create_task(service.clone());
    let v3 = containerd_shim_protos::shim_async::create_task(service);
    if let Some((_, svc)) = v3.into_iter().next() {
        all.insert(TASK_V2.to_string(), svc);
    }
    debug_assert!(all.contains_key(TASK_V3) && all.contains_key(TASK_V2));
    all
}

/// Options the shim understands, whatever their wire form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShimOptions {
    /// `runtimeoptions.v1.Options.config_path` (CRI `ConfigPath`, `ctr --runtime-config-path`).
    pub config_path: Option<String>,
    /// `runtimeoptions.v1.Options.config_body`: the CRI options table as TOML (containerd 1.7+).
    pub config_body: Option<String>,
    /// From runc `Options`.
    pub binary_name: Option<String>,
    pub root: Option<String>,
    pub systemd_cgroup: Option<bool>,
    pub shim_cgroup: Option<String>,
    pub io_uid: u32,
    pub io_gid: u32,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
}

fn type_name(type_url: &str) -> &str {
    // containerd writes bare proto names; other clients may prefix a host ("types.x.io/").
    type_url.rsplit('/').next().unwrap_or(type_url)
}

/// Decodes `CreateTaskRequest.options` / the `start` options.
/// Empty or absent options mean defaults. Legacy `containerd.linux.runc.*` options (sent by the
/// 1.6 ctr client for any non-runc runtime) carry nothing this shim uses, so they are accepted
/// and ignored.
pub fn decode_options(any: Option<&Any>) -> Result<ShimOptions, ProtoError> {
    let Some(any) = any else { return Ok(ShimOptions::default()) };
    if any.type_url.is_empty() && any.value.is_empty() {
        return Ok(ShimOptions::default());
    }
    let bad = |e: &dyn std::fmt::Display| ProtoError::BadOptions {
        type_url: any.type_url.clone(),
        reason: e.to_string(),
    };
    match type_name(&any.type_url) {
        // ctr --runtime-config-path sends this with an EMPTY type_url.
        RUNTIMEOPTIONS_TYPE | "" => {
            let (config_path, config_body) = decode_runtimeoptions(&any.value).map_err(|e| bad(&e))?;
            Ok(ShimOptions { config_path, config_body, ..Default::default() })
        }
        RUNC_OPTIONS_TYPE => {
            let o = RuncOptions::parse_from_bytes(&any.value).map_err(|e| bad(&e))?;
            let nonempty = |s: String| if s.is_empty() { None } else { Some(s) };
            Ok(ShimOptions {
                binary_name: nonempty(o.binary_name),
                root: nonempty(o.root),
                systemd_cgroup: Some(o.systemd_cgroup),
                shim_cgroup: nonempty(o.shim_cgroup),
                io_uid: o.io_uid,
                io_gid: o.io_gid,
                no_pivot_root: o.no_pivot_root,
                no_new_keyring: o.no_new_keyring,
                ..Default::default()
            })
        }
        LEGACY_CREATE_OPTIONS | LEGACY_RUNC_OPTIONS => Ok(ShimOptions::default()),
        _ => Err(ProtoError::UnknownOptionsType { type_url: any.type_url.clone() }),
    }
}

/// `runtimeoptions.v1.Options { string type_url = 1; string config_path = 2; string config_body = 3; }`
/// (config_body is `bytes` in 2.x and absent in 1.6; the wire form is the same).
fn decode_runtimeoptions(buf: &[u8]) -> Result<(Option<String>, Option<String>), String> {
    let mut is = CodedInputStream::from_bytes(buf);
    let (mut path, mut body) = (None, None);
    while !is.eof().map_err(|e| e.to_string())? {
        let tag = is.read_raw_varint32().map_err(|e| e.to_string())?;
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                is.read_string().map_err(|e| e.to_string())?;
            }
            (2, 2) => path = Some(is.read_string().map_err(|e| e.to_string())?),
            (3, 2) => {
                let b = is.read_bytes().map_err(|e| e.to_string())?;
                body = Some(String::from_utf8(b).map_err(|_| "config_body is not UTF-8".to_string())?);
            }
            (_, wt) => skip_field(&mut is, wt)?,
        }
    }
    Ok((path.filter(|p| !p.is_empty()), body.filter(|b| !b.trim().is_empty())))
}

fn skip_field(is: &mut CodedInputStream, wire_type: u32) -> Result<(), String> {
    let r = match wire_type {
        0 => is.read_raw_varint64().map(|_| ()),
        1 => is.read_raw_little_endian64().map(|_| ()),
        2 => is.read_bytes().map(|_| ()),
        5 => is.read_raw_little_endian32().map(|_| ()),
        w => return Err(format!("unsupported wire type {w}")),
    };
    r.map_err(|e| e.to_string())
}

/// What containerd wrote on the `start` stdin.
#[derive(Debug)]
pub enum StartInput {
    /// containerd < 2.3: the runtime (or task) options as an `Any`, or nothing.
    Legacy(Option<Any>),
    /// containerd 2.3+: a `BootstrapParams` whose identity matches our flags.
    Bootstrap(Box<BootstrapParams>),
}

impl StartInput {
    pub fn options(&self) -> Option<&Any> {
        match self {
            StartInput::Legacy(a) => a.as_ref(),
            StartInput::Bootstrap(p) => p.extensions.iter().find_map(|e| e.value.as_ref()),
        }
    }
}

/// Tells the two start protocols apart. An `Any` decoded as `BootstrapParams` puts the type URL in
/// `instance_id` and the value in `namespace`, so the identity check (both equal to our `-id` and
/// `-namespace` flags) cannot be fooled by a legacy `Any`.
pub fn parse_start_input(buf: &[u8], id: &str, namespace: &str) -> Result<StartInput, ProtoError> {
    if buf.is_empty() {
        return Ok(StartInput::Legacy(None));
    }
    if let Ok(p) = BootstrapParams::parse_from_bytes(buf) {
        if p.instance_id == id && p.namespace == namespace {
            return Ok(StartInput::Bootstrap(Box::new(p)));
        }
    }
    Any::parse_from_bytes(buf)
        .map(|a| StartInput::Legacy(Some(a)))
        .map_err(|e| ProtoError::BadStartInput { len: buf.len(), reason: e.to_string() })
}

/// The reply a 2.3+ daemon expects: the task API `version` (2 or 3; the shim serves both on
/// one socket), the address, the protocol.
pub fn bootstrap_result(address: &str, version: i32) -> Result<Vec<u8>, ProtoError> {
    let r = BootstrapResult {
        version,
        address: address.to_string(),
        protocol: "ttrpc".to_string(),
        ..Default::default()
    };
    r.write_to_bytes().map_err(|e| ProtoError::Encode { what: "BootstrapResult", reason: e.to_string() })
}

/// `-info` output: a `RuntimeInfo` carrying `runc features` as the OCI features document.
pub fn runtime_info(name: &str, version: &str, revision: &str, features_json: Option<Vec<u8>>) -> Result<Vec<u8>, ProtoError> {
    let mut info = RuntimeInfo { name: name.to_string(), ..Default::default() };
    info.version = Some(RuntimeVersion {
        version: version.to_string(),
        revision: revision.to_string(),
        ..Default::default()
    })
    .into();
    if let Some(f) = features_json {
        info.features = Some(Any { type_url: FEATURES_TYPE.to_string(), value: f, ..Default::default() }).into();
    }
    info.write_to_bytes().map_err(|e| ProtoError::Encode { what: "RuntimeInfo", reason: e.to_string() })
}

/// Wraps a containerd event for `Events.Forward`. containerd resolves event payloads by their
/// proto full name (`containerd.events.TaskExit`, …).
pub fn event_any<M: Message + containerd_shim_protos::protobuf::MessageFull>(msg: &M) -> Result<Any, ProtoError> {
    Ok(Any {
        type_url: M::descriptor().full_name().to_string(),
        value: msg.write_to_bytes().map_err(|e| ProtoError::Encode { what: "event", reason: e.to_string() })?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::bootstrap_api::Extension;
    use containerd_shim_protos::protobuf::CodedOutputStream;

    fn runtimeoptions_bytes(path: &str, body: &str) -> Vec<u8> {
        let mut v = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut v);
            os.write_string(1, "").unwrap();
            os.write_string(2, path).unwrap();
            os.write_bytes(3, body.as_bytes()).unwrap();
            os.flush().unwrap();
        }
        v
    }

    #[test]
    fn runtimeoptions_decoded_even_with_empty_type_url() {
        let any = Any { type_url: String::new(), value: runtimeoptions_bytes("/etc/d.toml", "x = 1"), ..Default::default() };
        let o = decode_options(Some(&any)).unwrap();
        assert_eq!(o.config_path.as_deref(), Some("/etc/d.toml"));
        assert_eq!(o.config_body.as_deref(), Some("x = 1"));
    }

    #[test]
    fn runc_options_decoded() {
        let ro = RuncOptions { binary_name: "/usr/sbin/runc".into(), systemd_cgroup: true, ..Default::default() };
        let any = Any { type_url: RUNC_OPTIONS_TYPE.into(), value: ro.write_to_bytes().unwrap(), ..Default::default() };
        let o = decode_options(Some(&any)).unwrap();
        assert_eq!(o.binary_name.as_deref(), Some("/usr/sbin/runc"));
        assert_eq!(o.systemd_cgroup, Some(true));
    }

    #[test]
    fn default_runc_options_with_only_a_type_url() {
        let any = Any { type_url: RUNC_OPTIONS_TYPE.into(), value: vec![], ..Default::default() };
        assert_eq!(decode_options(Some(&any)).unwrap().systemd_cgroup, Some(false));
    }

    #[test]
    fn unknown_options_type_is_an_error_naming_it() {
        let any = Any { type_url: "example.com/Foo".into(), value: vec![1], ..Default::default() };
        let e = decode_options(Some(&any)).unwrap_err().to_string();
        assert!(e.contains("\"example.com/Foo\""), "{e}");
    }

    #[test]
    fn garbage_options_are_an_error_not_a_panic() {
        let any = Any { type_url: RUNTIMEOPTIONS_TYPE.into(), value: vec![0x12, 0xff, 0xff], ..Default::default() };
        assert!(decode_options(Some(&any)).is_err());
    }

    #[test]
    fn start_input_legacy_any_is_not_mistaken_for_bootstrap() {
        let any = Any { type_url: RUNTIMEOPTIONS_TYPE.into(), value: runtimeoptions_bytes("/p", ""), ..Default::default() };
        let buf = any.write_to_bytes().unwrap();
        match parse_start_input(&buf, "c1", "default").unwrap() {
            StartInput::Legacy(Some(a)) => assert_eq!(a.type_url, RUNTIMEOPTIONS_TYPE),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn start_input_bootstrap_params_detected_and_options_found() {
        let inner = Any { type_url: RUNTIMEOPTIONS_TYPE.into(), value: runtimeoptions_bytes("/p", ""), ..Default::default() };
        let p = BootstrapParams {
            instance_id: "c1".into(),
            namespace: "default".into(),
            extensions: vec![Extension { value: Some(inner).into(), ..Default::default() }],
            ..Default::default()
        };
        let buf = p.write_to_bytes().unwrap();
        let si = parse_start_input(&buf, "c1", "default").unwrap();
        assert!(matches!(si, StartInput::Bootstrap(_)));
        assert_eq!(decode_options(si.options()).unwrap().config_path.as_deref(), Some("/p"));
    }

    #[test]
    fn empty_start_input_is_legacy_none() {
        assert!(matches!(parse_start_input(&[], "a", "b").unwrap(), StartInput::Legacy(None)));
    }

    #[test]
    fn bootstrap_result_does_not_end_in_whitespace() {
        // containerd TrimSpaces the reply; protocol is the last field written.
        let b = bootstrap_result("unix:///run/containerd/s/abc", 3).unwrap();
        assert!(!b.last().unwrap().is_ascii_whitespace());
        let r = BootstrapResult::parse_from_bytes(&b).unwrap();
        assert_eq!(r.version, 3);
        assert_eq!(r.protocol, "ttrpc");
    }

    #[test]
    fn both_task_api_names_registered() {
        struct T;
        #[async_trait::async_trait]
        impl Task for T {}
        let s = task_services(Arc::new(T));
        assert!(s.contains_key(TASK_V2) && s.contains_key(TASK_V3));
        assert_eq!(s[TASK_V2].methods.len(), s[TASK_V3].methods.len());
    }
}
