//! `dry-run`: what the shim would do at Create for a bundle, printed, nothing changed.

use std::path::{Path, PathBuf};

use crate::args::Flags;
use crate::bootstrap::BootstrapError;

const DRY_RUN_USAGE: &str = "usage: containerd-shim-dockerish-v2 [-namespace NS] [-id ID] dry-run [--summary] BUNDLE [CONFIG]

Prints, as JSON, what the shim would do at Create for the bundle (a directory with config.json
and the rootfs it names): the rules applied, host side effects (actions) and the filled spec.
Changes nothing. CONFIG is a dockerish.toml / daemon.json; without it the shim's usual lookup
applies ($DOCKERISH_CONFIG, then /etc/containerd/dockerish.toml, then built-in defaults).
--summary leaves the filled spec out. ID defaults to the bundle directory's name, NS to default.
";

/// `dry-run [--summary] BUNDLE [CONFIG]`: prints the filled spec and the rules applied, changes
/// nothing.
pub fn dry_run(flags: &Flags) -> Result<(), BootstrapError> {
    if flags.rest.iter().any(|a| a == "-h" || a == "--help" || a == "help") {
        print!("{DRY_RUN_USAGE}");
        return Ok(());
    }
    let summary = flags.rest.iter().any(|a| a == "--summary");
    let args: Vec<&String> = flags.rest.iter().filter(|a| *a != "--summary").collect();
    if let Some(bad) = args.iter().find(|a| a.starts_with('-')) {
        return Err(BootstrapError::Other(format!("dry-run: unknown option {bad:?}\n{DRY_RUN_USAGE}")));
    }
    let bundle = match args.first() {
        Some(b) => PathBuf::from(b),
        None => crate::bootstrap::bundle_dir(flags)?,
    };
    let config_path = args.get(1).map(PathBuf::from);
    let config = dockerish_host::load_config(config_path.as_deref(), None).map_err(|e| BootstrapError::Other(e.to_string()))?;
    let source = dockerish_host::config_source(config_path.as_deref(), None);
    let id = if flags.id.is_empty() { bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() } else { flags.id.clone() };
    let namespace = if flags.namespace.is_empty() { "default".to_string() } else { flags.namespace.clone() };
    let binary = config.runc_binary.clone().unwrap_or_else(|| "runc".into());
    let spec = dockerish_host::read_spec(&bundle).map_err(|e| BootstrapError::Other(e.to_string()))?;
    let host = dockerish_host::RealHost::new(&bundle, Path::new(""), &binary).with_features_runner(Box::new(|b: &Path| crate::runc::features_blocking(b, None).ok()));
    let filled = dockerish_host::fill_spec(&bundle, spec, &id, &namespace, &config, None, host).map_err(|e| BootstrapError::Other(e.to_string()))?;
    let mut warnings = filled.warnings.clone();
    if filled.spec["linux"]["cgroupsPath"].as_str() == Some(&format!("/{namespace}")) {
        // `ctr oci spec` writes "/<ns>" without the id; containerd adds it at create time.
        warnings.push(format!("cgroupsPath is \"/{namespace}\" without a container id (as `ctr oci spec` writes it): CG-1 treats only \"/{namespace}/{id}\" as containerd's default, so the cgroup rule was not applied"));
    }
    let mut out = serde_json::json!({
        "id": id,
        "namespace": namespace,
        "config": source,
        "origin": format!("{:?}", filled.origin),
        "policy": format!("{:?}", filled.policy),
        "systemdCgroup": filled.systemd_cgroup,
        "applied": filled.applied.iter().map(|a| serde_json::json!({"rule": a.rule, "change": a.change})).collect::<Vec<_>>(),
        "actions": filled.actions.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
        "warnings": warnings,
    });
    if !summary {
        out["spec"] = filled.spec;
    }
    let text = serde_json::to_string_pretty(&out).map_err(|e| BootstrapError::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

