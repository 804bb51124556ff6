//! The official Kubernetes Python client (`kubernetes` on PyPI) against the TLS server: runs
//! `tests/python/everyday_calls.py` (version, discovery, CRUD, watch, informer-style list+watch,
//! `create_from_yaml`, the dynamic client with a CRD) with the server's admin kubeconfig.
//!
//! The interpreter is `$KEELSON_PYTHON`, else `/var/cache/keelson-py/bin/python`, the virtualenv
//! `scripts/get-python-client.sh` creates. Without it the test says so and passes, except under
//! `CI=true`, where a missing client fails it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kube_client::Running;

const DEFAULT_PYTHON: &str = "/var/cache/keelson-py/bin/python";

/// The interpreter with the client installed, or why there is none.
fn python() -> Result<PathBuf, String> {
    let py = PathBuf::from(std::env::var("KEELSON_PYTHON").unwrap_or_else(|_| DEFAULT_PYTHON.into()));
    let out = Command::new(&py)
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import kubernetes: {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "python client {} ({})",
        String::from_utf8_lossy(&out.stdout).trim(),
        py.display()
    );
    Ok(py)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/python")
        .join(name)
}

#[tokio::test]
async fn python_client_everyday_calls() {
    let py = match python() {
        Ok(py) => py,
        Err(why) => {
            let hint = "run scripts/get-python-client.sh (or set KEELSON_PYTHON)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the Python client is required under CI=true: {why}; {hint}"
            );
            eprintln!("skipping: {why}; {hint}");
            return;
        }
    };
    let running = Running::start().await;
    let kubeconfig = running.kubeconfig();
    let scratch = tempfile::tempdir().unwrap();
    let scratch_path = scratch.path().to_path_buf();
    // Off the runtime's workers, so the in-process server keeps answering.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(script("everyday_calls.py"))
            .arg(&kubeconfig)
            .env("HOME", &scratch_path)
            .env("TMPDIR", &scratch_path)
            .env_remove("KUBECONFIG")
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("all python client calls passed"),
        "{stdout}\n{stderr}"
    );
}
