//! The node installer image for real: built once per test binary the way the README says
//! (`cargo xtask installer-image`: static release binaries in an OCI layout tar), imported into a
//! private containerd and run with `ctr run`, as the DaemonSet's init container runs it, against
//! a scratch node root. The scratch root is a temp directory `R` mounted into the container at
//! `/host` + `R`, so that the node paths the installer writes into containerd's config (`R/...`)
//! are real paths for the containerd that reads it; that containerd reads its `config.toml` from
//! `R/etc/containerd/` and finds shims on `R/usr/local/bin` first.
//!
//! - every containerd of the matrix (config versions 2 and 4): the installer registers the
//!   handler, installs the static shim and the default dockerish.toml, prints the label request
//!   (dry run: no API server here); a second run changes nothing; containerd restarted with the
//!   edited file runs a CRI pod of the handler `dockerish` through the installed binary; a
//!   container started before the restart still runs and answers exec; uninstall restores the
//!   node's files byte for byte and containerd restarted again has no `dockerish` handler.
//! - upgrade in place: a running shim keeps its old binary, a new one starts the new binary;
//!   no restart when the config did not change; uninstall refuses while containers of the runtime
//!   exist; without systemd the default `RESTART=auto` refuses before changing anything.
//!
//! The restart through systemd itself is tested in tests/tests/deploy_systemd.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use dockerish_tests::cri::{kubelet_namespaces, node_cri_config, pause_image_tarball, Cri, PodCgroup, CNI_CONFLIST, PAUSE_IMAGE};
use dockerish_tests::{k8s, matrix_tests, procs, wait_until, Containerd, Options, Out, RunOpts, Runtime, Version, IMAGE};
use k8s_cri::v1::*;
use sha2::{Digest, Sha256};

const K8S_NS: &str = "k8s.io";

/// The image, built once for this test binary (cargo makes it a no-op when nothing changed).
fn image() -> &'static xtask::Built {
    static BUILT: OnceLock<xtask::Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = std::time::Instant::now();
        let b = xtask::build_installer_image(&xtask::Options { binaries: xtask::Binaries::Build, out: None, verbose: false }).unwrap_or_else(|e| panic!("cargo xtask installer-image: {e}"));
        eprintln!("node installer image {} ({}) ready in {:.1} s", b.path.display(), b.digest, started.elapsed().as_secs_f64());
        b
    })
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A scratch node root with the directories a node has.
struct NodeRoot {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl NodeRoot {
    fn new() -> NodeRoot {
        let tmp = tempfile::Builder::new().prefix("dkni-").tempdir_in("/tmp").unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        for d in ["etc/containerd", "usr/local/bin", "cni", "logs"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("cni/10-dockerish-test-lo.conflist"), CNI_CONFLIST).unwrap();
        NodeRoot { _tmp: tmp, root }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    fn config(&self) -> PathBuf {
        self.p("etc/containerd/config.toml")
    }
    fn shim(&self) -> PathBuf {
        self.p("usr/local/bin/containerd-shim-dockerish-v2")
    }
    fn shim_config(&self) -> PathBuf {
        self.p("etc/containerd/dockerish.toml")
    }
    /// Every file and directory under etc/ and usr/ with its mode and content hash.
    fn snapshot(&self) -> BTreeMap<String, String> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                use std::os::unix::fs::PermissionsExt;
                let mode = m.permissions().mode();
                if m.is_dir() {
                    out.insert(rel, format!("dir {mode:o}"));
                    walk(base, &p, out);
                } else {
                    out.insert(rel, format!("file {mode:o} {}", sha(&std::fs::read(&p).unwrap())));
                }
            }
        }
        let mut m = BTreeMap::new();
        for d in ["etc", "usr"] {
            walk(&self.root, &self.p(d), &mut m);
        }
        m
    }
    /// A containerd that reads its config from this node and finds shims on its /usr/local/bin
    /// first (not the test build's directory).
    fn containerd(&self, v: Version, cri: bool) -> Containerd {
        let path = format!("{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", self.p("usr/local/bin").display(), v.build().bin_dir().display());
        Containerd::start_with(Options {
            version: v,
            cri,
            import_image: true,
            extra_config: if cri { node_cri_config(v, &self.p("cni")) } else { String::new() },
            config_file: Some(self.config()),
            path: Some(path),
            log_level: "info".into(),
            ..Options::default()
        })
    }
}

