//! Which cgroup driver runc gets (`runc --systemd-cgroup`), decided once per container (CG-2
//! shim edge, ECOSYSTEM §3.3).
//!
//! runc does not detect the driver: with `--systemd-cgroup` it needs a `slice:prefix:name`
//! cgroups path and a running systemd, without it it takes any path literally. The Go shim
//! passes the flag exactly when runc `Options.SystemdCgroup` is true. To be a drop-in, whoever
//! decided wins, in this order:
//! 1. runc `Options.SystemdCgroup`, when the client sent runc options at all;
//! 2. the config's `systemd-cgroup` (spelt `SystemdCgroup` in a CRI options table) if `true` or
//!    `false`;
//! 3. nobody (`"auto"`): a CRI container gets `false`, as the Go shim does with no option; any
//!    other client gets systemd when its path has the systemd form *and* systemd runs here (the
//!    nerdctl case of CG-1, which sends no options to a non-runc runtime).
//!
//! A mismatch the shim can see never switches the driver silently. Where runc would fail anyway
//! (systemd asked for where it does not run, or with a plain path) it is an error naming the
//! setting and the value; where the Go shim would run the container (a systemd-form path with
//! the driver off) it runs the same way and the shim logs a warning saying why.

use crate::config::{DaemonConfig, Origin, SystemdCgroup};
use crate::error::SpecError;

/// Config key (and its CRI options-table spelling) that selects the driver.
pub const CONFIG_KEY: &str = "systemd-cgroup";
/// The runc `Options` field, and the key containerd users know from `io.containerd.runc.v2`.
pub const RUNC_OPTION: &str = "SystemdCgroup";

/// An explicit choice and who made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub systemd: bool,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// runc `Options.SystemdCgroup` from the client (CRI with a runc-type handler, a client library).
    RuncOptions,
    /// `systemd-cgroup` / `SystemdCgroup` in dockerish.toml or a CRI options table (config_body).
    Config,
}

impl Setting {
    /// The setting a user would look for, with its value.
    fn describe(&self) -> String {
        match self.source {
            Source::RuncOptions => format!("runc option {RUNC_OPTION} = {}", self.systemd),
            Source::Config => format!("config {CONFIG_KEY} ({RUNC_OPTION}) = {}", self.systemd),
        }
    }

    /// An error about this setting, typed by where it came from.
    pub(crate) fn error(&self, msg: impl Into<String>) -> SpecError {
        match self.source {
            Source::RuncOptions => SpecError::RuntimeOption { key: RUNC_OPTION.into(), msg: msg.into() },
            Source::Config => SpecError::config(CONFIG_KEY, msg),
        }
    }
}

/// The explicit choice, if anyone made one (steps 1 and 2 above).
pub(crate) fn explicit(runc_option: Option<bool>, cfg: &DaemonConfig) -> Option<Setting> {
    if let Some(systemd) = runc_option {
        return Some(Setting { systemd, source: Source::RuncOptions });
    }
    match cfg.systemd_cgroup {
        SystemdCgroup::On => Some(Setting { systemd: true, source: Source::Config }),
        SystemdCgroup::Off => Some(Setting { systemd: false, source: Source::Config }),
        SystemdCgroup::Auto => None,
    }
}

/// The decision for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// runc gets `--systemd-cgroup`.
    pub systemd: bool,
    /// Why a systemd-looking path goes to the cgroupfs driver, for the shim's log.
    pub warning: Option<String>,
}

/// The message for a `slice:prefix:name` path that runc will take as a cgroupfs path.
fn literal_path_warning(path: &str, why: &str) -> String {
    format!(
        "linux.cgroupsPath {path:?} has the systemd form \"slice:prefix:name\", but {why}: runc uses the cgroupfs driver and takes the path literally, as io.containerd.runc.v2 does"
    )
}

