//! What a CertificateSigningRequest asks for, read from its PEM `spec.request`, and upstream's
//! rules for the built-in signers (`k8s.io/kubernetes/pkg/apis/certificates` validation):
//! which subjects, names and usages a kubelet client, kubelet serving or API-server client
//! certificate may have.

use std::collections::BTreeSet;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Signer of client certificates for the API server.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Signer of the kubelets' client certificates.
pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Signer of the kubelets' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The signer of requests that predate signer names.
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// The parts of a PKCS#10 request the signer rules look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Subject common name.
    pub common_name: String,
    /// Subject organizations.
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<String>,
    /// Email subject alternative names.
    pub emails: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// The key is RSA (key encipherment is then expected).
    pub rsa: bool,
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// No PEM `CERTIFICATE REQUEST` block.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotPem,
    /// The DER inside does not parse.
    #[error("unable to parse certificate request: {0}")]
    Der(String),
}

/// Reads the request in `pem` (the bytes of `spec.request`).
pub fn parse(pem: &[u8]) -> Result<Request, ParseError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| ParseError::NotPem)?;
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(ParseError::NotPem);
    }
    let (_, csr) =
        X509CertificationRequest::from_der(&block.contents).map_err(|e| ParseError::Der(e.to_string()))?;
    let info = &csr.certification_request_info;
    let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| attr.as_str().ok().map(str::to_string);
    let mut request = Request {
        common_name: info
            .subject
            .iter_common_name()
            .next()
            .and_then(text)
            .unwrap_or_default(),
        organizations: info.subject.iter_organization().filter_map(text).collect(),
        rsa: info.subject_pki.algorithm.algorithm == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION,
        ..Request::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => request.dns_names.push((*d).to_string()),
                    GeneralName::RFC822Name(e) => request.emails.push((*e).to_string()),
                    GeneralName::URI(u) => request.uris.push((*u).to_string()),
                    GeneralName::IPAddress(raw) => request.ip_addresses.push(ip_text(raw)),
                    _ => {}
                }
            }
        }
    }
    Ok(request)
}

fn ip_text(raw: &[u8]) -> String {
    match raw.len() {
        4 => std::net::Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(raw);
            std::net::Ipv6Addr::from(b).to_string()
        }
        _ => format!("{raw:?}"),
    }
}

fn usage_set(usages: &[String]) -> BTreeSet<&str> {
    usages.iter().map(String::as_str).collect()
}

fn is_node_subject(req: &Request) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !req.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// The usages a node certificate may ask for: with or without key encipherment (which only
/// RSA keys need).
fn node_usages_match(usages: &[String], auth: &str) -> bool {
    let got = usage_set(usages);
    got == BTreeSet::from(["digital signature", "key encipherment", auth])
        || got == BTreeSet::from(["digital signature", auth])
}

/// Upstream's `ValidateKubeletClientCSR`.
pub fn validate_kubelet_client(req: &Request, usages: &[String]) -> Result<(), String> {
    is_node_subject(req)?;
    if !req.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !node_usages_match(usages, "client auth") {
        return Err(format!(
            "usages did not match [\"digital signature\" \"key encipherment\" \"client auth\"] or [\"digital signature\" \"client auth\"]: {usages:?}"
        ));
    }
    Ok(())
}

/// Upstream's `ValidateKubeletServingCSR`.
pub fn validate_kubelet_serving(req: &Request, usages: &[String]) -> Result<(), String> {
    if !node_usages_match(usages, "server auth") {
        return Err(format!(
            "usages did not match [\"digital signature\" \"key encipherment\" \"server auth\"] or [\"digital signature\" \"server auth\"]: {usages:?}"
        ));
    }
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    is_node_subject(req)
}

/// The usages the `kube-apiserver-client` signer accepts.
const API_SERVER_CLIENT_USAGES: [&str; 3] = ["client auth", "digital signature", "key encipherment"];

