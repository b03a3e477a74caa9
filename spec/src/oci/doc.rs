//! [`Doc`]: the accessors rules use to read and edit `config.json`.

use super::{arr_in, key, obj_in, str_list, Mount, NsEntry};
use crate::error::SpecError;
use serde_json::{Map, Value};

/// The whole `config.json`.
#[derive(Debug, Clone)]
pub struct Doc(pub Value);

impl Doc {
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let mut cur = &self.0;
        for p in path {
            cur = cur.get(p)?;
        }
        Some(cur)
    }

    fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// The object at `path` (created along the way if absent or null).
    pub fn obj(&mut self, path: &[&str]) -> Result<&mut Map<String, Value>, SpecError> {
        let mut cur = &mut self.0;
        let mut walked = String::new();
        for p in path {
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(p);
            let m = cur.as_object_mut().ok_or_else(|| SpecError::spec(&walked, "expected an object"))?;
            let e = m.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if e.is_null() {
                *e = Value::Object(Map::new());
            }
            if !e.is_object() {
                return Err(SpecError::spec(&walked, "expected an object"));
            }
            cur = e;
        }
        let field = if walked.is_empty() { "(document)".to_string() } else { walked };
        cur.as_object_mut().ok_or_else(|| SpecError::spec(field, "expected an object"))
    }

    fn root(&mut self) -> Result<&mut Map<String, Value>, SpecError> {
        self.obj(&[])
    }

    fn process(&mut self) -> Result<&mut Map<String, Value>, SpecError> {
        self.obj(&[key::PROCESS])
    }

    fn linux(&mut self) -> Result<&mut Map<String, Value>, SpecError> {
        self.obj(&[key::LINUX])
    }

    // ---- annotations ----

    pub fn annotations(&self) -> Option<&Map<String, Value>> {
        self.get(&[key::ANNOTATIONS]).and_then(Value::as_object)
    }

    pub fn annotation(&self, k: &str) -> Option<&str> {
        self.str_at(&[key::ANNOTATIONS, k])
    }

    // ---- hostname ----

    /// `hostname` when set and non-empty.
    pub fn hostname(&self) -> Option<&str> {
        self.str_at(&[key::HOSTNAME]).filter(|h| !h.is_empty())
    }

    pub fn set_hostname(&mut self, h: &str) -> Result<bool, SpecError> {
        let root = self.root()?;
        if root.get(key::HOSTNAME).and_then(Value::as_str) == Some(h) {
            return Ok(false);
        }
        root.insert(key::HOSTNAME.into(), h.into());
        Ok(true)
    }

    pub fn remove_hostname(&mut self) -> Result<bool, SpecError> {
        Ok(self.root()?.remove(key::HOSTNAME).is_some())
    }

    // ---- root ----

    pub fn root_path(&self) -> Option<&str> {
        self.str_at(&[key::ROOT, key::PATH])
    }

    pub fn root_readonly(&self) -> bool {
        self.get(&[key::ROOT, key::READONLY]) == Some(&Value::Bool(true))
    }

    pub fn set_root_readonly(&mut self) -> Result<bool, SpecError> {
        let was = self.root_readonly();
        self.obj(&[key::ROOT])?.insert(key::READONLY.into(), true.into());
        Ok(!was)
    }

    // ---- mounts ----

    pub fn mounts(&self) -> Vec<Mount> {
        self.get(&[key::MOUNTS]).and_then(Value::as_array).map(|a| a.iter().cloned().map(Mount).collect()).unwrap_or_default()
    }

    pub fn set_mounts(&mut self, m: Vec<Mount>) -> Result<(), SpecError> {
        self.root()?.insert(key::MOUNTS.into(), Value::Array(m.into_iter().map(|m| m.0).collect()));
        Ok(())
    }

    pub fn has_mount_at(&self, destination: &str) -> bool {
        self.mounts().iter().any(|m| m.destination() == destination)
    }

    // ---- process ----

    pub fn env(&self) -> Vec<String> {
        str_list(self.get(&[key::PROCESS, key::ENV]))
    }

    /// `process.env`, created if absent.
    pub fn env_mut(&mut self) -> Result<&mut Vec<Value>, SpecError> {
        arr_in(self.process()?, key::ENV, "process.env")
    }

    pub fn args(&self) -> Vec<String> {
        str_list(self.get(&[key::PROCESS, key::ARGS]))
    }

    pub fn args_mut(&mut self) -> Result<&mut Vec<Value>, SpecError> {
        arr_in(self.process()?, key::ARGS, "process.args")
    }

    /// `(uid, gid, additionalGids)` of `process.user` (0 where absent).
    pub fn user(&self) -> (i64, i64, Vec<i64>) {
        let u = self.get(&[key::PROCESS, key::USER]);
        let n = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_i64).unwrap_or(0);
        let g = u.and_then(|u| u.get(key::ADDITIONAL_GIDS)).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
        (n(key::UID), n(key::GID), g)
    }

    /// Set uid, gid and additionalGids, keeping other `process.user` fields; returns whether it changed.
    pub fn set_user(&mut self, uid: i64, gid: i64, gids: &[i64]) -> Result<bool, SpecError> {
        let user = obj_in(self.process()?, key::USER, "process.user")?;
        let mut changed = false;
        for (k, v) in [(key::UID, Value::from(uid)), (key::GID, Value::from(gid)), (key::ADDITIONAL_GIDS, Value::from(gids.to_vec()))] {
            if user.get(k) != Some(&v) {
                user.insert(k.into(), v);
                changed = true;
            }
        }
        Ok(changed)
    }

    pub fn bounding_caps(&self) -> Vec<String> {
        str_list(self.get(&[key::PROCESS, key::CAPABILITIES, key::BOUNDING]))
    }

    /// CP-4: bounding = effective = permitted = `caps`; inheritable filtered to `caps` (removed
    /// when empty); ambient untouched. Returns whether the bounding set changed.
    pub fn set_capabilities(&mut self, caps: &[String]) -> Result<bool, SpecError> {
        let c = self.obj(&[key::PROCESS, key::CAPABILITIES])?;
        let v = Value::from(caps.to_vec());
        let changed = c.get(key::BOUNDING) != Some(&v);
        for k in [key::BOUNDING, key::EFFECTIVE, key::PERMITTED] {
            c.insert(k.into(), v.clone());
        }
        if caps.is_empty() {
            c.remove(key::INHERITABLE);
        } else if let Some(Value::Array(inh)) = c.get_mut(key::INHERITABLE) {
            inh.retain(|x| x.as_str().is_some_and(|x| caps.iter().any(|r| r == x)));
        }
        Ok(changed)
    }

    pub fn rlimits(&self) -> Option<&Vec<Value>> {
        self.get(&[key::PROCESS, key::RLIMITS]).and_then(Value::as_array)
    }

    pub fn has_rlimits_field(&self) -> bool {
        self.get(&[key::PROCESS, key::RLIMITS]).is_some()
    }

    /// Replace `process.rlimits` (`None` removes the field).
    pub fn set_rlimits(&mut self, r: Option<Vec<Value>>) -> Result<(), SpecError> {
        let p = self.process()?;
        match r {
            Some(r) => {
                p.insert(key::RLIMITS.into(), Value::Array(r));
            }
            None => {
                p.remove(key::RLIMITS);
            }
        }
        Ok(())
    }

    pub fn oom_score_adj(&self) -> Option<i64> {
        self.get(&[key::PROCESS, key::OOM_SCORE_ADJ]).and_then(Value::as_i64)
    }

    pub fn has_oom_score_adj(&self) -> bool {
        self.get(&[key::PROCESS, key::OOM_SCORE_ADJ]).is_some()
    }

    pub fn set_oom_score_adj(&mut self, v: i64) -> Result<(), SpecError> {
        self.process()?.insert(key::OOM_SCORE_ADJ.into(), v.into());
        Ok(())
    }

    pub fn no_new_privileges(&self) -> bool {
        self.get(&[key::PROCESS, key::NO_NEW_PRIVILEGES]).and_then(Value::as_bool).unwrap_or(false)
    }

    pub fn set_no_new_privileges(&mut self, v: bool) -> Result<(), SpecError> {
        self.process()?.insert(key::NO_NEW_PRIVILEGES.into(), v.into());
        Ok(())
    }

    pub fn apparmor_profile(&self) -> &str {
        self.str_at(&[key::PROCESS, key::APPARMOR_PROFILE]).unwrap_or("")
    }

    pub fn set_apparmor_profile(&mut self, p: &str) -> Result<(), SpecError> {
        self.process()?.insert(key::APPARMOR_PROFILE.into(), p.into());
        Ok(())
    }

    // ---- linux: namespaces ----

    fn namespace_list(&self) -> &[Value] {
        self.get(&[key::LINUX, key::NAMESPACES]).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first namespace entry of that type.
    pub fn ns_entry(&self, kind: &str) -> Option<NsEntry> {
        self.namespace_list()
            .iter()
            .find(|n| n.get(key::NS_TYPE).and_then(Value::as_str) == Some(kind))
            .map(|n| NsEntry { path: n.get(key::NS_PATH).and_then(Value::as_str).map(str::to_string) })
    }

    pub fn has_ns(&self, kind: &str) -> bool {
        self.ns_entry(kind).is_some()
    }

    /// NS-8 `setNamespace`: replace the entry of that type in place, or append.
    pub fn set_ns(&mut self, kind: &str, path: Option<&str>) -> Result<bool, SpecError> {
        let mut e = Map::new();
        e.insert(key::NS_TYPE.into(), kind.into());
        if let Some(p) = path {
            e.insert(key::NS_PATH.into(), p.into());
        }
        let e = Value::Object(e);
        let list = arr_in(self.linux()?, key::NAMESPACES, "linux.namespaces")?;
        match list.iter_mut().find(|n| n.get(key::NS_TYPE).and_then(Value::as_str) == Some(kind)) {
            Some(n) if *n == e => Ok(false),
            Some(n) => {
                *n = e;
                Ok(true)
            }
            None => {
                list.push(e);
                Ok(true)
            }
        }
    }

    /// NS-8 `RemoveNamespace`: delete the first of that type.
    pub fn remove_ns(&mut self, kind: &str) -> Result<bool, SpecError> {
        let list = arr_in(self.linux()?, key::NAMESPACES, "linux.namespaces")?;
        match list.iter().position(|n| n.get(key::NS_TYPE).and_then(Value::as_str) == Some(kind)) {
            Some(i) => {
                list.remove(i);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    // ---- linux: user namespace mappings ----

    /// `(containerID, hostID, size)` of `linux.uidMappings` or `gidMappings`.
    pub fn id_mappings(&self, gid: bool) -> Vec<(i64, i64, i64)> {
        let k = if gid { key::GID_MAPPINGS } else { key::UID_MAPPINGS };
        let n = |m: &Value, f: &str| m.get(f).and_then(Value::as_i64);
        self.get(&[key::LINUX, k])
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| Some((n(m, key::CONTAINER_ID)?, n(m, key::HOST_ID)?, n(m, key::SIZE)?))).collect())
            .unwrap_or_default()
    }

    /// Set both mapping lists; returns whether they changed.
    pub fn set_id_mappings(&mut self, uids: &[(i64, i64, i64)], gids: &[(i64, i64, i64)]) -> Result<bool, SpecError> {
        let to_json = |l: &[(i64, i64, i64)]| {
            Value::Array(
                l.iter()
                    .map(|(c, h, s)| {
                        let mut m = Map::new();
                        m.insert(key::CONTAINER_ID.into(), (*c).into());
                        m.insert(key::HOST_ID.into(), (*h).into());
                        m.insert(key::SIZE.into(), (*s).into());
                        Value::Object(m)
                    })
                    .collect(),
            )
        };
        let (uv, gv) = (to_json(uids), to_json(gids));
        let linux = self.linux()?;
        let changed = linux.get(key::UID_MAPPINGS) != Some(&uv) || linux.get(key::GID_MAPPINGS) != Some(&gv);
        linux.insert(key::UID_MAPPINGS.into(), uv);
        linux.insert(key::GID_MAPPINGS.into(), gv);
        Ok(changed)
    }

    // ---- linux: scalars ----

    pub fn cgroups_path(&self) -> &str {
        self.str_at(&[key::LINUX, key::CGROUPS_PATH]).unwrap_or("")
    }

    pub fn set_cgroups_path(&mut self, p: &str) -> Result<(), SpecError> {
        self.linux()?.insert(key::CGROUPS_PATH.into(), p.into());
        Ok(())
    }

    pub fn rootfs_propagation(&self) -> &str {
        self.str_at(&[key::LINUX, key::ROOTFS_PROPAGATION]).unwrap_or("")
    }

    pub fn set_rootfs_propagation(&mut self, p: &str) -> Result<(), SpecError> {
        self.linux()?.insert(key::ROOTFS_PROPAGATION.into(), p.into());
        Ok(())
    }

    // ---- linux: sysctl ----

    pub fn sysctls(&self) -> Option<&Map<String, Value>> {
        self.get(&[key::LINUX, key::SYSCTL]).and_then(Value::as_object)
    }

    /// `linux.sysctl`, created if absent.
    pub fn sysctl_mut(&mut self) -> Result<&mut Map<String, Value>, SpecError> {
        self.obj(&[key::LINUX, key::SYSCTL])
    }

    // ---- linux: resources ----

    /// `linux.resources`, created if absent.
    pub fn resources_mut(&mut self) -> Result<&mut Map<String, Value>, SpecError> {
        self.obj(&[key::LINUX, key::RESOURCES])
    }

    pub fn device_rules(&self) -> Vec<Value> {
        self.get(&[key::LINUX, key::RESOURCES, key::DEVICES]).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    pub fn set_device_rules(&mut self, rules: Vec<Value>) -> Result<(), SpecError> {
        self.resources_mut()?.insert(key::DEVICES.into(), Value::Array(rules));
        Ok(())
    }

    /// `linux.devices`; an error when it is not an array.
    pub fn devices(&mut self) -> Result<Vec<Value>, SpecError> {
        Ok(arr_in(self.linux()?, key::DEVICES, "linux.devices")?.clone())
    }

    pub fn set_devices(&mut self, devs: Vec<Value>) -> Result<(), SpecError> {
        self.linux()?.insert(key::DEVICES.into(), Value::Array(devs));
        Ok(())
    }

    // ---- linux: seccomp, masked paths ----

    pub fn has_seccomp(&self) -> bool {
        self.get(&[key::LINUX, key::SECCOMP]).is_some_and(|v| !v.is_null())
    }

    pub fn seccomp(&self) -> Option<&Value> {
        self.get(&[key::LINUX, key::SECCOMP])
    }

    /// Set (`Some`) or remove (`None`) `linux.seccomp`; returns whether it changed.
    pub fn set_seccomp(&mut self, p: Option<Value>) -> Result<bool, SpecError> {
        let linux = self.linux()?;
        Ok(match p {
            None => linux.remove(key::SECCOMP).is_some(),
            Some(p) if linux.get(key::SECCOMP) == Some(&p) => false,
            Some(p) => {
                linux.insert(key::SECCOMP.into(), p);
                true
            }
        })
    }

    /// Set (`Some`) or remove (`None`) `maskedPaths` / `readonlyPaths`; returns whether it changed.
    pub fn set_path_list(&mut self, readonly: bool, list: Option<Vec<String>>) -> Result<bool, SpecError> {
        let k = if readonly { key::READONLY_PATHS } else { key::MASKED_PATHS };
        let linux = self.linux()?;
        Ok(match list {
            None => linux.remove(k).is_some(),
            Some(l) => {
                let v = Value::from(l);
                if linux.get(k) == Some(&v) {
                    false
                } else {
                    linux.insert(k.into(), v);
                    true
                }
            }
        })
    }
}

