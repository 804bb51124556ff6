//! ResourceQuotas and LimitRanges (upstream `ValidateResourceQuota`, `ValidateLimitRange`):
//! resource names, quantities and the ordering of a limit range's bounds.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::field::{Errs, NEGATIVE, child, index, key, list, object, present, string};
use super::names;
use super::quantity::{self, Quantity};

/// Standard names of `core` resources (names without a domain must be one of these).
const STANDARD: [&str; 20] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "services.nodeports",
    "services.loadbalancers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
];

/// Counted (integer) resources.
const INTEGER: [&str; 9] = [
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Native resources other than huge pages may be overcommitted.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && names::qualified_name(&format!("requests.{name}")).is_empty()
}

/// A resource name: qualified, and standard when it has no domain.
fn resource_name(name: &str, path: &str, errs: &mut Errs) {
    let msgs = names::qualified_name(name);
    if !msgs.is_empty() {
        errs.invalid_each(path, name, msgs);
        return;
    }
    let standard =
        STANDARD.contains(&name) || name.starts_with("hugepages-") || name.starts_with("requests.hugepages-");
    if !name.contains('/') && !standard {
        errs.invalid_str(path, name, "must be a standard resource type or fully qualified");
    }
}

/// A quantity: well formed, not negative, whole for counted resources.
fn amount(name: &str, v: &Value, path: &str, errs: &mut Errs) -> Option<Quantity> {
    let shown = quantity::display(v);
    let Some(q) = Quantity::from_json(v) else {
        errs.invalid_str(path, &shown, quantity::FORMAT_ERROR);
        return None;
    };
    if q.is_negative() {
        errs.invalid_str(path, &shown, NEGATIVE);
    }
    if (INTEGER.contains(&name) || is_extended(name)) && !q.is_integer() {
        errs.invalid_str(path, &shown, "must be an integer");
    }
    Some(q)
}

/// A ResourceQuota.
pub fn resource_quota(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    quota_amounts(spec, "spec.hard", errs);
    scopes(spec, errs);
    if let Some(sel) = present(spec, "scopeSelector") {
        scope_selector(sel, errs);
    }
    let status = obj.get("status").unwrap_or(&Value::Null);
    quota_amounts(status, "status.hard", errs);
    quota_amounts(status, "status.used", errs);
}

