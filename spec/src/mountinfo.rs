//! `/proc/self/mountinfo` parsing (MT-7, MT-9, IPC-6). Pure; the host reads the file.

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["MT-7"];

/// One line of mountinfo (proc(5)). The text fields live in one buffer (one allocation per
/// line: parsing a 300-line mountinfo is on the Create path) and are read through accessors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountInfo {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    buf: String,
    /// Byte ranges into `buf`: root, mount point, options, optional fields (space-separated),
    /// fs type, source, super options.
    ranges: [(u32, u32); 7],
}

impl MountInfo {
    /// Build an entry from its fields (tests, fakes); text is taken as already unescaped.
    #[allow(clippy::too_many_arguments)]
    pub fn new(mount_id: u32, parent_id: u32, major: u32, minor: u32, root: &str, mount_point: &str, options: &str, optional: &[&str], fs_type: &str, source: &str, super_options: &str) -> Self {
        let opt = optional.join(" ");
        let mut b = Builder::default();
        for f in [root, mount_point, options, &opt, fs_type, source, super_options] {
            b.push(f);
        }
        MountInfo { mount_id, parent_id, major, minor, buf: b.buf, ranges: b.ranges }
    }
    fn field(&self, i: usize) -> &str {
        let (a, b) = self.ranges[i];
        self.buf.get(a as usize..b as usize).unwrap_or("")
    }
    /// Root of the mount within its filesystem.
    pub fn root(&self) -> &str {
        self.field(0)
    }
    /// Mount point relative to the process root.
    pub fn mount_point(&self) -> &str {
        self.field(1)
    }
    /// Per-mount options (`rw,nosuid,...`).
    pub fn options(&self) -> &str {
        self.field(2)
    }
    /// Optional fields (`shared:1`, `master:2`, ...).
    pub fn optional(&self) -> impl Iterator<Item = &str> {
        self.field(3).split(' ').filter(|x| !x.is_empty())
    }
    pub fn fs_type(&self) -> &str {
        self.field(4)
    }
    pub fn source(&self) -> &str {
        self.field(5)
    }
    pub fn super_options(&self) -> &str {
        self.field(6)
    }
    /// moby `hasMountInfoOption`: an optional field starting with one of the prefixes.
    pub fn has_optional(&self, prefixes: &[&str]) -> bool {
        self.optional().any(|o| prefixes.iter().any(|p| o.starts_with(p)))
    }
    /// A per-mount option word is set (`ro`, `nosuid`, ...).
    pub fn has_option(&self, word: &str) -> bool {
        self.options().split(',').any(|o| o == word)
    }
}

#[derive(Default)]
struct Builder {
    buf: String,
    ranges: [(u32, u32); 7],
    n: usize,
}

impl Builder {
    fn push(&mut self, field: &str) {
        let a = self.buf.len() as u32;
        unescape_into(field, &mut self.buf);
        if let Some(r) = self.ranges.get_mut(self.n) {
            *r = (a, self.buf.len() as u32);
        }
        self.n += 1;
    }
}

/// Undo the kernel's octal escaping of space, tab, newline and backslash (`\040`).
fn unescape_into(s: &str, out: &mut String) {
    if !s.contains('\\') {
        out.push_str(s);
        return;
    }
    let b = s.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if v <= 255 {
                bytes.push(v as u8);
                i += 4;
                continue;
            }
        }
        bytes.push(b[i]);
        i += 1;
    }
    out.push_str(&String::from_utf8_lossy(&bytes));
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
    let mut b = Builder { buf: String::with_capacity(line.len()), ..Default::default() };
    b.push(f.next()?); // root
    b.push(f.next()?); // mount point
    b.push(f.next()?); // options
    let opt_start = b.buf.len() as u32;
    let mut first = true;
    loop {
        let w = f.next()?;
        if w == "-" {
            break;
        }
        if !w.is_empty() {
            if !first {
                b.buf.push(' ');
            }
            b.buf.push_str(w);
            first = false;
        }
    }
    b.ranges[3] = (opt_start, b.buf.len() as u32);
    b.n = 4;
    b.push(f.next()?); // fs type
    b.push(f.next()?); // source
    b.push(f.next().unwrap_or("")); // super options
    Some(MountInfo { mount_id, parent_id, major: maj.parse().ok()?, minor: min.parse().ok()?, buf: b.buf, ranges: b.ranges })
}

/// moby `getSourceMount` after symlink resolution (MT-7): the entry whose mount point is the
/// path or its longest parent; at equal length the later entry wins (it is mounted on top).
pub fn source_mount<'a>(mounts: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        let mp = m.mount_point();
        let covers = mp == path
            || mp == "/"
            || (path.starts_with(mp) && path.as_bytes().get(mp.len()) == Some(&b'/'));
        if covers && best.is_none_or(|b| mp.len() >= b.mount_point().len()) {
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
        assert_eq!(m[2].mount_point(), "/mnt/with space");
        assert_eq!((m[1].fs_type(), m[1].source(), m[1].super_options(), m[1].root()), ("devtmpfs", "udev", "rw,size=10k", "/"));
        assert_eq!(m[1].optional().collect::<Vec<_>>(), vec!["master:2"]);
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
        assert_eq!(parse_mountinfo("1 1 0:1 / /a\\ rw - t s o").unwrap()[0].mount_point(), "/a\\");
        let m = MountInfo::new(1, 0, 0, 1, "/", "/x", "rw", &["shared:1"], "tmpfs", "t", "rw");
        assert!(m.has_optional(&["shared:"]) && m.mount_point() == "/x");
    }
}
