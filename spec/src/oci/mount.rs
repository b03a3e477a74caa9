//! `mounts[]` entries and namespace entries.

use super::{key, str_list};
use serde_json::{Map, Value};

/// One entry of `mounts`. Wraps the JSON object so that fields the shim does not know stay.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount(pub Value);

impl Mount {
    /// A new mount object with the four standard fields.
    pub fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
        let mut m = Map::new();
        m.insert(key::DESTINATION.into(), destination.into());
        m.insert(key::MOUNT_TYPE.into(), kind.into());
        m.insert(key::SOURCE.into(), source.into());
        m.insert(key::OPTIONS.into(), Value::from(options.to_vec()));
        Mount(Value::Object(m))
    }

    fn str_field(&self, k: &str) -> &str {
        self.0.get(k).and_then(Value::as_str).unwrap_or("")
    }

    pub fn destination(&self) -> &str {
        self.str_field(key::DESTINATION)
    }

    pub fn kind(&self) -> &str {
        self.str_field(key::MOUNT_TYPE)
    }

    pub fn source(&self) -> &str {
        self.str_field(key::SOURCE)
    }

    /// The options as strings (non-strings are skipped).
    pub fn options(&self) -> Vec<String> {
        str_list(self.0.get(key::OPTIONS))
    }

    pub fn has_option(&self, o: &str) -> bool {
        self.0.get(key::OPTIONS).and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == o))
    }

    pub fn set_options(&mut self, options: Vec<String>) {
        if let Some(m) = self.0.as_object_mut() {
            m.insert(key::OPTIONS.into(), Value::from(options));
        }
    }

    /// A bind mount: type `bind`, or a `bind`/`rbind` option (runc accepts both forms).
    pub fn is_bind(&self) -> bool {
        self.kind() == "bind" || self.has_option("bind") || self.has_option("rbind")
    }

    /// Part of a base spec (Docker's table 4.3 or containerd's, table 4.10), by (destination,
    /// type); anything else is a "user" mount (MT-1 shim edge).
    pub fn is_default(&self) -> bool {
        matches!(
            (self.destination(), self.kind()),
            ("/proc", "proc")
                | ("/dev", "tmpfs")
                | ("/dev/pts", "devpts")
                | ("/dev/shm", "tmpfs")
                | ("/dev/mqueue", "mqueue")
                | ("/sys", "sysfs")
                | ("/sys/fs/cgroup", "cgroup")
                | ("/run", "tmpfs")
        )
    }

    /// Add or remove `ro`; returns whether it changed.
    pub fn set_ro(&mut self, ro: bool) -> bool {
        let mut o = self.options();
        let has = o.iter().any(|x| x == "ro");
        if has == ro {
            return false;
        }
        if ro {
            o.push("ro".into());
        } else {
            o.retain(|x| x != "ro");
        }
        self.set_options(o);
        true
    }
}

/// A namespace entry's `path` (joined namespace), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsEntry {
    pub path: Option<String>,
}

