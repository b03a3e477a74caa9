//! Devices: DV-1 (Docker's base device-cgroup rules), DV-3 (`devices` mappings), DV-5
//! (`device-cgroup-rules`, ignored when privileged), DV-6 (privileged: every host device and
//! allow-all).

use super::Ctx;
use crate::error::SpecError;
use crate::oci::{device_json, device_path, device_rule_json, is_allow_all, rule_matches_device};
use crate::parse::{self, go_quote};
use crate::HostDevice;
use serde_json::Value;

pub(crate) const IDS: &[&str] = &["DV-1", "DV-3", "DV-5", "DV-6"];

/// Table 4.5: Docker's 8 base device rules.
fn docker_base_device_rules() -> Vec<Value> {
    let c = |maj: i64, min: i64| device_rule_json(true, Some("c"), Some(maj), Some(min), "rwm");
    vec![
        device_rule_json(false, None, None, None, "rwm"),
        c(1, 5),
        c(1, 3),
        c(1, 9),
        c(1, 8),
        c(5, 0),
        c(5, 1),
        device_rule_json(false, Some("c"), Some(10), Some(229), "rwm"),
    ]
}

fn dev_entry(d: &HostDevice, container_path: &str) -> Value {
    device_json(container_path, d.kind, d.major, d.minor, d.file_mode, d.uid, d.gid)
}

fn dev_rule(d: &HostDevice, access: &str) -> Value {
    device_rule_json(true, Some(&d.kind.to_string()), Some(d.major), Some(d.minor), access)
}

impl Ctx<'_> {
    /// DV-1, DV-3, DV-5, DV-6.
    pub(crate) fn devices(&mut self) -> Result<(), SpecError> {
        let mappings = self.s.devices.clone().unwrap_or_default();
        let rules = self.s.device_cgroup_rules.clone().unwrap_or_default();
        let priv_new = self.s.privileged == Some(true);
        if !self.fill && mappings.is_empty() && rules.is_empty() && !priv_new {
            return Ok(());
        }
        let mut devs = self.doc.devices()?;
        let existing_rules = self.doc.device_rules();
        let mut cg: Vec<Value> = if self.fill {
            // DV-1: Docker's base rules replace containerd's; keep rules that belong to devices
            // the producer mapped (ctr --device) so they keep working.
            let mut base = docker_base_device_rules();
            for r in &existing_rules {
                if devs.iter().any(|d| rule_matches_device(r, d)) && !base.contains(r) {
                    base.push(r.clone());
                }
            }
            base
        } else {
            existing_rules.clone()
        };
        let mut notes = Vec::new();
        if self.privileged {
            // DV-6: every host device, then allow-all.
            if priv_new || self.fill {
                let all = self.host.host_devices("/dev").map_err(|e| Self::host_err("DV-6", e))?;
                let mut n = 0;
                for d in &all {
                    if !devs.iter().any(|x| device_path(x) == Some(d.path.as_str())) {
                        devs.push(dev_entry(d, &d.path));
                        n += 1;
                    }
                }
                if n > 0 {
                    notes.push(format!("{n} host devices"));
                }
            }
            if !cg.iter().any(is_allow_all) {
                cg.push(device_rule_json(true, None, None, None, "rwm"));
                notes.push("allow a *:* rwm".into());
            }
        }
        for m in &mappings {
            let found = self.devices_from_path(m)?;
            for (d, cpath) in found {
                if devs.iter().any(|x| device_path(x) == Some(cpath.as_str())) {
                    continue; // DV-6 "already exists" / idempotence guard
                }
                devs.push(dev_entry(&d, &cpath));
                let access = if self.privileged { "rwm" } else { m.cgroup_permissions.as_str() };
                let r = dev_rule(&d, access);
                if !cg.contains(&r) {
                    cg.push(r);
                }
                notes.push(format!("device {cpath}"));
            }
        }
        if !self.privileged {
            // DV-5
            for r in &rules {
                let v = r.to_oci();
                if !cg.contains(&v) {
                    cg.push(v);
                    notes.push(format!("rule {} {:?}:{:?} {}", r.kind, r.major, r.minor, r.access));
                }
            }
        }
        self.doc.set_devices(devs)?;
        let changed_rules = cg != existing_rules;
        self.doc.set_device_rules(cg)?;
        if changed_rules && self.fill {
            notes.insert(0, "Docker base device rules".into());
        }
        if !notes.is_empty() {
            self.note("DV-1", notes.join(", "));
        }
        Ok(())
    }

    /// moby `DevicesFromPath` (DV-3): one device node, or every device under a directory.
    fn devices_from_path(&self, m: &parse::DeviceMapping) -> Result<Vec<(HostDevice, String)>, SpecError> {
        let err = |msg: String| self.ann_err("devices", format!("error gathering device information while adding custom device {}: {msg}", go_quote(&m.path_on_host)));
        match self.host.host_device(&m.path_on_host) {
            Ok(Some(d)) => Ok(vec![(d, m.path_in_container.clone())]),
            Ok(None) => {
                let list = self.host.host_devices(&m.path_on_host).map_err(|e| err(e.to_string()))?;
                if list.is_empty() {
                    return Err(err("not a device node".into()));
                }
                Ok(list
                    .into_iter()
                    .map(|d| {
                        let cp = d.path.replacen(&m.path_on_host, &m.path_in_container, 1);
                        (d, cp)
                    })
                    .collect())
            }
            Err(e) => Err(err(e.to_string())),
        }
    }
}