/// A quota's scopes may not change.
pub fn resource_quota_update(new: &Value, old: &Value, errs: &mut Errs) {
    let scopes = |v: &Value| -> BTreeSet<String> {
        list(v.get("spec").unwrap_or(&Value::Null), "scopes")
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    if scopes(new) != scopes(old) {
        let shown = new.pointer("/spec/scopes").cloned().unwrap_or(Value::Null);
        errs.invalid("spec.scopes", &shown, super::field::IMMUTABLE);
    }
}

/// A map of quota amounts (`hard`, `used`) at `path`: quota resource names and quantities.
fn quota_amounts(parent: &Value, path: &str, errs: &mut Errs) {
    let field = path.rsplit('.').next().unwrap_or(path);
    for (name, v) in object(parent, field).into_iter().flatten() {
        let p = key(path, name);
        resource_name(name, &p, errs);
        let quota = name.starts_with("hugepages-")
            || name.starts_with("requests.hugepages-")
            || (STANDARD.contains(&name.as_str()) && name != "storage");
        if !name.contains('/') && !quota {
            errs.invalid_str(&p, name, "must be a standard resource for quota");
        }
        amount(name, v, &p, errs);
    }
}

/// Scopes whose selector requirement must use `Exists`.
const EXISTS_ONLY: [&str; 5] = [
    "BestEffort",
    "NotBestEffort",
    "Terminating",
    "NotTerminating",
    "CrossNamespacePodAffinity",
];

/// `spec.scopeSelector`: known scopes, operators and their value counts, no conflicting pair.
fn scope_selector(sel: &Value, errs: &mut Errs) {
    let p = "spec.scopeSelector.matchExpressions";
    let mut names = Vec::new();
    for req in list(sel, "matchExpressions") {
        let scope = string(req, "scopeName");
        if !SCOPES.contains(&scope) {
            errs.invalid_str(child(p, "scopeName"), scope, "unsupported scope");
        }
        let op = string(req, "operator");
        if EXISTS_ONLY.contains(&scope) && op != "Exists" {
            errs.invalid_str(
                child(p, "operator"),
                op,
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            );
        }
        let values = list(req, "values");
        match op {
            "In" | "NotIn" if values.is_empty() => errs.required(
                child(p, "values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.invalid(
                child(p, "values"),
                &Value::from(values.to_vec()),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.invalid_str(child(p, "operator"), other, "not a valid selector operator"),
        }
        names.push(scope);
    }
    for (a, b) in [("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")] {
        if names.contains(&a) && names.contains(&b) {
            errs.invalid(p, &Value::Null, "conflicting scopes");
        }
    }
}

const SCOPES: [&str; 7] = [
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

/// `spec.scopes`: known scopes, not both of a pair that excludes each other.
fn scopes(spec: &Value, errs: &mut Errs) {
    let scopes: Vec<&str> = list(spec, "scopes").iter().filter_map(Value::as_str).collect();
    let shown = || Value::from(scopes.clone());
    for scope in &scopes {
        if !SCOPES.contains(scope) {
            errs.invalid("spec.scopes", &shown(), "unsupported scope");
        }
    }
    for (a, b) in [("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")] {
        if scopes.contains(&a) && scopes.contains(&b) {
            errs.invalid("spec.scopes", &shown(), "conflicting scopes");
        }
    }
}

const LIMIT_TYPES: [&str; 3] = ["Container", "Pod", "PersistentVolumeClaim"];

/// A LimitRange.
pub fn limit_range(obj: &Value, errs: &mut Errs) {
    let mut types = HashSet::new();
    for (i, item) in list(obj.get("spec").unwrap_or(&Value::Null), "limits")
        .iter()
        .enumerate()
    {
        let p = index("spec.limits", i);
        let kind = string(item, "type");
        let tp = child(&p, "type");
        let msgs = names::qualified_name(kind);
        if !msgs.is_empty() {
            errs.invalid_each(&tp, kind, msgs);
        } else if !kind.contains('/') && !LIMIT_TYPES.contains(&kind) {
            errs.invalid_str(&tp, kind, "must be a standard limit type or fully qualified");
        }
        if !types.insert(kind) {
            errs.duplicate(&tp, &Value::from(kind));
        }
        limit_item(item, kind, &p, errs);
    }
}

fn limit_item(item: &Value, kind: &str, path: &str, errs: &mut Errs) {
    let mut keys = BTreeSet::new();
    let mut read = |field: &str, errs: &mut Errs| {
        let mut parsed = Vec::new();
        for (name, v) in object(item, field).into_iter().flatten() {
            let p = key(&child(path, field), name);
            limit_resource_name(kind, name, &p, errs);
            keys.insert(name.clone());
            // Upstream checks neither sign nor wholeness of limit range amounts.
            if let Some(q) = Quantity::from_json(v) {
                parsed.push((name.clone(), q));
            }
        }
        parsed
    };
    let max = read("max", errs);
    let min = read("min", errs);
    let (default, default_request) = if kind == "Pod" {
        for field in ["default", "defaultRequest"] {
            if object(item, field).is_some_and(|m| !m.is_empty()) {
                errs.forbidden(child(path, field), "may not be specified when `type` is 'Pod'");
            }
        }
        (Vec::new(), Vec::new())
    } else {
        (read("default", errs), read("defaultRequest", errs))
    };
    let ratio = read("maxLimitRequestRatio", errs);
    if kind == "PersistentVolumeClaim" {
        let has = |v: &[(String, Quantity)]| v.iter().any(|(n, _)| n == "storage");
        if !has(&min) && !has(&max) {
            errs.required(
                child(path, "limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            );
        }
    }
    let find = |v: &[(String, Quantity)], k: &str| v.iter().find(|(n, _)| n == k).map(|(_, q)| *q);
    for k in &keys {
        let (mn, mx, df, dr, ra) = (
            find(&min, k),
            find(&max, k),
            find(&default, k),
            find(&default_request, k),
            find(&ratio, k),
        );
        let c = |q: Quantity| q.canonical();
        let at = |field: &str| key(&child(path, field), k);
        if let (Some(mn), Some(mx)) = (mn, mx)
            && mn > mx
        {
            let msg = format!("min value {} is greater than max value {}", c(mn), c(mx));
            errs.invalid_str(at("min"), &c(mn), &msg);
        }
        if let (Some(dr), Some(mn)) = (dr, mn)
            && mn > dr
        {
            let msg = format!(
                "min value {} is greater than default request value {}",
                c(mn),
                c(dr)
            );
            errs.invalid_str(at("defaultRequest"), &c(dr), &msg);
        }
        if let (Some(dr), Some(mx)) = (dr, mx)
            && dr > mx
        {
            let msg = format!(
                "default request value {} is greater than max value {}",
                c(dr),
                c(mx)
            );
            errs.invalid_str(at("defaultRequest"), &c(dr), &msg);
        }
        if let (Some(dr), Some(df)) = (dr, df)
            && dr > df
        {
            let msg = format!(
                "default request value {} is greater than default limit value {}",
                c(dr),
                c(df)
            );
            errs.invalid_str(at("defaultRequest"), &c(dr), &msg);
        }
        if let (Some(df), Some(mn)) = (df, mn)
            && mn > df
        {
            let msg = format!("min value {} is greater than default value {}", c(mn), c(df));
            errs.invalid_str(at("default"), &c(mn), &msg);
        }
        if let (Some(df), Some(mx)) = (df, mx)
            && df > mx
        {
            let msg = format!("default value {} is greater than max value {}", c(df), c(mx));
            errs.invalid_str(at("default"), &c(mx), &msg);
        }
        if let Some(ra) = ra
            && Quantity::parse("1").is_some_and(|one| ra < one)
        {
            let msg = format!("ratio {} is less than 1", c(ra));
            errs.invalid_str(at("maxLimitRequestRatio"), &c(ra), &msg);
        }
        if let (Some(ra), Some(mn), Some(mx)) = (ra, mn, mx) {
            let limit = mx.as_f64() / mn.as_f64();
            if ra.as_f64() > limit {
                let msg = format!("ratio {} is greater than max/min = {limit:.6}", c(ra));
                errs.invalid_str(at("maxLimitRequestRatio"), &c(ra), &msg);
            }
        }
        if let (Some(df), Some(dr)) = (df, dr)
            && !overcommit_allowed(k)
            && df != dr
        {
            let msg = format!(
                "default value {} must equal to defaultRequest value {} in {k}",
                c(df),
                c(dr)
            );
            errs.invalid_str(at("defaultRequest"), &c(dr), &msg);
        }
    }
}

/// Names in a limit of a pod or container are container resources.
fn limit_resource_name(kind: &str, name: &str, path: &str, errs: &mut Errs) {
    resource_name(name, path, errs);
    if !matches!(kind, "Pod" | "Container") {
        return;
    }
    let container = matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !name.contains('/') {
        if !container {
            errs.invalid_str(path, name, "must be a standard resource for containers");
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.invalid_str(path, name, "doesn't follow extended resource name standard");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::test_support::{pair, run};

    #[test]
    fn resource_quotas() {
        let valid = json!({"spec": {"hard": {"cpu": "1", "memory": "1Gi", "pods": "10", "requests.nvidia.com/gpu": 4,
            "count/deployments.apps": "5", "hugepages-2Mi": "1Gi", "limits.cpu": "2", "services.loadbalancers": 0}}});
        assert_eq!(run(resource_quota, valid), []);
        let errs = run(
            resource_quota,
            json!({"spec": {"hard": {"pods": "1.5", "widgets": "1", "storage": "1Gi", "memory": "-1"}}}),
        );
        assert_eq!(
            errs,
            [
                pair(
                    "spec.hard[memory]",
                    "Invalid value: \"-1\": must be greater than or equal to 0"
                ),
                pair("spec.hard[pods]", "Invalid value: \"1500m\": must be an integer"),
                pair(
                    "spec.hard[storage]",
                    "Invalid value: \"storage\": must be a standard resource for quota"
                ),
                pair(
                    "spec.hard[widgets]",
                    "Invalid value: \"widgets\": must be a standard resource type or fully qualified"
                ),
                pair(
                    "spec.hard[widgets]",
                    "Invalid value: \"widgets\": must be a standard resource for quota"
                ),
            ]
        );
    }

    #[test]
    fn quota_scope_selectors_status_and_updates() {
        let errs = run(
            resource_quota,
            json!({"spec": {"scopeSelector": {"matchExpressions": [
            {"scopeName": "BestEffort", "operator": "In", "values": ["x"]},
            {"scopeName": "PriorityClass", "operator": "NotIn"},
            {"scopeName": "Weekend", "operator": "Exists", "values": ["x"]},
            {"scopeName": "NotBestEffort", "operator": "Exists"}
        ]}}, "status": {"used": {"pods": "-1"}}}),
        );
        let p = "spec.scopeSelector.matchExpressions";
        assert_eq!(errs[0].0, format!("{p}.operator"));
        assert!(
            errs[0]
                .1
                .starts_with("Invalid value: \"In\": must be 'Exist' when scope is any of")
        );
        assert_eq!(
            errs[1..],
            [
                pair(
                    &format!("{p}.values"),
                    "Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"
                ),
                pair(
                    &format!("{p}.scopeName"),
                    "Invalid value: \"Weekend\": unsupported scope"
                ),
                pair(
                    &format!("{p}.values"),
                    "Invalid value: [\"x\"]: must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"
                ),
                pair(p, "Invalid value: null: conflicting scopes"),
                pair(
                    "status.used[pods]",
                    "Invalid value: \"-1\": must be greater than or equal to 0"
                ),
            ]
        );
        let mut errs = Errs::default();
        let old = json!({"spec": {"scopes": ["BestEffort"]}});
        resource_quota_update(&old, &old, &mut errs);
        assert!(errs.0.is_empty());
        resource_quota_update(&json!({"spec": {"scopes": ["NotBestEffort"]}}), &old, &mut errs);
        assert_eq!(
            errs.0[0].message,
            "Invalid value: [\"NotBestEffort\"]: field is immutable"
        );
    }

    #[test]
    fn limit_range_ratios_and_extended_defaults() {
        let errs = run(
            limit_range,
            json!({"spec": {"limits": [{"type": "Container",
            "min": {"cpu": "100m"}, "max": {"cpu": "200m"}, "maxLimitRequestRatio": {"cpu": "3"},
            "default": {"example.com/gpu": "2"}, "defaultRequest": {"example.com/gpu": "1"}}]}}),
        );
        assert_eq!(
            errs,
            [
                pair(
                    "spec.limits[0].maxLimitRequestRatio[cpu]",
                    "Invalid value: \"3\": ratio 3 is greater than max/min = 2.000000"
                ),
                pair(
                    "spec.limits[0].defaultRequest[example.com/gpu]",
                    "Invalid value: \"1\": default value 2 must equal to defaultRequest value 1 in example.com/gpu"
                ),
            ]
        );
    }

    #[test]
    fn limit_ranges() {
        let valid = json!({"spec": {"limits": [
            {"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "500m"}, "max": {"cpu": "1"}, "min": {"cpu": "100m"}, "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"memory": "2Gi"}},
            {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}, "min": {"storage": "1Gi"}}
        ]}});
        assert_eq!(run(limit_range, valid), []);
        let errs = run(
            limit_range,
            json!({"spec": {"limits": [
                {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "default": {"cpu": "3"}, "maxLimitRequestRatio": {"cpu": "500m"}},
                {"type": "Pod", "default": {"cpu": "1"}},
                {"type": "Container", "max": {"pods": "1"}},
                {"type": "PersistentVolumeClaim"},
                {"type": "Node"}
            ]}}),
        );
        let p = "spec.limits";
        assert_eq!(
            errs,
            [
                pair(
                    &format!("{p}[0].min[cpu]"),
                    "Invalid value: \"2\": min value 2 is greater than max value 1"
                ),
                pair(
                    &format!("{p}[0].default[cpu]"),
                    "Invalid value: \"1\": default value 3 is greater than max value 1"
                ),
                pair(
                    &format!("{p}[0].maxLimitRequestRatio[cpu]"),
                    "Invalid value: \"500m\": ratio 500m is less than 1"
                ),
                pair(
                    &format!("{p}[1].default"),
                    "Forbidden: may not be specified when `type` is 'Pod'"
                ),
                pair(&format!("{p}[2].type"), "Duplicate value: \"Container\""),
                pair(
                    &format!("{p}[2].max[pods]"),
                    "Invalid value: \"pods\": must be a standard resource for containers"
                ),
                pair(
                    &format!("{p}[3].limits"),
                    "Required value: either minimum or maximum storage value is required, but neither was provided"
                ),
                pair(
                    &format!("{p}[4].type"),
                    "Invalid value: \"Node\": must be a standard limit type or fully qualified"
                ),
            ]
        );
    }
}
