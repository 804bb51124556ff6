//! Per-component client identities: a client certificate signed by the cluster CA and a
//! kubeconfig next to `admin.kubeconfig` for the scheduler (`system:kube-scheduler`), the
//! controller-manager (`system:kube-controller-manager`), kube-proxy (`system:kube-proxy`) and the
//! kubelet of this node (`system:node:<name>` in `system:nodes`). Certificates are created once and
//! reused; kubeconfigs are rewritten on every start (the server URL may change).

use std::path::{Path, PathBuf};

use base64::Engine;

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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), AuthError> {
    std::fs::write(path, contents).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    Ok(())
}

/// A kubeconfig for a client certificate, everything embedded.
pub fn kubeconfig(server_url: &str, ca_pem: &str, cert_pem: &str, key_pem: &str, user: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: keelson\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\nusers:\n- name: {user:?}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: keelson\n  context:\n    cluster: keelson\n    user: {user:?}\ncurrent-context: keelson\npreferences: {{}}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// Creates the missing component certificates under `<data_dir>/pki` and writes every
/// component's kubeconfig to `<data_dir>/<file>.kubeconfig`; returns the kubeconfig paths.
pub fn write_component_kubeconfigs(
    data_dir: &Path,
    server_url: &str,
    node_name: &str,
) -> Result<Vec<PathBuf>, AuthError> {
    let pki = data_dir.join("pki");
    let read = |name: &str| {
        let path = pki.join(name);
        std::fs::read_to_string(&path).map_err(|source| AuthError::Io { path, source })
    };
    let ca_cert = read("ca.crt")?;
    let ca_key = read("ca.key")?;
    let key = rcgen::KeyPair::from_pem(&ca_key).map_err(|e| AuthError::Key(e.to_string()))?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_cert, key).map_err(|e| AuthError::Key(e.to_string()))?;
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
                let (c, k) = issue_client_cert(&issuer, &id.user, &groups)
                    .map_err(|e| AuthError::Key(e.to_string()))?;
                std::fs::write(&crt_path, &c).map_err(io(&crt_path))?;
                write_private(&key_path, &k)?;
                tracing::info!(user = %id.user, "issued a component client certificate");
                (c, k)
            }
        };
        let path = data_dir.join(format!("{}.kubeconfig", id.file));
        write_private(&path, &kubeconfig(server_url, &ca_cert, &cert, &key, &id.user))?;
        written.push(path);
    }
    Ok(written)
}

/// Whether a PEM certificate is for `user` (a renamed node gets a new certificate).
fn cert_names(pem: &str, user: &str) -> bool {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .filter_map(Result::ok)
        .next()
        .and_then(|der| crate::tls::user_from_cert(&der))
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
        assert_eq!(paths.len(), 4);
        let cert = std::fs::read_to_string(dir.path().join("pki/kubelet.crt")).unwrap();
        let der = rustls_pemfile::certs(&mut cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
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
        assert!(kc.contains("\"system:kube-scheduler\""));
        // A new node name gets a new kubelet certificate.
        write_component_kubeconfigs(dir.path(), "https://127.0.0.1:7443", "n2").unwrap();
        assert_ne!(
            std::fs::read_to_string(dir.path().join("pki/kubelet.crt")).unwrap(),
            cert
        );
    }
}
