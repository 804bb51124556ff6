//! Impersonation: `Impersonate-User`, `-Group`, `-Uid` and `-Extra-<key>` headers replace the
//! request's user when RBAC allows the real user the `impersonate` verb on each of them (users,
//! groups and serviceaccounts in the core group; uids and userextras in
//! `authentication.k8s.io`).

use std::collections::BTreeMap;

use http::HeaderMap;

use super::serviceaccount::SA_PREFIX;
use super::{ANONYMOUS, AUTHENTICATED, Attributes, UNAUTHENTICATED};
use crate::ApiServer;
use crate::error::ApiError;
use crate::registry::subresource::UserInfo;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Percent-decodes an extra key as upstream does for header names.
fn unescape(key: &str) -> String {
    form_urlencoded::parse(format!("k={}", key.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| key.to_string(), |(_, v)| v.into_owned())
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// Applies the impersonation headers: the user to act as, or 403 when `user` may not, or the
/// request unchanged when there are none.
pub fn apply(api: &ApiServer, headers: &HeaderMap, user: UserInfo) -> Result<UserInfo, ApiError> {
    let name = values(headers, USER).first().map(|s| s.to_string());
    let groups: Vec<String> = values(headers, GROUP).iter().map(|s| s.to_string()).collect();
    let uid = values(headers, UID).first().map(|s| s.to_string());
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in headers {
        if let Some(key) = header.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = value.to_str()
        {
            extra.entry(unescape(key)).or_default().push(v.to_string());
        }
    }
    let Some(name) = name else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, extra or uid without impersonating a user",
        ));
    };
    let check = |resource: &str, group: &str, namespace: &str, obj: &str, sub: &str| {
        let attrs = Attributes {
            user: user.clone(),
            verb: "impersonate".into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: obj.into(),
            namespace: namespace.into(),
            ..Default::default()
        };
        if api.auth.authorize(&attrs) {
            Ok(())
        } else {
            Err(attrs.forbidden())
        }
    };
    let mut target_groups = groups.clone();
    match name.strip_prefix(SA_PREFIX).and_then(|rest| rest.split_once(':')) {
        Some((ns, sa)) => {
            check("serviceaccounts", "", ns, sa, "")?;
            if groups.is_empty() {
                target_groups = vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                ];
            }
        }
        None => check("users", "", "", &name, "")?,
    }
    for g in &groups {
        check("groups", "", "", g, "")?;
    }
    if let Some(uid) = &uid {
        check("uids", "authentication.k8s.io", "", uid, "")?;
    }
    for (key, vals) in &extra {
        for v in vals {
            check("userextras", "authentication.k8s.io", "", v, key)?;
        }
    }
    let everyone = if name == ANONYMOUS {
        UNAUTHENTICATED
    } else {
        AUTHENTICATED
    };
    if !target_groups.iter().any(|g| g == everyone) {
        target_groups.push(everyone.into());
    }
    tracing::debug!(user = %user.name, as_user = %name, "impersonating");
    Ok(UserInfo {
        name,
        groups: target_groups,
        uid: uid.unwrap_or_default(),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_are_unescaped() {
        assert_eq!(unescape("scopes"), "scopes");
        assert_eq!(unescape("example.com%2fteam"), "example.com/team");
    }
}
