//! Files the shim writes hold process specs (environment variables, often secrets) and state:
//! they are created owner-only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data)
}

/// A name usable as one path component (`<runc root>/<namespace>/<id>`, socket hashes): not
/// empty, no `/` or NUL, not `.` or `..`.
pub fn is_path_component(id: &str) -> bool {
    !(id.is_empty() || id.contains('/') || id.contains('\0') || id == "." || id == "..")
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
