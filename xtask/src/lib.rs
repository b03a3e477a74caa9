//! The node installer image, built without a registry or a Docker daemon: the release shim and
//! `dockerish-node-installer`, linked statically (glibc with `+crt-static`, so the image needs no
//! libc and no shell), and the default `dockerish.toml`, written as an OCI image layout in one
//! tar file (`ctr images import` takes it as is; `skopeo copy oci-archive:…`, `crane push`,
//! `regctl image import` or `podman load` push or load it).
//!
//! The tar is reproducible: fixed timestamps and owners, sorted entries, a gzip header without
//! a time, so the same binaries always give the same image digest.
//!
//! Layout of the image:
//! - `/opt/dockerish/bin/containerd-shim-dockerish-v2` (the binary the installer puts on the node)
//! - `/opt/dockerish/bin/dockerish-node-installer` (the entrypoint)
//! - `/opt/dockerish/dockerish.toml` (`deploy/dockerish.toml`: installed when the node has none)
//! - `/host` (where the DaemonSet mounts the node's `/`)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The image's name: `localhost/` because it is built locally and loaded or pushed by the
/// admin; a kubelet never pulls it from a public registry by accident.
pub const IMAGE_REPO: &str = "localhost/dockerish/node-installer";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The file `cargo xtask installer-image` writes under the target directory.
pub const IMAGE_FILE: &str = "dockerish-node-installer.oci.tar";

pub const SHIM_IN_IMAGE: &str = "opt/dockerish/bin/containerd-shim-dockerish-v2";
pub const INSTALLER_IN_IMAGE: &str = "opt/dockerish/bin/dockerish-node-installer";
pub const SHIM_CONFIG_IN_IMAGE: &str = "opt/dockerish/dockerish.toml";

/// `localhost/dockerish/node-installer:<version>`.
pub fn image_name() -> String {
    format!("{IMAGE_REPO}:{VERSION}")
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent").to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        }
        None => workspace_root().join("target"),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The OCI architecture name of a Rust target triple.
pub fn oci_arch(triple: &str) -> Result<&'static str, String> {
    match triple.split('-').next() {
        Some("x86_64") => Ok("amd64"),
        Some("aarch64") => Ok("arm64"),
        _ => Err(format!("target {triple}: only x86_64 and aarch64 Linux images are built")),
    }
}

/// Whether an ELF executable is linked statically: no `PT_INTERP` program header (a static-pie
/// keeps a dynamic section for its own relocation, but names no loader).
pub fn is_static_elf(bin: &[u8]) -> Result<bool, String> {
    if bin.len() < 64 || &bin[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bin[4] != 2 || bin[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bin[o], bin[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bin[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let ty = bin.get(o..o + 4).ok_or("program headers past the end of the file")?;
        if u32::from_le_bytes(ty.try_into().expect("4 bytes")) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One file of the image layer.
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What goes into an image.
pub struct ImageSpec {
    pub name: String,
    pub arch: String,
    pub files: Vec<File>,
    /// Empty directories (mount points).
    pub dirs: Vec<(String, u32)>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub labels: Vec<(String, String)>,
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    // Fixed, and not 0: some tools treat a zero mtime as "unset".
    h.set_mtime(1);
    h.set_size(size);
    h
}

/// The layer: every parent directory, then the files, sorted.
fn layer_tar(spec: &ImageSpec) -> std::io::Result<Vec<u8>> {
    let mut dirs: Vec<(String, u32)> = spec.dirs.clone();
    for f in &spec.files {
        for a in Path::new(&f.path).ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            let d = a.to_string_lossy().into_owned();
            if !dirs.iter().any(|(x, _)| *x == d) {
                dirs.push((d, 0o755));
            }
        }
    }
    dirs.sort();
    let mut files: Vec<&File> = spec.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut b = tar::Builder::new(Vec::new());
    for (d, mode) in &dirs {
        let mut h = header(tar::EntryType::Directory, *mode, 0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())?;
    }
    for f in files {
        let mut h = header(tar::EntryType::Regular, f.mode, f.data.len() as u64);
        b.append_data(&mut h, &f.path, &f.data[..])?;
    }
    b.into_inner()
}

/// An OCI image layout (oci-layout, index.json, blobs) as one tar, and the manifest's digest.
pub fn oci_archive(spec: &ImageSpec) -> std::io::Result<(Vec<u8>, String)> {
    let layer = layer_tar(spec)?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    gz.write_all(&layer)?;
    let layer_gz = gz.finish()?;
    let layer_digest = format!("sha256:{}", sha256_hex(&layer_gz));
    let labels: serde_json::Map<String, serde_json::Value> = spec.labels.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    let config = serde_json::json!({
        "architecture": spec.arch,
        "os": "linux",
        "config": {
            "Entrypoint": spec.entrypoint,
            "Env": spec.env,
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "cargo xtask installer-image", "comment": "static binaries built from this repository"}],
    });
    let config = serde_json::to_vec(&config)?;
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_gz.len()}],
    }))?;
    let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
    let tag = spec.name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": spec.arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": tag},
        }],
    }))?;
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, name, data)
    };
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    add(&blob(&manifest_digest), &manifest)?;
    add(&blob(&config_digest), &config)?;
    add(&blob(&layer_digest), &layer_gz)?;
    Ok((b.into_inner()?, manifest_digest))
}

