//! The Kubernetes manifests of `deploy/kubernetes/`, for the tests that check them: the pinned
//! offline validator `scripts/install-deps` installs (kubernetes-validate, in a virtualenv under
//! the test cache) and the manifests as JSON (parsed by that virtualenv's PyYAML).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `deploy/kubernetes/`.
pub fn manifests_dir() -> PathBuf {
    crate::workspace_root().join("deploy/kubernetes")
}

/// The manifests the kustomization lists, in its order.
pub fn manifest_files() -> Vec<PathBuf> {
    let dir = manifests_dir();
    let k = std::fs::read_to_string(dir.join("kustomization.yaml")).expect("deploy/kubernetes/kustomization.yaml");
    k.lines().filter_map(|l| l.trim().strip_prefix("- ")).filter(|f| f.ends_with(".yaml")).map(|f| dir.join(f.trim())).collect()
}

/// The validator's virtualenv; panics with what to run when it is missing or not the pinned one.
pub fn validator_venv() -> PathBuf {
    let venv = crate::systemd_env::cache_dir().join("kubernetes-validate");
    let pinned = crate::workspace_root().join("scripts/kubernetes-validate.txt");
    let want = std::fs::read(&pinned).expect("scripts/kubernetes-validate.txt");
    let have = std::fs::read(venv.join("requirements.txt")).unwrap_or_default();
    assert!(
        have == want && venv.join("bin/kubernetes-validate").is_file(),
        "the pinned Kubernetes schema validator is not installed in {}: run scripts/install-deps (scripts/test-all does)",
        venv.display()
    );
    venv
}

/// `kubernetes-validate --strict -k <version> files…`: Ok(output) when every resource passes.
pub fn validate(files: &[PathBuf], k8s_version: &str) -> Result<String, String> {
    let o = Command::new(validator_venv().join("bin/kubernetes-validate")).args(["--strict", "-k", k8s_version]).args(files).output().expect("run kubernetes-validate");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    if o.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Every document of `files` as JSON.
pub fn documents(files: &[PathBuf]) -> Vec<Value> {
    let script = "import sys, json, yaml\njson.dump([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d is not None], sys.stdout)";
    let o = Command::new(validator_venv().join("bin/python")).args(["-c", script]).args(files).output().expect("run python");
    assert!(o.status.success(), "YAML → JSON: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).expect("JSON from PyYAML")
}

/// The one document of `kind` (panics if there is not exactly one).
pub fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} in deploy/kubernetes");
    found[0]
}

/// The `.yaml` files of `dir` other than the kustomization, sorted.
pub fn yaml_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    v.sort();
    v
}
