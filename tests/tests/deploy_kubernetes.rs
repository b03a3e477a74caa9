//! `deploy/kubernetes/` checked offline: every manifest against the Kubernetes API schemas of
//! the oldest version it supports (1.30: ValidatingAdmissionPolicy GA) and of the newest the
//! pinned validator knows, strictly (unknown fields fail); and the manifests agree with each
//! other and with the code (the image name the image builder writes, the ServiceAccount the
//! binding and the admission policy name, the handler the installer registers, the node's root
//! where the installer looks for it).

use std::collections::BTreeSet;

use dockerish_tests::k8s::{documents, manifest_files, manifests_dir, one, validate, yaml_files_in};
use serde_json::{json, Value};

#[test]
fn manifests_pass_the_kubernetes_schemas_strictly() {
    let files = manifest_files();
    assert_eq!(files.iter().collect::<BTreeSet<_>>(), yaml_files_in(&manifests_dir()).iter().collect::<BTreeSet<_>>(), "kustomization.yaml lists every manifest of deploy/kubernetes");
    for version in ["1.30.0", "1.37.0"] {
        let out = validate(&files, version).unwrap_or_else(|e| panic!("Kubernetes {version} rejects deploy/kubernetes:\n{e}"));
        assert_eq!(out.matches(" passed for resource ").count(), documents(&files).len(), "{out}");
    }
}

/// The validator itself is strict: a misspelt field fails (so the test above can fail).
#[test]
fn the_validator_rejects_an_unknown_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("daemonset.yaml");
    let text = std::fs::read_to_string(manifests_dir().join("daemonset.yaml")).unwrap();
    assert!(text.contains("hostPID: true"));
    std::fs::write(&bad, text.replace("hostPID: true", "hostPid: true")).unwrap();
    let e = validate(&[bad], "1.30.0").expect_err("a misspelt field must fail strict validation");
    assert!(e.contains("hostPid"), "{e}");
}

fn env_of(container: &Value, name: &str) -> Value {
    container["env"].as_array().into_iter().flatten().find(|e| e["name"] == name).cloned().unwrap_or(Value::Null)
}

#[test]
fn manifests_agree_with_each_other_and_with_the_code() {
    let docs = documents(&manifest_files());
    let ns = one(&docs, "Namespace")["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(one(&docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged", "the installer pod is privileged");
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["namespace"], ns.as_str());
    let sa_name = sa["metadata"]["name"].as_str().unwrap();

    // RBAC: patch on nodes, nothing else.
    assert_eq!(one(&docs, "ClusterRole")["rules"], json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["patch"]}]));
    let crb = one(&docs, "ClusterRoleBinding");
    assert_eq!(crb["roleRef"]["name"], one(&docs, "ClusterRole")["metadata"]["name"]);
    assert_eq!(crb["subjects"], json!([{"kind": "ServiceAccount", "name": sa_name, "namespace": ns}]));
    // The admission policy applies to that ServiceAccount and is bound.
    let vap = one(&docs, "ValidatingAdmissionPolicy");
    let user = format!("system:serviceaccount:{ns}:{sa_name}");
    assert!(vap["spec"]["matchConditions"][0]["expression"].as_str().unwrap().contains(&format!("'{user}'")), "{vap}");
    assert_eq!(one(&docs, "ValidatingAdmissionPolicyBinding")["spec"]["policyName"], vap["metadata"]["name"]);
    assert_eq!(one(&docs, "ValidatingAdmissionPolicyBinding")["spec"]["validationActions"], json!(["Deny"]));

    // The RuntimeClass: the handler the installer registers, on nodes with the label the policy allows.
    let rc = one(&docs, "RuntimeClass");
    assert_eq!(rc["handler"], dockerish_shim::install::HANDLER);
    let selector = rc["scheduling"]["nodeSelector"].as_object().unwrap();
    assert_eq!(selector.len(), 1);
    let (label, value) = selector.iter().next().unwrap();
    assert_eq!(value, "true");
    for v in vap["spec"]["validations"].as_array().unwrap().iter().skip(1).take(2) {
        assert!(v["expression"].as_str().unwrap().contains(&format!("'{label}'")), "the policy names the label {label}: {v}");
    }

    // The DaemonSet.
    let ds = one(&docs, "DaemonSet");
    assert_eq!(ds["metadata"]["namespace"], ns.as_str());
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa_name);
    assert_eq!(pod["hostPID"], true, "the restart goes through the node's PID 1");
    let install = &pod["initContainers"][0];
    let wait = &pod["containers"][0];
    for c in [install, wait] {
        assert_eq!(c["image"], xtask::image_name(), "the image cargo xtask installer-image writes");
    }
    assert_eq!(wait["args"], json!(["wait"]));
    assert_eq!(wait["securityContext"]["runAsNonRoot"], true);
    assert!(wait.get("volumeMounts").is_none(), "the waiting container sees nothing of the node");
    assert_eq!(install["securityContext"]["privileged"], true);
    assert_eq!(env_of(install, "MODE")["value"], "install");
    assert_eq!(env_of(install, "NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(env_of(install, "RESTART")["value"], "auto");
    assert_eq!(env_of(install, "LABEL")["value"], "api");
    // The node's root, where the installer looks for it (its default HOST_ROOT).
    let mount = &install["volumeMounts"][0];
    assert_eq!(mount["mountPath"], "/host");
    let vol = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).expect("the host-root volume");
    assert_eq!(vol["hostPath"]["path"], "/");
}