/// `ctr run --rm` of the installer image, as the DaemonSet's init container: privileged, the
/// node root mounted, `env` on top of the node paths and RESTART/LABEL.
fn run_installer(c: &Containerd, node: &NodeRoot, args: &[&str], env: &[(&str, &str)]) -> Out {
    let img = image();
    let id = c.id("inst");
    let mut opts = RunOpts::rm().timeout(Duration::from_secs(120));
    opts.image = Some(img.name.clone());
    opts = opts.flag("--privileged").flag(format!("--mount=type=bind,src={},dst=/host{},options=rbind:rw", node.root.display(), node.root.display()));
    let mut vars: Vec<(String, String)> = vec![
        ("NODE_NAME".into(), "node-a".into()),
        ("INSTALL_PREFIX".into(), node.p("usr/local/bin").display().to_string()),
        ("CONTAINERD_CONFIG".into(), node.config().display().to_string()),
        ("SHIM_CONFIG".into(), node.shim_config().display().to_string()),
    ];
    for (k, v) in env {
        vars.retain(|(x, _)| x != k);
        vars.push((k.to_string(), v.to_string()));
    }
    for (k, v) in vars {
        opts = opts.flag(format!("--env={k}={v}"));
    }
    // ctr replaces the whole command when given one (Kubernetes appends `args` to the entrypoint).
    let entrypoint = format!("/{}", xtask::INSTALLER_IN_IMAGE);
    let command: Vec<&str> = if args.is_empty() { Vec::new() } else { std::iter::once(entrypoint.as_str()).chain(args.iter().copied()).collect() };
    let o = c.run(Runtime::RuncV2, id, &command, opts);
    eprintln!("--- installer {args:?} ---\n{}{}", o.stdout, o.stderr);
    o
}

fn import_installer(c: &Containerd, ns: &str) {
    c.ctr_in(ns, &["images", "import", "--all-platforms", &image().path.to_string_lossy()]).expect_ok();
}

/// The label request the installer prints in dry-run mode, for the RuntimeClass's node selector.
fn expected_label_request(value: &str) -> String {
    let docs = k8s::documents(&k8s::manifest_files());
    let selector = k8s::one(&docs, "RuntimeClass")["scheduling"]["nodeSelector"].as_object().unwrap().clone();
    let (key, _) = selector.iter().next().unwrap();
    format!("label request (dry run, not sent): PATCH /api/v1/nodes/node-a Content-Type: application/merge-patch+json {{\"metadata\":{{\"labels\":{{\"{key}\":{value}}}}}}}")
}

fn exe_of(pid: i32) -> (String, Vec<u8>) {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_default();
    (link, std::fs::read(format!("/proc/{pid}/exe")).unwrap_or_default())
}

matrix_tests!(versions_only: installer_image_registers_the_runtime_and_uninstalls_byte_for_byte);

