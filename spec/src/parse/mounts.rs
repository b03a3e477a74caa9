//! `--tmpfs` (MT-4, MT-5).

use super::{clean_path, go_quote};

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["MT-4", "MT-5"];

/// Tmpfs data keys moby/sys/mount accepts (`validFlags`).
const TMPFS_DATA_KEYS: &[&str] = &["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"];

/// The collision slot of a mount flag word (moby/sys/mount `flags` table): words that set or
/// clear the same bit share a slot; all propagation words share one slot.
fn tmpfs_flag_slot(word: &str) -> Option<&'static str> {
    Some(match word {
        "ro" | "rw" => "rdonly",
        "suid" | "nosuid" => "nosuid",
        "dev" | "nodev" => "nodev",
        "exec" | "noexec" => "noexec",
        "sync" | "async" => "sync",
        "dirsync" => "dirsync",
        "remount" => "remount",
        "mand" | "nomand" => "mand",
        "atime" | "noatime" => "noatime",
        "diratime" | "nodiratime" => "nodiratime",
        "bind" => "bind",
        "rbind" => "rbind",
        "relatime" | "norelatime" => "relatime",
        "strictatime" | "nostrictatime" => "strictatime",
        "unbindable" | "runbindable" | "private" | "rprivate" | "shared" | "rshared" | "slave"
        | "rslave" => "propagation",
        _ => return None,
    })
}

/// moby/sys/mount `MergeTmpfsOptions` (MT-4): right-to-left, the last occurrence of a slot wins.
pub fn merge_tmpfs_options(options: &[String]) -> Result<Vec<String>, String> {
    let mut flag_seen: Vec<&str> = Vec::new();
    let mut data_seen: Vec<&str> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for option in options.iter().rev() {
        if option == "defaults" {
            continue;
        }
        if let Some(slot) = tmpfs_flag_slot(option) {
            if !flag_seen.contains(&slot) {
                out.push(option.clone());
                flag_seen.push(slot);
            }
            continue;
        }
        let key = match option.split_once('=') {
            Some((k, _)) if TMPFS_DATA_KEYS.contains(&k) => k,
            Some((k, _)) => return Err(format!("invalid tmpfs option {}", go_quote(k))),
            None => return Err(format!("invalid tmpfs option {}", go_quote(option))),
        };
        if !data_seen.contains(&key) {
            out.push(option.clone());
            data_seen.push(key);
        }
    }
    out.reverse();
    Ok(out)
}

/// One `--tmpfs dest[:opts]` value after MT-4/MT-5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub destination: String,
    pub options: Vec<String>,
}

/// `--tmpfs dest[:opts]` (MT-4, MT-5): split at the first `:`, validate, merge with Docker's
/// defaults `noexec,nosuid,nodev,rprivate`.
pub fn parse_tmpfs(val: &str) -> Result<TmpfsMount, String> {
    let (dest, data) = match val.split_once(':') {
        Some((d, o)) => (d, o),
        None => (val, ""),
    };
    if !dest.starts_with('/') {
        return Err(format!("invalid mount path: '{dest}' mount path must be absolute"));
    }
    let dest = clean_path(dest);
    if dest == "/" {
        return Err("invalid specification: destination can't be '/'".to_string());
    }
    let mut opts: Vec<String> =
        ["noexec", "nosuid", "nodev", "rprivate"].iter().map(|s| s.to_string()).collect();
    if !data.is_empty() {
        opts.extend(data.split(',').map(str::to_string));
    }
    Ok(TmpfsMount { destination: dest, options: merge_tmpfs_options(&opts)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt_4_tmpfs_merge() {
        let t = parse_tmpfs("/run:exec,size=1g").unwrap();
        assert_eq!(t.options, vec!["nosuid", "nodev", "rprivate", "exec", "size=1g"]);
        let t = parse_tmpfs("/tmp").unwrap();
        assert_eq!(t.options, vec!["noexec", "nosuid", "nodev", "rprivate"]);
        let t = parse_tmpfs("/tmp:size=1m,size=2m,rshared").unwrap();
        assert_eq!(t.options, vec!["noexec", "nosuid", "nodev", "size=2m", "rshared"]);
        assert_eq!(parse_tmpfs("/tmp:huge=1").unwrap_err(), "invalid tmpfs option \"huge\"");
        assert_eq!(parse_tmpfs("/tmp:bogus").unwrap_err(), "invalid tmpfs option \"bogus\"");
        assert_eq!(parse_tmpfs("tmp").unwrap_err(), "invalid mount path: 'tmp' mount path must be absolute");
        assert_eq!(parse_tmpfs("/").unwrap_err(), "invalid specification: destination can't be '/'");
    }
}
