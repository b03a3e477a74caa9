//! dockerish-node-installer: the entrypoint of the node installer image (`cargo xtask
//! installer-image`), run by the DaemonSet of `deploy/kubernetes/` on every node.
//!
//! ```text
//! dockerish-node-installer [install|uninstall|wait]     (default: $MODE, else install)
//! ```
//!
//! - `install`: runs the image's shim binary `install --root $HOST_ROOT` (the one node-setup
//!   implementation, `shim/src/install.rs`: binary, config, restart through the node's systemd),
//!   then labels the node `dockerish.io/installed=true`, which the RuntimeClass selects nodes by.
//! - `uninstall`: removes the label first (no new pods land here), then runs the shim's
//!   `uninstall`.
//! - `wait`: sleeps until SIGTERM (the DaemonSet's main container: the work is done by the init
//!   container, so a Ready pod means "done on this node").
//!
//! Settings come from the environment (the DaemonSet's `env`): `NODE_NAME` (spec.nodeName),
//! `HOST_ROOT` (default `/host`), `RESTART` (`auto`: through systemd, refusing without it;
//! `none`), `LABEL` (`api`: patch the node through the API server; `dry-run`: print the request
//! instead, no RBAC needed; `none`), `FORCE=1` (uninstall even while containers of the runtime
//! exist), and the node paths `INSTALL_PREFIX`, `CONTAINERD_CONFIG`, `SHIM_CONFIG` (defaults: the
//! shim's). The shim binary and the default `dockerish.toml` are the image's (`SHIM`,
//! `SHIM_CONFIG_DEFAULT` to override).
//!
//! The Kubernetes client is kept out of the shim binary (its size and memory matter): this
//! binary makes the one API call ([`kube`]).

mod kube;

use std::process::{Command, ExitCode};

use kube::{Api, LabelRequest, LABEL_KEY, LABEL_VALUE, SERVICE_ACCOUNT_DIR};

const DEFAULT_SHIM: &str = "/opt/dockerish/bin/containerd-shim-dockerish-v2";
const DEFAULT_SHIM_CONFIG: &str = "/opt/dockerish/dockerish.toml";
const DEFAULT_HOST_ROOT: &str = "/host";
const ME: &str = "dockerish-node-installer";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Install,
    Uninstall,
    Wait,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    Api,
    DryRun,
    None,
}

struct Settings {
    mode: Mode,
    node: Option<String>,
    host_root: String,
    shim: String,
    shim_config_default: String,
    restart: String,
    label: Label,
    force: bool,
    /// (shim flag, value) for the node paths that were set.
    paths: Vec<(&'static str, String)>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn settings(arg: Option<&str>) -> Result<Settings, String> {
    let mode = match arg.map(str::to_string).or_else(|| env("MODE")).as_deref() {
        None | Some("install") => Mode::Install,
        Some("uninstall") => Mode::Uninstall,
        Some("wait") => Mode::Wait,
        Some(other) => return Err(format!("mode {other:?}: expected install, uninstall or wait (argument or MODE)")),
    };
    let label = match env("LABEL").as_deref() {
        None | Some("api") => Label::Api,
        Some("dry-run") => Label::DryRun,
        Some("none") => Label::None,
        Some(other) => return Err(format!("LABEL={other:?}: expected api, dry-run or none")),
    };
    let restart = env("RESTART").unwrap_or_else(|| "auto".into());
    if !matches!(restart.as_str(), "auto" | "systemd" | "none") {
        return Err(format!("RESTART={restart:?}: expected auto or none"));
    }
    let force = match env("FORCE").as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => return Err(format!("FORCE={other:?}: expected true or false")),
    };
    let mut paths = Vec::new();
    for (var, flag) in [("INSTALL_PREFIX", "--prefix"), ("CONTAINERD_CONFIG", "--config"), ("SHIM_CONFIG", "--shim-config")] {
        if let Some(v) = env(var) {
            paths.push((flag, v));
        }
    }
    Ok(Settings {
        mode,
        node: env("NODE_NAME"),
        host_root: env("HOST_ROOT").unwrap_or_else(|| DEFAULT_HOST_ROOT.into()),
        shim: env("SHIM").unwrap_or_else(|| DEFAULT_SHIM.into()),
        shim_config_default: env("SHIM_CONFIG_DEFAULT").unwrap_or_else(|| DEFAULT_SHIM_CONFIG.into()),
        restart,
        label,
        force,
        paths,
    })
}