/// Decides the driver for the final (filled) `linux.cgroupsPath` (steps 1 to 3 above).
pub(crate) fn decide(origin: Origin, explicit: Option<Setting>, cgroups_path: &str, systemd_running: bool) -> Result<Choice, SpecError> {
    let systemd_form = crate::is_systemd_cgroups_path(cgroups_path);
    match explicit {
        Some(s) if s.systemd => {
            if !systemd_running {
                return Err(s.error(format!(
                    "true selects runc's systemd cgroup driver, but systemd is not running on this host; set it to false (or \"auto\" in dockerish.toml) or run containerd on a host booted with systemd ({})",
                    s.describe()
                )));
            }
            if !cgroups_path.is_empty() && !systemd_form {
                return Err(s.error(format!(
                    "true selects runc's systemd cgroup driver, which needs linux.cgroupsPath of the form \"slice:prefix:name\", got {cgroups_path:?} (the kubelet's cgroupDriver and {RUNC_OPTION} must agree)"
                )));
            }
            Ok(Choice { systemd: true, warning: None })
        }
        Some(s) => Ok(Choice { systemd: false, warning: systemd_form.then(|| literal_path_warning(cgroups_path, &format!("{} is set", s.describe()))) }),
        None if matches!(origin, Origin::Cri { .. }) => Ok(Choice {
            systemd: false,
            warning: systemd_form.then(|| {
                literal_path_warning(
                    cgroups_path,
                    &format!("{RUNC_OPTION} is not set for this CRI runtime handler (CRI containers follow it, unset = false); set {RUNC_OPTION} = true, or {CONFIG_KEY} = true in the handler's ConfigPath file, when the kubelet uses the systemd cgroup driver"),
                )
            }),
        }),
        None if systemd_form && systemd_running => Ok(Choice { systemd: true, warning: None }),
        None => Ok(Choice {
            systemd: false,
            warning: systemd_form.then(|| literal_path_warning(cgroups_path, &format!("systemd is not running on this host ({CONFIG_KEY} = \"auto\")"))),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRI: Origin = Origin::Cri { sandbox: false };
    const SANDBOX: Origin = Origin::Cri { sandbox: true };
    const SLICE: &str = "kubepods-besteffort-pod1.slice:cri-containerd:abc";
    const PLAIN: &str = "/kubepods/besteffort/pod1/abc";
    const ON_RUNC: Option<Setting> = Some(Setting { systemd: true, source: Source::RuncOptions });
    const OFF_RUNC: Option<Setting> = Some(Setting { systemd: false, source: Source::RuncOptions });
    const ON_CFG: Option<Setting> = Some(Setting { systemd: true, source: Source::Config });
    const OFF_CFG: Option<Setting> = Some(Setting { systemd: false, source: Source::Config });

    fn systemd(origin: Origin, explicit: Option<Setting>, path: &str, running: bool) -> bool {
        decide(origin, explicit, path, running).unwrap_or_else(|e| panic!("{origin:?} {explicit:?} {path} {running}: {e}")).systemd
    }

    fn warning(origin: Origin, explicit: Option<Setting>, path: &str, running: bool) -> Option<String> {
        decide(origin, explicit, path, running).unwrap().warning
    }

    fn error(origin: Origin, explicit: Option<Setting>, path: &str, running: bool) -> String {
        decide(origin, explicit, path, running).expect_err("must be refused").to_string()
    }

    #[test]
    fn cg_2_the_client_decides_first() {
        let cfg_on = DaemonConfig { systemd_cgroup: SystemdCgroup::On, ..DaemonConfig::default() };
        let cfg_off = DaemonConfig { systemd_cgroup: SystemdCgroup::Off, ..DaemonConfig::default() };
        assert_eq!(explicit(Some(false), &cfg_on), OFF_RUNC, "runc options win over the config");
        assert_eq!(explicit(Some(true), &cfg_off), ON_RUNC);
        assert_eq!(explicit(None, &cfg_on), ON_CFG);
        assert_eq!(explicit(None, &cfg_off), OFF_CFG);
        assert_eq!(explicit(None, &DaemonConfig::default()), None, "\"auto\" decides nothing");
    }

    #[test]
    fn cg_2_cri_follows_systemd_cgroup_exactly() {
        for origin in [CRI, SANDBOX] {
            for running in [false, true] {
                // Unset = false, as io.containerd.runc.v2 without the option: even a systemd
                // path on a systemd host goes to cgroupfs (with a warning).
                assert!(!systemd(origin, None, SLICE, running));
                assert!(!systemd(origin, None, PLAIN, running));
                assert!(!systemd(origin, OFF_CFG, SLICE, running));
                assert!(!systemd(origin, OFF_RUNC, SLICE, running));
            }
            assert!(systemd(origin, ON_CFG, SLICE, true));
            assert!(systemd(origin, ON_RUNC, SLICE, true));
        }
    }

    #[test]
    fn cg_2_auto_infers_systemd_from_the_path_only_where_systemd_runs() {
        for origin in [Origin::Ctr, Origin::Nerdctl, Origin::Moby] {
            assert!(systemd(origin, None, "system.slice:nerdctl:abc", true));
            assert!(systemd(origin, None, ":docker:abc", true), "an empty slice is systemd's default slice");
            assert!(!systemd(origin, None, "system.slice:nerdctl:abc", false));
            assert!(!systemd(origin, None, "/default/abc", true));
            assert!(!systemd(origin, None, "", true));
            // A client that decided is not second-guessed by the path.
            assert!(!systemd(origin, OFF_RUNC, "system.slice:nerdctl:abc", true));
            assert!(!systemd(origin, OFF_CFG, "system.slice:nerdctl:abc", true));
            assert!(systemd(origin, ON_RUNC, "", true), "runc's systemd driver has its own default path");
        }
    }

    #[test]
    fn cg_2_a_systemd_path_that_goes_to_cgroupfs_is_logged_with_the_reason() {
        let w = warning(CRI, None, SLICE, false).expect("warning");
        assert!(w.contains(SLICE) && w.contains("SystemdCgroup is not set") && w.contains("cgroupfs"), "{w}");
        let w = warning(Origin::Ctr, OFF_CFG, SLICE, true).expect("warning");
        assert!(w.contains("config systemd-cgroup (SystemdCgroup) = false"), "{w}");
        let w = warning(Origin::Ctr, OFF_RUNC, SLICE, true).expect("warning");
        assert!(w.contains("runc option SystemdCgroup = false"), "{w}");
        let w = warning(Origin::Nerdctl, None, SLICE, false).expect("warning");
        assert!(w.contains("systemd is not running"), "{w}");
        // Nothing to say when the path and the driver agree.
        for (origin, explicit, path, running) in [(CRI, None, PLAIN, false), (CRI, ON_CFG, SLICE, true), (Origin::Ctr, None, SLICE, true), (Origin::Ctr, OFF_CFG, PLAIN, true)] {
            assert_eq!(warning(origin, explicit, path, running), None, "{origin:?} {explicit:?} {path} {running}");
        }
    }

    #[test]
    fn cg_2_systemd_asked_for_where_runc_cannot_use_it_is_an_error_naming_the_setting() {
        for origin in [CRI, SANDBOX, Origin::Ctr] {
            let e = error(origin, ON_CFG, SLICE, false);
            assert!(e.starts_with("config \"systemd-cgroup\": true selects runc's systemd cgroup driver, but systemd is not running on this host"), "{e}");
            let e = error(origin, ON_RUNC, SLICE, false);
            assert!(e.starts_with("runc option \"SystemdCgroup\": true selects") && e.contains("systemd is not running"), "{e}");
            let e = error(origin, ON_CFG, PLAIN, true);
            assert!(e.starts_with("config \"systemd-cgroup\": true selects runc's systemd cgroup driver, which needs linux.cgroupsPath of the form \"slice:prefix:name\", got \"/kubepods/besteffort/pod1/abc\""), "{e}");
            let e = error(origin, ON_RUNC, "/default/x", true);
            assert!(e.starts_with("runc option \"SystemdCgroup\": ") && e.contains("got \"/default/x\""), "{e}");
        }
    }
}
