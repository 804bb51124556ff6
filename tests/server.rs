//! `keelson server`: the store and the API server in one process, driven with stock kubectl.
//! Objects written before a restart are there after it (same data dir); `--ephemeral` starts
//! from nothing each time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Out, Proc, keelson_bin, run_cmd};

/// A kubectl binary from `KEELSON_KUBE_CLIENTS` (scripts/get-kube-clients.sh puts them there).
fn kubectl(minor: u32) -> PathBuf {
    let dir =
        std::env::var("KEELSON_KUBE_CLIENTS").unwrap_or_else(|_| "/var/cache/keelson-kube-clients".into());
    let path = Path::new(&dir).join(format!("kubectl-1.{minor}"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/get-kube-clients.sh {dir} 27 33",
        path.display()
    );
    path
}

struct Server {
    proc: Proc,
    kubeconfig: String,
}

/// Starts `keelson server` with `args` on a free port; waits for its ready line.
fn start(data_dir: &Path, extra: &[&str]) -> Server {
    let mut cmd = Command::new(keelson_bin());
    cmd.args(["server", "--secure-port", "0", "--data-dir"])
        .arg(data_dir)
        .args(extra);
    let log = data_dir.with_extension("stderr");
    let mut proc = Proc::spawn(cmd, log);
    let line = proc
        .stdout
        .wait_for("the ready line", |l| l.starts_with("Keelson is ready"));
    let kubeconfig = line
        .split("(kubeconfig: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no kubeconfig in {line:?}"))
        .to_string();
    Server { proc, kubeconfig }
}

impl Server {
    fn kubectl(&self, minor: u32, args: &[&str]) -> Out {
        let mut cmd = Command::new(kubectl(minor));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run_cmd(cmd)
    }
}

const CONFIGMAP: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept","namespace":"default"},"data":{"k":"v"}}"#;

fn create_configmap(server: &Server, dir: &Path) {
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
    let mut server = start(&data, &[]);
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

    let server = start(&data, &[]);
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
    let mut server = start(&data, &["--ephemeral"]);
    create_configmap(&server, tmp.path());
    assert!(server.proc.terminate().success(), "{}", server.proc.stderr());
    assert!(
        !Path::new(&server.kubeconfig).exists(),
        "the ephemeral data dir was not removed"
    );
    let server = start(&data, &["--ephemeral"]);
    let err = server.kubectl(33, &["get", "configmap", "kept"]).err();
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}
