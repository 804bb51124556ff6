//! Privilege-escalation prevention on RBAC writes: creating or changing a Role/ClusterRole needs
//! every permission it grants (or the `escalate` verb on it); creating or changing a binding needs
//! every permission of the referenced role (or the `bind` verb on that role).

use axum::body::Body;
use axum::extract::Request;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::Attributes;
use super::rbac::{SYSTEM_MASTERS, rules_of, uncovered};
use crate::codec::{self, BodyFormat};
use crate::error::{ApiError, GroupResource};
use crate::patch::{self, PatchType};
use crate::{ApiResult, ApiServer};

const GROUP: &str = "rbac.authorization.k8s.io";

/// Upstream's compact rule text: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub fn compact(rule: &PolicyRule) -> String {
    let list = |xs: &[String]| xs.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(" ");
    let mut parts = Vec::new();
    for (name, values) in [
        ("APIGroups", rule.api_groups.as_deref()),
        ("Resources", rule.resources.as_deref()),
        ("ResourceNames", rule.resource_names.as_deref()),
        ("NonResourceURLs", rule.non_resource_urls.as_deref()),
        ("Verbs", Some(rule.verbs.as_slice())),
    ] {
        if let Some(v) = values.filter(|v| !v.is_empty()) {
            parts.push(format!("{name}:[{}]", list(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// The request body, read and put back for the handler.
pub async fn take_body(req: &mut Request) -> ApiResult<bytes::Bytes> {
    let body = std::mem::take(req.body_mut());
    let bytes = axum::body::to_bytes(body, codec::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::request_entity_too_large(&format!("limit is {} bytes", codec::MAX_BODY_BYTES))
        })?;
    *req.body_mut() = Body::from(bytes.clone());
    Ok(bytes)
}

/// The object the write would store, or `None` when the body cannot be read (the handler then
/// answers the decoding error).
async fn new_object(api: &ApiServer, req: &mut Request, a: &Attributes) -> ApiResult<Option<Value>> {
    let bytes = take_body(req).await?;
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if a.verb != "patch" {
        let Ok(format) = BodyFormat::from_content_type(ct) else {
            return Ok(None);
        };
        return Ok(codec::decode(format, &bytes).ok());
    }
    let Ok(kind) = PatchType::from_content_type(ct) else {
        return Ok(None);
    };
    let Ok((p, _)) = patch::decode(kind, &bytes) else {
        return Ok(None);
    };
    if kind == PatchType::Apply {
        return Ok(Some(p));
    }
    let Some(desc) = api.table.lookup(&a.group, &a.version, &a.resource) else {
        return Ok(None);
    };
    let ns = if desc.namespaced { a.namespace.as_str() } else { "" };
    let Ok(current) = api.registry.get(&desc, ns, &a.name).await else {
        return Ok(None);
    };
    Ok(patch::apply(kind, &current, &p).ok())
}

fn escalation_error(a: &Attributes, name: &str, missing: &[PolicyRule]) -> ApiError {
    let mut lines: Vec<String> = missing.iter().map(compact).collect();
    lines.sort();
    lines.dedup();
    let msg = format!(
        "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
        a.user.name,
        a.user.groups,
        lines.join("\n")
    );
    ApiError::forbidden(&GroupResource::new(GROUP, &a.resource), name, &msg)
}

/// Refuses RBAC writes that would grant permissions the user does not hold.
pub async fn check(api: &ApiServer, req: &mut Request, a: &Attributes) -> ApiResult<()> {
    let is_write = matches!(a.verb.as_str(), "create" | "update" | "patch");
    let is_rbac = a.resource_request
        && a.group == GROUP
        && a.subresource.is_empty()
        && matches!(
            a.resource.as_str(),
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        );
    if !is_write || !is_rbac || a.user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Ok(());
    }
    let Some(obj) = new_object(api, req, a).await? else {
        return Ok(());
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or(&a.name)
        .to_string();
    let allowed = |verb: &str, resource: &str, obj_name: &str| {
        api.auth.authorize(&Attributes {
            user: a.user.clone(),
            verb: verb.into(),
            resource_request: true,
            group: GROUP.into(),
            resource: resource.into(),
            name: obj_name.into(),
            namespace: a.namespace.clone(),
            ..Default::default()
        })
    };
    let owned = api.auth.policy.read().rules_for(&a.user, &a.namespace);
    if a.resource.ends_with("roles") {
        if allowed("escalate", &a.resource, &name) {
            return Ok(());
        }
        // As upstream: an aggregationRule can pull in any rule, so it needs full authority.
        if obj.get("aggregationRule").is_some_and(|r| !r.is_null()) {
            let full = [
                PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: Some(vec!["*".into()]),
                    resources: Some(vec!["*".into()]),
                    ..Default::default()
                },
                PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: Some(vec!["*".into()]),
                    ..Default::default()
                },
            ];
            if !uncovered(&owned, &full).is_empty() {
                return Err(ApiError::forbidden(
                    &GroupResource::new(GROUP, &a.resource),
                    &name,
                    "must have cluster-admin privileges to use the aggregationRule",
                ));
            }
        }
        let missing = uncovered(&owned, &rules_of(&obj));
        return if missing.is_empty() {
            Ok(())
        } else {
            Err(escalation_error(a, &name, &missing))
        };
    }
    let role_kind = obj.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
    let role_name = obj.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
    let role_resource = match role_kind {
        "Role" => "roles",
        "ClusterRole" => "clusterroles",
        // Validation rejects the object.
        _ => return Ok(()),
    };
    if allowed("bind", role_resource, role_name) {
        return Ok(());
    }
    let role_rules = {
        let policy = api.auth.policy.read();
        match role_kind {
            "Role" => policy
                .roles
                .get(&(a.namespace.clone(), role_name.to_string()))
                .cloned(),
            _ => policy.cluster_roles.get(role_name).cloned(),
        }
    };
    let Some(role_rules) = role_rules else {
        let singular = role_kind.to_ascii_lowercase();
        return Err(ApiError::forbidden(
            &GroupResource::new(GROUP, &a.resource),
            &name,
            &format!("{singular}.{GROUP} {role_name:?} not found"),
        ));
    };
    let missing = uncovered(&owned, &role_rules);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(escalation_error(a, &name, &missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_rule_text() {
        let r: PolicyRule = serde_json::from_value(serde_json::json!(
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
        ))
        .unwrap();
        assert_eq!(
            compact(&r),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}"#
        );
        let r: PolicyRule =
            serde_json::from_value(serde_json::json!({"verbs": ["get"], "nonResourceURLs": ["/x"]})).unwrap();
        assert_eq!(compact(&r), r#"{NonResourceURLs:["/x"], Verbs:["get"]}"#);
    }
}
