//! deploy/install.sh against throw-away containerd configs (never the system's): idempotent
//! install, the table matching the config version, a clean uninstall, and containerd itself
//! accepting the result; for every containerd of the matrix, its own default config, loaded by
//! that containerd with the handler registered in its CRI plugin.

use std::path::Path;
use std::process::Command;

use dockerish_tests::cri::Cri;
use dockerish_tests::{matrix_tests, Containerd, Options, Version};

matrix_tests!(versions_only: install_into_the_default_config_then_uninstall, install_creates_a_config_of_the_native_version);

/// `deploy/install.sh` (which runs the shim's own `install`) on the throw-away files of `dir`.
fn install(dir: &Path, extra: &[&str]) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/install.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script);
    cmd.args(extra);
    cmd.arg("--binary").arg(dockerish_tests::shim_path()).arg("--prefix").arg(dir.join("bin"));
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

/// Config versions 3 and 4 (2.3's default) read the CRI runtimes from the same 2.x table.
#[test]
fn install_writes_the_2x_table_for_config_versions_3_and_4() {
    for version in [3, 4] {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.toml"), format!("version = {version}\n")).unwrap();
        let o = install(d.path(), &[]);
        assert!(o.status.success(), "version {version}: {}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(d.path().join("config.toml")).unwrap();
        assert!(text.contains("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.dockerish]"), "{text}");
        assert!(!text.contains("io.containerd.grpc.v1.cri"), "{text}");
        let v: toml::Table = toml::from_str(&text).expect("valid TOML");
        assert_eq!(v["version"].as_integer(), Some(version), "{text}");
    }
}

#[test]
fn install_refuses_a_config_without_a_top_level_version() {
    let d = tempfile::tempdir().unwrap();
    // A `version` key inside a table is not the file's version.
    let original = "[plugins.\"io.containerd.grpc.v1.cri\"]\n  version = 2\n";
    std::fs::write(d.path().join("config.toml"), original).unwrap();
    let o = install(d.path(), &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no top-level 'version = 2|3|4' line"), "{err}");
    assert_eq!(std::fs::read_to_string(d.path().join("config.toml")).unwrap(), original);
}

/// `containerd config default` of containerd `v` (version 2 for 1.6/1.7, 4 for 2.3), edited by
/// install.sh with that containerd on PATH; that containerd starts with the edited file (the
/// harness only moves root, state and sockets into a private directory) and its CRI plugin
/// has the `dockerish` handler beside the default `runc`; uninstall restores the file byte for
/// byte.
fn install_into_the_default_config_then_uninstall(v: Version) {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.toml");
    let o = Command::new(v.build().containerd()).args(["config", "default"]).output().unwrap();
    assert!(o.status.success(), "{v} config default: {}", String::from_utf8_lossy(&o.stderr));
    let original = o.stdout;
    std::fs::write(&cfg, &original).unwrap();
    let shim_config = d.path().join("dockerish.toml");
    let install = |action: Option<&str>| {
        let mut cmd = dockerish_tests::install_script(v);
        cmd.args(action);
        cmd.arg("--binary").arg(dockerish_tests::shim_path()).arg("--prefix").arg(d.path().join("bin"));
        cmd.arg("--config").arg(&cfg).arg("--shim-config").arg(&shim_config).arg("--no-restart");
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "install.sh {action:?} under {v}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = install(None);
    let native = v.config_version();
    assert!(out.contains(&format!("(config version {native})")), "{out}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(text.matches("BEGIN containerd-shim-dockerish-v2").count(), 1, "{text}");
    let t: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("invalid TOML ({e}):\n{text}"));
    assert_eq!(t["version"].as_integer(), Some(native as i64), "the file keeps its version");

    let c = Containerd::start_with(Options { version: v, cri: true, import_image: false, log_level: "info".into(), extra_config: text.clone(), ..Options::default() });
    let cri = Cri::connect(&c.grpc);
    let (status, config) = cri.status_verbose().unwrap_or_else(|e| panic!("CRI Status under {v}: {e}"));
    let runtimes = &config["containerd"]["runtimes"];
    assert_eq!(runtimes["dockerish"]["runtimeType"], "io.containerd.dockerish.v2", "{v}: {runtimes}");
    assert_eq!(runtimes["dockerish"]["options"]["ConfigPath"], shim_config.display().to_string(), "{v}: {runtimes}");
    assert_eq!(runtimes["runc"]["runtimeType"], "io.containerd.runc.v2", "{v}: the default handler is gone: {runtimes}");
    if v.is_2x() {
        // What a kubelet reads (CRI's RuntimeHandler list, 2.x).
        let handlers: Vec<&str> = status.runtime_handlers.iter().map(|h| h.name.as_str()).collect();
        assert!(handlers.contains(&"dockerish"), "{v}: runtime handlers {handlers:?}");
    }
    drop(cri);
    drop(c);

    install(Some("uninstall"));
    assert!(std::fs::read(&cfg).unwrap() == original, "{v}: uninstall did not restore the default config byte for byte:\n{}", std::fs::read_to_string(&cfg).unwrap());
}

/// Without a config file, install.sh writes one in the version the containerd on PATH writes by
/// default, so that containerd reads it natively (no migration at every start).
fn install_creates_a_config_of_the_native_version(v: Version) {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("etc/config.toml");
    let o = dockerish_tests::install_script(v)
        .arg("--binary")
        .arg(dockerish_tests::shim_path())
        .arg("--prefix")
        .arg(d.path().join("bin"))
        .arg("--config")
        .arg(&cfg)
        .arg("--shim-config")
        .arg(d.path().join("dockerish.toml"))
        .arg("--no-restart")
        .output()
        .unwrap();
    assert!(o.status.success(), "{v}: {}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("invalid TOML ({e}):\n{text}"));
    assert_eq!(t["version"].as_integer(), Some(v.config_version() as i64), "{v}: {text}");
    let plugin = if v.is_2x() { "io.containerd.cri.v1.runtime" } else { "io.containerd.grpc.v1.cri" };
    assert_eq!(t["plugins"][plugin]["containerd"]["runtimes"]["dockerish"]["runtime_type"].as_str(), Some("io.containerd.dockerish.v2"), "{v}: {text}");
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
