//! Validating and mutating webhook configurations, `admissionregistration.k8s.io/v1`
//! (upstream `pkg/apis/admissionregistration/validation`): webhook names, side effects,
//! review versions, the client config and the rules.

use std::collections::HashSet;

use serde_json::Value;

use super::field::{Errs, child, index, int, list, present, str_of, string};
use super::{metadata, names, pod};

/// A ValidatingWebhookConfiguration.
pub fn validating(obj: &Value, errs: &mut Errs) {
    webhooks(obj, false, errs);
}

/// A MutatingWebhookConfiguration.
pub fn mutating(obj: &Value, errs: &mut Errs) {
    webhooks(obj, true, errs);
}

const SIDE_EFFECTS: [&str; 2] = ["None", "NoneOnDryRun"];
const REVIEW_VERSIONS: &str = "v1, v1beta1";

fn webhooks(obj: &Value, mutating: bool, errs: &mut Errs) {
    let mut seen = HashSet::new();
    for (i, hook) in list(obj, "webhooks").iter().enumerate() {
        let p = index("webhooks", i);
        webhook(hook, &p, mutating, errs);
        review_versions(hook, &child(&p, "admissionReviewVersions"), errs);
        let name = string(hook, "name");
        if !name.is_empty() && !seen.insert(name) {
            errs.duplicate(child(&p, "name"), &Value::from(name));
        }
    }
}

