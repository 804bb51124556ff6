//! Member certificates for mutual TLS between members (and, reused by the binary, for the
//! client listener).
//!
//! A PKI directory (`--pki-dir`, default `<data-dir>/pki`) holds a CA (`ca.crt`, `ca.key`),
//! created on first use. Each member start issues the member a certificate signed by that CA,
//! valid for serving and as a client, with the hosts of its URLs plus `localhost` and
//! `127.0.0.1` as SANs (written to `<name>.crt` / `<name>.key` for reference). Members of one
//! group must share the CA: copy the directory, or point every member at the same one.

use std::path::Path;
use std::sync::Arc;

pub use pki::PkiError as TlsError;
use pki::{Ca, Leaf, Usage};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

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

/// Creates the CA in `dir` unless one exists ([`pki::Ca::ensure`]). Blocking.
pub fn ensure_ca(dir: &Path) -> Result<(), TlsError> {
    Ca::ensure(dir).map(|_| ())
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
        let ca = Ca::ensure(pki_dir)?;
        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        for h in hosts {
            if !sans.contains(h) {
                sans.push(h.clone());
            }
        }
        let (cert, key) = ca.issue(&Leaf {
            common_name: if name.is_empty() { "keelson-member" } else { name },
            organizations: &[],
            sans,
            usage: Usage::ServerAndClient,
            years: None,
            authority_key_identifier: true,
        })?;
        let file_name = sanitize(name);
        pki::write_file(&pki_dir.join(format!("{file_name}.key")), key.as_bytes(), true)?;
        pki::write_file(&pki_dir.join(format!("{file_name}.crt")), cert.as_bytes(), false)?;
        Ok(Identity {
            ca: pki::certs_from_pem(&ca.cert_pem, "CA certificate")?.remove(0),
            chain: pki::certs_from_pem(&cert, name)?,
            key: Arc::new(pki::key_from_pem(&key, name)?),
        })
    }

    /// Loads an identity from PEM files (certificate chain, key, CA).
    pub fn from_pem_files(cert: &Path, key: &Path, ca: &Path) -> Result<Identity, TlsError> {
        let named = |p: &Path| p.display().to_string();
        Ok(Identity {
            ca: pki::certs_from_pem(&pki::read_file(ca)?, &named(ca))?.remove(0),
            chain: pki::certs_from_pem(&pki::read_file(cert)?, &named(cert))?,
            key: Arc::new(pki::key_from_pem(&pki::read_file(key)?, &named(key))?),
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
                let verifier = verifier.build().map_err(|e| TlsError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
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
