//! The boundary between the shim and Docker's rules: the daemon config and runtime options
//! (which runc, which root), the fill of `config.json` through the real host, and what the
//! rules changed in the container's process (execs follow it).

use std::path::Path;

use dockerish_host::{ExecUsers, FeaturesRunner, HostError, RealHost};
use dockerish_proto::ShimOptions;
use dockerish_spec::DaemonConfig;

use crate::runc::state_root;

/// The runc a container runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuncChoice {
    pub binary: String,
    pub origin: &'static str,
    pub root: std::path::PathBuf,
    pub systemd_cgroup: bool,
}

pub struct Plan {
    pub config: DaemonConfig,
    opts: ShimOptions,
}

impl Plan {
    /// Reads the daemon config the options name (blocking: a file).
    pub fn load(opts: &ShimOptions) -> Result<Plan, HostError> {
        let config = dockerish_host::load_config(opts.config_path.as_deref().map(Path::new), opts.config_body.as_deref())?;
        Ok(Plan { config, opts: opts.clone() })
    }

    fn binary(&self) -> (String, &'static str) {
        if let Some(b) = &self.opts.binary_name {
            return (b.clone(), "runc options BinaryName");
        }
        if let Some(b) = &self.config.runc_binary {
            return (b.clone(), "config runc-binary");
        }
        ("runc".to_string(), "default, looked up on PATH")
    }

    /// The runc before the rules ran (they may still ask for `--systemd-cgroup`).
    pub fn runc(&self, namespace: &str) -> RuncChoice {
        let (binary, origin) = self.binary();
        let root = self.opts.root.as_deref().or(self.config.runc_root.as_deref());
        RuncChoice { binary, origin, root: state_root(root, namespace), systemd_cgroup: self.opts.systemd_cgroup.unwrap_or(false) }
    }

    /// Applies the rules to `original` (the spec the client wrote) and rewrites config.json;
    /// performs the host actions. Blocking.
    pub fn fill(&self, bundle: &Path, original: &serde_json::Value, id: &str, namespace: &str, features: FeaturesRunner) -> Result<FillOutcome, HostError> {
        let (binary, _) = self.binary();
        let host = RealHost::new(bundle, Path::new(""), &binary).with_features_runner(features);
        let filled = dockerish_host::fill_spec(bundle, original.clone(), id, namespace, &self.config, self.opts.systemd_cgroup, host)?;
        for a in &filled.applied {
            log::debug!("{id}: {} {}", a.rule, a.change);
        }
        for w in &filled.warnings {
            log::warn!("{id}: {w}");
        }
        log::info!(
            "{id}: {} rule(s) applied ({:?}, policy {:?}): {}",
            filled.applied.len(),
            filled.origin,
            filled.policy,
            filled.applied.iter().map(|a| a.rule).collect::<Vec<_>>().join(",")
        );
        dockerish_host::commit(bundle, &filled)?;
        dockerish_host::apply_actions(bundle, &filled.actions)?;
        let delta = ProcessDelta { orig: process_of(original), filled: process_of(&filled.spec) };
        let exec_users = ExecUsers::new(bundle, original, &filled, &self.config);
        let poststart = filled.spec.pointer("/hooks/poststart").and_then(serde_json::Value::as_array).is_some_and(|h| !h.is_empty());
        Ok(FillOutcome { systemd_cgroup: filled.systemd_cgroup, delta, exec_users, poststart_hooks: poststart, own_pid_namespace: own_pid_namespace(&filled.spec) })
    }
}

/// What Create needs to know about the spec runc gets.
pub struct FillOutcome {
    /// runc needs `--systemd-cgroup` (CG-2: runc options, the config, CRI or the filled
    /// cgroupsPath, see `dockerish_spec::cgroup_driver`).
    pub systemd_cgroup: bool,
    /// What the rules changed in the container's process (for its execs).
    pub delta: ProcessDelta,
    /// US-2: groups of an exec user the client chose, from the container's rootfs.
    pub exec_users: ExecUsers,
    /// runc ≥ 1.2 runs these in `runc start`: such containers are started by runc itself.
    pub poststart_hooks: bool,
    /// The container gets a PID namespace of its own (a `pid` entry without a path): when its
    /// init exits the kernel kills the rest. Otherwise (host or joined) the shim must.
    pub own_pid_namespace: bool,
}

