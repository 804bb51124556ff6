//! Per-component client identities: a client certificate signed by the cluster CA and a
//! kubeconfig next to `admin.kubeconfig` for the scheduler (`system:kube-scheduler`), the
//! controller-manager (`system:kube-controller-manager`), kube-proxy (`system:kube-proxy`) and the
//! kubelet of this node (`system:node:<name>` in `system:nodes`), and the simulated-node agent
//! (`system:keelson:simulated-nodes`). Certificates are created once and
//! reused; kubeconfigs are rewritten on every start (the server URL may change).

use std::path::{Path, PathBuf};

use super::AuthError;
use crate::tls::issue_client_cert;

/// One component identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// File stem of its certificate, key and kubeconfig (`scheduler` → `pki/scheduler.crt`,
    /// `scheduler.kubeconfig`).
    pub file: String,
    /// User name (certificate CN).
    pub user: String,
    /// Groups (certificate O).
    pub groups: Vec<String>,
}

/// The identities of a server whose node is `node_name`.
pub fn identities(node_name: &str) -> Vec<Identity> {
    let id = |file: &str, user: &str, groups: &[&str]| Identity {
        file: file.into(),
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    vec![
        id("scheduler", "system:kube-scheduler", &[]),
        id("controller-manager", "system:kube-controller-manager", &[]),
        id("kube-proxy", "system:kube-proxy", &[]),
        id("kubelet", &format!("system:node:{node_name}"), &["system:nodes"]),
        id(
            "simulated-nodes",
            super::controller_roles::SIMULATED_NODES_USER,
            &[],
        ),
    ]
}

/// This machine's host name (lower-case), the default node name.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Creates the missing component certificates under `<data_dir>/pki` and writes every
/// component's kubeconfig to `<data_dir>/<file>.kubeconfig`; returns the kubeconfig paths.
pub fn write_component_kubeconfigs(
    data_dir: &Path,
    server_url: &str,
    node_name: &str,
) -> Result<Vec<PathBuf>, AuthError> {
    let pki = data_dir.join("pki");
    let pki_error = |e: pki::PkiError| match e {
        pki::PkiError::Io { path, source } => AuthError::Io { path, source },
        other => AuthError::Key(other.to_string()),
    };
    let ca = pki::Ca {
        cert_pem: pki::read_file(&pki.join(pki::CA_CERT)).map_err(pki_error)?,
        key_pem: pki::read_file(&pki.join(pki::CA_KEY)).map_err(pki_error)?,
    };
    let issuer = ca.issuer().map_err(pki_error)?;
    let mut written = Vec::new();
    for id in identities(node_name) {
        let (crt_path, key_path) = (
            pki.join(format!("{}.crt", id.file)),
            pki.join(format!("{}.key", id.file)),
        );
        let current = match (
            std::fs::read_to_string(&crt_path),
            std::fs::read_to_string(&key_path),
        ) {
            (Ok(c), Ok(k)) if cert_names(&c, &id.user) => Some((c, k)),
            _ => None,
        };
        let (cert, key) = match current {
            Some(pair) => pair,
            None => {
                let groups: Vec<&str> = id.groups.iter().map(String::as_str).collect();
                let (c, k) = issue_client_cert(&issuer, &id.user, &groups).map_err(pki_error)?;
                pki::write_file(&crt_path, c.as_bytes(), false).map_err(pki_error)?;
                pki::write_file(&key_path, k.as_bytes(), true).map_err(pki_error)?;
                tracing::info!(user = %id.user, "issued a component client certificate");
                (c, k)
            }
        };
        let path = data_dir.join(format!("{}.kubeconfig", id.file));
        let kubeconfig = api_util::kubeconfig::Single {
            cluster: "keelson",
            server: server_url,
            ca_pem: &ca.cert_pem,
            user: &id.user,
            credential: api_util::kubeconfig::Credential::ClientCertificate {
                cert_pem: &cert,
                key_pem: &key,
            },
            namespace: None,
        };
        kubeconfig.write(&path).map_err(|e| AuthError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Whether a PEM certificate is for `user` (a renamed node gets a new certificate).
fn cert_names(pem: &str, user: &str) -> bool {
    pki::certs_from_pem(pem, user)
        .ok()
        .and_then(|certs| crate::tls::user_from_cert(&certs[0]))
        .is_some_and(|u| u.name == user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_identities_are_issued_once() {
        let dir = tempfile::tempdir().unwrap();
        crate::tls::Pki::load_or_create(&dir.path().join("pki"), &[]).unwrap();
        let paths = write_component_kubeconfigs(dir.path(), "https://127.0.0.1:6443", "n1").unwrap();
        assert_eq!(paths.len(), 5);
        let cert = std::fs::read_to_string(dir.path().join("pki/kubelet.crt")).unwrap();
        let der = pki::certs_from_pem(&cert, "kubelet.crt").unwrap().remove(0);
        let user = crate::tls::user_from_cert(&der).unwrap();
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, ["system:nodes"]);
        write_component_kubeconfigs(dir.path(), "https://127.0.0.1:7443", "n1").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("pki/kubelet.crt")).unwrap(),
            cert
        );
        let kc = std::fs::read_to_string(dir.path().join("scheduler.kubeconfig")).unwrap();
        assert!(kc.contains("server: https://127.0.0.1:7443"));
        let kc: serde_json::Value = serde_yaml_ng::from_str(&kc).unwrap();
        assert_eq!(kc["users"][0]["name"], "system:kube-scheduler");
        assert_eq!(kc["contexts"][0]["context"]["user"], "system:kube-scheduler");
        // A new node name gets a new kubelet certificate.
        write_component_kubeconfigs(dir.path(), "https://127.0.0.1:7443", "n2").unwrap();
        assert_ne!(
            std::fs::read_to_string(dir.path().join("pki/kubelet.crt")).unwrap(),
            cert
        );
    }
}
