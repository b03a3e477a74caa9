//! Security: CP-1 (Docker's default capabilities), CP-2 (cap names validated), CP-3
//! (`TweakCapabilities`), CP-4 (how the sets are written); SC-1 (seccomp profile choice), SC-2
//! (profile filtered by arch, caps, kernel), SC-3 (Docker's default profile), run after the
//! capabilities; AA-1, AA-2 (AppArmor); NNP-1 (no_new_privs); MP-1 (default masked and read-only
//! paths), MP-2 (explicit lists), MP-3 (`systempaths=unconfined`), MP-4 (privileged clears both),
//! after the privileged clearing. PV-1, the privileged composite, has its parts in each rule.

use super::Ctx;
use crate::error::SpecError;
use crate::oci::key;
use crate::parse::{self, go_quote, SeccompChoice};
use crate::seccomp;
use serde_json::Value;

pub(crate) const IDS: &[&str] = &["CP-1", "CP-2", "CP-3", "CP-4", "SC-1", "SC-2", "SC-3", "AA-1", "AA-2", "NNP-1", "MP-1", "MP-2", "MP-3", "MP-4"];

/// Thermal throttle directory of a CPU, masked by Docker (MP-1, table 4.2).
fn thermal_throttle_path(cpu: u32) -> String {
    format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle")
}