fn installer_image_registers_the_runtime_and_uninstalls_byte_for_byte(v: Version) {
    let node = NodeRoot::new();
    let mut c = node.containerd(v, true);
    let original = std::fs::read(node.config()).unwrap();
    let before_tree = node.snapshot();
    import_installer(&c, &c.ns);
    // A container of the Go shim, started before anything happens: it must survive.
    let before = c.id("before");
    c.run_sleeper(Runtime::RuncV2, before);

    // --- install -----------------------------------------------------------------------------
    let o = run_installer(&c, &node, &[], &[("RESTART", "none"), ("LABEL", "dry-run")]).expect_ok();
    assert!(o.stdout.contains(&expected_label_request("\"true\"")), "{}", o.stdout);
    assert!(o.stdout.contains(&format!("registered runtime handler 'dockerish' in {} (config version {})", node.config().display(), v.config_version())), "{}", o.stdout);
    assert_eq!(sha(&std::fs::read(node.shim()).unwrap()), sha(&std::fs::read(&image().shim).unwrap()), "the image's static shim is installed");
    assert_eq!(std::fs::read_to_string(node.shim_config()).unwrap(), std::fs::read_to_string(dockerish_tests::workspace_root().join("deploy/dockerish.toml")).unwrap());
    let text = std::fs::read_to_string(node.config()).unwrap();
    let t: toml::Table = text.parse().unwrap_or_else(|e| panic!("invalid TOML ({e}):\n{text}"));
    assert_eq!(t["version"].as_integer(), Some(v.config_version() as i64));
    let plugin = if v.is_2x() { "io.containerd.cri.v1.runtime" } else { "io.containerd.grpc.v1.cri" };
    let handler = &t["plugins"][plugin]["containerd"]["runtimes"]["dockerish"];
    assert_eq!(handler["runtime_type"].as_str(), Some("io.containerd.dockerish.v2"), "{text}");
    assert_eq!(handler["options"]["ConfigPath"].as_str(), Some(node.shim_config().to_str().unwrap()), "{text}");
    // Again: nothing changes, nothing to restart.
    let o = run_installer(&c, &node, &["install"], &[("RESTART", "auto"), ("LABEL", "none")]).expect_ok();
    assert!(o.stdout.contains("already registered") && o.stdout.contains("containerd not restarted"), "{}", o.stdout);
    assert_eq!(std::fs::read_to_string(node.config()).unwrap(), text, "a second install changed the config");

    // --- containerd restarted with the edited file -------------------------------------------
    c.restart(libc::SIGTERM);
    assert!(c.wait_status(before, "RUNNING", Duration::from_secs(10)), "the container started before the restart: {:?}", c.task_status(before));
    let o = c.ctr(&["task", "exec", "--exec-id", "after", before, "echo", "still-managed"]).expect_ok();
    assert_eq!(o.stdout.trim(), "still-managed");

    c.import_image(K8S_NS);
    let tmp = tempfile::tempdir().unwrap();
    c.ctr_in(K8S_NS, &["images", "import", "--all-platforms", &pause_image_tarball(tmp.path()).to_string_lossy()]).expect_ok();
    let cri = Cri::connect(&c.grpc);
    assert!(wait_until(Duration::from_secs(30), || cri.ready().is_ok() && cri.image_present(PAUSE_IMAGE) && cri.image_present(IMAGE)), "CRI not ready: {:?}", cri.ready());
    let uid = dockerish_tests::unique_name("dkni");
    let pod_cgroup = PodCgroup { parent: format!("/kubepods/besteffort/pod{uid}") };
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: "nipod".into(), uid: uid.clone(), namespace: "default".into(), attempt: 0 }),
        hostname: "nipod".into(),
        log_directory: node.p("logs").display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: pod_cgroup.parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext { namespace_options: Some(kubelet_namespaces()), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = cri
        .call(cri.rs().run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: "dockerish".into() }))
        .unwrap_or_else(|e| panic!("RunPodSandbox with the handler the installer registered ({v}): {e}"))
        .pod_sandbox_id;
    c.track(K8S_NS, &sandbox);
    let app = cri.create_container(&sandbox, &sandbox_config, "app").unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    c.track(K8S_NS, &app);
    cri.start_container(&app).unwrap_or_else(|e| panic!("StartContainer: {e}"));
    let (code, out, err) = cri.exec(&app, &["echo", "pod-ok"]);
    assert_eq!((code, out.trim()), (0, "pod-ok"), "{err}");
    let shims: Vec<procs::Proc> = c.shims().into_iter().filter(|p| p.arg_after("-namespace") == Some(K8S_NS)).collect();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let (link, bytes) = exe_of(shims[0].pid);
    assert_eq!(link, node.shim().display().to_string(), "the pod's shim runs the installed binary");
    assert_eq!(sha(&bytes), sha(&std::fs::read(&image().shim).unwrap()));
    cri.call(cri.rs().stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    cri.call(cri.rs().remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() })).unwrap();
    assert!(wait_until(Duration::from_secs(15), || c.shims().iter().all(|p| p.arg_after("-namespace") != Some(K8S_NS))), "the pod's shim did not exit");
    drop(cri);

    // --- uninstall ---------------------------------------------------------------------------
    let o = run_installer(&c, &node, &["uninstall"], &[("RESTART", "none"), ("LABEL", "dry-run")]).expect_ok();
    assert!(o.stdout.contains(&expected_label_request("null")), "{}", o.stdout);
    assert!(std::fs::read(node.config()).unwrap() == original, "uninstall did not restore the config byte for byte:\n{}", std::fs::read_to_string(node.config()).unwrap());
    assert_eq!(node.snapshot(), before_tree, "the node's etc/ and usr/ after uninstall");
    c.restart(libc::SIGTERM);
    let cri = Cri::connect(&c.grpc);
    let (_, config) = cri.status_verbose().unwrap();
    assert!(config["containerd"]["runtimes"].get("dockerish").is_none(), "{v}: handler still configured: {}", config["containerd"]["runtimes"]);
    assert_eq!(c.task_status(before).as_deref(), Some("RUNNING"), "the container started first survives the second restart");
    drop(cri);
    c.remove(before);
    drop(c);
    drop(pod_cgroup);
}

