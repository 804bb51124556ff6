//! Writing kubeconfig files: [`kube::config::Kubeconfig`] values built from a server URL, its CA
//! and a client credential, serialized as YAML (what `kubectl` and every client read).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext, Preferences,
};

/// How the kubeconfig's user authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A client certificate and its key, PEM.
    ClientCertificate {
        /// The certificate.
        cert_pem: &'a str,
        /// The private key.
        key_pem: &'a str,
    },
    /// A bearer token.
    Token(&'a str),
}

/// One cluster, one user, one context (named `cluster`), current.
#[derive(Clone, Copy, Debug)]
pub struct Single<'a> {
    /// Name of the cluster and of the context.
    pub cluster: &'a str,
    /// The API server's URL.
    pub server: &'a str,
    /// The CA bundle that signs the server's certificate, PEM.
    pub ca_pem: &'a str,
    /// Name of the user entry.
    pub user: &'a str,
    /// The user's credential.
    pub credential: Credential<'a>,
    /// The context's default namespace, if any.
    pub namespace: Option<&'a str>,
}

/// Why a kubeconfig could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Serializing it.
    #[error("serializing kubeconfig: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Writing the file.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<KubeconfigError> for std::io::Error {
    fn from(e: KubeconfigError) -> std::io::Error {
        match e {
            KubeconfigError::Io { source, .. } => source,
            other => std::io::Error::other(other),
        }
    }
}

impl Single<'_> {
    /// The kubeconfig, everything embedded (`*-data` fields).
    pub fn build(&self) -> Kubeconfig {
        let mut auth = AuthInfo::default();
        match self.credential {
            Credential::ClientCertificate { cert_pem, key_pem } => {
                auth.client_certificate_data = Some(STANDARD.encode(cert_pem));
                auth.client_key_data = Some(STANDARD.encode(key_pem).into());
            }
            Credential::Token(token) => auth.token = Some(token.to_string().into()),
        }
        Kubeconfig {
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            preferences: Some(Preferences::default()),
            clusters: vec![NamedCluster {
                name: self.cluster.into(),
                cluster: Some(Cluster {
                    server: Some(self.server.into()),
                    certificate_authority_data: Some(STANDARD.encode(self.ca_pem)),
                    ..Cluster::default()
                }),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: self.user.into(),
                auth_info: Some(auth),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: self.cluster.into(),
                context: Some(Context {
                    cluster: self.cluster.into(),
                    user: Some(self.user.into()),
                    namespace: self.namespace.map(str::to_string),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some(self.cluster.into()),
            ..Kubeconfig::default()
        }
    }

    /// The kubeconfig as YAML.
    pub fn to_yaml(&self) -> Result<String, KubeconfigError> {
        to_yaml(&self.build())
    }

    /// Writes the kubeconfig to `path` ([`write_file`]).
    pub fn write(&self, path: &Path) -> Result<(), KubeconfigError> {
        write_file(path, &self.build())
    }
}

/// A kubeconfig as YAML.
pub fn to_yaml(config: &Kubeconfig) -> Result<String, KubeconfigError> {
    Ok(serde_yaml_ng::to_string(config)?)
}

/// Writes a kubeconfig as YAML, readable by its owner only (it holds credentials).
pub fn write_file(path: &Path, config: &Kubeconfig) -> Result<(), KubeconfigError> {
    let yaml = to_yaml(config)?;
    let io = |source| KubeconfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, yaml).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn round_trips_through_kube() {
        let yaml = Single {
            cluster: "keelson",
            server: "https://127.0.0.1:6443",
            ca_pem: "CA",
            user: "system:kube-scheduler",
            credential: Credential::ClientCertificate {
                cert_pem: "CERT",
                key_pem: "KEY",
            },
            namespace: Some("default"),
        }
        .to_yaml()
        .unwrap();
        assert!(yaml.contains("current-context: keelson"), "{yaml}");
        assert!(
            yaml.contains("name: system:kube-scheduler") || yaml.contains("name: 'system:kube-scheduler'"),
            "{yaml}"
        );
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(back.current_context.as_deref(), Some("keelson"));
        let cluster = back.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(STANDARD.encode("CA").as_str())
        );
        let user = back.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(back.auth_infos[0].name, "system:kube-scheduler");
        assert_eq!(
            user.client_certificate_data.as_deref(),
            Some(STANDARD.encode("CERT").as_str())
        );
        assert_eq!(
            user.client_key_data.as_ref().unwrap().expose_secret(),
            STANDARD.encode("KEY")
        );
        let ctx = back.contexts[0].context.as_ref().unwrap();
        assert_eq!(
            (ctx.user.as_deref(), ctx.namespace.as_deref()),
            (Some("system:kube-scheduler"), Some("default"))
        );
    }

    #[test]
    fn writes_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.kubeconfig");
        let single = Single {
            cluster: "k",
            server: "https://127.0.0.1:1",
            ca_pem: "CA",
            user: "u",
            credential: Credential::Token("t"),
            namespace: None,
        };
        single.write(&path).unwrap();
        let back = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(back.current_context.as_deref(), Some("k"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let missing = single.write(&dir.path().join("no/such/dir")).unwrap_err();
        assert!(matches!(missing, KubeconfigError::Io { .. }));
    }

    #[test]
    fn tokens() {
        let yaml = Single {
            cluster: "k",
            server: "https://[::1]:6443",
            ca_pem: "CA",
            user: "u",
            credential: Credential::Token("abc.def"),
            namespace: None,
        }
        .to_yaml()
        .unwrap();
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        let user = back.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.token.as_ref().unwrap().expose_secret(), "abc.def");
        assert_eq!(back.contexts[0].context.as_ref().unwrap().namespace, None);
    }
}
