//! Race-free claims: a key (a container name) that only one container of a scope (its
//! containerd namespace, or the host) may hold. The rules check the sibling bundles, but two
//! creates running at the same time both pass that check; the claim is what makes the second
//! one fail. Used for container names (NAME-1, per namespace) and cgroups (CG-1, host-wide).
//!
//! A claim is a file `<root>/<scope>/<class>/<sha256(key)>` holding the owner's bundle path. It
//! is created complete or not at all (written to a temporary name, then hard-linked, which fails
//! if the claim exists), and released by the owner at delete. A claim whose owner bundle no
//! longer exists (a crash between create and delete) is stale and taken over.

use crate::path_str;
use dockerish_spec::{cgroup_conflict, claim_class, name_conflict, ClaimScope, HostError};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where claims live: runtime state on tmpfs, gone at reboot with every container.
pub const CLAIMS_DIR: &str = "/run/containerd-shim-dockerish/claims";

/// The largest key accepted (a container name; a cgroup path).
const KEY_MAX: usize = 4096;

fn hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(p: &Path) -> Result<PathBuf, HostError> {
    std::fs::canonicalize(p).map_err(|e| HostError::io("realpath", path_str(p), e))
}

/// The claim file of `key`. `class` must be a plain word (it is a directory name).
pub fn claim_path(root: &Path, bundle: &Path, scope: ClaimScope, class: &str, key: &str) -> Result<PathBuf, HostError> {
    if class.is_empty() || !class.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') || key.is_empty() || key.len() > KEY_MAX {
        return Err(HostError::Refused { path: format!("{class}/{key}"), msg: "not a valid claim".into() });
    }
    let scope_dir = match scope {
        // The namespace directory (`…/io.containerd.runtime.v2.task/<ns>`) identifies the
        // containerd instance and namespace together.
        ClaimScope::Namespace => {
            let b = canonical(bundle)?;
            let ns = b.parent().ok_or_else(|| HostError::Refused { path: path_str(&b), msg: "bundle has no parent directory".into() })?;
            format!("ns-{}", hex(ns.as_os_str().as_encoded_bytes()))
        }
        ClaimScope::Host => "host".to_string(),
    };
    Ok(root.join(scope_dir).join(class).join(hex(key.as_bytes())))
}

fn owner_of(path: &Path) -> Result<Option<String>, HostError> {
    match std::fs::read(path) {
        Ok(b) => Ok(serde_json::from_slice::<Value>(&b).ok().and_then(|v| v.get("owner").and_then(Value::as_str).map(str::to_string))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HostError::io("read", path_str(path), e)),
    }
}

/// Claim `key` for the container of `bundle`. Claiming again what the same bundle holds is fine.
pub fn claim(root: &Path, bundle: &Path, scope: ClaimScope, class: &str, key: &str) -> Result<(), HostError> {
    use std::os::unix::fs::DirBuilderExt;
    let path = claim_path(root, bundle, scope, class, key)?;
    let dir = path.parent().unwrap_or(root);
    let mkdir = |d: &Path| std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d).map_err(|e| HostError::io("mkdir", path_str(d), e));
    mkdir(root)?;
    // Creating the directories, checking a stale claim and replacing it must not interleave
    // with another claimer or with a release removing empty directories.
    let _lock = lock_root(root)?;
    mkdir(dir)?;
    let owner = path_str(&canonical(bundle)?);
    let content = serde_json::json!({"class": class, "key": key, "owner": owner}).to_string();
    // A unique, exclusive temporary file (the shim serves many containers from one process).
    let mut tmp = tempfile::Builder::new().prefix(".claim-").tempfile_in(dir).map_err(|e| HostError::io("create", path_str(dir), e))?;
    std::io::Write::write_all(&mut tmp, content.as_bytes()).map_err(|e| HostError::io("write", path_str(tmp.path()), e))?;
    // The temporary name is removed when `tmp` drops; the claim keeps the inode.
    link_claim(tmp.path(), &path, &owner, class, key)
}

/// An exclusive lock on the claims root, held until dropped. One lock file for every scope: it
/// is never removed, so two claimers can never hold locks on two different files.
fn lock_root(root: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, HostError> {
    let p = root.join(".lock");
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&p).map_err(|e| HostError::io("open", path_str(&p), e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| HostError::io("flock", path_str(&p), e.into()))
}

/// Hard-link the complete claim file `tmp` to `path`; on a stale claim (its owner's bundle is
/// gone) remove it and try once more.
fn link_claim(tmp: &Path, path: &Path, owner: &str, class: &str, key: &str) -> Result<(), HostError> {
    for _ in 0..2 {
        match std::fs::hard_link(tmp, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(HostError::io("link", path_str(path), e)),
        }
        match owner_of(path)? {
            Some(o) if o == owner => return Ok(()),
            Some(o) if Path::new(&o).exists() => return Err(HostError::Conflict(conflict(class, key, Path::new(&o)))),
            // Stale (or vanished meanwhile): remove and link again.
            _ => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(HostError::io("remove", path_str(path), e)),
                _ => {}
            },
        }
    }
    Err(HostError::Conflict(format!("{class} {key:?} is claimed by another container being created")))
}

/// The error text for `key` of `class` held by the container of bundle `holder`
/// (`…/<namespace>/<id>`).
fn conflict(class: &str, key: &str, holder: &Path) -> String {
    let name = |p: Option<&Path>| p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (id, ns) = (name(Some(holder)), name(holder.parent()));
    match class {
        claim_class::NAME => name_conflict(key, &id),
        claim_class::CGROUP => cgroup_conflict(&format!("cgroup {key:?}"), &id, &ns),
        claim_class::SYSTEMD_UNIT => cgroup_conflict(&format!("systemd unit {key:?}"), &id, &ns),
        _ => format!("{class} {key:?} is already in use by container {id:?} of namespace {ns:?}"),
    }
}

/// Release what the container of `bundle` holds (someone else's claim is left alone); a
/// namespace's empty class and scope directories are removed.
pub fn release(root: &Path, bundle: &Path, scope: ClaimScope, class: &str, key: &str) -> Result<(), HostError> {
    let path = claim_path(root, bundle, scope, class, key)?;
    let owner = path_str(&canonical(bundle)?);
    if !path.parent().is_some_and(Path::is_dir) {
        return Ok(());
    }
    let _lock = lock_root(root)?;
    if owner_of(&path)?.as_deref() == Some(owner.as_str()) {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(HostError::io("remove", path_str(&path), e)),
            _ => {}
        }
    }
    // A namespace's directories go with its last claim (namespaces come and go); the host's
    // few class directories stay: every container claims there, and recreating them at each
    // create cost two mkdirs and two rmdirs (~0.3 ms of system time on tmpfs here).
    if scope == ClaimScope::Host {
        return Ok(());
    }
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) {
        if std::fs::remove_dir(d).is_err() {
            break; // not empty: another claim lives there
        }
        dir = d.parent();
    }
    Ok(())
}