/// The node already carries a shim (an older build: the test build, installed by its own
/// `install`), with a container running on it.
#[test]
fn upgrade_in_place_keeps_running_shims_on_their_binary() {
    let v = Version::V1_6;
    let node = NodeRoot::new();
    let c = node.containerd(v, false);
    import_installer(&c, &c.ns);
    let untouched = node.snapshot();

    // No systemd here: the default RESTART=auto refuses before changing anything.
    let o = run_installer(&c, &node, &["install"], &[("LABEL", "none")]);
    assert!(!o.ok(), "installed without a way to restart containerd:\n{}", o.stdout);
    assert!(o.stderr.contains("cannot restart containerd: systemd does not run this node") && o.stderr.contains("Nothing was changed") && o.stderr.contains("RESTART=none"), "{}", o.stderr);
    assert_eq!(node.snapshot(), untouched, "a refused install changed the node");

    let old = dockerish_tests::shim_path();
    let host_install = |action: &str| {
        let mut cmd = std::process::Command::new(&old);
        cmd.arg(action).arg("--prefix").arg(node.p("usr/local/bin")).arg("--config").arg(node.config()).arg("--shim-config").arg(node.shim_config()).arg("--no-restart");
        cmd.output().unwrap()
    };
    let o = host_install("install");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let old_sha = sha(&std::fs::read(&old).unwrap());
    let old_id = c.id("old");
    c.run_sleeper(Runtime::Dockerish, old_id);
    let old_shim = c.shim_pid(old_id).expect("the old container's shim");
    assert_eq!(sha(&exe_of(old_shim).1), old_sha);

    // The image installs its (different) build over it.
    let new_sha = sha(&std::fs::read(&image().shim).unwrap());
    assert_ne!(new_sha, old_sha);
    let config_before = std::fs::read(node.config()).unwrap();
    let o = run_installer(&c, &node, &["install"], &[("RESTART", "auto"), ("LABEL", "none")]).expect_ok();
    assert!(o.stdout.contains("running shims keep their binary") && o.stdout.contains("containerd not restarted"), "{}", o.stdout);
    assert_eq!(std::fs::read(node.config()).unwrap(), config_before, "an upgrade leaves the config alone");
    let (link, bytes) = exe_of(old_shim);
    assert!(link.ends_with(" (deleted)"), "the running shim's binary was replaced by a rename, not rewritten: {link}");
    assert_eq!(sha(&bytes), old_sha, "the running shim keeps its old binary");
    let o = c.ctr(&["task", "exec", "--exec-id", "x", old_id, "echo", "old-ok"]).expect_ok();
    assert_eq!(o.stdout.trim(), "old-ok");
    let new_id = c.id("new");
    c.run_sleeper(Runtime::Dockerish, new_id);
    let (link, bytes) = exe_of(c.shim_pid(new_id).expect("the new container's shim"));
    assert_eq!(link, node.shim().display().to_string());
    assert_eq!(sha(&bytes), new_sha, "a new shim starts the new binary");

    // Uninstall refuses while containers of the runtime exist, and changes nothing.
    let o = host_install("uninstall");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("still exist on this node") && err.contains(&format!("{}/{old_id}", c.ns)) && err.contains(&format!("{}/{new_id}", c.ns)), "{err}");
    assert!(node.shim().exists());
    assert_eq!(std::fs::read(node.config()).unwrap(), config_before);

    for id in [old_id, new_id] {
        c.remove(id);
        c.assert_no_leftovers(id);
    }
    let o = host_install("uninstall");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(node.snapshot(), untouched, "uninstall restores the node");
}
