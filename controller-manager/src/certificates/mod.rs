//! The certificate controllers: approving kubelet client requests ([`approving`]), signing
//! approved requests of the built-in signers ([`signing`]) and cleaning up old requests
//! ([`cleaner`]).

pub mod approving;
pub mod cleaner;
pub mod conditions;
pub mod request;
pub mod signing;

/// Settings of the certificate controllers.
#[derive(Clone, Debug, Default)]
pub struct CertificatesConfig {
    /// The signing controller's CAs and duration.
    pub signing: signing::SigningConfig,
}

/// Certificate controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CA could not be loaded.
    #[error("loading the signing CA: {0}")]
    Ca(String),
}
