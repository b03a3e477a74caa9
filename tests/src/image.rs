//! A busybox image built locally from the host's `/bin/busybox` (Debian `busybox-static`), as an
//! OCI image layout tarball that `ctr images import` understands. No registry is needed.
//!
//! Root filesystem: `bin/busybox` plus one symlink per applet at the path `busybox --list-full`
//! gives, `/etc/passwd` and `/etc/group` with `root`, `nobody`, `tester` (uid/gid 1000) and group
//! `testgrp` (gid 2000, member `tester`), and empty `/tmp`, `/proc`, `/sys`, `/dev`, `/root`,
//! `/home/tester`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The name the image is imported under.
pub const IMAGE: &str = "docker.io/dockerish/busybox:test";

const BUSYBOX: &str = "/bin/busybox";

/// Users of the test image.
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
tester:x:1000:1000:tester:/home/tester:/bin/sh\n";
/// Groups of the test image.
pub const GROUP: &str = "root:x:0:\n\
nogroup:x:65534:\n\
tester:x:1000:\n\
testgrp:x:2000:tester\n";

fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Builds the uncompressed layer tar of the root filesystem.
fn layer_tar() -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!("cannot read {BUSYBOX} ({e}): install the Debian package busybox-static")
    });
    let list = Command::new(BUSYBOX).arg("--list-full").output().expect("busybox --list-full");
    let mut applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox")
        .collect();
    applets.sort();
    applets.dedup();

    let mut dirs: Vec<(String, u32)> = vec![
        ("bin".into(), 0o755),
        ("dev".into(), 0o755),
        ("etc".into(), 0o755),
        ("home".into(), 0o755),
        ("home/tester".into(), 0o755),
        ("proc".into(), 0o555),
        ("root".into(), 0o700),
        ("sbin".into(), 0o755),
        ("sys".into(), 0o555),
        ("tmp".into(), 0o1777),
        ("usr".into(), 0o755),
        ("usr/bin".into(), 0o755),
        ("usr/sbin".into(), 0o755),
        ("var".into(), 0o755),
    ];
    for a in &applets {
        if let Some((d, _)) = a.rsplit_once('/') {
            if !dirs.iter().any(|(x, _)| x == d) {
                dirs.push((d.to_string(), 0o755));
            }
        }
    }
    dirs.sort();

    let mut b = tar::Builder::new(Vec::new());
    for (d, mode) in &dirs {
        let mut h = header(tar::EntryType::Directory, *mode, 0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty()).unwrap();
    }
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", &busybox[..]).unwrap();
    for (name, content, mode) in [
        ("etc/passwd", PASSWD, 0o644),
        ("etc/group", GROUP, 0o644),
        ("etc/hostname", "busybox\n", 0o644),
    ] {
        let mut h = header(tar::EntryType::Regular, mode, content.len() as u64);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    for a in &applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, a, "/bin/busybox").unwrap();
    }
    b.into_inner().unwrap()
}

/// Builds the whole OCI image layout tarball in memory.
pub fn build_image_tarball() -> Vec<u8> {
    let layer = layer_tar();
    let layer_digest = format!("sha256:{}", sha256_hex(&layer));
    let config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "dockerish-tests: busybox-static from the host", "comment": "local test image"}],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": oci_arch(), "os": "linux"},
            "annotations": {
                "io.containerd.image.name": IMAGE,
                "org.opencontainers.image.ref.name": "test",
            },
        }],
    });
    let index = serde_json::to_vec(&index).unwrap();

    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for (digest, data) in [(&manifest_digest, &manifest), (&config_digest, &config), (&layer_digest, &layer)] {
        add(&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")), data);
    }
    b.into_inner().unwrap()
}

/// The image tarball, built once per process into `<target>/dockerish-test-cache/`.
pub fn image_tarball() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let data = build_image_tarball();
        let dir = crate::target_dir().join("dockerish-test-cache");
        std::fs::create_dir_all(&dir).expect("create image cache dir");
        let path = dir.join(format!("busybox-{}.oci.tar", &sha256_hex(&data)[..16]));
        if !path.exists() {
            // Unique temp name + rename: several test processes may build at once.
            let tmp = dir.join(format!(".busybox-{}.tmp", crate::unique_name("")));
            std::fs::write(&tmp, &data).expect("write image tarball");
            std::fs::rename(&tmp, &path).expect("rename image tarball");
        }
        path
    })
}

/// Unpacks the image's root filesystem into `dir` (for `ctr run --rootfs` / `--config` tests).
pub fn extract_rootfs(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create rootfs dir");
    let layer = layer_tar();
    let mut a = tar::Archive::new(&layer[..]);
    a.set_preserve_permissions(true);
    a.unpack(dir).expect("unpack rootfs");
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_layout_is_consistent_and_reproducible() {
        let a = super::build_image_tarball();
        assert_eq!(a, super::build_image_tarball(), "tarball not reproducible");
        let mut ar = tar::Archive::new(&a[..]);
        let mut files = std::collections::HashMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            files.insert(e.path().unwrap().to_string_lossy().into_owned(), data);
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&files[&format!("blobs/sha256/{}", &digest[7..])]).unwrap();
        for d in [&manifest["config"]["digest"], &manifest["layers"][0]["digest"]] {
            let blob = &files[&format!("blobs/sha256/{}", &d.as_str().unwrap()[7..])];
            assert_eq!(format!("sha256:{}", super::sha256_hex(blob)), d.as_str().unwrap());
        }
        assert_eq!(index["manifests"][0]["annotations"]["io.containerd.image.name"], super::IMAGE);
    }
}
