//! Files the shim writes hold process specs (environment variables, often secrets) and state:
//! they are created owner-only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data)
}

/// runc's `--pid-file` for the container's init, kept in the bundle: `shim delete` and sibling
/// lookups (NS-10) read it after the daemon is gone.
pub const INIT_PID: &str = "init.pid";

pub fn read_pid(path: &Path) -> Result<u32, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    s.trim().parse().map_err(|_| format!("{}: not a pid: {s:?}", path.display()))
}

/// A container id usable as one path component under a state root (`<root>/<id>`): not empty,
/// no `/`, not `.` or `..`.
pub fn is_path_component(id: &str) -> bool {
    !(id.is_empty() || id.contains('/') || id == "." || id == "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_private(&p, b"x").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
