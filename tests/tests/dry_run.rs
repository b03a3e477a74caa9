//! `containerd-shim-dockerish-v2 dry-run BUNDLE [CONFIG]` (issue 3, item 6): prints the filled
//! spec and the rules applied for a bundle, so a user can see what the shim will do before
//! running it, and changes nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dockerish_tests::{image, procs, run_cmd, Containerd, Out, RunOpts, Runtime};
use serde_json::{json, Value};

const P: &str = "io.containerd.dockerish/";

/// `containerd-shim-dockerish-v2 [-namespace NS -id ID] dry-run ARGS…`, with no config taken from
/// the environment.
fn dry_run(ns_id: Option<(&str, &str)>, args: &[&Path]) -> Out {
    let mut cmd = Command::new(dockerish_tests::shim_path());
    cmd.env_remove("DOCKERISH_CONFIG");
    if let Some((ns, id)) = ns_id {
        cmd.args(["-namespace", ns, "-id", id]);
    }
    cmd.arg("dry-run").args(args);
    run_cmd(&mut cmd, None, Duration::from_secs(30))
}

/// What `ctr run` writes for an image: `ctr oci spec` (no daemon needed) with the container's
/// cgroup path and command.
fn ctr_spec(id: &str, annotations: &[(&str, &str)]) -> Value {
    let o = run_cmd(Command::new("ctr").args(["--address", "/nonexistent/dockerish-dry-run.sock", "-n", "default", "oci", "spec"]), None, Duration::from_secs(30))
        .expect_ok();
    let mut spec: Value = serde_json::from_str(&o.stdout).expect("ctr oci spec prints JSON");
    spec["linux"]["cgroupsPath"] = json!(format!("/default/{id}"));
    spec["process"]["args"] = json!(["sh"]);
    let a: serde_json::Map<String, Value> = annotations.iter().map(|(k, v)| (format!("{P}{k}"), json!(v))).collect();
    spec["annotations"] = Value::Object(a);
    spec
}

/// Every entry under `dir`: relative path → (type and mode, content of regular files or link
/// target). Special files (FIFOs) are recorded by type only; `skip` subtrees are not entered.
fn snapshot(dir: &Path, skip: &[&str]) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, skip: &[&str], out: &mut BTreeMap<PathBuf, (String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let kind = format!("{:?} {:o} {}:{}", if ft.is_fifo() { "fifo".to_string() } else { format!("{ft:?}") }, m.mode(), m.uid(), m.gid());
            let data = if ft.is_file() {
                std::fs::read(&p).unwrap()
            } else if ft.is_symlink() {
                std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
            } else {
                Vec::new()
            };
            out.insert(rel.clone(), (kind, data));
            if ft.is_dir() && !skip.iter().any(|s| rel == Path::new(s)) {
                walk(root, &p, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

#[track_caller]
fn assert_unchanged(before: &BTreeMap<PathBuf, (String, Vec<u8>)>, after: &BTreeMap<PathBuf, (String, Vec<u8>)>) {
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let changed: Vec<_> = before.iter().filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v)).map(|(k, _)| k).collect();
    assert!(added.is_empty() && removed.is_empty() && changed.is_empty(), "dry-run changed the bundle: added {added:?}, removed {removed:?}, changed {changed:?}");
}

fn rules(out: &Value) -> Vec<String> {
    out["applied"].as_array().expect("applied is a list").iter().map(|a| a["rule"].as_str().unwrap_or_default().to_string()).collect()
}

/// A bundle as containerd hands it to the shim (config.json from `ctr oci spec` + annotations,
/// an unpacked rootfs): dry-run prints the origin, policy, the rules applied with what each
/// changed, and the filled spec; the bundle is byte-for-byte unchanged and nothing is mounted
/// (not even the shareable /dev/shm tmpfs the plan includes).
#[test]
fn dry_run_prints_applied_rules_and_filled_spec_without_touching_bundle() {
    let tmp = tempfile::Builder::new().prefix("dkt-dry-").tempdir_in("/tmp").unwrap();
    let id = "dryrun1";
    let bundle = tmp.path().join(id);
    image::extract_rootfs(&bundle.join("rootfs"));
    let spec = ctr_spec(
        id,
        &[
            ("cap-add", "NET_ADMIN"),
            ("user", "tester"),
            ("read-only", "true"),
            ("tmpfs", "/run:exec"),
            ("ulimits", "nofile=1024:2048"),
            ("ipc", "shareable"),
        ],
    );
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let config = tmp.path().join("dockerish.toml");
    std::fs::write(&config, "# defaults\n").unwrap();
    let before = snapshot(tmp.path(), &[]);

    let o = dry_run(Some(("default", id)), &[&bundle, &config]).expect_ok();
    let out: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("dry-run output is not JSON ({e}):\n{}", o.stdout));
    assert_eq!(out["origin"], "Ctr", "{}", o.stdout);
    assert_eq!(out["policy"], "Fill");
    assert_eq!(out["systemdCgroup"], false);
    let applied = rules(&out);
    for r in ["CG-1", "US-1", "RL-1", "CP-3", "SC-2", "MT-1", "MT-4", "IPC-4", "RO-1", "NNP-1", "MP-1"] {
        assert!(applied.iter().any(|a| a == r), "rule {r} not listed in applied {applied:?}");
    }
    for a in out["applied"].as_array().unwrap() {
        assert!(!a["change"].as_str().unwrap_or_default().is_empty(), "applied entry without a change: {a}");
    }
    let s = &out["spec"];
    assert_eq!(s["linux"]["cgroupsPath"], format!("/docker/{id}"));
    assert_eq!(s["process"]["user"], json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000]}));
    assert_eq!(s["process"]["noNewPrivileges"], false);
    assert_eq!(s["process"]["rlimits"], json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]));
    assert_eq!(s["root"]["readonly"], true);
    assert!(s["process"]["capabilities"]["bounding"].as_array().unwrap().contains(&json!("CAP_NET_ADMIN")));
    assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    let shm = s["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/dev/shm").expect("/dev/shm mount");
    assert_eq!(shm["source"], bundle.join("shm").display().to_string(), "shareable /dev/shm planned under the bundle");

    assert_unchanged(&before, &snapshot(tmp.path(), &[]));
    assert!(procs::mounts_under(tmp.path()).is_empty(), "dry-run mounted {:?}", procs::mounts_under(tmp.path()));

    // Without -id/-namespace: the id is the bundle's directory name, the namespace `default`.
    let o = dry_run(None, &[&bundle, &config]).expect_ok();
    let out2: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(out2["spec"], out["spec"]);
    assert_eq!((out2["id"].as_str(), out2["namespace"].as_str()), (Some(id), Some("default")));
    assert_eq!(out2["config"], config.display().to_string(), "the config file used is named");
    // The shareable /dev/shm is a host side effect: listed as an action, not performed.
    assert!(out["actions"].as_array().unwrap().iter().any(|a| a.as_str().unwrap_or_default().contains("ShmTmpfs")), "{}", out["actions"]);

    // --summary: the same report without the (large) filled spec.
    let summary = Path::new("--summary");
    let o = dry_run(None, &[summary, &bundle, &config]).expect_ok();
    let out3: Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(out3.get("spec").is_none());
    assert_eq!(out3["applied"], out["applied"]);
    // --help explains itself instead of reading "--help" as a bundle path.
    let o = dry_run(None, &[Path::new("--help")]).expect_ok();
    assert!(o.stdout.starts_with("usage: containerd-shim-dockerish-v2"), "{}", o.stdout);
}

