//! The approving controller (upstream `certificatesigningrequest-approving-controller`):
//! approves kubelet client certificate requests whose requester may ask for them, as a
//! SubjectAccessReview decides: a node renewing its own certificate
//! (`certificatesigningrequests/selfnodeclient`) or a new node joining
//! (`certificatesigningrequests/nodeclient`). Every other request waits for a person.

use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use super::{conditions, request};
use crate::controllers::{ControllerContext, ControllerError};
use crate::informer::{Change, Store};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};

/// A kind of request this controller recognizes.
#[derive(Debug, PartialEq, Eq)]
pub struct Recognizer {
    /// The subresource a SubjectAccessReview asks about.
    pub subresource: &'static str,
    /// The approval condition's message.
    pub message: &'static str,
}

const SELF_NODE_CLIENT: Recognizer = Recognizer {
    subresource: "selfnodeclient",
    message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
};

const NODE_CLIENT: Recognizer = Recognizer {
    subresource: "nodeclient",
    message: "Auto approving kubelet client certificate after SubjectAccessReview.",
};

/// The recognizers that apply to `csr`, in the order they are tried; empty when it is not a
/// pending, well-formed kubelet client request.
pub fn recognize(csr: &CertificateSigningRequest) -> Vec<&'static Recognizer> {
    if conditions::is_decided(csr) || csr.spec.signer_name != request::KUBELET_CLIENT {
        return Vec::new();
    }
    let Ok(parsed) = request::parse(&csr.spec.request.0) else {
        return Vec::new();
    };
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if request::validate_kubelet_client(&parsed, &usages).is_err() {
        return Vec::new();
    }
    let mut found = Vec::new();
    if csr.spec.username.as_deref() == Some(parsed.common_name.as_str()) {
        found.push(&SELF_NODE_CLIENT);
    }
    found.push(&NODE_CLIENT);
    found
}

/// The review asking whether the requester may create `subresource` requests.
pub fn review(csr: &CertificateSigningRequest, subresource: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            groups: csr.spec.groups.clone(),
            uid: csr.spec.uid.clone(),
            extra: csr.spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(subresource.into()),
                verb: Some("create".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Why a request stays pending or the API failed.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Recognized, but the requester may not ask for it (retried later, as upstream).
    #[error("recognized csr {name:?} as {kinds:?} but subject access review was not approved")]
    NotAllowed { name: String, kinds: Vec<&'static str> },
}

/// Runs the approving controller until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let informer = ctx.informers.informer::<CertificateSigningRequest>();
    let queue = WorkQueue::with_metrics("csrapproving", RateLimits::default(), ctx.metrics.clone());
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
    let client = ctx.client.clone();
    run_workers(queue, 5, None, ctx.shutdown.clone(), move |name| {
        let (store, client) = (store.clone(), client.clone());
        async move { sync(&store, &client, &name).await }
    })
    .await;
    Ok(())
}

async fn sync(
    store: &Arc<Store<CertificateSigningRequest>>,
    client: &kube::Client,
    name: &str,
) -> Result<(), SyncError> {
    let Some(csr) = store.get("", name) else {
        return Ok(());
    };
    let tried = recognize(&csr);
    if tried.is_empty() {
        return Ok(());
    }
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    for recognizer in &tried {
        let answer = reviews
            .create(&PostParams::default(), &review(&csr, recognizer.subresource))
            .await?;
        if answer.status.is_some_and(|s| s.allowed) {
            let mut approved = (*csr).clone();
            conditions::append(
                &mut approved,
                "Approved",
                "AutoApproved",
                recognizer.message.into(),
                Timestamp::now(),
            );
            let api: Api<CertificateSigningRequest> = Api::all(client.clone());
            api.replace_subresource("approval", name, &PostParams::default(), &approved)
                .await?;
            tracing::info!(csr = name, "approved a kubelet client certificate request");
            return Ok(());
        }
    }
    Err(SyncError::NotAllowed {
        name: name.into(),
        kinds: tried.iter().map(|r| r.subresource).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::request::tests::pem_request;
    use k8s_openapi::ByteString;

    fn csr(cn: &str, username: &str, usages: &[&str]) -> CertificateSigningRequest {
        let (pem, _) = pem_request(cn, &["system:nodes"], &[]);
        let mut csr = CertificateSigningRequest::default();
        csr.spec.signer_name = request::KUBELET_CLIENT.into();
        csr.spec.request = ByteString(pem.into_bytes());
        csr.spec.usages = Some(usages.iter().map(|u| u.to_string()).collect());
        csr.spec.username = Some(username.into());
        csr
    }

    const CLIENT: [&str; 2] = ["digital signature", "client auth"];

    #[test]
    fn a_node_renewing_its_own_certificate_is_tried_as_selfnodeclient_first() {
        let own = csr("system:node:n1", "system:node:n1", &CLIENT);
        assert_eq!(recognize(&own), [&SELF_NODE_CLIENT, &NODE_CLIENT]);
        let joining = csr("system:node:n1", "system:bootstrap:abcdef", &CLIENT);
        assert_eq!(recognize(&joining), [&NODE_CLIENT]);
    }

    #[test]
    fn other_requests_are_left_alone() {
        let serving = csr(
            "system:node:n1",
            "system:node:n1",
            &["digital signature", "server auth"],
        );
        assert!(recognize(&serving).is_empty());
        let mut decided = csr("system:node:n1", "system:node:n1", &CLIENT);
        conditions::append(&mut decided, "Denied", "No", String::new(), Timestamp::now());
        assert!(recognize(&decided).is_empty());
        let mut other_signer = csr("system:node:n1", "system:node:n1", &CLIENT);
        other_signer.spec.signer_name = request::KUBE_APISERVER_CLIENT.into();
        assert!(recognize(&other_signer).is_empty());
    }

    #[test]
    fn the_review_asks_about_the_requester() {
        let mut own = csr("system:node:n1", "system:node:n1", &CLIENT);
        own.spec.groups = Some(vec!["system:nodes".into()]);
        let sar = review(&own, "selfnodeclient");
        assert_eq!(sar.spec.user.as_deref(), Some("system:node:n1"));
        let attrs = sar.spec.resource_attributes.unwrap();
        assert_eq!(attrs.subresource.as_deref(), Some("selfnodeclient"));
        assert_eq!(attrs.verb.as_deref(), Some("create"));
    }
}
