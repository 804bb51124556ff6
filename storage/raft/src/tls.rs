//! Member certificates for mutual TLS between members (and, reused by the binary, for the
//! client listener).
//!
//! A PKI directory (`--pki-dir`, default `<data-dir>/pki`) holds a CA (`ca.crt`, `ca.key`),
//! created on first use. Each member start issues the member a certificate signed by that CA,
//! valid for serving and as a client, with the hosts of its URLs plus `localhost` and
//! `127.0.0.1` as SANs (written to `<name>.crt` / `<name>.key` for reference). Members of one
//! group must share the CA: copy the directory, or point every member at the same one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// Failures setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing PKI files failed.
    #[error("pki {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Generating or parsing a certificate or key failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A PEM file holds no usable certificate or key.
    #[error("{0}")]
    Pem(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a server asks connecting clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients must present a certificate signed by the CA (peer traffic).
    Required,
    /// Clients may present one; it is verified when they do.
    Optional,
    /// No client certificates.
    None,
}

/// A certificate chain and key, plus the CA that members trust.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The trusted CA certificate.
    pub ca: CertificateDer<'static>,
    /// This member's certificate chain (leaf first).
    pub chain: Vec<CertificateDer<'static>>,
    /// This member's private key.
    pub key: Arc<PrivateKeyDer<'static>>,
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";

fn write_atomic(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
    if private {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io_err(&tmp))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Creates the CA in `dir` unless one exists. Safe against concurrent callers sharing `dir`
/// (one creates it, the others wait for it). Blocking.
pub fn ensure_ca(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    let lock = dir.join("ca.lock");
    match std::fs::create_dir(&lock) {
        Ok(()) => {
            let result = (|| {
                let key = KeyPair::generate()?;
                let params = ca_params()?;
                let cert = params.self_signed(&key)?;
                write_atomic(&key_path, key.serialize_pem().as_bytes(), true)?;
                write_atomic(&cert_path, cert.pem().as_bytes(), false)?;
                tracing::info!(dir = %dir.display(), "created cluster CA");
                Ok(())
            })();
            let _ = std::fs::remove_dir(&lock);
            result
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for _ in 0..500 {
                if cert_path.exists() && key_path.exists() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TlsError::Pem(format!(
                "timed out waiting for another process to create the CA in {}",
                dir.display()
            )))
        }
        Err(e) => Err(io_err(&lock)(e)),
    }
}

/// The host part of each URL (`https://host:port/...`), without brackets for IPv6.
pub fn hosts_of<'a>(urls: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut hosts = Vec::new();
    for url in urls {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or(v6)
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        if !host.is_empty() && !hosts.iter().any(|h| h == host) {
            hosts.push(host.to_string());
        }
    }
    hosts
}

impl Identity {
    /// Issues a certificate for `name` valid for `hosts` (plus localhost and 127.0.0.1), signed
    /// by the CA in `pki_dir` (created if missing). Blocking.
    pub fn issue(pki_dir: &Path, name: &str, hosts: &[String]) -> Result<Identity, TlsError> {
        ensure_ca(pki_dir)?;
        let ca_pem =
            std::fs::read_to_string(pki_dir.join(CA_CERT)).map_err(io_err(&pki_dir.join(CA_CERT)))?;
        let ca_key_pem =
            std::fs::read_to_string(pki_dir.join(CA_KEY)).map_err(io_err(&pki_dir.join(CA_KEY)))?;
        // The issuer is the CA's subject and key; its parameters are fixed, so they are rebuilt.
        let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&ca_key_pem)?);
        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        for h in hosts {
            if !sans.contains(h) {
                sans.push(h.clone());
            }
        }
        let mut params = CertificateParams::new(sans)?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            if name.is_empty() { "keelson-member" } else { name },
        );
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let file_name = sanitize(name);
        write_atomic(
            &pki_dir.join(format!("{file_name}.key")),
            key.serialize_pem().as_bytes(),
            true,
        )?;
        write_atomic(
            &pki_dir.join(format!("{file_name}.crt")),
            cert.pem().as_bytes(),
            false,
        )?;
        let ca = pem_certs(&ca_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::Pem("CA file holds no certificate".into()))?;
        Ok(Identity {
            ca,
            chain: vec![cert.der().clone()],
            key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            ))),
        })
    }

    /// Loads an identity from PEM files (certificate chain, key, CA).
    pub fn from_pem_files(cert: &Path, key: &Path, ca: &Path) -> Result<Identity, TlsError> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(io_err(p));
        let chain = pem_certs(&read(cert)?)?;
        let key_pem = read(key)?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(io_err(key))?
            .ok_or_else(|| TlsError::Pem(format!("{} holds no private key", key.display())))?;
        let ca = pem_certs(&read(ca)?)?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::Pem(format!("{} holds no certificate", ca.display())))?;
        Ok(Identity {
            ca,
            chain,
            key: Arc::new(key),
        })
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(roots)
    }

    /// A rustls server configuration presenting this identity, with ALPN `h2`.
    pub fn server_config(&self, client_auth: ClientAuth) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required | ClientAuth::Optional => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider);
                let verifier = if client_auth == ClientAuth::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build()?)
            }
        };
        let mut config = builder.with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// A rustls client configuration trusting the CA and presenting this identity, with ALPN `h2`.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The CA certificate's parameters (fixed: the issuer of member certificates is rebuilt from them).
fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "keelson-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("bad certificate PEM: {e}")))
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("member{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_extracted_from_urls() {
        assert_eq!(
            hosts_of([
                "https://10.0.0.1:2380",
                "http://node-a:2379/x",
                "https://[::1]:1",
                "https://10.0.0.1:2"
            ]),
            vec!["10.0.0.1", "node-a", "::1"]
        );
    }

    #[test]
    fn issued_identities_build_configs_and_share_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::issue(dir.path(), "a", &["10.1.2.3".into()]).unwrap();
        let b = Identity::issue(dir.path(), "b/evil", &[]).unwrap();
        assert_eq!(a.ca, b.ca);
        assert!(dir.path().join("b_evil.crt").exists());
        a.server_config(ClientAuth::Required).unwrap();
        a.server_config(ClientAuth::Optional).unwrap();
        b.client_config().unwrap();
        let loaded = Identity::from_pem_files(
            &dir.path().join("a.crt"),
            &dir.path().join("a.key"),
            &dir.path().join("ca.crt"),
        )
        .unwrap();
        assert_eq!(loaded.chain, a.chain);
    }
}
