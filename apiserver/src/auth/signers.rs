//! Who may approve requests for a signer (upstream's CertificateApproval admission): the `approve`
//! verb on `certificates.k8s.io` `signers`, named by the request's `spec.signerName` or by its
//! domain (`example.com/*`).

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

/// The 403 for a write of request `name` that `user` may not make: an `approve` of the approval
/// subresource for `signer`.
pub fn check_approve(auth: &Auth, user: &UserInfo, name: &str, signer: &str) -> Result<(), ApiError> {
    if authorized(auth, user, "approve", signer) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        &GroupResource::new("certificates.k8s.io", "certificatesigningrequests"),
        name,
        &format!("user not permitted to approve requests with signerName {signer:?}"),
    ))
}
