//! The container's name and the files Docker writes for it: GEN-3 (hostname: the `hostname`
//! annotation, the short ID, the host's name with host networking, the donor's with
//! `network=container:`), MT-13 (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` written into
//! the bundle and bind-mounted; `dns`, `dns-search`, `dns-option`, `add-host`).
//!
//! Docker writes these files in libnetwork (`sandbox_dns_unix.go`, `etchosts`, `resolvconf`);
//! the shim writes them for producers that do not (ctr), and leaves them alone where the
//! producer already mounts its own (nerdctl, CRI, `ctr run --net-host`).

use super::namespaces::Join;
use super::Ctx;
use crate::error::SpecError;
use crate::oci::{ns, Mount};
use crate::{HostAction, HostFile, SiblingTask};
use std::net::IpAddr;

pub(crate) const IDS: &[&str] = &["GEN-3", "MT-13"];

/// libnetwork `etchosts` default content.
const DEFAULT_HOSTS: &[(&str, &str)] = &[
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
];

/// libnetwork's fallback nameservers when none of the host's is usable in the container.
const DEFAULT_NAMESERVERS: &[&str] = &["8.8.8.8", "8.8.4.4"];

/// systemd-resolved's stub listener: useless inside another network namespace.
const RESOLVED_STUB: &str = "127.0.0.53";

/// The files: (destination in the container, file name in [`ETC_FILES_DIR`]).
pub(crate) const ETC_FILES: &[(&str, &str)] = &[("/etc/hostname", "hostname"), ("/etc/hosts", "hosts"), ("/etc/resolv.conf", "resolv.conf")];

/// The bundle subdirectory holding them: every user of the container must read them (0644),
/// while the bundle's own files are the shim's private state (0600).
pub(crate) const ETC_FILES_DIR: &str = "etc";

/// The nameserver address of a `nameserver <ip>` line.
fn nameserver(line: &str) -> Option<IpAddr> {
    let rest = line.trim_start().strip_prefix("nameserver")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    rest.trim().parse().ok()
}

fn words_after<'a>(text: &'a str, kw: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(kw).filter(|r| r.starts_with(char::is_whitespace)))
        .flat_map(str::split_whitespace)
        .collect()
}

fn is_loopback(ip: &IpAddr) -> bool {
    ip.is_loopback()
}

