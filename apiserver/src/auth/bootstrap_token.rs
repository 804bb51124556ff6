//! Bootstrap tokens (`--enable-bootstrap-token-auth`): a bearer token `<id>.<secret>` (6 and 16
//! lower-case letters or digits) is valid while the Secret `kube-system/bootstrap-token-<id>` of
//! type `bootstrap.kubernetes.io/token` holds that id and secret, allows authentication
//! (`usage-bootstrap-authentication: "true"`) and has not expired. Its user is
//! `system:bootstrap:<id>` in `system:bootstrappers` and the token's `auth-extra-groups`.

use base64::Engine;
use serde_json::Value;

use super::serviceaccount::TokenError;
use crate::ApiServer;
use crate::registry::subresource::UserInfo;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The prefix of their Secrets' names.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The group every bootstrap token user is in.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// The id and secret of a token of the bootstrap form, if it is one.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// An extra group must be `system:bootstrappers:` followed by lower-case letters, digits, `:`
/// and `-`, ending in a letter or digit.
fn valid_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Checks the token `id`.`secret` against its Secret at `now` (RFC 3339 comparisons are done on
/// parsed times); the user it stands for.
pub fn check(
    secret_obj: &Value,
    id: &str,
    secret: &str,
    now: jiff::Timestamp,
) -> Result<UserInfo, TokenError> {
    let stale = |why: &str| TokenError::Stale(why.to_string());
    if secret_obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Err(stale("the token's secret is being deleted"));
    }
    if secret_obj.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(stale("the token's secret has the wrong type"));
    }
    let data = |key: &str| -> Option<String> {
        let b64 = secret_obj.pointer(&format!("/data/{key}"))?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        String::from_utf8(bytes).ok()
    };
    let stored = data("token-secret").unwrap_or_default();
    if !ring_eq(stored.as_bytes(), secret.as_bytes()) {
        return Err(stale("the token does not match its secret"));
    }
    if data("token-id").as_deref() != Some(id) {
        return Err(stale("the token id does not match its secret"));
    }
    if let Some(expiration) = data("expiration") {
        let at: jiff::Timestamp = expiration
            .parse()
            .map_err(|_| stale("the token's expiration is not an RFC 3339 time"))?;
        if at < now {
            return Err(stale("the token has expired"));
        }
    }
    if data("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(stale("the token may not be used for authentication"));
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    for group in data("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !valid_group(group) {
            return Err(stale("the token has an invalid extra group"));
        }
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_string());
        }
    }
    Ok(UserInfo {
        name: format!("system:bootstrap:{id}"),
        groups,
        ..UserInfo::default()
    })
}

/// Compares two secrets in time independent of where they differ.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticates a bootstrap token, reading its Secret.
pub async fn authenticate(api: &ApiServer, id: &str, secret: &str) -> Result<UserInfo, TokenError> {
    let desc = api
        .table
        .lookup("", "v1", "secrets")
        .ok_or_else(|| TokenError::Stale("secrets are not served".into()))?;
    let obj = api
        .registry
        .get(&desc, "kube-system", &format!("{SECRET_PREFIX}{id}"))
        .await
        .map_err(|_| TokenError::Stale(format!("no secret for bootstrap token {id}")))?;
    check(&obj, id, secret, jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = serde_json::Map::new();
        for (k, v) in [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
        ]
        .iter()
        .chain(extra)
        {
            data.insert(k.to_string(), json!(b64(v)));
        }
        json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
               "type": SECRET_TYPE, "data": data})
    }

    #[test]
    fn only_the_bootstrap_form_is_parsed() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcdef.0123456789abcde"), None);
        assert_eq!(parse("eyJhbGciOi.x.y"), None);
    }

    #[test]
    fn a_valid_token_is_a_bootstrapper_with_its_extra_groups() {
        let now = jiff::Timestamp::now();
        let s = secret(&[(
            "auth-extra-groups",
            "system:bootstrappers:keelson:default-node-token",
        )]);
        let user = check(&s, "abcdef", "0123456789abcdef", now).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:keelson:default-node-token"
            ]
        );
    }

    #[test]
    fn wrong_expired_unusable_or_badly_grouped_tokens_fail() {
        let now = jiff::Timestamp::now();
        assert!(check(&secret(&[]), "abcdef", "0123456789abcdee", now).is_err());
        let expired = secret(&[("expiration", "2020-01-01T00:00:00Z")]);
        assert!(check(&expired, "abcdef", "0123456789abcdef", now).is_err());
        let future = secret(&[("expiration", "2999-01-01T00:00:00Z")]);
        assert!(check(&future, "abcdef", "0123456789abcdef", now).is_ok());
        let mut unusable = secret(&[]);
        unusable["data"]["usage-bootstrap-authentication"] = json!(b64("false"));
        assert!(check(&unusable, "abcdef", "0123456789abcdef", now).is_err());
        let bad_group = secret(&[("auth-extra-groups", "system:masters")]);
        assert!(check(&bad_group, "abcdef", "0123456789abcdef", now).is_err());
        let mut wrong_type = secret(&[]);
        wrong_type["type"] = json!("Opaque");
        assert!(check(&wrong_type, "abcdef", "0123456789abcdef", now).is_err());
    }
}
