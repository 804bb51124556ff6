//! CertificateSigningRequests as upstream validates them: the request itself (a PEM certificate
//! request, key usages, signer name, duration) and, on update, which subresource may add
//! Approved/Denied conditions or set the certificate.

use base64::Engine;
use serde_json::Value;

use super::field::{Errs, child, index, int, list, string};
use super::names;

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

/// The key usages a request may ask for.
const USAGES: [&str; 23] = [
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// Why `spec.request` is not a PEM certificate request, if it is not.
fn request_problem(encoded: &str) -> Option<String> {
    const WRONG_TYPE: &str = "PEM block type must be CERTIFICATE REQUEST";
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let block = match x509_parser::pem::Pem::iter_from_buffer(&bytes).next() {
        Some(Ok(block)) if block.label == "CERTIFICATE REQUEST" => block,
        _ => return Some(WRONG_TYPE.into()),
    };
    use x509_parser::prelude::FromDer;
    match x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents) {
        Ok(_) => None,
        Err(e) => Some(format!("x509: malformed certificate request: {e}")),
    }
}

/// A signer name: `<domain>/<path>`, the domain a DNS subdomain.
fn signer_name(name: &str, errs: &mut Errs) {
    const PATH: &str = "spec.signerName";
    if name.is_empty() {
        errs.required(PATH, "");
        return;
    }
    let Some((domain, rest)) = name
        .split_once('/')
        .filter(|(d, r)| !d.is_empty() && !r.is_empty())
    else {
        errs.invalid_str(
            PATH,
            name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
        return;
    };
    if rest.contains('/') {
        errs.invalid_str(PATH, name, "should not contain more than one '/' character");
    }
    for m in names::dns1123_subdomain(domain) {
        errs.invalid_str(PATH, name, &m);
    }
}

/// A request as created (and as every update leaves it): a PEM certificate request, key usages
/// known and not repeated, a signer name, at least ten minutes of validity.
pub fn csr(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let request = string(spec, "request");
    if let Some(problem) = request_problem(request) {
        errs.invalid_str("spec.request", request, &problem);
    }
    let usages = list(spec, "usages");
    if usages.is_empty() {
        errs.required("spec.usages", "");
    }
    for (i, u) in usages.iter().enumerate() {
        let usage = u.as_str().unwrap_or("");
        if !USAGES.contains(&usage) {
            errs.not_supported(index("spec.usages", i), u, &USAGES);
        } else if usages[..i].contains(u) {
            errs.duplicate(index("spec.usages", i), u);
        }
    }
    signer_name(string(spec, "signerName"), errs);
    if let Some(secs) = int(spec, "expirationSeconds")
        && secs < 600
    {
        errs.invalid(
            "spec.expirationSeconds",
            &Value::from(secs),
            "may not specify a duration less than 600 seconds (10 minutes)",
        );
    }
}

/// What a write of a request may change besides the rest of the object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsrWrite {
    /// The `approval` subresource: Approved/Denied conditions may be added or changed.
    pub approval_conditions: bool,
    /// The `status` subresource: the certificate may be set once.
    pub certificate: bool,
}

fn conditions_of<'a>(csr: &'a Value, ty: &str) -> Vec<&'a Value> {
    list(csr.get("status").unwrap_or(&Value::Null), "conditions")
        .iter()
        .filter(|c| string(c, "type") == ty)
        .collect()
}

/// The conditions of a request: a type and a status each (`True` only for Approved, Denied and
/// Failed), no type twice, not both Approved and Denied.
fn conditions(csr: &Value, old: &Value, errs: &mut Errs) {
    let path = "status.conditions";
    let conds = list(csr.get("status").unwrap_or(&Value::Null), "conditions");
    // Stored data that already breaks a rule keeps being accepted (upstream's compatibility).
    let old_types: Vec<&str> = list(old.get("status").unwrap_or(&Value::Null), "conditions")
        .iter()
        .map(|c| string(c, "type"))
        .collect();
    let old_has_duplicates = old_types
        .iter()
        .enumerate()
        .any(|(i, t)| old_types[..i].contains(t));
    let old_has_both = old_types.contains(&APPROVED) && old_types.contains(&DENIED);
    let mut seen: Vec<&str> = Vec::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conds.iter().enumerate() {
        let at = index(path, i);
        let ty = string(c, "type");
        if ty.is_empty() && !old_types.contains(&"") {
            errs.required(child(&at, "type"), "");
        }
        let allowed: &[&str] = if [APPROVED, DENIED, FAILED].contains(&ty) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        match string(c, "status") {
            "" => errs.required(child(&at, "status"), ""),
            s if !allowed.contains(&s) => errs.not_supported(child(&at, "status"), &Value::from(s), allowed),
            _ => {}
        }
        if !old_has_both {
            let clash = match ty {
                APPROVED => {
                    approved = true;
                    denied
                }
                DENIED => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if clash {
                errs.invalid(
                    child(&at, "type"),
                    &Value::from(ty),
                    "Approved and Denied conditions are mutually exclusive",
                );
            }
        }
        if !old_has_duplicates && seen.contains(&ty) {
            errs.duplicate(child(&at, "type"), &Value::from(ty));
        }
        seen.push(ty);
    }
}

/// `status.certificate`: PEM CERTIFICATE blocks only, at least one, each an X.509 certificate.
fn certificate_problem(csr: &Value) -> Option<String> {
    let encoded = csr
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or("");
    if encoded.is_empty() {
        return None;
    }
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return Some("must contain at least one CERTIFICATE PEM block".into());
    };
    let mut found = 0;
    for item in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let Ok(block) = item else {
            break;
        };
        if block.label != "CERTIFICATE" {
            return Some(
                "only CERTIFICATE PEM blocks are allowed, found \"".to_string() + &block.label + "\"",
            );
        }
        if block.parse_x509().is_err() {
            return Some("failed to parse certificate".into());
        }
        found += 1;
    }
    (found == 0).then(|| "must contain at least one CERTIFICATE PEM block".into())
}

