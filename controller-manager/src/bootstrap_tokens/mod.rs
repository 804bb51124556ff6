//! Bootstrap tokens (`bootstrap.kubernetes.io/token` Secrets in kube-system): the signer
//! ([`signer`]) that lets joining nodes trust `kube-public/cluster-info`, and the cleaner
//! ([`cleaner`]) that deletes expired tokens. Both are off by default, as upstream.

pub mod cleaner;
pub mod signer;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Where their Secrets live.
pub const NAMESPACE: &str = "kube-system";
/// The prefix of their Secrets' names.
pub const SECRET_PREFIX: &str = "bootstrap-token-";

/// A bootstrap token as its Secret describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// `token-id` (6 characters).
    pub id: String,
    /// `token-secret` (16 characters).
    pub secret: String,
    /// `expiration`, when set and valid.
    pub expiration: Option<Timestamp>,
    /// `usage-bootstrap-signing: "true"`.
    pub signing: bool,
}

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The value of `key` in the Secret's data (or stringData), as text.
fn data(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok();
    }
    secret.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

/// The token a Secret holds; `None` when it is not a well-formed bootstrap token Secret.
pub fn token_of(secret: &Secret) -> Option<Token> {
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return None;
    }
    let id = data(secret, "token-id")?;
    let token_secret = data(secret, "token-secret")?;
    if !is_token_part(&id, 6) || !is_token_part(&token_secret, 16) {
        return None;
    }
    if secret.metadata.name.as_deref() != Some(&format!("{SECRET_PREFIX}{id}")) {
        return None;
    }
    Some(Token {
        id,
        secret: token_secret,
        expiration: data(secret, "expiration").and_then(|e| e.parse().ok()),
        signing: data(secret, "usage-bootstrap-signing").as_deref() == Some("true"),
    })
}

/// How long until the Secret's token expires at `now`: `Some(ZERO)` when it has, `None` when
/// it never does (or its expiration is not a time, which upstream also leaves alone).
pub fn time_left(secret: &Secret, now: Timestamp) -> Option<Duration> {
    let at: Timestamp = data(secret, "expiration")?.parse().ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// A bootstrap token Secret named `name` with `entries` as data (tests).
#[cfg(test)]
pub(crate) fn secret_with(name: &str, entries: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_tokens_are_read() {
        let s = secret_with(
            "bootstrap-token-abcdef",
            &[
                ("token-id", "abcdef"),
                ("token-secret", "0123456789abcdef"),
                ("usage-bootstrap-signing", "true"),
                ("expiration", "2030-01-01T00:00:00Z"),
            ],
        );
        let t = token_of(&s).unwrap();
        assert_eq!(t.id, "abcdef");
        assert!(t.signing);
        assert!(t.expiration.is_some());
        let misnamed = secret_with(
            "other",
            &[("token-id", "abcdef"), ("token-secret", "0123456789abcdef")],
        );
        assert_eq!(token_of(&misnamed), None);
        let short = secret_with(
            "bootstrap-token-abc",
            &[("token-id", "abc"), ("token-secret", "0123456789abcdef")],
        );
        assert_eq!(token_of(&short), None);
    }

    #[test]
    fn time_left_until_expiration() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let s = |e: &str| secret_with("bootstrap-token-abcdef", &[("expiration", e)]);
        assert_eq!(
            time_left(&s("2026-01-01T01:00:00Z"), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(time_left(&s("2025-01-01T00:00:00Z"), now), Some(Duration::ZERO));
        assert_eq!(time_left(&s("soon"), now), None);
        assert_eq!(time_left(&secret_with("x", &[]), now), None);
    }
}
