//! docs/USAGE.md is checked against the code: the annotation reference lists exactly the keys the
//! spec crate accepts, each example parses, and its "CRI" column is what the shim really allows a
//! pod (default `annotation-policy.cri = "unprivileged-only"`); the config reference lists exactly
//! `CONFIG_KEYS`, with defaults equal to the built-in ones; the containerd snippets it shows are
//! the ones deploy/ ships. docs/RULES.md lists exactly the rule ids the spec crate implements
//! (`RULE_FILES`), each with the files that implement it.

use std::collections::{BTreeMap, BTreeSet};

use dockerish_spec::annotations::{self, KEYS};
use dockerish_spec::config::CRI_OPTION_KEYS;
use dockerish_spec::{DaemonConfig, Origin, CONFIG_KEYS, RULE_FILES};
use serde_json::{Map, Value};

fn usage() -> String {
    std::fs::read_to_string(dockerish_tests::workspace_root().join("docs/USAGE.md")).expect("docs/USAGE.md")
}

/// Rows of the table between `<!-- NAME:begin` and `<!-- NAME:end -->`, cells trimmed, `\|`
/// unescaped, header and separator skipped.
fn table(doc: &str, name: &str) -> Vec<Vec<String>> {
    let begin = doc.find(&format!("<!-- {name}:begin")).unwrap_or_else(|| panic!("no {name}:begin marker"));
    let end = doc.find(&format!("<!-- {name}:end -->")).unwrap_or_else(|| panic!("no {name}:end marker"));
    doc[begin..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.replace("\\|", "\u{1}")
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('\u{1}', "|"))
                .collect()
        })
        .collect()
}

/// `` `x` `` → `x`.
fn code(cell: &str) -> &str {
    cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')).unwrap_or_else(|| panic!("expected `code`: {cell}"))
}

fn keys_of(rows: &[Vec<String>]) -> Vec<String> {
    rows.iter().map(|r| code(&r[0]).to_string()).collect()
}

fn assert_same_set(documented: &[String], code_keys: &[&str], what: &str) {
    let doc: BTreeSet<&str> = documented.iter().map(String::as_str).collect();
    assert_eq!(doc.len(), documented.len(), "{what}: a key is documented twice");
    let code: BTreeSet<&str> = code_keys.iter().copied().collect();
    let missing: Vec<_> = code.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&code).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what}: undocumented keys {missing:?}, documented but unknown {extra:?}");
}

#[test]
fn annotation_reference_lists_every_key_and_only_those() {
    let rows = table(&usage(), "annotation-keys");
    assert_same_set(&keys_of(&rows), KEYS, "annotation reference");
}

#[test]
fn annotation_examples_parse_and_the_cri_column_matches_the_gate() {
    // `policy` is only read at all when the admin allows it (the row says so).
    let cfg = DaemonConfig { allow_policy_annotation: true, ..DaemonConfig::default() };
    let prefix = cfg.annotation_prefix.clone();
    for row in table(&usage(), "annotation-keys") {
        assert_eq!(row.len(), 5, "row {row:?}");
        let (key, example, cri) = (code(&row[0]), code(&row[2]), row[4].as_str());
        let mut ann = Map::new();
        ann.insert(format!("{prefix}{key}"), Value::String(example.into()));
        if let Err(e) = annotations::collect(Some(&ann), Origin::Ctr, &cfg) {
            panic!("{key}: documented example {example:?} is refused for ctr: {e}");
        }
        let as_pod = annotations::collect(Some(&ann), Origin::Cri { sandbox: false }, &cfg);
        match cri.split([';', ' ', ',']).next().unwrap_or("") {
            "yes" => assert!(as_pod.is_ok(), "{key}={example:?}: documented as allowed for CRI, refused: {}", as_pod.unwrap_err()),
            "no" => {
                let e = as_pod.expect_err(&format!("{key}={example:?}: documented as refused for CRI, accepted")).to_string();
                assert!(e.contains("raises privileges"), "{key}: {e}");
            }
            other => panic!("{key}: CRI column must start with yes or no, got {other:?}"),
        }
    }
}

