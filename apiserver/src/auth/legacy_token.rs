//! Legacy secret-based ServiceAccount tokens (upstream's `kubernetes/serviceaccount` JWTs kept in
//! `kubernetes.io/service-account-token` Secrets): minting one for a Secret, and authenticating
//! one only while its Secret still holds exactly that token and its ServiceAccount still exists
//! with the uid the token names.

use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::serviceaccount::{SA_PREFIX, Signer, TokenError};
use crate::ApiServer;
use crate::registry::meta_str;
use crate::registry::subresource::UserInfo;

/// The issuer (`iss`) of legacy tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The Secret type that holds a legacy token.
pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The Secret label upstream's token cleaner sets on a token it has invalidated.
pub const INVALID_SINCE_LABEL: &str = "kubernetes.io/legacy-token-invalid-since";

/// The claims of a legacy token (upstream's names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    /// Always [`LEGACY_ISSUER`].
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// The namespace of the ServiceAccount and the Secret.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace", default)]
    pub namespace: String,
    /// The Secret that holds the token.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name", default)]
    pub secret_name: String,
    /// The ServiceAccount.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name", default)]
    pub service_account_name: String,
    /// The ServiceAccount's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid", default)]
    pub service_account_uid: String,
}

/// Mints the legacy token of Secret `secret_name` for the ServiceAccount `service_account_name`
/// (uid `service_account_uid`) in `namespace`, signed with `signer`'s key. The token
/// controller stores it as the Secret's `data.token`.
pub fn mint(
    signer: &Signer,
    namespace: &str,
    service_account_name: &str,
    service_account_uid: &str,
    secret_name: &str,
) -> Result<String, TokenError> {
    let claims = LegacyClaims {
        iss: LEGACY_ISSUER.to_string(),
        sub: format!("{SA_PREFIX}{namespace}:{service_account_name}"),
        namespace: namespace.to_string(),
        secret_name: secret_name.to_string(),
        service_account_name: service_account_name.to_string(),
        service_account_uid: service_account_uid.to_string(),
    };
    Ok(signer.sign_claims(&claims)?)
}

/// True when `token` looks like a legacy token (its unverified issuer is [`LEGACY_ISSUER`]):
/// which authenticator gets to verify it.
pub fn is_legacy(token: &str) -> bool {
    let Some(payload) = token.split('.').nth(1) else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|claims| claims.get("iss").and_then(Value::as_str) == Some(LEGACY_ISSUER))
}

/// Verifies a legacy token's signature and claims (no Secret or ServiceAccount lookups).
pub fn verify(signer: &Signer, token: &str) -> Result<LegacyClaims, TokenError> {
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[LEGACY_ISSUER]);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims(&["iss", "sub"]);
    let claims: LegacyClaims = signer.decode_claims(token, &v)?;
    let missing = |what: &str| TokenError::Stale(format!("{what} claim is missing"));
    if claims.namespace.is_empty() {
        return Err(missing("namespace"));
    }
    if claims.secret_name.is_empty() {
        return Err(missing("secretName"));
    }
    if claims.service_account_name.is_empty() {
        return Err(missing("serviceAccountName"));
    }
    if claims.service_account_uid.is_empty() {
        return Err(missing("serviceAccountUID"));
    }
    if claims.sub != format!("{SA_PREFIX}{}:{}", claims.namespace, claims.service_account_name) {
        return Err(TokenError::Stale("sub claim is invalid".into()));
    }
    Ok(claims)
}

async fn get(api: &ApiServer, resource: &str, ns: &str, name: &str) -> Option<Value> {
    let desc = api.table.lookup("", "v1", resource)?;
    let obj = api.registry.get(&desc, ns, name).await.ok()?;
    let deleting = obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    (!deleting).then_some(obj)
}

