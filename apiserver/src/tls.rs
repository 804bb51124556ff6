//! TLS: a self-signed CA, the serving certificate and the admin client certificate (generated under
//! the data dir on first start and reused after), the admin kubeconfig, the rustls server config
//! (client certificates optional, verified against the CA) and the identity a client certificate
//! carries (CN = user, O = groups).

use std::path::Path;
use std::sync::Arc;

pub use pki::PkiError as TlsError;
use pki::{Ca, Leaf, Usage};
use rcgen::{Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;

use crate::registry::subresource::UserInfo;

/// The certificates of a server, in PEM.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate.
    pub ca_cert: String,
    /// The serving certificate.
    pub server_cert: String,
    /// Its key.
    pub server_key: String,
    /// The admin client certificate (CN admin, O system:masters).
    pub admin_cert: String,
    /// Its key.
    pub admin_key: String,
}

const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "apiserver.crt",
    "apiserver.key",
    "admin.crt",
    "admin.key",
];

impl Pki {
    /// Loads the PKI from `dir`, or creates what is missing (a new CA only when there is none).
    /// `hosts` are extra names or IPs for the serving certificate.
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, TlsError> {
        let read = |name: &str| pki::read_file(&dir.join(name));
        std::fs::create_dir_all(dir).map_err(pki::io_error(dir))?;
        if FILES.iter().all(|f| dir.join(f).exists()) {
            return Ok(Pki {
                ca_cert: read("ca.crt")?,
                server_cert: read("apiserver.crt")?,
                server_key: read("apiserver.key")?,
                admin_cert: read("admin.crt")?,
                admin_key: read("admin.key")?,
            });
        }
        let ca = Ca::ensure(dir)?;
        let issuer = ca.issuer()?;
        let mut names: Vec<String> = [
            "localhost",
            "127.0.0.1",
            "::1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for h in hosts {
            if !names.contains(h) {
                names.push(h.clone());
            }
        }
        let (server_cert, server_key) = pki::issue(
            &issuer,
            &Leaf {
                common_name: "kube-apiserver",
                organizations: &[],
                sans: names,
                usage: Usage::Server,
                years: Some(1),
                authority_key_identifier: false,
            },
        )?;
        let write =
            |name: &str, pem: &str, private: bool| pki::write_file(&dir.join(name), pem.as_bytes(), private);
        write("apiserver.crt", &server_cert, false)?;
        write("apiserver.key", &server_key, true)?;
        let (admin_cert, admin_key) = issue_client_cert(&issuer, "admin", &["system:masters"])?;
        write("admin.crt", &admin_cert, false)?;
        write("admin.key", &admin_key, true)?;
        Ok(Pki {
            ca_cert: ca.cert_pem,
            server_cert,
            server_key,
            admin_cert,
            admin_key,
        })
    }

    /// The verifier of client certificates: chains to the CA.
    pub fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in pki::certs_from_pem(&self.ca_cert, "ca.crt")? {
            roots.add(c)?;
        }
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))
    }

    /// The rustls server config: our serving cert, client certs optional (the handshake only
    /// proves the client holds the key; [`Pki::client_verifier`] checks the chain afterwards so a
    /// foreign certificate gets a 401 Status, as upstream), ALPN h2 and http/1.1.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(DeferredClientVerifier(self.client_verifier()?));
        let key = pki::key_from_pem(&self.server_key, "apiserver.key")?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki::certs_from_pem(&self.server_cert, "apiserver.crt")?, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The admin kubeconfig for a server URL, certificates embedded.
    pub fn admin_kubeconfig<'a>(&'a self, server_url: &'a str) -> api_util::kubeconfig::Single<'a> {
        api_util::kubeconfig::Single {
            cluster: "keelson",
            server: server_url,
            ca_pem: &self.ca_cert,
            user: "admin",
            credential: api_util::kubeconfig::Credential::ClientCertificate {
                cert_pem: &self.admin_cert,
                key_pem: &self.admin_key,
            },
            namespace: Some("default"),
        }
    }
}

/// Accepts any client certificate in the handshake (signatures are still checked); the chain is
/// verified after the handshake with the wrapped verifier.
#[derive(Debug)]
struct DeferredClientVerifier(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for DeferredClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The identity of a TLS connection's client certificate: `Ok(None)` without one, `Err` when it
/// does not chain to the CA (or is expired).
pub fn verified_user(
    verifier: &dyn ClientCertVerifier,
    chain: Option<&[CertificateDer<'static>]>,
) -> Result<Option<UserInfo>, rustls::Error> {
    let Some((end_entity, intermediates)) = chain.and_then(|c| c.split_first()) else {
        return Ok(None);
    };
    verifier.verify_client_cert(end_entity, intermediates, rustls::pki_types::UnixTime::now())?;
    Ok(user_from_cert(end_entity))
}

/// Issues a client certificate (CN = user, O = groups, valid a year) signed by the CA; returns
/// (cert, key) PEM.
pub fn issue_client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), TlsError> {
    pki::issue(
        issuer,
        &Leaf {
            common_name: user,
            organizations: groups,
            sans: Vec::new(),
            usage: Usage::Client,
            years: Some(1),
            authority_key_identifier: false,
        },
    )
}

/// The user a verified client certificate names: CN is the user, each O a group.
pub fn user_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &["example.test".into()]).unwrap();
        let b = Pki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_cert, b.ca_cert);
        assert_eq!(a.admin_key, b.admin_key);
        a.server_config().unwrap();
        let der = pki::certs_from_pem(&a.admin_cert, "x").unwrap().remove(0);
        let user = user_from_cert(&der).unwrap();
        assert_eq!(user.name, "admin");
        assert_eq!(user.groups, ["system:masters"]);
        let kc = a.admin_kubeconfig("https://127.0.0.1:6443").to_yaml().unwrap();
        assert!(kc.contains("server: https://127.0.0.1:6443"));
        // A lost serving cert is re-issued by the same CA.
        std::fs::remove_file(dir.path().join("apiserver.crt")).unwrap();
        let c = Pki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(c.ca_cert, a.ca_cert);
        assert_ne!(c.server_cert, a.server_cert);
    }
}
