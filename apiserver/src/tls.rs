//! TLS: a self-signed CA, the serving certificate and the admin client certificate (generated under
//! the data dir on first start and reused after), the admin kubeconfig, the rustls server config
//! (client certificates optional, verified against the CA) and the identity a client certificate
//! carries (CN = user, O = groups).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;

use crate::registry::subresource::UserInfo;

/// Failures setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating or parsing a certificate.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// Building the rustls configuration.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    /// A PEM file held no usable item.
    #[error("{0}: no certificate or key found")]
    Pem(PathBuf),
    /// Building the client verifier.
    #[error("client verifier: {0}")]
    Verifier(String),
}

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

fn read(dir: &Path, name: &str) -> Result<String, TlsError> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|source| TlsError::Io { path, source })
}

fn write(dir: &Path, name: &str, contents: &str, private: bool) -> Result<(), TlsError> {
    let path = dir.join(name);
    let io = |source| TlsError::Io {
        path: path.clone(),
        source,
    };
    std::fs::write(&path, contents).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

fn dn(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn
}

/// Valid from yesterday for `years` years (dates only: rcgen takes calendar dates).
fn validity(params: &mut CertificateParams, years: i16) {
    let yesterday = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let (y, m, d) = (
        i32::from(yesterday.year()),
        yesterday.month() as u8,
        yesterday.day().min(28) as u8,
    );
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + i32::from(years), m, d);
}

impl Pki {
    /// Loads the PKI from `dir`, or creates what is missing (a new CA only when there is none).
    /// `hosts` are extra names or IPs for the serving certificate.
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if FILES.iter().all(|f| dir.join(f).exists()) {
            return Ok(Pki {
                ca_cert: read(dir, "ca.crt")?,
                server_cert: read(dir, "apiserver.crt")?,
                server_key: read(dir, "apiserver.key")?,
                admin_cert: read(dir, "admin.crt")?,
                admin_key: read(dir, "admin.key")?,
            });
        }
        let (ca_cert, ca_key) = if dir.join("ca.crt").exists() && dir.join("ca.key").exists() {
            (read(dir, "ca.crt")?, read(dir, "ca.key")?)
        } else {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.distinguished_name = dn("keelson-ca", &[]);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            validity(&mut params, 10);
            let cert = params.self_signed(&key)?;
            write(dir, "ca.crt", &cert.pem(), false)?;
            write(dir, "ca.key", &key.serialize_pem(), true)?;
            (cert.pem(), key.serialize_pem())
        };
        let ca_key_pair = KeyPair::from_pem(&ca_key)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert, ca_key_pair)?;

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
        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = dn("kube-apiserver", &[]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        validity(&mut params, 1);
        let server_cert = params.signed_by(&server_key, &issuer)?;
        write(dir, "apiserver.crt", &server_cert.pem(), false)?;
        write(dir, "apiserver.key", &server_key.serialize_pem(), true)?;

        let (admin_cert, admin_key) = issue_client_cert(&issuer, "admin", &["system:masters"])?;
        write(dir, "admin.crt", &admin_cert, false)?;
        write(dir, "admin.key", &admin_key, true)?;
        Ok(Pki {
            ca_cert,
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            admin_cert,
            admin_key,
        })
    }

    /// The verifier of client certificates: chains to the CA.
    pub fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&self.ca_cert, Path::new("ca.crt"))? {
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
        let key = private_key(&self.server_key, Path::new("apiserver.key"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.server_cert, Path::new("apiserver.crt"))?, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The admin kubeconfig (YAML) for a server URL, certificates embedded.
    pub fn admin_kubeconfig(&self, server_url: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: keelson\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: keelson\n  context:\n    cluster: keelson\n    user: admin\n    namespace: default\ncurrent-context: keelson\npreferences: {{}}\n",
            b64(&self.ca_cert),
            b64(&self.admin_cert),
            b64(&self.admin_key)
        )
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

/// Issues a client certificate (CN = user, O = groups) signed by the CA; returns (cert, key) PEM.
pub fn issue_client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(user, groups);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut params, 1);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn certs(pem: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem(path.to_path_buf()));
    }
    Ok(certs)
}

fn private_key(pem: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Pem(path.to_path_buf()))
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
        let der = certs(&a.admin_cert, Path::new("x")).unwrap().remove(0);
        let user = user_from_cert(&der).unwrap();
        assert_eq!(user.name, "admin");
        assert_eq!(user.groups, ["system:masters"]);
        let kc = a.admin_kubeconfig("https://127.0.0.1:6443");
        assert!(kc.contains("server: https://127.0.0.1:6443"));
        // A lost serving cert is re-issued by the same CA.
        std::fs::remove_file(dir.path().join("apiserver.crt")).unwrap();
        let c = Pki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(c.ca_cert, a.ca_cert);
        assert_ne!(c.server_cert, a.server_cert);
    }
}
