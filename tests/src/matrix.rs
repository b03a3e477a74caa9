//! The containerd version matrix: Debian's 1.6 (`/usr/bin`) and the static 1.7 and 2.3 builds
//! of `../shared/containerd` (or `$DOCKERISH_CONTAINERD_BUILDS`), each with its own `ctr` and
//! its own Go shim `containerd-shim-runc-v2` as the reference runtime.
//!
//! [`matrix_tests!`](crate::matrix_tests) turns a test function into one test per version (and
//! runtime), named so that a failure says which containerd: `exit_codes_exact::v2_3::dockerish`.

use std::path::{Path, PathBuf};

use crate::builds;

/// One containerd line the suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// Debian 12's containerd 1.6.20 (`/usr/bin/containerd`, package `containerd`).
    V1_6,
    /// containerd v1.7.34 from the builds folder.
    V1_7,
    /// containerd v2.3.4 from the builds folder.
    V2_3,
}

impl Version {
    pub const ALL: [Version; 3] = [Version::V1_6, Version::V1_7, Version::V2_3];

    /// The test module name (`v1_6`, `v1_7`, `v2_3`).
    pub fn module(self) -> &'static str {
        match self {
            Version::V1_6 => "v1_6",
            Version::V1_7 => builds::FOLDERS[0].0,
            Version::V2_3 => builds::FOLDERS[1].0,
        }
    }

    /// What a person reads: `1.6 (Debian)`, `1.7.34`, `2.3.4`.
    pub fn label(self) -> &'static str {
        match self {
            Version::V1_6 => "1.6 (Debian)",
            Version::V1_7 => builds::FOLDERS[0].1,
            Version::V2_3 => builds::FOLDERS[1].1,
        }
    }

    /// containerd 2.x: the CRI plugin split into `io.containerd.cri.v1.{runtime,images}`,
    /// `BootstrapParams` on the shim's stdin, task API v3.
    pub fn is_2x(self) -> bool {
        self >= Version::V2_3
    }

    /// The config `version` this containerd reads natively (2.3's `config default` writes 4; it
    /// would migrate 2 and 3 on every start).
    pub fn config_version(self) -> u32 {
        if self.is_2x() {
            4
        } else {
            2
        }
    }

    /// The folder holding `containerd`, `ctr` and `containerd-shim-runc-v2`.
    pub fn bin_dir(self) -> PathBuf {
        match self {
            Version::V1_6 => PathBuf::from("/usr/bin"),
            Version::V1_7 => builds_dir().join(builds::FOLDERS[0].1),
            Version::V2_3 => builds_dir().join(builds::FOLDERS[1].1),
        }
    }

    /// The build, or why it is not usable.
    pub fn try_build(self) -> Result<Build, String> {
        let dir = self.bin_dir();
        let missing = builds::missing_binaries(&dir);
        if missing.is_empty() {
            return Ok(Build { version: self, dir });
        }
        Err(match self {
            Version::V1_6 => format!("containerd 1.6: {} missing in /usr/bin (apt-get install containerd)", missing.join(", ")),
            _ => format!(
                "containerd {}: {} missing in {} (set {} to the folder holding {}/)",
                self.label(),
                missing.join(", "),
                dir.display(),
                builds::BUILDS_ENV,
                self.label()
            ),
        })
    }

    /// The build; panics with the reason when it is not there.
    #[track_caller]
    pub fn build(self) -> Build {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses `1.6`, `1.7`, `2.3`, a full version (`1.7.34`) or a module name (`v2_3`).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim_start_matches('v').replace('_', ".");
        Version::ALL.into_iter().find(|v| {
            let label = v.label().split(' ').next().unwrap_or_default();
            let short: String = label.split('.').take(2).collect::<Vec<_>>().join(".");
            s == label || s == short
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "containerd {}", self.label())
    }
}

/// The folder the version builds are taken from: `$DOCKERISH_CONTAINERD_BUILDS` if set now,
/// else what `build.rs` resolved when this crate was compiled (the variable then, or
/// `<workspace>/../shared/containerd`). Through cargo both agree, since changing the variable
/// rebuilds the crate; run directly, a binary follows the variable.
pub fn builds_dir() -> PathBuf {
    match std::env::var_os(builds::BUILDS_ENV) {
        Some(d) if !d.is_empty() => builds::builds_root(&crate::workspace_root(), Some(d)),
        _ => PathBuf::from(env!("DOCKERISH_CONTAINERD_BUILDS_DIR")),
    }
}

/// A usable containerd build.
#[derive(Clone, Debug)]
pub struct Build {
    pub version: Version,
    pub dir: PathBuf,
}

impl Build {
    pub fn containerd(&self) -> PathBuf {
        self.dir.join("containerd")
    }

    pub fn ctr(&self) -> PathBuf {
        self.dir.join("ctr")
    }

    /// The Go shim of this version: what `io.containerd.runc.v2` resolves to when
    /// [`Build::dir`] comes first on the daemon's `PATH`.
    pub fn go_shim(&self) -> PathBuf {
        self.dir.join("containerd-shim-runc-v2")
    }

    pub fn bin_dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn parses_what_people_type() {
        for (s, v) in [("1.6", Version::V1_6), ("1.7", Version::V1_7), ("1.7.34", Version::V1_7), ("2.3", Version::V2_3), ("v2_3", Version::V2_3), ("2.3.4", Version::V2_3)] {
            assert_eq!(Version::parse(s), Some(v), "{s}");
        }
        assert_eq!(Version::parse("2.2"), None);
        assert_eq!(Version::parse("1"), None);
    }

    #[test]
    fn builds_are_beside_the_checkout_unless_the_variable_says_otherwise() {
        use crate::builds::builds_root;
        use std::path::{Path, PathBuf};
        let ws = Path::new("/ci/checkout");
        assert_eq!(builds_root(ws, None), PathBuf::from("/ci/checkout/../shared/containerd"));
        assert_eq!(builds_root(ws, Some("".into())), PathBuf::from("/ci/checkout/../shared/containerd"));
        assert_eq!(builds_root(ws, Some("/opt/ctrd".into())), PathBuf::from("/opt/ctrd"));
        assert_eq!(builds_root(ws, Some("builds".into())), PathBuf::from("/ci/checkout/builds"));
    }
}