/// Errors: the annotation or config key and value are named on stderr, nothing on stdout, a
/// non-zero exit, and the bundle is untouched.
#[test]
fn dry_run_refuses_bad_annotation_and_bad_config_naming_the_key() {
    let tmp = tempfile::Builder::new().prefix("dkt-dry-").tempdir_in("/tmp").unwrap();
    let bundle = tmp.path().join("dryrun2");
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(bundle.join("rootfs/etc/passwd"), image::PASSWD).unwrap();
    std::fs::write(bundle.join("rootfs/etc/group"), image::GROUP).unwrap();
    let spec = ctr_spec("dryrun2", &[("ulimits", "nofile=2048:1024")]);
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "").unwrap();
    let before = snapshot(&bundle, &[]);

    let o = dry_run(None, &[&bundle, &good]);
    let msg = o.stderr.clone();
    assert!(!o.ok() && o.stdout.is_empty(), "bad annotation: {o:?}");
    assert!(
        msg.contains(&format!("annotation \"{P}ulimits\": ulimit soft limit must be less than or equal to hard limit: 2048 > 1024")),
        "{msg}"
    );

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "default-shm-size = \"64x\"\n").unwrap();
    let o = dry_run(None, &[&bundle, &bad]);
    assert!(!o.ok() && o.stdout.is_empty(), "bad config: {o:?}");
    assert!(o.stderr.contains(&format!("config file {}: config \"default-shm-size\": invalid suffix: 'x'", bad.display())), "{}", o.stderr);

    let missing = tmp.path().join("nosuchbundle");
    let o = dry_run(None, &[&missing, &good]);
    assert!(!o.ok() && o.stderr.contains(&missing.join("config.json").display().to_string()), "missing bundle: {o:?}");
    assert_unchanged(&before, &snapshot(&bundle, &[]));
}

/// Run on the bundle of a container (`config.json.orig` holds what containerd wrote), dry-run
/// prints exactly the spec the shim gave runc, and leaves the bundle alone. The task is stopped
/// first: while it runs, CG-1's guard sees its own processes in `/docker/<id>` and refuses.
#[test]
fn dry_run_predicts_the_config_json_runc_gets() {
    let c = Containerd::start();
    let id = c.id("predict");
    let anns = [("cap-drop", "ALL"), ("cap-add", "CHOWN"), ("user", "tester:testgrp"), ("tmpfs", "/scratch:size=1m"), ("shm-size", "32m")];
    let opts = anns.iter().fold(RunOpts::detach(), |o, (k, v)| o.flag("--annotation").flag(format!("{P}{k}={v}")));
    c.run(Runtime::Dockerish, id, &["sleep", "100000"], opts).expect_ok();
    let bundle = c.bundle(&c.ns, id);
    let given: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    c.ctr(&["task", "kill", "-s", "SIGKILL", id]).expect_ok();
    assert!(c.wait_status(id, "STOPPED", Duration::from_secs(20)), "task not stopped: {:?}", c.task_status(id));
    let before = snapshot(&bundle, &["rootfs"]);

    let o = dry_run(Some((&c.ns, id)), &[&bundle]).expect_ok();
    let out: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(out["spec"], given, "dry-run differs from the config.json runc got");
    assert_unchanged(&before, &snapshot(&bundle, &["rootfs"]));

    c.remove(id);
    c.assert_no_leftovers(id);
}