/// The label request and how to send it, checked before the node is touched.
fn label_plan(s: &Settings, value: Option<&str>) -> Result<Option<(LabelRequest, Option<Api>)>, String> {
    if s.label == Label::None {
        return Ok(None);
    }
    let node = s.node.as_deref().ok_or("NODE_NAME is not set (the DaemonSet sets it from spec.nodeName; LABEL=none skips the label)")?;
    let req = LabelRequest::new(node, value)?;
    let api = match s.label {
        Label::Api => Some(Api::in_cluster(SERVICE_ACCOUNT_DIR)?),
        _ => None,
    };
    Ok(Some((req, api)))
}

fn apply_label(plan: Option<(LabelRequest, Option<Api>)>) -> Result<(), String> {
    let Some((req, api)) = plan else {
        println!("{ME}: node label {LABEL_KEY} left alone (LABEL=none)");
        return Ok(());
    };
    match api {
        None => println!("{ME}: label request (dry run, not sent): {}", req.describe()),
        Some(api) => {
            api.send(&req)?;
            match &req.value {
                Some(v) => println!("{ME}: labelled node {} {LABEL_KEY}={v}", req.node),
                None => println!("{ME}: removed label {LABEL_KEY} from node {}", req.node),
            }
        }
    }
    Ok(())
}

fn run_shim(s: &Settings, action: &str) -> Result<(), String> {
    let mut cmd = Command::new(&s.shim);
    cmd.arg(action).args(["--root", &s.host_root, "--restart", &s.restart, "--shim-config-default", &s.shim_config_default]);
    for (flag, v) in &s.paths {
        cmd.args([*flag, v.as_str()]);
    }
    if s.force && action == "uninstall" {
        cmd.arg("--force");
    }
    let st = cmd.status().map_err(|e| format!("{}: {e}", s.shim))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{} {action} failed ({st}); see its message above", s.shim))
    }
}

/// Blocks until SIGTERM or SIGINT (PID 1 of a container ignores them unless it handles them).
fn wait_for_stop() -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(|e| format!("block signals: {e}"))?;
    let sig = set.wait().map_err(|e| format!("sigwait: {e}"))?;
    println!("{ME}: {sig}, exiting");
    Ok(())
}

fn run(arg: Option<&str>) -> Result<(), String> {
    let s = settings(arg)?;
    match s.mode {
        Mode::Wait => wait_for_stop(),
        Mode::Install => {
            let plan = label_plan(&s, Some(LABEL_VALUE))?;
            run_shim(&s, "install")?;
            apply_label(plan)?;
            println!("{ME}: installed on node {}", s.node.as_deref().unwrap_or("(NODE_NAME unset)"));
            Ok(())
        }
        Mode::Uninstall => {
            // Label first: the scheduler stops sending dockerish pods here before the runtime goes.
            apply_label(label_plan(&s, None)?)?;
            run_shim(&s, "uninstall")?;
            println!("{ME}: uninstalled from node {}", s.node.as_deref().unwrap_or("(NODE_NAME unset)"));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 1 || args.first().is_some_and(|a| a == "-h" || a == "--help") {
        eprintln!("usage: {ME} [install|uninstall|wait]  (settings from the environment: see deploy/kubernetes/daemonset.yaml)");
        return ExitCode::from(2);
    }
    match run(args.first().map(String::as_str)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ME}: {e}");
            ExitCode::FAILURE
        }
    }
}
