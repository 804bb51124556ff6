//! The signing controller (upstream `certificatesigningrequest-signing-controller`): issues
//! certificates for approved requests of the built-in signers with the cluster's CA (or one CA
//! per signer), after checking each request against its signer's rules; a request that breaks
//! them is marked `Failed` (`SignerValidationFailure`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use time::OffsetDateTime;

use super::{Error, conditions, request};
use crate::controllers::{ControllerContext, ControllerError};
use crate::informer::{Change, Store};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};

/// How far back a certificate's validity starts, for clocks that lag (upstream's backdate).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// A CA's files (PEM certificate and key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaFiles {
    /// The CA certificate.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

/// Settings of the signing controller.
#[derive(Clone, Debug)]
pub struct SigningConfig {
    /// `--cluster-signing-cert-file` / `--cluster-signing-key-file`: the CA of every built-in
    /// signer without a CA of its own.
    pub cluster: Option<CaFiles>,
    /// Per-signer CAs (`--cluster-signing-kubelet-serving-cert-file` and the like), by signer.
    pub per_signer: HashMap<String, CaFiles>,
    /// `--cluster-signing-duration`: the longest validity issued (8760h).
    pub duration: Duration,
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            cluster: None,
            per_signer: HashMap::new(),
            duration: Duration::from_secs(8760 * 3600),
        }
    }
}

impl SigningConfig {
    /// True when some signer has a CA.
    pub fn is_configured(&self) -> bool {
        self.cluster.is_some() || !self.per_signer.is_empty()
    }
}

/// One CA, loaded.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

impl Ca {
    /// Loads a CA from PEM text.
    pub fn from_pem(cert: &str, key: &str) -> Result<Ca, Error> {
        let bad = |why: String| Error::Ca(why);
        let key = KeyPair::from_pem(key).map_err(|e| bad(format!("the CA key: {e}")))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes())
            .map_err(|e| bad(format!("the CA certificate: {e}")))?;
        let parsed = pem
            .parse_x509()
            .map_err(|e| bad(format!("the CA certificate: {e}")))?;
        let not_after = parsed.validity().not_after.to_datetime();
        let issuer =
            Issuer::from_ca_cert_pem(cert, key).map_err(|e| bad(format!("the CA certificate: {e}")))?;
        Ok(Ca { issuer, not_after })
    }

    fn load(files: &CaFiles) -> Result<Ca, Error> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|e| Error::Ca(format!("reading {}: {e}", path.display())))
        };
        Ca::from_pem(&read(&files.cert_file)?, &read(&files.key_file)?)
    }

    /// Issues a certificate for the PEM request `pem` with `usages`, valid from `now` (less the
    /// backdate) for `duration`, but never past the CA's own expiry.
    pub fn sign(
        &self,
        pem: &str,
        usages: &[String],
        now: OffsetDateTime,
        duration: Duration,
    ) -> Result<String, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(pem)
            .map_err(|e| format!("unable to parse csr: {e}"))?;
        let params = &mut csr.params;
        params.not_before = now - BACKDATE;
        params.not_after = (now + duration).min(self.not_after);
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages.clear();
        params.extended_key_usages.clear();
        for usage in usages {
            match key_usage(usage) {
                Some(Purpose::Key(k)) => params.key_usages.push(k),
                Some(Purpose::Extended(e)) => params.extended_key_usages.push(e),
                None => return Err(format!("unknown key usage {usage:?}")),
            }
        }
        let cert = csr.signed_by(&self.issuer).map_err(|e| format!("signing: {e}"))?;
        Ok(cert.pem())
    }
}

fn random_serial() -> Result<SerialNumber, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no randomness for a serial number".to_string())?;
    bytes[0] &= 0x7f; // positive
    Ok(SerialNumber::from_slice(&bytes))
}

enum Purpose {
    Key(KeyUsagePurpose),
    Extended(ExtendedKeyUsagePurpose),
}