/// An update of a request (main resource, `status` or `approval`) against the stored one.
pub fn csr_update(new: &Value, old: &Value, write: CsrWrite, errs: &mut Errs) {
    conditions(new, old, errs);
    let path = "status.conditions";
    for ty in [APPROVED, DENIED, FAILED] {
        if conditions_of(new, ty).len() < conditions_of(old, ty).len() {
            errs.forbidden(
                path,
                &format!("updates may not remove a condition of type {ty:?}"),
            );
        }
    }
    if !write.approval_conditions {
        for ty in [APPROVED, DENIED] {
            let (n, o) = (conditions_of(new, ty), conditions_of(old, ty));
            if n.len() > o.len() {
                errs.forbidden(path, &format!("updates may not add a condition of type {ty:?}"));
            } else if n.len() == o.len() && n != o {
                errs.forbidden(
                    path,
                    &format!("updates may not modify a condition of type {ty:?}"),
                );
            }
        }
    }
    let cert = |v: &Value| v.pointer("/status/certificate").cloned().unwrap_or(Value::Null);
    let (new_cert, old_cert) = (cert(new), cert(old));
    if new_cert != old_cert {
        if !write.certificate {
            errs.forbidden("status.certificate", "updates may not set certificate content");
        } else if old_cert.as_str().is_some_and(|c| !c.is_empty()) {
            errs.forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            );
        }
        if let Some(problem) = certificate_problem(new) {
            errs.invalid_str("status.certificate", "<certificate data>", &problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(new: &Value, old: &Value, write: CsrWrite) -> Vec<String> {
        let mut errs = Errs::default();
        csr_update(new, old, write, &mut errs);
        errs.0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    fn csr(conditions: Value) -> Value {
        json!({"spec": {"signerName": "example.com/x"}, "status": {"conditions": conditions}})
    }

    #[test]
    fn approval_conditions_only_through_approval() {
        let none = csr(json!([]));
        let approved = csr(json!([{"type": "Approved", "status": "True"}]));
        let approval = CsrWrite {
            approval_conditions: true,
            certificate: false,
        };
        assert!(errors(&approved, &none, approval).is_empty());
        let status = CsrWrite {
            approval_conditions: false,
            certificate: true,
        };
        assert_eq!(
            errors(&approved, &none, status),
            [r#"status.conditions: Forbidden: updates may not add a condition of type "Approved""#]
        );
        assert_eq!(
            errors(&none, &approved, approval),
            [r#"status.conditions: Forbidden: updates may not remove a condition of type "Approved""#]
        );
        let both = csr(json!([
            {"type": "Approved", "status": "True"},
            {"type": "Denied", "status": "True"}
        ]));
        assert!(errors(&both, &approved, approval)[0].contains("mutually exclusive"));
        let false_approval = csr(json!([{"type": "Approved", "status": "False"}]));
        assert!(errors(&false_approval, &none, approval)[0].contains("Unsupported value"));
        let custom = csr(json!([{"type": "ApprovedFake", "status": "True"}]));
        assert!(errors(&custom, &none, approval).is_empty());
    }

    #[test]
    fn certificates_are_set_once_through_status() {
        let approved = csr(json!([{"type": "Approved", "status": "True"}]));
        let mut issued = approved.clone();
        issued["status"]["certificate"] = json!(base64::engine::general_purpose::STANDARD.encode("junk"));
        let status = CsrWrite {
            approval_conditions: false,
            certificate: true,
        };
        assert_eq!(
            errors(&issued, &approved, status),
            [
                "status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block"
            ]
        );
        assert_eq!(
            errors(&issued, &approved, CsrWrite::default())[0],
            "status.certificate: Forbidden: updates may not set certificate content"
        );
    }
}
