//! The authenticator chain: the verified client certificate first, then a bearer token (static
//! token file, then ServiceAccount JWT), then anonymous when enabled. A bearer token that is
//! offered but not valid is a 401 even with anonymous access on (upstream fails on error).

use http::HeaderMap;

use super::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, bootstrap_token, legacy_token, serviceaccount};
use crate::ApiServer;
use crate::error::ApiError;
use crate::handler::Authenticated;
use crate::registry::subresource::UserInfo;

/// The bearer token of an `Authorization: Bearer <token>` header (`None` when there is none or
/// the header has another scheme).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Authenticates a bearer token: the static token file, then ServiceAccount tokens (bound, or
/// legacy secret-based ones by their issuer), or bootstrap tokens by their form when enabled.
pub async fn token_user(api: &ApiServer, token: &str) -> Option<UserInfo> {
    if let Some(u) = api.auth.tokens.read().lookup(token) {
        return Some(u);
    }
    let bootstrap = bootstrap_token::parse(token).filter(|_| api.config.auth.enable_bootstrap_token_auth);
    let result = if let Some((id, secret)) = bootstrap {
        bootstrap_token::authenticate(api, id, secret).await
    } else if legacy_token::is_legacy(token) {
        legacy_token::authenticate(api, token).await
    } else {
        serviceaccount::authenticate(api, token).await
    };
    match result {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::debug!(error = %e, "bearer token rejected");
            None
        }
    }
}

/// Adds `system:authenticated` unless present.
pub fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.into());
    }
    user
}

/// The anonymous user.
pub fn anonymous() -> UserInfo {
    UserInfo {
        name: ANONYMOUS.into(),
        groups: vec![UNAUTHENTICATED.into()],
        ..Default::default()
    }
}

/// The request's user (`from_tls`: the TLS layer's verified certificate identity, absent for
/// in-process requests; `rejected_cert`: a certificate was offered but did not verify): `Ok(None)` when it carries no credentials and anonymous access is off,
/// 401 when it carries a token that is not valid.
pub async fn authenticate(
    api: &ApiServer,
    from_tls: Option<&Authenticated>,
    rejected_cert: bool,
    headers: &HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    if let Some(Authenticated(Some(user))) = from_tls {
        return Ok(Some(with_authenticated_group(user.clone())));
    }
    if let Some(token) = bearer(headers) {
        return match token_user(api, token).await {
            Some(u) => Ok(Some(with_authenticated_group(u))),
            None => Err(ApiError::unauthorized()),
        };
    }
    if rejected_cert {
        return Err(ApiError::unauthorized());
    }
    // In-process requests (no TLS layer) of a server configured without authentication.
    if from_tls.is_none() && api.config.allow_unauthenticated {
        return Ok(Some(crate::admin_user()));
    }
    Ok(api.config.auth.anonymous.then(anonymous))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        for (v, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            assert_eq!(bearer(&h), want, "{v}");
        }
    }
}
