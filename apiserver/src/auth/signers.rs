//! Who may approve or sign requests for a signer (upstream's CertificateApproval and
//! CertificateSigning admission): the `approve` or `sign` verb on `certificates.k8s.io`
//! `signers`, named by the request's `spec.signerName` or by its domain (`example.com/*`).

use super::{Attributes, Auth};
use crate::error::{ApiError, GroupResource};
use crate::registry::subresource::UserInfo;

/// Whether `user` may `verb` (`approve`, `sign`) requests for `signer`.
pub fn authorized(auth: &Auth, user: &UserInfo, verb: &str, signer: &str) -> bool {
    let attrs = |name: String| Attributes {
        user: user.clone(),
        verb: verb.into(),
        resource_request: true,
        group: "certificates.k8s.io".into(),
        version: "*".into(),
        resource: "signers".into(),
        name,
        ..Attributes::default()
    };
    if auth.authorize(&attrs(signer.to_string())) {
        return true;
    }
    match signer.split_once('/') {
        Some((domain, _)) => auth.authorize(&attrs(format!("{domain}/*"))),
        None => false,
    }
}

/// The 403 for a write of request `name` that `user` may not make: `verb` (`approve` through the
/// approval subresource, `sign` when a status write sets the certificate) for `signer`.
pub fn check(auth: &Auth, user: &UserInfo, verb: &str, name: &str, signer: &str) -> Result<(), ApiError> {
    if authorized(auth, user, verb, signer) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        &GroupResource::new("certificates.k8s.io", "certificatesigningrequests"),
        name,
        &format!("user not permitted to {verb} requests with signerName {signer:?}"),
    ))
}
