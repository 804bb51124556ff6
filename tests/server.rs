//! `keelson server`: the store and the API server in one process, driven with stock kubectl.
//! Objects written before a restart are there after it (same data dir); `--ephemeral` starts
//! from nothing each time.

mod common;

use std::path::Path;

use common::{KeelsonServer, start_server};

const CONFIGMAP: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept","namespace":"default"},"data":{"k":"v"}}"#;

fn create_configmap(server: &KeelsonServer, dir: &Path) {
    let file = dir.join("cm.json");
    std::fs::write(&file, CONFIGMAP).expect("write manifest");
    let out = server
        .kubectl(
            27,
            &[
                "create",
                "--validate=false",
                "-f",
                file.to_str().expect("utf-8 path"),
            ],
        )
        .ok();
    assert!(out.contains("configmap/kept created"), "{out}");
}

#[test]
fn restart_keeps_objects() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut server = start_server(&data, &[]);
    assert!(
        Path::new(&server.kubeconfig).starts_with(&data),
        "kubeconfig {} outside the data dir",
        server.kubeconfig
    );
    create_configmap(&server, tmp.path());
    for minor in [27, 33] {
        let out = server
            .kubectl(minor, &["get", "configmap", "kept", "-o", "jsonpath={.data.k}"])
            .ok();
        assert_eq!(out, "v");
    }
    assert!(server.proc.terminate().success(), "{}", server.proc.stderr());

    let server = start_server(&data, &[]);
    let out = server
        .kubectl(33, &["get", "configmap", "kept", "-o", "jsonpath={.data.k}"])
        .ok();
    assert_eq!(out, "v", "the configmap did not survive the restart");
    let out = server.kubectl(33, &["get", "namespaces", "-o", "name"]).ok();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(&format!("namespace/{ns}")), "{out}");
    }
}

#[test]
fn ephemeral_starts_empty() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut server = start_server(&data, &["--ephemeral"]);
    create_configmap(&server, tmp.path());
    assert!(server.proc.terminate().success(), "{}", server.proc.stderr());
    assert!(
        !Path::new(&server.kubeconfig).exists(),
        "the ephemeral data dir was not removed"
    );
    let server = start_server(&data, &["--ephemeral"]);
    let err = server.kubectl(33, &["get", "configmap", "kept"]).err();
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}
