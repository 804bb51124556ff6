//! Keelson's certificates, shared by the API server and the store: a cluster CA created once per
//! directory (`ca.crt`, `ca.key`; safe against processes creating it at the same time),
//! certificates it issues for servers and clients (CN, O, SANs, key usages), files written
//! atomically (keys readable by their owner only), and PEM loading for rustls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The CA certificate's file name in a PKI directory.
pub const CA_CERT: &str = "ca.crt";
/// The CA key's file name in a PKI directory.
pub const CA_KEY: &str = "ca.key";

/// Failures reading, creating or using certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating or parsing a certificate or key.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// PEM that holds no usable certificate or key, or a CA another process never finished.
    #[error("{0}")]
    Pem(String),
}

/// The `Io` error of `path`.
pub fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a PEM file.
pub fn read_file(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

/// Writes a file atomically (a temporary file renamed into place); `private` files (keys) are
/// readable by their owner only.
pub fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), PkiError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(io_error(&tmp))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io_error(&tmp))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// A subject: CN, and one O per entry of `organizations` (Kubernetes reads them as user and
/// groups).
pub fn distinguished_name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    dn
}

/// Valid from yesterday for `years` years (dates only: rcgen takes calendar dates).
pub fn set_validity(params: &mut CertificateParams, years: i16) {
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

/// The CA certificate's parameters. They are fixed, so the issuer of an existing CA is rebuilt
/// from them and its key.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name("keelson-ca", &[]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A cluster CA, in PEM.
#[derive(Clone, Debug)]
pub struct Ca {
    /// The CA certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// What an issued certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A serving certificate.
    Server,
    /// A client certificate.
    Client,
    /// Both (store members talk to each other).
    ServerAndClient,
}

/// A certificate to issue.
#[derive(Clone, Debug)]
pub struct Leaf<'a> {
    /// The subject's CN (the user of a client certificate).
    pub common_name: &'a str,
    /// The subject's O entries (the groups of a client certificate).
    pub organizations: &'a [&'a str],
    /// DNS names and IP addresses (subject alternative names).
    pub sans: Vec<String>,
    /// What it is for.
    pub usage: Usage,
    /// Validity from yesterday, in years; `None` for rcgen's default (no practical expiry).
    pub years: Option<i16>,
    /// Whether to add the authority key identifier extension.
    pub authority_key_identifier: bool,
}

impl Ca {
    /// Loads the CA of `dir`, creating it (valid ten years) when there is none. Processes
    /// sharing `dir` may call this at once: one creates it, the others wait for it. Blocking.
    pub fn ensure(dir: &Path) -> Result<Ca, PkiError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let exists = || cert_path.exists() && key_path.exists();
        if !exists() {
            let lock = dir.join("ca.lock");
            match std::fs::create_dir(&lock) {
                Ok(()) => {
                    let created = (|| {
                        let key = KeyPair::generate()?;
                        let mut params = ca_params();
                        set_validity(&mut params, 10);
                        let cert = params.self_signed(&key)?;
                        write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
                        write_file(&cert_path, cert.pem().as_bytes(), false)?;
                        tracing::info!(dir = %dir.display(), "created cluster CA");
                        Ok::<(), PkiError>(())
                    })();
                    let _ = std::fs::remove_dir(&lock);
                    created?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let mut waited = 0;
                    while !exists() {
                        if waited == 500 {
                            return Err(PkiError::Pem(format!(
                                "timed out waiting for another process to create the CA in {}",
                                dir.display()
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        waited += 1;
                    }
                }
                Err(e) => return Err(io_error(&lock)(e)),
            }
        }
        Ok(Ca {
            cert_pem: read_file(&cert_path)?,
            key_pem: read_file(&key_path)?,
        })
    }

    /// The issuer of certificates this CA signs.
    pub fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        Ok(Issuer::new(ca_params(), KeyPair::from_pem(&self.key_pem)?))
    }

    /// Issues a certificate; returns (certificate, key) PEM.
    pub fn issue(&self, leaf: &Leaf<'_>) -> Result<(String, String), PkiError> {
        issue(&self.issuer()?, leaf)
    }
}

/// Issues a certificate signed by `issuer`; returns (certificate, key) PEM.
pub fn issue(issuer: &Issuer<'_, KeyPair>, leaf: &Leaf<'_>) -> Result<(String, String), PkiError> {
    let mut params = CertificateParams::new(leaf.sans.clone())?;
    params.distinguished_name = distinguished_name(leaf.common_name, leaf.organizations);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match leaf.usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = leaf.authority_key_identifier;
    if let Some(years) = leaf.years {
        set_validity(&mut params, years);
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The certificates of a PEM text (at least one); `what` names it in errors.
pub fn certs_from_pem(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(format!("{what}: bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::Pem(format!("{what}: no certificate found")));
    }
    Ok(certs)
}

/// The private key of a PEM text; `what` names it in errors.
pub fn key_from_pem(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| PkiError::Pem(format!("{what}: bad key PEM: {e}")))?
        .ok_or_else(|| PkiError::Pem(format!("{what}: no private key found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_created_once_and_signs_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ca::ensure(dir.path()).unwrap();
        let b = Ca::ensure(dir.path()).unwrap();
        assert_eq!(a.cert_pem, b.cert_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (cert, key) = a
            .issue(&Leaf {
                common_name: "system:node:n1",
                organizations: &["system:nodes"],
                sans: vec!["localhost".into(), "127.0.0.1".into()],
                usage: Usage::ServerAndClient,
                years: Some(1),
                authority_key_identifier: true,
            })
            .unwrap();
        let leaf = certs_from_pem(&cert, "leaf").unwrap();
        key_from_pem(&key, "leaf key").unwrap();
        // The leaf chains to the CA.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certs_from_pem(&a.cert_pem, "ca").unwrap().remove(0))
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .unwrap();
        verifier
            .verify_client_cert(&leaf[0], &[], rustls::pki_types::UnixTime::now())
            .unwrap();
    }

    #[test]
    fn concurrent_callers_share_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || Ca::ensure(&p).unwrap().cert_pem)
            })
            .collect();
        let pems: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(pems.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn bad_pem_is_an_error() {
        assert!(certs_from_pem("nothing", "x").is_err());
        assert!(key_from_pem("nothing", "x").is_err());
    }
}