/// Where the binaries come from.
pub enum Binaries {
    /// `cargo build --release --target <host>` with `+crt-static` (the default).
    Build,
    /// Prebuilt static binaries (shim, installer).
    Given(PathBuf, PathBuf),
}

pub struct Options {
    pub binaries: Binaries,
    /// The tar to write (default `<target>/dockerish-node-installer.oci.tar`).
    pub out: Option<PathBuf>,
    /// Print cargo's progress (the CLI) or keep it for the error (tests).
    pub verbose: bool,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct Built {
    pub path: PathBuf,
    pub name: String,
    pub digest: String,
    pub shim: PathBuf,
    pub installer: PathBuf,
}

/// The host's target triple (`rustc -vV`).
pub fn host_triple() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc).arg("-vV").output().map_err(|e| format!("{rustc} -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| l.strip_prefix("host: ").map(str::to_string)).ok_or_else(|| format!("{rustc} -vV names no host"))
}

/// Builds the two binaries statically for the host's triple (release profile).
pub fn build_static(triple: &str, verbose: bool) -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--release", "--locked", "--target", triple, "-p", "containerd-shim-dockerish-v2", "-p", "dockerish-node-installer"])
        // With --target these flags reach only the target's code, never build scripts or proc
        // macros (which cannot be static); the highest-precedence variable, so a user's
        // RUSTFLAGS cannot drop them.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env_remove("RUSTFLAGS");
    let status = if verbose {
        cmd.status().map_err(|e| format!("{cargo}: {e}"))?.success()
    } else {
        let o = cmd.output().map_err(|e| format!("{cargo}: {e}"))?;
        if !o.status.success() {
            return Err(format!("cargo build of the static binaries failed:\n{}", String::from_utf8_lossy(&o.stderr)));
        }
        true
    };
    if !status {
        return Err("cargo build of the static binaries failed".into());
    }
    let dir = target_dir().join(triple).join("release");
    Ok((dir.join("containerd-shim-dockerish-v2"), dir.join("dockerish-node-installer")))
}