/// Upstream's check for the `kube-apiserver-client` signer: only client usages.
pub fn validate_apiserver_client(usages: &[String]) -> Result<(), String> {
    match usages
        .iter()
        .find(|u| !API_SERVER_CLIENT_USAGES.contains(&u.as_str()))
    {
        Some(bad) => Err(format!("invalid usage for client certificate: {bad}")),
        None if !usages.iter().any(|u| u == "client auth") => {
            Err("missing required usage for client certificate: client auth".into())
        }
        None => Ok(()),
    }
}

/// Checks `req` against the rules of `signer`; `None` when this manager does not sign for it.
pub fn validate_for_signer(signer: &str, req: &Request, usages: &[String]) -> Option<Result<(), String>> {
    Some(match signer {
        KUBE_APISERVER_CLIENT => validate_apiserver_client(usages),
        KUBELET_CLIENT => validate_kubelet_client(req, usages),
        KUBELET_SERVING => validate_kubelet_serving(req, usages),
        LEGACY_UNKNOWN => Ok(()),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn usages(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn node(cn: &str) -> Request {
        Request {
            common_name: cn.into(),
            organizations: vec!["system:nodes".into()],
            ..Request::default()
        }
    }

    /// A real PKCS#10 request, as a kubelet would send it.
    pub(crate) fn pem_request(cn: &str, orgs: &[&str], dns: &[&str]) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        (params.serialize_request(&key).unwrap().pem().unwrap(), key)
    }

    #[test]
    fn a_request_is_read_from_pem() {
        let (pem, _) = pem_request("system:node:n1", &["system:nodes"], &["n1.example", "10.0.0.7"]);
        let req = parse(pem.as_bytes()).unwrap();
        assert_eq!(req.common_name, "system:node:n1");
        assert_eq!(req.organizations, ["system:nodes"]);
        assert_eq!(req.dns_names, ["n1.example"]);
        assert_eq!(req.ip_addresses, ["10.0.0.7"]);
        assert!(!req.rsa, "rcgen's default key is ECDSA");
        assert!(matches!(parse(b"junk"), Err(ParseError::NotPem)));
    }

    #[test]
    fn kubelet_client_rules() {
        let ok = usages(&["digital signature", "client auth"]);
        assert_eq!(validate_kubelet_client(&node("system:node:a"), &ok), Ok(()));
        let rsa = usages(&["key encipherment", "digital signature", "client auth"]);
        assert_eq!(validate_kubelet_client(&node("system:node:a"), &rsa), Ok(()));
        assert!(validate_kubelet_client(&node("alice"), &ok).is_err());
        let mut with_san = node("system:node:a");
        with_san.dns_names.push("a".into());
        assert!(validate_kubelet_client(&with_san, &ok).is_err());
        let serving = usages(&["digital signature", "server auth"]);
        assert!(validate_kubelet_client(&node("system:node:a"), &serving).is_err());
        let mut other_org = node("system:node:a");
        other_org.organizations.push("admins".into());
        assert!(validate_kubelet_client(&other_org, &ok).is_err());
    }

    #[test]
    fn kubelet_serving_rules() {
        let ok = usages(&["digital signature", "key encipherment", "server auth"]);
        let mut req = node("system:node:a");
        assert_eq!(
            validate_kubelet_serving(&req, &ok),
            Err("DNS or IP subjectAltName is required".into())
        );
        req.ip_addresses.push("10.0.0.1".into());
        assert_eq!(validate_kubelet_serving(&req, &ok), Ok(()));
        req.emails.push("a@b".into());
        assert!(validate_kubelet_serving(&req, &ok).is_err());
    }

    #[test]
    fn apiserver_client_rules() {
        assert_eq!(validate_apiserver_client(&usages(&["client auth"])), Ok(()));
        assert_eq!(
            validate_apiserver_client(&usages(&["client auth", "server auth"])),
            Err("invalid usage for client certificate: server auth".into())
        );
        assert!(validate_apiserver_client(&usages(&["digital signature"])).is_err());
        assert!(validate_for_signer("example.com/other", &Request::default(), &[]).is_none());
        assert_eq!(
            validate_for_signer(LEGACY_UNKNOWN, &Request::default(), &[]),
            Some(Ok(()))
        );
    }
}
