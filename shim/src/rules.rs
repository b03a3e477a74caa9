//! The boundary between the task service and Docker's rules: loads the daemon config, fills
//! `config.json` (dockerish-spec through the real host), and records what `shim delete` needs
//! to clean up after a crashed daemon.

use std::path::{Path, PathBuf};

use dockerish_proto::ShimOptions;
use dockerish_spec::DaemonConfig;
use serde::{Deserialize, Serialize};

use crate::monitor::Monitor;
use crate::runc::{state_root, Runc};

/// Written into the bundle at Create: `shim delete` has no options of its own.
pub const STATE_FILE: &str = "dockerish-state.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedState {
    pub runc_binary: String,
    pub runc_root: PathBuf,
    pub systemd_cgroup: bool,
}

pub struct Plan {
    pub config: DaemonConfig,
    opts: ShimOptions,
}

impl Plan {
    pub fn load(opts: &ShimOptions) -> Result<Plan, String> {
        let config = dockerish_host::load_config(opts.config_path.as_deref().map(Path::new), opts.config_body.as_deref())
            .map_err(|e| e.to_string())?;
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

    pub fn runc(&self, monitor: Monitor, bundle: &Path, namespace: &str) -> Runc {
        let (binary, origin) = self.binary();
        let root = self.opts.root.as_deref().or(self.config.runc_root.as_deref());
        Runc {
            binary,
            origin,
            root: state_root(root, namespace),
            systemd_cgroup: self.opts.systemd_cgroup.unwrap_or(false),
            log: bundle.join("log.json"),
            monitor,
        }
    }

    /// Applies the rules and rewrites config.json.
    pub fn fill(&self, bundle: &Path, id: &str, namespace: &str) -> Result<FillOutcome, String> {
        let (binary, _) = self.binary();
        let filled = dockerish_host::prepare(bundle, id, namespace, &self.config, &binary, self.opts.systemd_cgroup).map_err(|e| e.to_string())?;
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
        dockerish_host::commit(bundle, &filled).map_err(|e| e.to_string())?;
        dockerish_host::apply_actions(bundle, &filled.actions).map_err(|e| e.to_string())?;
        // commit keeps what the client wrote as config.json.orig; the filled side is in memory.
        let delta = ProcessDelta { orig: process_of_file(&bundle.join(dockerish_host::ORIG_SPEC)), filled: process_of(&filled.spec) };
        let poststart = filled.spec.pointer("/hooks/poststart").and_then(serde_json::Value::as_array).is_some_and(|h| !h.is_empty());
        Ok(FillOutcome { systemd_cgroup: filled.systemd_cgroup, delta, poststart_hooks: poststart })
    }

    pub fn save_state(&self, bundle: &Path, runc: &Runc) -> Result<(), String> {
        let s = SavedState { runc_binary: runc.binary.clone(), runc_root: runc.root.clone(), systemd_cgroup: runc.systemd_cgroup };
        let path = bundle.join(STATE_FILE);
        let json = serde_json::to_vec(&s).map_err(|e| e.to_string())?;
        crate::fsutil::write_private(&path, &json).map_err(|e| format!("write {}: {e}", path.display()))
    }
}

/// What Create needs to know about the spec runc gets.
pub struct FillOutcome {
    /// runc needs `--systemd-cgroup` (CG-2: runc options, the config, CRI or the filled
    /// cgroupsPath, see `dockerish_spec::cgroup_driver`).
    pub systemd_cgroup: bool,
    /// What the rules changed in the container's process (for its execs).
    pub delta: ProcessDelta,
    /// runc ≥ 1.2 runs these in `runc start`: such containers are started by runc itself.
    pub poststart_hooks: bool,
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

fn process_of_file(path: &Path) -> serde_json::Map<String, serde_json::Value> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()).map(|v| process_of(&v)).unwrap_or_default()
}

pub fn load_state(bundle: &Path) -> Option<SavedState> {
    serde_json::from_slice(&std::fs::read(bundle.join(STATE_FILE)).ok()?).ok()
}

/// Undoes the host side effects recorded for this bundle (idempotent).
pub fn undo(bundle: &Path) -> Result<(), String> {
    dockerish_host::undo_actions_from_bundle(bundle).map_err(|e| e.to_string())
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
    fn exec_keeps_what_the_client_chose() {
        let d = delta(json!({"user": {"uid": 0, "gid": 0}}), json!({"user": {"uid": 1000, "gid": 1000}}));
        let mut exec = json!({"user": {"uid": 5, "gid": 5}});
        d.apply(&mut exec);
        assert_eq!(exec["user"], json!({"uid": 5, "gid": 5}));
    }
}