/// A `pid` namespace entry without a path (the Go shim's `ShouldKillAllOnExit`, negated).
pub fn own_pid_namespace(spec: &serde_json::Value) -> bool {
    spec.pointer("/linux/namespaces").and_then(serde_json::Value::as_array).is_some_and(|l| {
        l.iter().any(|n| n.get("type").and_then(serde_json::Value::as_str) == Some("pid") && n.get("path").and_then(serde_json::Value::as_str).is_none_or(str::is_empty))
    })
}

/// The container's process before and after the rules, so execs can follow the container.
#[derive(Debug, Clone, Default)]
pub struct ProcessDelta {
    orig: serde_json::Map<String, serde_json::Value>,
    filled: serde_json::Map<String, serde_json::Value>,
}

/// Process fields Docker gives an exec from its container (daemon/exec_linux.go): security
/// settings and identity. Args, env, cwd and terminal always come from the exec request.
const EXEC_INHERITED: &[&str] = &["capabilities", "rlimits", "noNewPrivileges", "apparmorProfile", "selinuxLabel", "oomScoreAdj", "user"];

impl ProcessDelta {
    /// Clients (ctr, CRI ExecSync, kubectl exec) build an exec's process from the container
    /// spec they stored, i.e. the spec before our rules. Every inherited field the client left
    /// exactly as in that spec is replaced by the container's filled value, so an exec gets the
    /// same capabilities, rlimits, user and no_new_privs as the container; a field the client
    /// set on purpose (`ctr task exec --user`) is kept.
    pub fn apply(&self, exec: &mut serde_json::Value) {
        let Some(p) = exec.as_object_mut() else { return };
        for key in EXEC_INHERITED {
            let (o, f) = (self.orig.get(*key), self.filled.get(*key));
            if o == f || p.get(*key) != o {
                continue;
            }
            match f {
                Some(v) => {
                    p.insert(key.to_string(), v.clone());
                }
                None => {
                    p.remove(*key);
                }
            }
        }
    }
}

fn process_of(spec: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    spec.get("process").and_then(serde_json::Value::as_object).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delta(orig: serde_json::Value, filled: serde_json::Value) -> ProcessDelta {
        ProcessDelta { orig: orig.as_object().unwrap().clone(), filled: filled.as_object().unwrap().clone() }
    }

    #[test]
    fn exec_follows_the_filled_container_where_the_client_left_defaults() {
        let d = delta(
            json!({"noNewPrivileges": true, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "user": {"uid": 0, "gid": 0}}),
            json!({"user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000]}}),
        );
        let mut exec = json!({"args": ["sh"], "noNewPrivileges": true, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "user": {"uid": 0, "gid": 0}});
        d.apply(&mut exec);
        assert_eq!(exec, json!({"args": ["sh"], "user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000]}}));
    }

    #[test]
    fn pid_namespace_of_its_own_only_without_a_path() {
        assert!(own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}})));
        assert!(own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "pid", "path": ""}]}})));
        assert!(!own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}})), "joined");
        assert!(!own_pid_namespace(&json!({"linux": {"namespaces": [{"type": "mount"}]}})), "host");
        assert!(!own_pid_namespace(&json!({})));
    }

    #[test]
    fn exec_keeps_what_the_client_chose() {
        let d = delta(json!({"user": {"uid": 0, "gid": 0}}), json!({"user": {"uid": 1000, "gid": 1000}}));
        let mut exec = json!({"user": {"uid": 5, "gid": 5}});
        d.apply(&mut exec);
        assert_eq!(exec["user"], json!({"uid": 5, "gid": 5}));
    }
}