/// Upstream's names of key usages (`spec.usages`).
fn key_usage(name: &str) -> Option<Purpose> {
    use ExtendedKeyUsagePurpose as E;
    use KeyUsagePurpose as K;
    Some(match name {
        "signing" | "digital signature" => Purpose::Key(K::DigitalSignature),
        "content commitment" => Purpose::Key(K::ContentCommitment),
        "key encipherment" => Purpose::Key(K::KeyEncipherment),
        "key agreement" => Purpose::Key(K::KeyAgreement),
        "data encipherment" => Purpose::Key(K::DataEncipherment),
        "cert sign" => Purpose::Key(K::KeyCertSign),
        "crl sign" => Purpose::Key(K::CrlSign),
        "encipher only" => Purpose::Key(K::EncipherOnly),
        "decipher only" => Purpose::Key(K::DecipherOnly),
        "any" => Purpose::Extended(E::Any),
        "server auth" => Purpose::Extended(E::ServerAuth),
        "client auth" => Purpose::Extended(E::ClientAuth),
        "code signing" => Purpose::Extended(E::CodeSigning),
        "email protection" | "s/mime" => Purpose::Extended(E::EmailProtection),
        "timestamping" => Purpose::Extended(E::TimeStamping),
        "ocsp signing" => Purpose::Extended(E::OcspSigning),
        // IPsec and the Microsoft/Netscape SGC purposes have no rcgen name; by OID.
        "ipsec end system" => Purpose::Extended(E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5])),
        "ipsec tunnel" => Purpose::Extended(E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6])),
        "ipsec user" => Purpose::Extended(E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7])),
        "microsoft sgc" => Purpose::Extended(E::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3])),
        "netscape sgc" => Purpose::Extended(E::Other(vec![2, 16, 840, 1, 113730, 4, 1])),
        _ => return None,
    })
}

/// The CAs of the built-in signers.
struct Signers {
    by_signer: HashMap<&'static str, Arc<Ca>>,
    duration: Duration,
}

impl Signers {
    fn load(config: &SigningConfig) -> Result<Signers, Error> {
        let cluster = config.cluster.as_ref().map(Ca::load).transpose()?.map(Arc::new);
        let mut by_signer = HashMap::new();
        for signer in [
            request::KUBE_APISERVER_CLIENT,
            request::KUBELET_CLIENT,
            request::KUBELET_SERVING,
            request::LEGACY_UNKNOWN,
        ] {
            let ca = match config.per_signer.get(signer) {
                Some(files) => Some(Arc::new(Ca::load(files)?)),
                None => cluster.clone(),
            };
            if let Some(ca) = ca {
                by_signer.insert(signer, ca);
            }
        }
        Ok(Signers {
            by_signer,
            duration: config.duration,
        })
    }
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing: not approved, failed, issued, or not one of ours.
    Skip,
    /// Mark it failed with this message.
    Fail(String),
    /// Store this certificate (PEM).
    Issue(String),
}