/// Authenticates a legacy token: a valid signature, then its Secret (of the ServiceAccount
/// token type, holding exactly this token, not marked invalid) and its ServiceAccount (same
/// uid) must exist.
pub async fn authenticate(api: &ApiServer, token: &str) -> Result<UserInfo, TokenError> {
    let claims = verify(&api.auth.signer(), token)?;
    let ns = &claims.namespace;
    let invalidated = || TokenError::Stale("token has been invalidated".into());
    let secret = get(api, "secrets", ns, &claims.secret_name)
        .await
        .ok_or_else(invalidated)?;
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(TokenError::Stale(format!(
            "secret {ns}/{} is not of type {SECRET_TYPE}",
            claims.secret_name
        )));
    }
    if secret
        .pointer("/metadata/labels")
        .and_then(|l| l.get(INVALID_SINCE_LABEL))
        .is_some()
    {
        return Err(invalidated());
    }
    let stored = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    if stored.as_deref() != Some(token.as_bytes()) {
        return Err(TokenError::Stale("token does not match server's copy".into()));
    }
    let sa = get(api, "serviceaccounts", ns, &claims.service_account_name)
        .await
        .ok_or_else(|| {
            TokenError::Stale(format!(
                "service account {ns}/{} has been deleted",
                claims.service_account_name
            ))
        })?;
    let uid = meta_str(&sa, "uid");
    if uid != claims.service_account_uid {
        return Err(TokenError::Stale(format!(
            "service account UID ({uid}) does not match claim ({})",
            claims.service_account_uid
        )));
    }
    Ok(UserInfo {
        name: claims.sub.clone(),
        uid: uid.to_string(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
        ],
        extra: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_with_upstream_claims() {
        let s = Signer::ephemeral("https://kubernetes.default.svc.cluster.local");
        let t = mint(&s, "ns", "bot", "uid-1", "bot-token").unwrap();
        assert!(is_legacy(&t));
        let c = verify(&s, &t).unwrap();
        assert_eq!(c.sub, "system:serviceaccount:ns:bot");
        assert_eq!(
            (c.secret_name.as_str(), c.service_account_uid.as_str()),
            ("bot-token", "uid-1")
        );
        let payload = t.split('.').nth(1).unwrap();
        let raw: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(raw["iss"], "kubernetes/serviceaccount");
        assert_eq!(raw["kubernetes.io/serviceaccount/namespace"], "ns");
        assert_eq!(raw["kubernetes.io/serviceaccount/secret.name"], "bot-token");
        assert_eq!(raw["kubernetes.io/serviceaccount/service-account.name"], "bot");
        assert_eq!(raw["kubernetes.io/serviceaccount/service-account.uid"], "uid-1");
        assert!(raw.get("exp").is_none());
        // Another key.
        let other = Signer::ephemeral("x");
        assert!(verify(&other, &t).is_err());
    }

    #[test]
    fn bad_claims_and_bound_tokens_are_not_legacy() {
        let s = Signer::ephemeral("https://i");
        let claims = |sub: &str, ns: &str| LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            sub: sub.into(),
            namespace: ns.into(),
            secret_name: "s".into(),
            service_account_name: "bot".into(),
            service_account_uid: "u".into(),
        };
        let wrong_sub = s
            .sign_claims(&claims("system:serviceaccount:ns:admin", "ns"))
            .unwrap();
        assert!(
            verify(&s, &wrong_sub)
                .unwrap_err()
                .to_string()
                .contains("sub claim is invalid")
        );
        let no_ns = s.sign_claims(&claims("system:serviceaccount::bot", "")).unwrap();
        assert!(
            verify(&s, &no_ns)
                .unwrap_err()
                .to_string()
                .contains("namespace claim is missing")
        );
        for t in ["", "a.b.c", "x.eyJpc3MiOjF9.y", "not a token"] {
            assert!(!is_legacy(t), "{t}");
        }
        let other_issuer = serde_json::json!({"iss": "https://i", "sub": "x"});
        assert!(!is_legacy(&s.sign_claims(&other_issuer).unwrap()));
    }
}
