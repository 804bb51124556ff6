//! A CertificateSigningRequest's state, read from its conditions and certificate.

use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The request's condition of `kind` (`Approved`, `Denied`, `Failed`) if it holds.
pub fn condition<'a>(
    csr: &'a CertificateSigningRequest,
    kind: &str,
) -> Option<&'a CertificateSigningRequestCondition> {
    csr.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
}

/// Approved (and not denied: the API server refuses both at once).
pub fn is_approved(csr: &CertificateSigningRequest) -> bool {
    condition(csr, "Approved").is_some()
}

/// Approved or denied.
pub fn is_decided(csr: &CertificateSigningRequest) -> bool {
    is_approved(csr) || condition(csr, "Denied").is_some()
}

/// Signing failed.
pub fn has_failed(csr: &CertificateSigningRequest) -> bool {
    condition(csr, "Failed").is_some()
}

/// A certificate was issued.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// Appends a true condition of `kind` with `reason` and `message`, stamped `now`.
pub fn append(
    csr: &mut CertificateSigningRequest,
    kind: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let status = csr.status.get_or_insert_with(Default::default);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: kind.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_update_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        });
}