/// A name with at least three dot-separated DNS labels (`IsFullyQualifiedName`).
fn fully_qualified_name(name: &str, path: &str, errs: &mut Errs) {
    if name.is_empty() {
        errs.required(path, "");
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let msgs = names::dns1123_subdomain(name);
    if !msgs.is_empty() {
        errs.invalid_str(path, name, &msgs.join(","));
    } else if name.split('.').count() < 3 {
        errs.invalid_str(
            path,
            name,
            "should be a domain with at least three segments separated by dots",
        );
    }
}

fn webhook(hook: &Value, path: &str, mutating: bool, errs: &mut Errs) {
    fully_qualified_name(string(hook, "name"), &child(path, "name"), errs);
    for (i, rule) in list(hook, "rules").iter().enumerate() {
        rule_with_operations(rule, &index(&child(path, "rules"), i), errs);
    }
    let enums: [(&str, &[&str]); 2] = [
        ("failurePolicy", &["Fail", "Ignore"]),
        ("matchPolicy", &["Equivalent", "Exact"]),
    ];
    for (field, allowed) in enums {
        if let Some(v) = str_of(hook, field)
            && !allowed.contains(&v)
        {
            errs.not_supported(child(path, field), &Value::from(v), allowed);
        }
    }
    // The typed round trip turns an absent `sideEffects` into "".
    match str_of(hook, "sideEffects").filter(|s| !s.is_empty()) {
        None => errs.required(
            child(path, "sideEffects"),
            &format!("must specify one of {}", SIDE_EFFECTS.join(", ")),
        ),
        Some(s) if !SIDE_EFFECTS.contains(&s) => {
            errs.not_supported(child(path, "sideEffects"), &Value::from(s), &SIDE_EFFECTS);
        }
        Some(_) => {}
    }
    if let Some(t) = int(hook, "timeoutSeconds")
        && !(1..=30).contains(&t)
    {
        errs.invalid(
            child(path, "timeoutSeconds"),
            &Value::from(t),
            "the timeout value must be between 1 and 30 seconds",
        );
    }
    for field in ["namespaceSelector", "objectSelector"] {
        if let Some(sel) = present(hook, field) {
            metadata::label_selector(sel, &child(path, field), errs);
        }
    }
    const REINVOCATION: [&str; 2] = ["IfNeeded", "Never"];
    if mutating
        && let Some(v) = str_of(hook, "reinvocationPolicy")
        && !REINVOCATION.contains(&v)
    {
        errs.not_supported(child(path, "reinvocationPolicy"), &Value::from(v), &REINVOCATION);
    }
    let cc = hook.get("clientConfig").unwrap_or(&Value::Null);
    let cp = child(path, "clientConfig");
    match (str_of(cc, "url"), present(cc, "service")) {
        (Some(url), None) => webhook_url(url, &child(&cp, "url"), errs),
        (None, Some(svc)) => webhook_service(svc, &child(&cp, "service"), errs),
        _ => errs.required(cp, "exactly one of url or service is required"),
    }
    match_conditions(
        list(hook, "matchConditions"),
        &child(path, "matchConditions"),
        errs,
    );
}

/// `matchConditions`: at most 64, each with a unique qualified name and an expression (the CEL
/// expression itself is not compiled here).
fn match_conditions(conditions: &[Value], path: &str, errs: &mut Errs) {
    if conditions.len() > 64 {
        errs.too_many(path, conditions.len(), 64);
    }
    let mut seen = HashSet::new();
    for (i, c) in conditions.iter().enumerate() {
        let p = index(path, i);
        if string(c, "expression").trim().is_empty() {
            errs.required(child(&p, "expression"), "");
        }
        match string(c, "name") {
            "" => errs.required(child(&p, "name"), ""),
            name => {
                errs.invalid_each(&child(&p, "name"), name, names::qualified_name(name));
                if !seen.insert(name) {
                    errs.duplicate(child(&p, "name"), &Value::from(name));
                }
            }
        }
    }
}

fn review_versions(hook: &Value, path: &str, errs: &mut Errs) {
    let versions = list(hook, "admissionReviewVersions");
    if versions.is_empty() {
        errs.required(path, &format!("must specify one of {REVIEW_VERSIONS}"));
        return;
    }
    let mut seen = HashSet::new();
    let mut accepted = false;
    for (i, v) in versions.iter().enumerate() {
        let v = v.as_str().unwrap_or("");
        if !seen.insert(v) {
            errs.invalid_str(index(path, i), v, "duplicate version");
            continue;
        }
        errs.invalid_each(&index(path, i), v, names::dns1035_label(v));
        accepted |= v == "v1" || v == "v1beta1";
    }
    if !accepted {
        errs.invalid(
            path,
            &Value::from(versions.to_vec()),
            &format!("must include at least one of {REVIEW_VERSIONS}"),
        );
    }
}

const FORM: &str = "; desired format: https://host[/path]";

/// A webhook URL: `https`, with a host, without user info, query or fragment.
fn webhook_url(url: &str, path: &str, errs: &mut Errs) {
    let (rest, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once("://") {
        Some((s, r)) if !s.is_empty() && !s.contains('/') => (s.to_ascii_lowercase(), r),
        _ => (String::new(), ""),
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if scheme != "https" {
        errs.invalid_str(
            path,
            &scheme,
            &format!("'https' is the only allowed URL scheme{FORM}"),
        );
    }
    if host.is_empty() {
        errs.invalid_str(path, host, &format!("host must be specified{FORM}"));
    }
    if let Some(u) = user {
        errs.invalid_str(path, u, "user information is not permitted in the URL");
    }
    if !fragment.is_empty() {
        errs.invalid_str(path, fragment, "fragments are not permitted in the URL");
    }
    if !query.is_empty() {
        errs.invalid_str(path, query, "query parameters are not permitted in the URL");
    }
}

/// A webhook Service reference: name, namespace, port and a path of DNS segments.
fn webhook_service(svc: &Value, path: &str, errs: &mut Errs) {
    if string(svc, "name").is_empty() {
        errs.required(child(path, "name"), "service name is required");
    }
    if string(svc, "namespace").is_empty() {
        errs.required(child(path, "namespace"), "service namespace is required");
    }
    if let Some(port) = int(svc, "port") {
        let mut port_errs = Errs::default();
        pod::port_number(port, "", &mut port_errs);
        if !port_errs.0.is_empty() {
            errs.invalid(
                child(path, "port"),
                &Value::from(port),
                "port is not valid: must be between 1 and 65535, inclusive",
            );
        }
    }
    let url_path = string(svc, "path");
    let pp = child(path, "path");
    if url_path.is_empty() || url_path == "/" {
        return;
    }
    if url_path == "//" {
        errs.invalid_str(pp, url_path, "segment[0] may not be empty");
        return;
    }
    if !url_path.starts_with('/') {
        errs.invalid_str(&pp, url_path, "must start with a '/'");
    }
    let trimmed = url_path.get(1..).unwrap_or("");
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    for (i, step) in trimmed.split('/').enumerate() {
        if step.is_empty() {
            errs.invalid_str(&pp, url_path, &format!("segment[{i}] may not be empty"));
            continue;
        }
        for m in names::dns1123_subdomain(step) {
            errs.invalid_str(&pp, url_path, &format!("segment[{i}]: {m}"));
        }
    }
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    list(v, field)
        .iter()
        .map(|s| s.as_str().unwrap_or("").to_string())
        .collect()
}

fn rule_with_operations(rule: &Value, path: &str, errs: &mut Errs) {
    let ops = strings(rule, "operations");
    let op_path = child(path, "operations");
    if ops.is_empty() {
        errs.required(&op_path, "");
    }
    if ops.len() > 1 && ops.iter().any(|o| o == "*") {
        errs.invalid(
            &op_path,
            &Value::from(ops.clone()),
            "if '*' is present, must not specify other operations",
        );
    }
    const OPERATIONS: [&str; 5] = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(&op.as_str()) {
            errs.not_supported(index(&op_path, i), &Value::from(op.as_str()), &OPERATIONS);
        }
    }
    for (field, what) in [("apiGroups", "API groups"), ("apiVersions", "API versions")] {
        let values = strings(rule, field);
        let fp = child(path, field);
        if values.is_empty() {
            errs.required(&fp, "");
        }
        if values.len() > 1 && values.iter().any(|v| v == "*") {
            errs.invalid(
                &fp,
                &Value::from(values.clone()),
                &format!("if '*' is present, must not specify other {what}"),
            );
        }
        if field == "apiVersions" {
            for (i, v) in values.iter().enumerate() {
                if v.is_empty() {
                    errs.required(index(&fp, i), "");
                }
            }
        }
    }
    resources(&strings(rule, "resources"), &child(path, "resources"), errs);
    if let Some(scope) = str_of(rule, "scope")
        && !["*", "Cluster", "Namespaced"].contains(&scope)
    {
        errs.not_supported(
            child(path, "scope"),
            &Value::from(scope),
            &["*", "Cluster", "Namespaced"],
        );
    }
}

/// `resources` of a rule: `x`, `x/sub`, `*`, `x/*`, `*/sub`, `*/*` without overlaps.
fn resources(res: &[String], path: &str, errs: &mut Errs) {
    if res.is_empty() {
        errs.required(path, "");
    }
    let mut wildcard_sub = HashSet::new();
    let mut wildcard_res = HashSet::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, r) in res.iter().enumerate() {
        if r.is_empty() {
            errs.required(index(path, i), "");
            continue;
        }
        double |= r == "*/*";
        single |= r == "*";
        let Some((resource, sub)) = r.split_once('/') else {
            plain |= r != "*";
            continue;
        };
        if wildcard_sub.contains(resource) {
            errs.invalid_str(
                index(path, i),
                r,
                &format!("if '{resource}/*' is present, must not specify {r}"),
            );
        }
        if wildcard_res.contains(sub) {
            errs.invalid_str(
                index(path, i),
                r,
                &format!("if '*/{sub}' is present, must not specify {r}"),
            );
        }
        if sub == "*" {
            wildcard_sub.insert(resource);
        }
        if resource == "*" {
            wildcard_res.insert(sub);
        }
    }
    if res.len() > 1 && double {
        errs.invalid(
            path,
            &Value::from(res.to_vec()),
            "if '*/*' is present, must not specify other resources",
        );
    }
    if single && plain {
        errs.invalid(
            path,
            &Value::from(res.to_vec()),
            "if '*' is present, must not specify other resources without subresources",
        );
    }
}

#[cfg(test)]
mod tests;