/// Decides (and signs) one request.
fn decide(signers: &Signers, csr: &CertificateSigningRequest, now: OffsetDateTime) -> Outcome {
    if !conditions::is_approved(csr) || conditions::has_failed(csr) || conditions::is_issued(csr) {
        return Outcome::Skip;
    }
    let Some(ca) = signers.by_signer.get(csr.spec.signer_name.as_str()) else {
        return Outcome::Skip;
    };
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let Ok(pem) = std::str::from_utf8(&csr.spec.request.0) else {
        return Outcome::Fail("the request is not PEM text".into());
    };
    let parsed = match request::parse(pem.as_bytes()) {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    if let Some(Err(why)) = request::validate_for_signer(&csr.spec.signer_name, &parsed, &usages) {
        return Outcome::Fail(why);
    }
    let mut duration = signers.duration;
    if let Some(seconds) = csr.spec.expiration_seconds {
        duration = duration.min(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
    }
    match ca.sign(pem, &usages, now, duration) {
        Ok(cert) => Outcome::Issue(cert),
        Err(why) => Outcome::Fail(why),
    }
}

/// Runs the signing controller until shutdown (not at all without a CA, as upstream).
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let config = &ctx.config.certificates.signing;
    if !config.is_configured() {
        tracing::info!("no --cluster-signing-cert-file; the CSR signing controller does not run");
        ctx.shutdown.cancelled().await;
        return Ok(());
    }
    let signers = Arc::new(Signers::load(config)?);
    let informer = ctx.informers.informer::<CertificateSigningRequest>();
    let queue = WorkQueue::with_metrics("certificate", RateLimits::default(), ctx.metrics.clone());
    let q = queue.clone();
    informer.add_handler(move |change| match change {
        Change::Added(csr) | Change::Updated { new: csr, .. } => {
            q.add(csr.metadata.name.clone().unwrap_or_default());
        }
        Change::Deleted(_) => {}
    });
    let store = informer.store();
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = informer.wait_synced() => {}
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    run_workers(queue, 5, None, ctx.shutdown.clone(), move |name| {
        let (signers, store, api) = (signers.clone(), store.clone(), api.clone());
        async move { sync(&signers, &store, &api, &name).await }
    })
    .await;
    Ok(())
}

async fn sync(
    signers: &Signers,
    store: &Store<CertificateSigningRequest>,
    api: &Api<CertificateSigningRequest>,
    name: &str,
) -> Result<(), kube::Error> {
    let Some(csr) = store.get("", name) else {
        return Ok(());
    };
    let mut updated = (*csr).clone();
    match decide(signers, &csr, OffsetDateTime::now_utc()) {
        Outcome::Skip => return Ok(()),
        Outcome::Fail(why) => {
            tracing::info!(csr = name, reason = %why, "certificate request failed validation");
            conditions::append(
                &mut updated,
                "Failed",
                "SignerValidationFailure",
                why,
                Timestamp::now(),
            );
        }
        Outcome::Issue(cert) => {
            updated.status.get_or_insert_with(Default::default).certificate =
                Some(ByteString(cert.into_bytes()));
            tracing::info!(csr = name, signer = %csr.spec.signer_name, "issued a certificate");
        }
    }
    api.replace_status(name, &PostParams::default(), &updated).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::request::tests::pem_request;

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-ca");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_after = OffsetDateTime::now_utc() + Duration::from_secs(30 * 86400);
        let cert = params.self_signed(&key).unwrap();
        Ca::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
    }

    fn signers() -> Signers {
        let ca = Arc::new(ca());
        Signers {
            by_signer: [request::KUBELET_SERVING, request::KUBE_APISERVER_CLIENT]
                .into_iter()
                .map(|s| (s, ca.clone()))
                .collect(),
            duration: Duration::from_secs(8760 * 3600),
        }
    }

    fn csr(signer: &str, pem: &str, usages: &[&str], approved: bool) -> CertificateSigningRequest {
        let mut csr = CertificateSigningRequest::default();
        csr.spec.signer_name = signer.into();
        csr.spec.request = ByteString(pem.as_bytes().to_vec());
        csr.spec.usages = Some(usages.iter().map(|u| u.to_string()).collect());
        if approved {
            conditions::append(&mut csr, "Approved", "Test", String::new(), Timestamp::now());
        }
        csr
    }

    #[test]
    fn an_approved_serving_request_gets_a_certificate_with_its_names_and_usages() {
        let (pem, _) = pem_request("system:node:n1", &["system:nodes"], &["n1", "10.1.2.3"]);
        let request = csr(
            request::KUBELET_SERVING,
            &pem,
            &["digital signature", "server auth"],
            true,
        );
        let now = OffsetDateTime::now_utc();
        let Outcome::Issue(cert) = decide(&signers(), &request, now) else {
            panic!("expected a certificate");
        };
        let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "system:node:n1"
        );
        assert_eq!(
            cert.issuer().iter_common_name().next().unwrap().as_str().unwrap(),
            "test-ca"
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert!(!cert.is_ca());
        let sans = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(sans.general_names.len(), 2);
        let not_after = cert.validity().not_after.to_datetime();
        assert!(
            not_after <= now + Duration::from_secs(30 * 86400),
            "capped at the CA's expiry"
        );
    }

    #[test]
    fn expiration_seconds_shortens_the_validity() {
        let (pem, _) = pem_request("alice", &["devs"], &[]);
        let mut request = csr(request::KUBE_APISERVER_CLIENT, &pem, &["client auth"], true);
        request.spec.expiration_seconds = Some(3600);
        let now = OffsetDateTime::now_utc();
        let Outcome::Issue(cert) = decide(&signers(), &request, now) else {
            panic!("expected a certificate");
        };
        let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let validity = block.parse_x509().unwrap().validity().clone();
        let length = validity.not_after.to_datetime() - validity.not_before.to_datetime();
        assert_eq!(length.whole_seconds(), 3600 + 300, "an hour plus the backdate");
    }

    #[test]
    fn unapproved_foreign_or_invalid_requests() {
        let (pem, _) = pem_request("alice", &["devs"], &[]);
        let s = signers();
        let now = OffsetDateTime::now_utc();
        let pending = csr(request::KUBE_APISERVER_CLIENT, &pem, &["client auth"], false);
        assert_eq!(decide(&s, &pending, now), Outcome::Skip);
        let foreign = csr("example.com/x", &pem, &["client auth"], true);
        assert_eq!(decide(&s, &foreign, now), Outcome::Skip);
        let not_a_node = csr(
            request::KUBELET_SERVING,
            &pem,
            &["digital signature", "server auth"],
            true,
        );
        assert_eq!(
            decide(&s, &not_a_node, now),
            Outcome::Fail("DNS or IP subjectAltName is required".into())
        );
    }
}