/// Builds the node installer image.
pub fn build_installer_image(opts: &Options) -> Result<Built, String> {
    let triple = host_triple()?;
    let arch = oci_arch(&triple)?;
    let (shim, installer) = match &opts.binaries {
        Binaries::Build => build_static(&triple, opts.verbose)?,
        Binaries::Given(s, i) => (s.clone(), i.clone()),
    };
    let read = |p: &Path| -> Result<Vec<u8>, String> {
        let b = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
        match is_static_elf(&b) {
            Ok(true) => Ok(b),
            Ok(false) => Err(format!("{} is dynamically linked: the image has no libc (build with -C target-feature=+crt-static)", p.display())),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    };
    let shim_config_path = workspace_root().join("deploy/dockerish.toml");
    let shim_config = std::fs::read(&shim_config_path).map_err(|e| format!("{}: {e}", shim_config_path.display()))?;
    let name = image_name();
    let spec = ImageSpec {
        name: name.clone(),
        arch: arch.into(),
        files: vec![
            File { path: SHIM_IN_IMAGE.into(), data: read(&shim)?, mode: 0o755 },
            File { path: INSTALLER_IN_IMAGE.into(), data: read(&installer)?, mode: 0o755 },
            File { path: SHIM_CONFIG_IN_IMAGE.into(), data: shim_config, mode: 0o644 },
        ],
        dirs: vec![("host".into(), 0o755)],
        entrypoint: vec![format!("/{INSTALLER_IN_IMAGE}")],
        env: vec!["PATH=/opt/dockerish/bin".into()],
        labels: vec![
            ("org.opencontainers.image.title".into(), "containerd-shim-dockerish-v2 node installer".into()),
            ("org.opencontainers.image.version".into(), VERSION.into()),
        ],
    };
    let (tar, digest) = oci_archive(&spec).map_err(|e| format!("assemble the image: {e}"))?;
    let path = opts.out.clone().unwrap_or_else(|| target_dir().join(IMAGE_FILE));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let tmp = path.with_extension("tar.tmp");
    std::fs::write(&tmp, &tar).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Built { path, name, digest, shim, installer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    fn spec(data: &[u8]) -> ImageSpec {
        ImageSpec {
            name: "localhost/x/y:1.2".into(),
            arch: "amd64".into(),
            files: vec![File { path: "opt/a/bin/tool".into(), data: data.to_vec(), mode: 0o755 }, File { path: "opt/a/conf".into(), data: b"k = 1\n".to_vec(), mode: 0o644 }],
            dirs: vec![("host".into(), 0o755)],
            entrypoint: vec!["/opt/a/bin/tool".into()],
            env: vec![],
            labels: vec![],
        }
    }

    fn entries(tar: &[u8]) -> BTreeMap<String, (Vec<u8>, u32)> {
        let mut m = BTreeMap::new();
        for e in tar::Archive::new(tar).entries().unwrap() {
            let mut e = e.unwrap();
            let mut d = Vec::new();
            e.read_to_end(&mut d).unwrap();
            m.insert(e.path().unwrap().to_string_lossy().into_owned(), (d, e.header().mode().unwrap()));
        }
        m
    }

    #[test]
    fn the_archive_is_an_oci_layout_whose_digests_check_out() {
        let (tar, digest) = oci_archive(&spec(b"\x7fELF...")).unwrap();
        let files = entries(&tar);
        let blob = |d: &str| files[&format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))].0.clone();
        for (name, (data, _)) in &files {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256_hex(data), hex, "{name}");
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"].0).unwrap();
        assert_eq!(index["manifests"][0]["digest"], digest);
        assert_eq!(index["manifests"][0]["annotations"]["io.containerd.image.name"], "localhost/x/y:1.2");
        assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1.2");
        let manifest: serde_json::Value = serde_json::from_slice(&blob(&digest)).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        let layer_gz = blob(manifest["layers"][0]["digest"].as_str().unwrap());
        let mut layer = Vec::new();
        flate2::read::GzDecoder::new(&layer_gz[..]).read_to_end(&mut layer).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], format!("sha256:{}", sha256_hex(&layer)));
        let layer = entries(&layer);
        let names: Vec<&str> = layer.keys().map(String::as_str).collect();
        assert_eq!(names, ["host/", "opt/", "opt/a/", "opt/a/bin/", "opt/a/bin/tool", "opt/a/conf"]);
        assert_eq!(layer["opt/a/bin/tool"], (b"\x7fELF...".to_vec(), 0o755));
    }

    #[test]
    fn the_same_input_gives_the_same_digest() {
        assert_eq!(oci_archive(&spec(b"one")).unwrap(), oci_archive(&spec(b"one")).unwrap());
        assert_ne!(oci_archive(&spec(b"one")).unwrap().1, oci_archive(&spec(b"two")).unwrap().1);
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        // This test binary is linked dynamically (the workspace builds it without crt-static).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(is_static_elf(&me), Ok(false));
        let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static, scripts/install-deps)");
        assert_eq!(is_static_elf(&busybox), Ok(true));
        assert!(is_static_elf(b"#!/bin/sh\n").is_err());
    }
}
