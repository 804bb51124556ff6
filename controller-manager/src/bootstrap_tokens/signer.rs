//! The bootstrap signer (upstream `bootstrap-signer-controller`): signs the `kubeconfig` of
//! the `kube-public/cluster-info` ConfigMap with every bootstrap token allowed to sign
//! (`usage-bootstrap-signing`), as `jws-kubeconfig-<token id>` entries (detached HS256 JWS
//! keyed by the token secret), so a node holding a token can trust the CA it reads there.
//! Entries of tokens that are gone, expired or no longer allowed are removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use super::{NAMESPACE, Token, token_of};
use crate::controllers::{ControllerContext, ControllerError};
use crate::informer::{Change, Store};
use crate::workqueue::{RateLimits, WorkQueue, run_workers};

/// The signed ConfigMap's namespace.
pub const PUBLIC_NAMESPACE: &str = "kube-public";
/// Its name.
pub const CLUSTER_INFO: &str = "cluster-info";
/// The key whose value is signed.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// The prefix of signature keys.
pub const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";

/// The detached JWS (`header..signature`) of `content` with the token: HS256, key id = token id.
pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(format!(r#"{{"alg":"HS256","kid":"{token_id}"}}"#));
    let input = format!("{header}.{}", b64.encode(content));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let signature = b64.encode(ring::hmac::sign(&key, input.as_bytes()).as_ref());
    format!("{header}..{signature}")
}

/// What the ConfigMap's data must become with `tokens` at `now`; `None` when it is right.
pub fn desired(cm: &ConfigMap, tokens: &[Token], now: Timestamp) -> Option<BTreeMap<String, String>> {
    let data = cm.data.clone().unwrap_or_default();
    let content = data.get(KUBECONFIG_KEY)?;
    let mut want: BTreeMap<String, String> = data
        .iter()
        .filter(|(k, _)| !k.starts_with(SIGNATURE_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for t in tokens {
        if t.signing && t.expiration.is_none_or(|e| e > now) {
            want.insert(
                format!("{SIGNATURE_PREFIX}{}", t.id),
                detached_signature(content, &t.id, &t.secret),
            );
        }
    }
    (want != data).then_some(want)
}

/// Runs the signer until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let secrets = ctx.informers.informer::<Secret>();
    let config_maps = ctx.informers.informer::<ConfigMap>();
    // One key: every relevant change re-signs the one ConfigMap.
    let queue = WorkQueue::with_metrics(
        "bootstrap_signer_queue",
        RateLimits::default(),
        ctx.metrics.clone(),
    );
    let q = queue.clone();
    secrets.add_handler(move |change| {
        let s = match change {
            Change::Added(s) | Change::Deleted(s) | Change::Updated { new: s, .. } => s,
        };
        if s.metadata.namespace.as_deref() == Some(NAMESPACE)
            && s.type_.as_deref() == Some(super::SECRET_TYPE)
        {
            q.add(CLUSTER_INFO);
        }
    });
    let q = queue.clone();
    config_maps.add_handler(move |change| {
        let cm = match change {
            Change::Added(c) | Change::Deleted(c) | Change::Updated { new: c, .. } => c,
        };
        if cm.metadata.namespace.as_deref() == Some(PUBLIC_NAMESPACE)
            && cm.metadata.name.as_deref() == Some(CLUSTER_INFO)
        {
            q.add(CLUSTER_INFO);
        }
    });
    let (secret_store, cm_store) = (secrets.store(), config_maps.store());
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = async { secrets.wait_synced().await; config_maps.wait_synced().await } => {}
    }
    queue.add(CLUSTER_INFO);
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), PUBLIC_NAMESPACE);
    run_workers(queue, 1, None, ctx.shutdown.clone(), move |_| {
        let (secrets, cms, api) = (secret_store.clone(), cm_store.clone(), api.clone());
        async move { sign(&secrets, &cms, &api).await }
    })
    .await;
    Ok(())
}

async fn sign(
    secrets: &Arc<Store<Secret>>,
    cms: &Arc<Store<ConfigMap>>,
    api: &Api<ConfigMap>,
) -> Result<(), kube::Error> {
    let Some(cm) = cms.get(PUBLIC_NAMESPACE, CLUSTER_INFO) else {
        return Ok(());
    };
    let tokens: Vec<Token> = secrets
        .list(NAMESPACE)
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter_map(|s| token_of(s))
        .collect();
    let Some(data) = desired(&cm, &tokens, Timestamp::now()) else {
        return Ok(());
    };
    let mut updated = (*cm).clone();
    updated.data = Some(data);
    api.replace(CLUSTER_INFO, &PostParams::default(), &updated)
        .await?;
    tracing::info!("signed cluster-info with the bootstrap tokens");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, signing: bool, expiration: Option<&str>) -> Token {
        Token {
            id: id.into(),
            secret: "0123456789abcdef".into(),
            expiration: expiration.map(|e| e.parse().unwrap()),
            signing,
        }
    }

    #[test]
    fn the_signature_is_a_detached_hs256_jws_with_the_token_id() {
        let sig = detached_signature("kubeconfig text", "abcdef", "0123456789abcdef");
        let (header, rest) = sig.split_once("..").unwrap();
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        assert_eq!(decoded, br#"{"alg":"HS256","kid":"abcdef"}"#);
        assert_eq!(rest.len(), 43, "a base64url SHA-256 MAC");
        assert_ne!(
            sig,
            detached_signature("other text", "abcdef", "0123456789abcdef")
        );
    }

    #[test]
    fn signatures_follow_the_signing_tokens() {
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut cm = ConfigMap {
            data: Some(
                [
                    ("kubeconfig".to_string(), "kc".to_string()),
                    ("jws-kubeconfig-gone00".to_string(), "old".to_string()),
                ]
                .into(),
            ),
            ..ConfigMap::default()
        };
        let tokens = [
            token("abcdef", true, None),
            token("nosign", false, None),
            token("expird", true, Some("2026-01-01T00:00:00Z")),
        ];
        let want = desired(&cm, &tokens, now).unwrap();
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            ["jws-kubeconfig-abcdef", "kubeconfig"]
        );
        cm.data = Some(want);
        assert_eq!(desired(&cm, &tokens, now), None, "already right");
        let unsigned = ConfigMap::default();
        assert_eq!(desired(&unsigned, &tokens, now), None, "nothing to sign");
    }
}
