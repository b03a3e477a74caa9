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
    pub fn load(opts: &ShimOptions, _bundle: &Path, _id: &str, _namespace: &str) -> Result<Plan, String> {
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

    /// Applies the rules and rewrites config.json. Returns whether runc needs
    /// `--systemd-cgroup` (CG-1/CG-2: decided from the filled cgroupsPath and the config).
    pub fn fill(&self, bundle: &Path, id: &str, namespace: &str) -> Result<bool, String> {
        let (binary, _) = self.binary();
        let filled = dockerish_host::prepare(bundle, id, namespace, &self.config, &binary).map_err(|e| e.to_string())?;
        for a in &filled.applied {
            log::debug!("{id}: {} {}", a.rule, a.change);
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
        Ok(filled.systemd_cgroup)
    }

    pub fn save_state(&self, bundle: &Path, runc: &Runc) -> Result<(), String> {
        let s = SavedState { runc_binary: runc.binary.clone(), runc_root: runc.root.clone(), systemd_cgroup: runc.systemd_cgroup };
        let path = bundle.join(STATE_FILE);
        let json = serde_json::to_vec(&s).map_err(|e| e.to_string())?;
        crate::fsutil::write_private(&path, &json).map_err(|e| format!("write {}: {e}", path.display()))
    }
}

pub fn load_state(bundle: &Path) -> Option<SavedState> {
    serde_json::from_slice(&std::fs::read(bundle.join(STATE_FILE)).ok()?).ok()
}

/// Undoes the host side effects recorded for this bundle (idempotent).
pub fn undo(bundle: &Path) -> Result<(), String> {
    dockerish_host::undo_actions_from_bundle(bundle).map_err(|e| e.to_string())
}
