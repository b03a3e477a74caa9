//! The container's name on the network: GEN-3 (hostname).
//!
//! Grouped with the files Docker writes for the container because the hostname is what those
//! files carry.

use super::Ctx;
use crate::error::SpecError;
use crate::oci::ns;

pub(crate) const IDS: &[&str] = &["GEN-3"];

impl Ctx<'_> {
    /// GEN-3: default hostname = first 12 chars of the ID unless the UTS or network namespace is
    /// the host's (then the container sees the host name).
    pub(crate) fn hostname(&mut self) -> Result<(), SpecError> {
        if !self.fill {
            return Ok(());
        }
        let uts_host = self.s.uts.as_deref() == Some("host") || (self.s.uts.is_none() && !self.doc.has_ns(ns::UTS));
        if self.doc.hostname().is_none() && !uts_host && self.effective_network() != "host" {
            let h: String = self.id.chars().take(12).collect();
            self.doc.set_hostname(&h)?;
            self.note("GEN-3", format!("hostname {h}"));
        }
        Ok(())
    }
}
