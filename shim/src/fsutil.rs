//! Files the shim writes hold process specs (environment variables, often secrets) and state:
//! they are created owner-only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data)
}

/// `write_private` to `.<name>.tmp` beside `path`, then a rename: a reader, or a daemon killed
/// mid-write, sees the old file or the new one, never a part.
pub fn replace_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    write_private(&tmp, data)?;
    std::fs::rename(&tmp, path)
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

    #[test]
    fn replaced_whole_and_owner_only_without_a_temporary_left() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        replace_private(&p, b"old").unwrap();
        replace_private(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