impl Ctx<'_> {
    /// The donor of `network=container:<X>`, resolved once (GEN-3 and NS-2 both need it).
    pub(crate) fn network_donor(&mut self) -> Result<Option<SiblingTask>, SpecError> {
        let Some(target) = self.s.network.as_deref().and_then(|n| n.strip_prefix("container:")).map(str::to_string) else { return Ok(None) };
        if self.net_donor.is_none() {
            self.net_donor = Some(self.resolve("network", &target, Join::Network)?);
        }
        Ok(self.net_donor.clone())
    }

    /// GEN-3: Docker's `Config.Hostname` and the spec's `hostname`. The annotation wins; with
    /// `network=container:<X>` X's hostname is copied; an existing `hostname` is kept; host
    /// networking uses the host's name; otherwise the first 12 characters of the ID. With the
    /// host's UTS namespace the spec gets none (NS-5) but `HOSTNAME` and `/etc/hostname` still do.
    pub(crate) fn hostname(&mut self) -> Result<(), SpecError> {
        let net = self.effective_network();
        let uts_host = self.s.uts.as_deref() == Some("host") || (self.s.uts.is_none() && !self.doc.has_ns(ns::UTS));
        if self.s.hostname.is_some() {
            if self.s.uts.as_deref() == Some("host") {
                return Err(self.ann_err("hostname", "conflicting options: hostname and the UTS mode"));
            }
            if net.starts_with("container:") {
                return Err(self.ann_err("hostname", "conflicting options: hostname and the network mode"));
            }
        }
        if !self.fill && self.s.hostname.is_none() {
            return Ok(());
        }
        let name = if let Some(h) = self.s.hostname.clone() {
            h
        } else if let Some(d) = self.network_donor()? {
            d.hostname.unwrap_or_else(|| d.id.chars().take(12).collect())
        } else if let Some(h) = self.doc.hostname() {
            h.to_string()
        } else if net == "host" {
            self.host.hostname()
        } else {
            self.id.chars().take(12).collect()
        };
        if !uts_host && self.doc.set_hostname(&name)? {
            self.note("GEN-3", format!("hostname {name}"));
        }
        self.container_hostname = Some(name);
        Ok(())
    }

    /// `hostname[.domainname]` for the files.
    fn fqdn(&self) -> String {
        let h = self.container_hostname.clone().or_else(|| self.doc.hostname().map(str::to_string)).unwrap_or_else(|| self.id.chars().take(12).collect());
        match self.s.domainname.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => format!("{h}.{d}"),
            None => h,
        }
    }

    /// The host uid/gid the container's root maps to (files it may rewrite, as Docker's).
    fn container_root(&self) -> (u32, u32) {
        let root_of = |gid: bool| {
            self.doc
                .id_mappings(gid)
                .into_iter()
                .find(|(c, _, size)| *c <= 0 && 0 < c.saturating_add(*size))
                .and_then(|(c, h, _)| u32::try_from(h - c).ok())
                .unwrap_or(0)
        };
        (root_of(false), root_of(true))
    }

    fn host_text(&self, f: HostFile) -> Result<Option<String>, SpecError> {
        self.host.host_file(f).map_err(|e| Self::host_err("MT-13", e))
    }

    /// MT-13 `/etc/resolv.conf`: the host's (`resolvconf.Path()`: systemd-resolved's upstream
    /// list when `/etc/resolv.conf` only names the stub), with `dns`, `dns-search`, `dns-option`
    /// replacing their part. In a private network namespace loopback and IPv6 nameservers are
    /// dropped (Docker's default bridge has no IPv6) and Google's are used when none remain.
    fn resolv_conf(&self, private: bool) -> Result<String, SpecError> {
        let mut host = self.host_text(HostFile::ResolvConf)?.unwrap_or_default();
        let ns: Vec<IpAddr> = host.lines().filter_map(nameserver).collect();
        if ns.len() == 1 && ns[0].to_string() == RESOLVED_STUB {
            if let Some(upstream) = self.host_text(HostFile::SystemdResolvConf)? {
                host = upstream;
            }
        }
        let usable = |ip: &IpAddr| !private || (!is_loopback(ip) && ip.is_ipv4());
        let (dns, search, opts) = (&self.s.dns, &self.s.dns_search, &self.s.dns_options);
        if dns.is_none() && search.is_none() && opts.is_none() {
            if !private {
                return Ok(host);
            }
            let mut out: Vec<&str> = host.lines().filter(|l| nameserver(l).is_none_or(|ip| usable(&ip))).collect();
            let defaults: Vec<String> = DEFAULT_NAMESERVERS.iter().map(|n| format!("nameserver {n}")).collect();
            if !out.iter().any(|l| nameserver(l).is_some()) {
                out.extend(defaults.iter().map(String::as_str));
            }
            return Ok(out.join("\n") + "\n");
        }
        // resolvconf.Build: search, nameservers, options; what is not given comes from the host.
        let mut servers: Vec<String> = match dns {
            Some(d) => d.clone(),
            None => host.lines().filter_map(nameserver).filter(usable).map(|ip| ip.to_string()).collect(),
        };
        if servers.is_empty() && private {
            servers = DEFAULT_NAMESERVERS.iter().map(|s| s.to_string()).collect();
        }
        let search: Vec<String> = match search {
            Some(s) => s.clone(),
            None => words_after(&host, "search").into_iter().map(str::to_string).collect(),
        };
        let opts: Vec<String> = match opts {
            Some(o) => o.clone(),
            None => words_after(&host, "options").into_iter().map(str::to_string).collect(),
        };
        let mut out = String::new();
        let search = search.join(" ");
        if !search.is_empty() && search.trim() != "." {
            out.push_str(&format!("search {search}\n"));
        }
        for s in servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        let opts = opts.join(" ");
        if !opts.trim().is_empty() {
            out.push_str(&format!("options {opts}\n"));
        }
        Ok(out)
    }

    /// MT-13 `/etc/hosts`: libnetwork's default entries, `add-host` entries, and the hostname
    /// (on the loopback address: a ctr container's network namespace has no other); with host
    /// networking the host's file plus the `add-host` entries.
    fn hosts(&self, private: bool) -> Result<String, SpecError> {
        let extra: Vec<String> = self.s.extra_hosts.iter().flatten().map(|h| format!("{}\t{}", h.ip, h.name)).collect();
        let mut out = if private {
            let mut out: Vec<String> = DEFAULT_HOSTS.iter().map(|(ip, h)| format!("{ip}\t{h}")).collect();
            out.extend(extra);
            let fqdn = self.fqdn();
            let names = match fqdn.split_once('.') {
                Some((short, _)) => format!("{fqdn} {short}"),
                None => fqdn,
            };
            out.push(format!("127.0.0.1\t{names}"));
            out.join("\n")
        } else {
            let host = self.host_text(HostFile::Hosts)?.unwrap_or_default();
            let mut out = host.trim_end_matches('\n').to_string();
            for e in extra {
                out.push('\n');
                out.push_str(&e);
            }
            out
        };
        out.push('\n');
        Ok(out)
    }

    /// MT-13: write and bind the three files where no mount targets them yet. Returns whether a
    /// mount was added (the mounts are then re-sorted, MT-3).
    pub(crate) fn etc_files(&mut self, mounts: &mut Vec<Mount>) -> Result<bool, SpecError> {
        let s = &self.s;
        let requested = s.hostname.is_some() || s.dns.is_some() || s.dns_search.is_some() || s.dns_options.is_some() || s.extra_hosts.is_some();
        if !self.fill && !requested {
            return Ok(false);
        }
        let net = self.effective_network();
        if net.starts_with("container:") {
            if s.dns.is_some() {
                return Err(self.ann_err("dns", "conflicting options: dns and the network mode"));
            }
            if s.extra_hosts.is_some() {
                return Err(self.ann_err("add-host", "conflicting options: custom host-to-IP mapping and the network mode"));
            }
        }
        let private = net != "host";
        let donor = self.network_donor()?;
        let bundle = self.host.bundle_dir();
        let (uid, gid) = self.container_root();
        let mut opts = vec!["rbind"];
        if self.s.read_only == Some(true) {
            opts.push("ro");
        }
        opts.push("rprivate");
        let mut added = false;
        let mut changed = false;
        for (dest, name) in ETC_FILES {
            let ours = crate::parse::join_path(&bundle, &format!("{ETC_FILES_DIR}/{name}"));
            if let Some(i) = mounts.iter().position(|m| m.destination() == *dest) {
                if mounts[i].source() != ours {
                    // The producer provides its own (nerdctl, CRI, ctr --net-host, a user bind).
                    let asked = match *name {
                        "hostname" => self.s.hostname.is_some(),
                        "hosts" => self.s.extra_hosts.is_some() || self.s.hostname.is_some(),
                        _ => self.s.dns.is_some() || self.s.dns_search.is_some() || self.s.dns_options.is_some(),
                    };
                    let key = match *name {
                        "hostname" => "hostname",
                        "hosts" if self.s.extra_hosts.is_some() => "add-host",
                        "hosts" => "hostname",
                        _ if self.s.dns.is_some() => "dns",
                        _ if self.s.dns_search.is_some() => "dns-search",
                        _ => "dns-option",
                    };
                    if asked {
                        return Err(self.ann_err(key, format!("cannot be applied: {dest} is already mounted from {} by the container's spec", mounts[i].source())));
                    }
                    continue;
                }
                let old = mounts.remove(i);
                changed |= old.options() != opts;
            } else {
                changed = true;
            }
            let shared = donor.as_ref().and_then(|d| d.etc_files.iter().find(|(d, _)| d == dest).map(|(_, src)| src.clone()));
            let source = match shared {
                Some(src) => src,
                None => {
                    let content = match *name {
                        "hostname" => format!("{}\n", self.fqdn()),
                        "hosts" => self.hosts(private)?,
                        _ => self.resolv_conf(private)?,
                    };
                    self.actions.push(HostAction::EtcFile { path: ours.clone(), content, uid, gid });
                    ours
                }
            };
            mounts.push(Mount::new(dest, "bind", &source, &opts));
            added = true;
        }
        if changed {
            self.note("MT-13", "/etc/hostname, /etc/hosts, /etc/resolv.conf bound");
        }
        Ok(added)
    }
}
