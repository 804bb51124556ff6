//! The workspace's dependency rules, checked over `cargo metadata`'s resolved graph:
//! - the shared crates (`api-util`, `pki`) and the components (`scheduler`, `controller-manager`,
//!   `kubelet`, `proxy`, `component-base`, each checked once it is a workspace member) depend on
//!   neither the API server nor the store, directly or through other crates;
//! - the store's crates do not pull Kubernetes types (`k8s-openapi`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{Value, json};

/// Crates that must stay independent of the API server and the store.
const INDEPENDENT: [&str; 7] = [
    "api-util",
    "pki",
    "scheduler",
    "controller-manager",
    "kubelet",
    "proxy",
    "component-base",
];

/// What they must not depend on.
const SERVER_CRATES: [&str; 4] = ["apiserver", "storage", "storage-raft", "storage-etcd"];

/// The store's crates, and what they must not pull.
const STORE_CRATES: [&str; 3] = ["storage", "storage-raft", "storage-etcd"];
const KUBERNETES_TYPES: [&str; 1] = ["k8s-openapi"];

/// Every rule broken in a `cargo metadata` document, as sentences.
fn violations(metadata: &Value) -> Vec<String> {
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    // Normal (non-dev) dependencies of each package id; build dependencies count too.
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().into_iter().flatten() {
        let Some(id) = node["id"].as_str() else { continue };
        let normal = node["deps"].as_array().into_iter().flatten().filter(|d| {
            d["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].as_str() != Some("dev"))
        });
        deps.insert(id, normal.filter_map(|d| d["pkg"].as_str()).collect());
    }
    let closure = |root: &str| -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            for d in deps.get(id).into_iter().flatten() {
                if seen.insert(*d) {
                    stack.push(d);
                }
            }
        }
        seen.into_iter()
            .filter_map(|id| name_of.get(id).copied())
            .collect()
    };
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = Vec::new();
    for id in members {
        let Some(name) = name_of.get(id).copied() else {
            continue;
        };
        let forbidden: &[&str] = if INDEPENDENT.contains(&name) {
            &SERVER_CRATES
        } else if STORE_CRATES.contains(&name) {
            &KUBERNETES_TYPES
        } else {
            continue;
        };
        for dep in closure(id) {
            if forbidden.contains(&dep) {
                out.push(format!("{name} depends on {dep}"));
            }
        }
    }
    out
}

#[test]
fn workspace_crates_keep_the_dependency_rules() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let members = metadata["workspace_members"].as_array().map_or(0, Vec::len);
    assert!(members >= 2, "no workspace members in the metadata");
    for name in ["api-util", "pki"] {
        assert!(
            metadata["packages"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == name),
            "{name} is not in the workspace"
        );
    }
    let broken = violations(&metadata);
    assert!(
        broken.is_empty(),
        "dependency rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn indirect_dependencies_are_caught() {
    let pkg = |name: &str| json!({"id": format!("{name}-id"), "name": name});
    let node = |name: &str, deps: &[(&str, &str)]| {
        json!({"id": format!("{name}-id"), "deps": deps.iter().map(|(d, kind)| json!({
            "pkg": format!("{d}-id"),
            "dep_kinds": [{"kind": if kind.is_empty() { Value::Null } else { json!(kind) }}],
        })).collect::<Vec<_>>()})
    };
    let metadata = json!({
        "packages": [pkg("kubelet"), pkg("helper"), pkg("apiserver"), pkg("storage"), pkg("k8s-openapi"), pkg("pki")],
        "workspace_members": ["kubelet-id", "storage-id", "pki-id"],
        "resolve": {"nodes": [
            node("kubelet", &[("helper", "")]),
            node("helper", &[("apiserver", "")]),
            node("apiserver", &[]),
            node("storage", &[("k8s-openapi", "build")]),
            node("k8s-openapi", &[]),
            // Dev-dependencies do not count.
            node("pki", &[("apiserver", "dev")]),
        ]},
    });
    assert_eq!(
        violations(&metadata),
        ["kubelet depends on apiserver", "storage depends on k8s-openapi"]
    );
}
