//! deploy/install.sh against throw-away containerd configs (never the system's): idempotent
//! install, the table matching the config version, a clean uninstall, and containerd itself
//! accepting the result.

use std::path::Path;
use std::process::Command;

fn install(dir: &Path, extra: &[&str]) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/install.sh");
    let bin = dir.join("fake-shim");
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    Command::new("chmod").arg("+x").arg(&bin).status().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(script);
    cmd.args(extra);
    cmd.arg("--binary").arg(&bin).arg("--prefix").arg(dir.join("bin"));
    cmd.arg("--config").arg(dir.join("config.toml")).arg("--shim-config").arg(dir.join("dockerish.toml")).arg("--no-restart");
    cmd.output().unwrap()
}

fn dump(dir: &Path) -> String {
    let o = Command::new("containerd").arg("--config").arg(dir.join("config.toml")).args(["config", "dump"]).output().unwrap();
    assert!(o.status.success(), "containerd rejects the config: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn install_is_idempotent_and_uninstall_restores_config_v2() {
    let d = tempfile::tempdir().unwrap();
    let original = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.local/pause:3.9\"\n";
    std::fs::write(d.path().join("config.toml"), original).unwrap();
    for _ in 0..2 {
        let o = install(d.path(), &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let text = std::fs::read_to_string(d.path().join("config.toml")).unwrap();
    assert_eq!(text.matches("BEGIN containerd-shim-dockerish-v2").count(), 1, "{text}");
    let dumped = dump(d.path());
    assert!(dumped.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.dockerish]"), "{dumped}");
    assert!(dumped.contains("runtime_type = \"io.containerd.dockerish.v2\""), "{dumped}");
    // ConfigPath follows --shim-config.
    let shim_config = format!("ConfigPath = \"{}\"", d.path().join("dockerish.toml").display());
    assert!(dumped.contains(&shim_config), "{dumped}");
    // The file declared no runtime: containerd 1.6 would replace its built-in `runc` handler with
    // ours and the CRI plugin would not load; the block declares the default handler too.
    assert!(dumped.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]"), "{dumped}");
    // The user's own CRI settings survive (the reason for editing in place).
    assert!(dumped.contains("registry.local/pause:3.9"), "{dumped}");
    assert!(d.path().join("bin/containerd-shim-dockerish-v2").exists());
    assert!(d.path().join("dockerish.toml").exists());

    let o = install(d.path(), &["uninstall"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(d.path().join("config.toml")).unwrap(), original);
    assert!(!d.path().join("bin/containerd-shim-dockerish-v2").exists());
}

#[test]
fn install_writes_the_v3_table_for_containerd_2_configs() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("config.toml"), "version = 3\n").unwrap();
    let o = install(d.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(d.path().join("config.toml")).unwrap();
    assert!(text.contains("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.dockerish]"), "{text}");
    assert!(!text.contains("io.containerd.grpc.v1.cri"), "{text}");
    let v: toml::Table = toml::from_str(&text).expect("valid TOML");
    assert_eq!(v["version"].as_integer(), Some(3));
}

#[test]
fn install_refuses_a_foreign_dockerish_table_and_leaves_the_file_alone() {
    let d = tempfile::tempdir().unwrap();
    let original = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.dockerish]\n  runtime_type = \"other\"\n";
    std::fs::write(d.path().join("config.toml"), original).unwrap();
    let o = install(d.path(), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already defines a 'dockerish' runtime"));
    assert_eq!(std::fs::read_to_string(d.path().join("config.toml")).unwrap(), original);
}

#[test]
fn install_keeps_an_existing_runtimes_table_as_is() {
    let d = tempfile::tempdir().unwrap();
    let original = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"crun\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun]\n  runtime_type = \"io.containerd.runc.v2\"\n";
    std::fs::write(d.path().join("config.toml"), original).unwrap();
    let o = install(d.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(d.path().join("config.toml")).unwrap();
    assert!(!text.contains("runtimes.runc]"), "a config with its own runtimes gets no runc table: {text}");
    let dumped = dump(d.path());
    assert!(dumped.contains("runtimes.crun]") && dumped.contains("runtimes.dockerish]"), "{dumped}");
}