#[test]
fn config_reference_lists_every_key_with_its_default() {
    let doc = usage();
    let rows = table(&doc, "config-keys");
    assert_same_set(&keys_of(&rows), CONFIG_KEYS, "config reference");
    let default = DaemonConfig::default();
    for row in rows {
        assert_eq!(row.len(), 4, "row {row:?}");
        let key = code(&row[0]);
        let dflt = row[2].as_str();
        if dflt.starts_with("unset") {
            continue; // no literal: the default is computed on the host (the row says how)
        }
        let toml = format!("{key} = {}", code(dflt));
        match DaemonConfig::from_toml(&toml) {
            Ok(c) => assert!(c == default, "{key}: documented default `{toml}` differs from the built-in default"),
            Err(e) => panic!("{key}: documented default `{toml}` is rejected: {e}"),
        }
    }
    for k in CRI_OPTION_KEYS {
        assert!(doc.contains(&format!("`{k}`")), "CRI option key {k} is not mentioned");
    }
}

#[test]
fn containerd_snippets_match_deploy() {
    let doc = usage();
    for f in ["deploy/containerd-config-v2.toml", "deploy/containerd-config-v3.toml", "deploy/kubernetes/runtimeclass.yaml"] {
        let text = std::fs::read_to_string(dockerish_tests::workspace_root().join(f)).unwrap();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("version") {
                continue;
            }
            if f.ends_with(".yaml") {
                // The YAML is applied as is (`kubectl apply -f deploy/kubernetes/runtimeclass.yaml`).
                continue;
            }
            assert!(doc.contains(line), "docs/USAGE.md does not show `{line}` from {f}");
        }
        assert!(doc.contains(f), "docs/USAGE.md does not name {f}");
    }
}

fn read_doc(rel: &str) -> String {
    std::fs::read_to_string(dockerish_tests::workspace_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// docs/RULES.md has one row per rule id the code implements (the `IDS` tables of
/// `dockerish_spec::RULE_FILES`) and no other; its last column names exactly the files that
/// implement the id, and each exists.
#[test]
fn rules_reference_lists_every_implemented_id_and_only_those() {
    let rows = table(&read_doc("docs/RULES.md"), "rule-ids");
    let mut in_code: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (file, ids) in RULE_FILES {
        assert!(dockerish_tests::workspace_root().join("spec/src").join(file).is_file(), "RULE_FILES names a missing file {file}");
        for id in *ids {
            in_code.entry(id).or_default().insert(file);
        }
    }
    let documented = keys_of(&rows);
    let code_ids: Vec<&str> = in_code.keys().copied().collect();
    assert_same_set(&documented, &code_ids, "docs/RULES.md");
    for row in &rows {
        assert_eq!(row.len(), 4, "row {row:?}");
        let id = code(&row[0]);
        assert!(!row[1].is_empty() && !row[2].is_empty(), "{id}: what and when must be said");
        let files: BTreeSet<&str> = row[3].split(", ").map(code_cell).collect();
        assert_eq!(files, in_code[id], "{id}: files in docs/RULES.md differ from the code's IDS tables");
    }
}

fn code_cell(cell: &str) -> &str {
    code(cell.trim())
}

/// The docs and the example config cite only files that are in the repository (they used to
/// point at DOCKER-RULES.md, which is not), and every relative link resolves.
#[test]
fn docs_cite_only_files_in_the_repository() {
    for rel in ["docs/USAGE.md", "docs/RULES.md", "docs/RELIABILITY.md", "deploy/dockerish.toml", "README.md"] {
        let text = read_doc(rel);
        assert!(!text.contains("DOCKER-RULES"), "{rel} cites DOCKER-RULES.md, which is not in the repository");
        let dir = dockerish_tests::workspace_root().join(rel).parent().unwrap().to_path_buf();
        for link in text.split("](").skip(1).filter_map(|r| r.split(')').next()) {
            let target = link.split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") {
                continue;
            }
            assert!(dir.join(target).exists(), "{rel}: link to {link} does not resolve");
        }
    }
}