impl Ctx<'_> {
    /// CP-1..CP-4.
    pub(crate) fn capabilities(&mut self) -> Result<(), SpecError> {
        let add = self.s.cap_add.clone().unwrap_or_default();
        let drop = self.s.cap_drop.clone().unwrap_or_default();
        let priv_new = self.s.privileged == Some(true);
        // Fill mode always writes Docker's set (CP-1: config `default-capabilities`, whatever
        // the producer wrote); explicit mode only when asked.
        if !self.fill && !priv_new && add.is_empty() && drop.is_empty() {
            return Ok(());
        }
        let own = self.host.own_capabilities();
        let result: Vec<String> = if self.privileged {
            own.clone() // CP-3 step 1: add/drop ignored
        } else {
            // CP-2
            for (k, l) in [("cap-add", &add), ("cap-drop", &drop)] {
                for c in l.iter().filter(|c| *c != "ALL") {
                    parse::normalize_capability(c, Some(&own)).map_err(|m| self.ann_err(k, format!("invalid {}: {m}", if k == "cap-add" { "CapAdd" } else { "CapDrop" })))?;
                }
            }
            // fill: Docker's base is always its default list (CP-1); explicit: the producer's set.
            let base = if self.fill { self.cfg.default_capabilities.clone() } else { self.doc.bounding_caps() };
            let mut r = parse::tweak_capabilities(&base, &add, &drop, &own);
            if !self.fill {
                let mut seen = Vec::new();
                r.retain(|c| {
                    if seen.contains(c) {
                        false
                    } else {
                        seen.push(c.clone());
                        true
                    }
                });
            }
            r
        };
        // CP-4: the sets are written by `set_capabilities`.
        if self.doc.set_capabilities(&result)? {
            self.note("CP-3", format!("capabilities {}", result.join(",")));
        }
        Ok(())
    }

    fn seccomp_target(&self) -> (Vec<String>, String) {
        (self.doc.bounding_caps(), self.host.arch())
    }

    fn seccomp_target_profile(&self, choice: &SeccompChoice) -> Result<Option<Value>, SpecError> {
        let (bounding, arch) = self.seccomp_target();
        let t = seccomp::Target { goarch: &arch, bounding: &bounding, kernel: self.host.kernel_version() };
        match choice {
            SeccompChoice::Unconfined => Ok(None),
            SeccompChoice::Builtin => Ok(Some(seccomp::default_linux_seccomp(&t))),
            SeccompChoice::Inline(j) => seccomp::profile_to_linux_seccomp(j, &t).map_err(|m| self.ann_err("security-opt", m)),
            SeccompChoice::File(name) => {
                if name.is_empty() || name.contains('/') || name == ".." || name == "." {
                    return Err(self.ann_err("security-opt", format!("invalid seccomp profile name {}: must be a file name under seccomp-profile-root", go_quote(name))));
                }
                let p = parse::join_path(&self.cfg.seccomp_profile_root, name);
                let text = self
                    .host
                    .read_config_file(&p)
                    .map_err(|e| self.ann_err("security-opt", format!("opening seccomp profile ({p}) failed: {e}")))?
                    .ok_or_else(|| self.ann_err("security-opt", format!("opening seccomp profile ({p}) failed: no such file or directory")))?;
                seccomp::profile_to_linux_seccomp(&text, &t).map_err(|m| self.ann_err("security-opt", m))
            }
        }
    }

    /// SC-1 (profile choice, top to bottom) and SC-2.
    pub(crate) fn seccomp(&mut self) -> Result<(), SpecError> {
        let choice = self.s.security_opt.as_ref().and_then(|o| o.seccomp.clone());
        let result: Option<Option<Value>> = match &choice {
            Some(SeccompChoice::Unconfined) => Some(None),
            // SC-1 step 2 (with the documented divergence: `builtin` = the default profile).
            Some(c) => Some(self.seccomp_target_profile(c)?),
            None if self.privileged && (self.s.privileged == Some(true) || self.fill) => Some(None),
            None if self.fill && !self.doc.has_seccomp() => {
                let dp = self.cfg.seccomp_profile.as_str();
                match dp {
                    "unconfined" => None,
                    "" | "builtin" => Some(self.seccomp_target_profile(&SeccompChoice::Builtin)?),
                    path => {
                        let text = self
                            .host
                            .read_config_file(path)
                            .map_err(|e| SpecError::config("seccomp-profile", format!("opening seccomp profile ({path}) failed: {e}")))?
                            .ok_or_else(|| SpecError::config("seccomp-profile", format!("opening seccomp profile ({path}) failed: no such file or directory")))?;
                        let (bounding, arch) = self.seccomp_target();
                        let t = seccomp::Target { goarch: &arch, bounding: &bounding, kernel: self.host.kernel_version() };
                        Some(seccomp::profile_to_linux_seccomp(&text, &t).map_err(|m| SpecError::config("seccomp-profile", m))?)
                    }
                }
            }
            None => None,
        };
        let Some(result) = result else { return Ok(()) };
        match result {
            None => {
                if self.doc.set_seccomp(None)? {
                    self.note("SC-1", "seccomp removed (unconfined/privileged)");
                }
            }
            Some(p) => {
                let n = seccomp::rule_count(&p);
                if self.doc.set_seccomp(Some(p))? {
                    self.note("SC-2", format!("seccomp profile with {n} syscall rules"));
                }
            }
        }
        Ok(())
    }

    /// AA-1 / AA-2.
    pub(crate) fn apparmor(&mut self) -> Result<(), SpecError> {
        if !self.host.apparmor_enabled() {
            return Ok(()); // AA-1: an explicit profile is silently ignored without AppArmor.
        }
        let explicit = self.s.security_opt.as_ref().and_then(|o| o.apparmor.clone());
        let cur = self.doc.apparmor_profile().to_string();
        let profile = match explicit {
            Some(p) => p,
            None if self.privileged && (self.fill || self.s.privileged == Some(true)) => "unconfined".into(),
            None if self.fill && cur.is_empty() => self.cfg.apparmor_profile.clone(),
            None => return Ok(()),
        };
        if profile == cur {
            return Ok(());
        }
        if profile == self.cfg.apparmor_profile && profile != "unconfined" && !self.host.apparmor_profile_loaded(&profile) {
            // AA-2 (loading the profile) is not implemented: leave the spec as it was.
            self.note("AA-2", format!("AppArmor profile {profile} not loaded; not set"));
            return Ok(());
        }
        self.doc.set_apparmor_profile(&profile)?;
        self.note("AA-1", format!("apparmorProfile {profile}"));
        Ok(())
    }

    /// NNP-1: `noNewPrivileges` follows the daemon default or `security-opt`.
    pub(crate) fn no_new_privileges(&mut self) -> Result<(), SpecError> {
        let explicit = self.s.security_opt.as_ref().and_then(|o| o.no_new_privileges);
        let want = match explicit {
            Some(v) => v,
            None if self.fill => self.cfg.no_new_privileges,
            None => return Ok(()),
        };
        if self.doc.no_new_privileges() != want {
            self.doc.set_no_new_privileges(want)?;
            self.note("NNP-1", format!("noNewPrivileges {want}"));
        }
        Ok(())
    }

    fn default_masked_paths(&self) -> Result<Vec<String>, SpecError> {
        if let Some(m) = &self.cfg.masked_paths {
            return Ok(m.clone());
        }
        let mut out: Vec<String> = crate::config::DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect();
        let cpus = self.host.thermal_throttle_cpus().map_err(|e| Self::host_err("MP-1", e))?;
        out.extend(cpus.into_iter().map(thermal_throttle_path));
        Ok(out)
    }

    /// MP-1, MP-2, MP-3, MP-4.
    pub(crate) fn masked_paths(&mut self) -> Result<(), SpecError> {
        let so = self.s.security_opt.clone().unwrap_or_default();
        let mut masked: Option<Option<Vec<String>>> = None; // None = untouched, Some(None) = remove
        let mut ro: Option<Option<Vec<String>>> = None;
        if self.privileged_applies() {
            masked = Some(None); // MP-4
            ro = Some(None);
        } else if self.fill {
            masked = Some(Some(self.default_masked_paths()?));
            ro = Some(Some(self.cfg.readonly_paths.clone()));
        }
        if so.systempaths_unconfined {
            masked = Some(Some(vec![])); // MP-3
            ro = Some(Some(vec![]));
        }
        // MP-2
        if let Some(m) = &self.s.masked_paths {
            masked = Some(Some(m.clone()));
        }
        if let Some(r) = &self.s.readonly_paths {
            ro = Some(Some(r.clone()));
        }
        let mut notes = Vec::new();
        for (readonly, name, v) in [(false, key::MASKED_PATHS, masked), (true, key::READONLY_PATHS, ro)] {
            let Some(v) = v else { continue };
            let cleared = v.is_none();
            if self.doc.set_path_list(readonly, v)? {
                notes.push(format!("{name} {}", if cleared { "cleared" } else { "replaced" }));
            }
        }
        if !notes.is_empty() {
            self.note("MP-1", notes.join(", "));
        }
        Ok(())
    }
}
