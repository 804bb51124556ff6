//! The review APIs: SelfSubjectReview (`kubectl auth whoami`), SelfSubjectAccessReview,
//! SubjectAccessReview and LocalSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview
//! (`can-i --list`) and TokenReview. They are answered from the request and the RBAC caches;
//! nothing is stored.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Attributes, authn, bootstrap_token, legacy_token, serviceaccount};
use crate::ApiServer;
use crate::descriptor::{ResourceDescriptor, VirtualKind};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::query::FieldValidation;
use crate::registry::Reply;
use crate::registry::subresource::UserInfo;

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn invalid(desc: &ResourceDescriptor, errors: &[FieldError]) -> ApiError {
    ApiError::invalid(&desc.qualified_kind(), &desc.group, "", errors)
}

/// The attributes an access review's spec asks about, for `user`.
fn review_attributes(desc: &ResourceDescriptor, spec: &Value, user: UserInfo) -> ApiResult<Attributes> {
    if let Some(r) = spec.get("resourceAttributes").filter(|r| !r.is_null()) {
        if spec.get("nonResourceAttributes").is_some_and(|n| !n.is_null()) {
            return Err(invalid(
                desc,
                &[FieldError::invalid(
                    "spec.nonResourceAttributes",
                    &spec["nonResourceAttributes"],
                    "cannot be specified in combination with resourceAttributes",
                )],
            ));
        }
        return Ok(Attributes {
            user,
            verb: str_at(r, "verb").into(),
            resource_request: true,
            group: str_at(r, "group").into(),
            version: str_at(r, "version").into(),
            resource: str_at(r, "resource").into(),
            subresource: str_at(r, "subresource").into(),
            name: str_at(r, "name").into(),
            namespace: str_at(r, "namespace").into(),
            path: String::new(),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|n| !n.is_null()) {
        return Ok(Attributes {
            user,
            verb: str_at(n, "verb").into(),
            path: str_at(n, "path").into(),
            ..Default::default()
        });
    }
    Err(invalid(
        desc,
        &[FieldError::required(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )],
    ))
}

/// The subject of a SubjectAccessReview spec.
fn spec_user(desc: &ResourceDescriptor, spec: &Value) -> ApiResult<UserInfo> {
    let strings = |key: &str| -> Vec<String> {
        spec.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let user = UserInfo {
        name: str_at(spec, "user").into(),
        groups: strings("groups"),
        uid: str_at(spec, "uid").into(),
        extra: spec
            .get("extra")
            .and_then(|e| serde_json::from_value::<BTreeMap<String, Vec<String>>>(e.clone()).ok())
            .unwrap_or_default(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(invalid(
            desc,
            &[FieldError::invalid(
                "spec.user",
                &json!(""),
                "at least one of user or group must be specified",
            )],
        ));
    }
    Ok(user)
}

fn decide(api: &ApiServer, attrs: &Attributes) -> Value {
    json!({"allowed": api.auth.authorize(attrs)})
}

fn rules_review(api: &ApiServer, user: &UserInfo, namespace: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in api.auth.policy.read().rules_for(user, namespace) {
        if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
            non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
        if r.resources.as_ref().is_some_and(|x| !x.is_empty()) {
            let mut rule = json!({"verbs": r.verbs, "apiGroups": r.api_groups.clone().unwrap_or_default(),
                "resources": r.resources});
            if let Some(names) = r.resource_names.as_ref().filter(|n| !n.is_empty()) {
                rule["resourceNames"] = json!(names);
            }
            resource_rules.push(rule);
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}

async fn token_review(api: &ApiServer, spec: &Value) -> Value {
    let token = str_at(spec, "token");
    let wanted: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if token.is_empty() {
        return json!({"authenticated": false, "user": {}, "error": "token is empty"});
    }
    if let Some(u) = api.auth.tokens.read().lookup(token) {
        let u = authn::with_authenticated_group(u);
        let mut status = json!({"authenticated": true, "user": u.to_json()});
        if !wanted.is_empty() {
            status["audiences"] = json!(wanted);
        }
        return status;
    }
    let signer = api.auth.signer();
    let audiences = if wanted.is_empty() {
        vec![signer.issuer().to_string()]
    } else {
        wanted
    };
    let bootstrap = bootstrap_token::parse(token).filter(|_| api.config.auth.enable_bootstrap_token_auth);
    let verified = if let Some((id, secret)) = bootstrap {
        // Bootstrap tokens carry no audience either.
        bootstrap_token::authenticate(api, id, secret)
            .await
            .map(|u| (u, vec![signer.issuer().to_string()]))
    } else if legacy_token::is_legacy(token) {
        // Legacy tokens carry no audience: they are valid for the API server's own.
        legacy_token::authenticate(api, token)
            .await
            .map(|u| (u, vec![signer.issuer().to_string()]))
    } else {
        match signer.verify(token, &audiences) {
            Ok(claims) => serviceaccount::user_of_claims(api, &claims)
                .await
                .map(|u| (u, claims.aud)),
            Err(e) => Err(e),
        }
    };
    match verified {
        Ok((u, token_aud)) => {
            let u = authn::with_authenticated_group(u);
            let matched: Vec<&String> = audiences.iter().filter(|a| token_aud.contains(a)).collect();
            if matched.is_empty() {
                return json!({"authenticated": false, "user": {},
                    "error": "token audiences are invalid for the target audiences"});
            }
            json!({"authenticated": true, "user": u.to_json(), "audiences": matched})
        }
        Err(e) => json!({"authenticated": false, "user": {}, "error": e.to_string()}),
    }
}

/// Answers a create of a review resource (`kind` is not [`VirtualKind::Binding`]).
pub async fn create(
    api: &ApiServer,
    desc: &ResourceDescriptor,
    kind: VirtualKind,
    ns: &str,
    mut body: Value,
    user: &UserInfo,
    validation: FieldValidation,
) -> ApiResult<Reply> {
    crate::registry::check_kind(desc, &mut body)?;
    let (mut body, warnings) = crate::typecheck::check_settled(desc, body, validation)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match (kind, desc.kind.as_str()) {
        (VirtualKind::SelfSubjectReview, _) => json!({"userInfo": user.to_json()}),
        (VirtualKind::RulesReview, _) => rules_review(api, user, str_at(&spec, "namespace")),
        (VirtualKind::TokenReview, _) => token_review(api, &spec).await,
        (VirtualKind::AccessReview, "SelfSubjectAccessReview") => {
            decide(api, &review_attributes(desc, &spec, user.clone())?)
        }
        (VirtualKind::AccessReview, "LocalSubjectAccessReview") => {
            let attrs = review_attributes(desc, &spec, spec_user(desc, &spec)?)?;
            if !attrs.resource_request {
                return Err(invalid(
                    desc,
                    &[FieldError::invalid(
                        "spec.nonResourceAttributes",
                        &spec["nonResourceAttributes"],
                        "disallowed on this kind of request",
                    )],
                ));
            }
            if attrs.namespace != ns {
                return Err(invalid(
                    desc,
                    &[FieldError::invalid(
                        "spec.resourceAttributes.namespace",
                        &json!(attrs.namespace),
                        "must match metadata.namespace",
                    )],
                ));
            }
            decide(api, &attrs)
        }
        (VirtualKind::AccessReview, _) => {
            decide(api, &review_attributes(desc, &spec, spec_user(desc, &spec)?)?)
        }
        (VirtualKind::Binding | VirtualKind::ComponentStatus, _) => {
            return Err(ApiError::internal(format!("{kind:?} is not a review")));
        }
    };
    body["status"] = status;
    Ok(Reply {
        code: 201,
        body,
        warnings,
    })
}
