//! `cargo xtask installer-image [--out FILE] [--binaries SHIM INSTALLER]`: the node installer
//! image as an OCI layout tar (see the library's documentation).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask installer-image [--out FILE] [--binaries SHIM INSTALLER]
  builds the release shim and dockerish-node-installer statically and writes the node installer
  image (an OCI layout tar, default target/dockerish-node-installer.oci.tar);
  --binaries packs two already built static binaries instead";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = xtask::Options { binaries: xtask::Binaries::Build, out: None, verbose: true };
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("installer-image") => {}
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    while let Some(a) = it.next() {
        match (a.as_str(), it.len()) {
            ("--out", 1..) => opts.out = it.next().map(PathBuf::from),
            ("--binaries", 2..) => {
                let shim = PathBuf::from(it.next().expect("checked"));
                opts.binaries = xtask::Binaries::Given(shim, PathBuf::from(it.next().expect("checked")));
            }
            _ => {
                eprintln!("unknown or incomplete argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match xtask::build_installer_image(&opts) {
        Ok(b) => {
            println!("wrote {} ({}, {})", b.path.display(), b.name, b.digest);
            println!("load it on a node:  ctr -n k8s.io images import {}", b.path.display());
            println!("or push it:         skopeo copy oci-archive:{} docker://<registry>/dockerish/node-installer:{}", b.path.display(), xtask::VERSION);
            println!("then:               kubectl apply -k deploy/kubernetes   (README, Kubernetes)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cargo xtask installer-image: {e}");
            ExitCode::FAILURE
        }
    }
}
