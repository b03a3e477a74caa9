//! `/proc/self/mountinfo` parsing (MT-7, MT-9, IPC-6). Pure; the host reads the file.

/// One line of mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountInfo {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem.
    pub root: String,
    /// Mount point relative to the process root.
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,...`).
    pub options: String,
    /// Optional fields (`shared:1`, `master:2`, ...).
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

impl MountInfo {
    /// moby `hasMountInfoOption`: an optional field starting with one of the prefixes.
    pub fn has_optional(&self, prefixes: &[&str]) -> bool {
        self.optional.iter().any(|o| prefixes.iter().any(|p| o.starts_with(p)))
    }
    /// A per-mount option word is set (`ro`, `nosuid`, ...).
    pub fn has_option(&self, word: &str) -> bool {
        self.options.split(',').any(|o| o == word)
    }
}

/// Undo the kernel's octal escaping of space, tab, newline and backslash (`\040`).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse the whole file. Malformed lines are an error naming the line number, so a truncated
/// read is never silently taken for "no such mount".
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>, String> {
    let mut out = Vec::with_capacity(text.len() / 100 + 1);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(line).ok_or_else(|| format!("malformed mountinfo line {}: {}", n + 1, line))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let mut f = line.split(' ');
    let mount_id = f.next()?.parse().ok()?;
    let parent_id = f.next()?.parse().ok()?;
    let (maj, min) = f.next()?.split_once(':')?;
    let root = unescape(f.next()?);
    let mount_point = unescape(f.next()?);
    let options = f.next()?.to_string();
    let mut optional = Vec::new();
    loop {
        let w = f.next()?;
        if w == "-" {
            break;
        }
        if !w.is_empty() {
            optional.push(w.to_string());
        }
    }
    let fs_type = unescape(f.next()?);
    let source = unescape(f.next()?);
    let super_options = f.next().unwrap_or("").to_string();
    Some(MountInfo {
        mount_id,
        parent_id,
        major: maj.parse().ok()?,
        minor: min.parse().ok()?,
        root,
        mount_point,
        options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// moby `getSourceMount` after symlink resolution (MT-7): the entry whose mount point is the
/// path or its longest parent; at equal length the later entry wins (it is mounted on top).
pub fn source_mount<'a>(mounts: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        let mp = m.mount_point.as_str();
        let covers = mp == path
            || mp == "/"
            || (path.starts_with(mp) && path.as_bytes().get(mp.len()) == Some(&b'/'));
        if covers && best.is_none_or(|b| mp.len() >= b.mount_point.len()) {
            best = Some(m);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
        23 22 0:5 / /dev rw,nosuid master:2 - devtmpfs udev rw,size=10k\n\
        24 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw\n\
        25 22 0:31 / /mnt rw,nodev - tmpfs tmpfs rw\n\
        26 22 0:32 / /mnt rw,noexec shared:7 - tmpfs tmpfs rw\n";

    #[test]
    fn mt_7_parse_and_lookup() {
        let m = parse_mountinfo(SAMPLE).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[2].mount_point, "/mnt/with space");
        assert!(m[0].has_optional(&["shared:"]));
        assert!(m[1].has_optional(&["master:"]));
        assert_eq!(source_mount(&m, "/mnt/x/y").unwrap().mount_id, 26, "later entry wins at equal length");
        assert_eq!(source_mount(&m, "/mntx").unwrap().mount_id, 22);
        assert_eq!(source_mount(&m, "/dev").unwrap().mount_id, 23);
        assert!(m[4].has_option("noexec"));
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_mountinfo("1 2 3").is_err());
        assert!(parse_mountinfo("x 1 0:1 / / rw - t s o").is_err());
        assert!(parse_mountinfo("1 1 0:1 / / rw shared:1").is_err());
        assert_eq!(parse_mountinfo("\n").unwrap().len(), 0);
        // trailing backslash is not an escape
        assert_eq!(parse_mountinfo("1 1 0:1 / /a\\ rw - t s o").unwrap()[0].mount_point, "/a\\");
    }
}
