//! HorizontalPodAutoscalers, `autoscaling/v2` and the `v1` subset (upstream
//! `pkg/apis/autoscaling/validation`): replica bounds, the scale target, metrics per source
//! type and the scaling behavior.

use serde_json::Value;

use super::field::{Errs, child, index, int, list, present, str_of, string};
use super::metadata;
use super::names;
use super::quantity::Quantity;

/// A HorizontalPodAutoscaler of either version.
pub fn horizontal_pod_autoscaler(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let min = int(spec, "minReplicas");
    if let Some(m) = min
        && m < 1
    {
        errs.invalid(
            "spec.minReplicas",
            &Value::from(m),
            "must be greater than or equal to 1",
        );
    }
    let max = int(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.invalid("spec.maxReplicas", &Value::from(max), "must be greater than 0");
    }
    if let Some(m) = min
        && max < m
    {
        errs.invalid(
            "spec.maxReplicas",
            &Value::from(max),
            "must be greater than or equal to `minReplicas`",
        );
    }
    let before = errs.0.len();
    object_reference(
        spec.get("scaleTargetRef").unwrap_or(&Value::Null),
        "spec.scaleTargetRef",
        errs,
    );
    if errs.0.len() == before {
        for (i, m) in list(spec, "metrics").iter().enumerate() {
            metric(m, &index("spec.metrics", i), errs);
        }
    }
    // v1's target is validated as the v2 metric it converts to, under that metric's path.
    if let Some(pct) = int(spec, "targetCPUUtilizationPercentage")
        && pct < 1
    {
        errs.invalid(
            "spec.metrics[0].resource.target.averageUtilization",
            &Value::from(pct),
            "must be greater than 0",
        );
    }
    if let Some(b) = present(spec, "behavior") {
        for dir in ["scaleUp", "scaleDown"] {
            if let Some(rules) = present(b, dir) {
                scaling_rules(rules, &child("spec.behavior", dir), errs);
            }
        }
    }
}

/// A `CrossVersionObjectReference`: kind and name, both path segments.
fn object_reference(r: &Value, path: &str, errs: &mut Errs) {
    for field in ["kind", "name"] {
        match string(r, field) {
            "" => errs.required(child(path, field), ""),
            v => errs.invalid_each(&child(path, field), v, names::path_segment(v)),
        }
    }
}

/// Metric source types, sorted as upstream lists them.
const SOURCE_TYPES: [&str; 5] = ["ContainerResource", "External", "Object", "Pods", "Resource"];

/// Source fields in the order upstream checks them.
const SOURCE_FIELDS: [&str; 5] = ["object", "external", "pods", "resource", "containerResource"];

/// The field of each metric source type.
fn source_field(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "External" => "external",
        "ContainerResource" => "containerResource",
        _ => return None,
    })
}

/// One metric: a known type, the source of that type and no other; upstream checks the first
/// source given whatever its type, and reports an unknown type twice.
fn metric(m: &Value, path: &str, errs: &mut Errs) {
    let kind = string(m, "type");
    let expected = source_field(kind);
    let unsupported = |errs: &mut Errs| {
        errs.not_supported(child(path, "type"), &Value::from(kind), &SOURCE_TYPES);
    };
    if kind.is_empty() {
        errs.required(child(path, "type"), "must specify a metric source type");
    }
    if expected.is_none() {
        unsupported(errs);
    }
    let given: Vec<&str> = SOURCE_FIELDS
        .iter()
        .copied()
        .filter(|f| present(m, f).is_some())
        .collect();
    if let Some(first) = given.first() {
        source(first, &m[*first], &child(path, first), errs);
    }
    match expected {
        Some(f) if present(m, f).is_none() => errs.required(
            child(path, f),
            "must populate information for the given metric source",
        ),
        Some(_) => {}
        None => unsupported(errs),
    }
    if given.len() != 1 {
        let mut others: Vec<&str> = given.into_iter().filter(|f| Some(*f) != expected).collect();
        others.sort_unstable();
        for f in others {
            errs.forbidden(child(path, f), "must populate the given metric source only");
        }
    }
}

fn source(field: &str, src: &Value, path: &str, errs: &mut Errs) {
    let target = src.get("target").unwrap_or(&Value::Null);
    let tp = child(path, "target");
    if field == "object" {
        object_reference(
            src.get("describedObject").unwrap_or(&Value::Null),
            &child(path, "describedObject"),
            errs,
        );
    }
    if matches!(field, "object" | "pods" | "external") {
        let metric = src.get("metric").unwrap_or(&Value::Null);
        let mp = child(path, "metric");
        match string(metric, "name") {
            "" => errs.required(child(&mp, "name"), "must specify a metric name"),
            name => errs.invalid_each(&child(&mp, "name"), name, names::path_segment(name)),
        }
        if let Some(sel) = present(metric, "selector") {
            metadata::label_selector(sel, &child(&mp, "selector"), errs);
        }
    }
    if matches!(field, "resource" | "containerResource") && string(src, "name").is_empty() {
        errs.required(child(path, "name"), "must specify a resource name");
    }
    if field == "containerResource" {
        match string(src, "container") {
            "" => errs.required(child(path, "container"), "must specify a container"),
            c => errs.invalid_each(&child(path, "container"), c, names::dns1123_label(c)),
        }
    }
    metric_target(target, &tp, errs);
    let has = |f: &str| present(target, f).is_some();
    match field {
        "object" if !has("value") && !has("averageValue") => errs.required(
            child(&tp, "averageValue"),
            "must set either a target value or averageValue",
        ),
        "external" if !has("value") && !has("averageValue") => errs.required(
            child(&tp, "averageValue"),
            "must set either a target value for metric or a per-pod target",
        ),
        "external" if has("value") && has("averageValue") => errs.forbidden(
            child(&tp, "value"),
            "may not set both a target value for metric and a per-pod target",
        ),
        "pods" if !has("averageValue") => errs.required(
            child(&tp, "averageValue"),
            "must specify a positive target averageValue",
        ),
        "resource" | "containerResource" if !has("averageValue") && !has("averageUtilization") => {
            errs.required(
                child(&tp, "averageUtilization"),
                "must set either a target raw value or a target utilization",
            );
        }
        "resource" | "containerResource" if has("averageValue") && has("averageUtilization") => {
            errs.forbidden(
                child(&tp, "averageValue"),
                "may not set both a target raw value and a target utilization",
            );
        }
        _ => {}
    }
}

fn metric_target(t: &Value, path: &str, errs: &mut Errs) {
    let kind = string(t, "type");
    if kind.is_empty() {
        errs.required(child(path, "type"), "must specify a metric target type");
    }
    if !["Utilization", "Value", "AverageValue"].contains(&kind) {
        errs.invalid_str(
            child(path, "type"),
            kind,
            "must be either Utilization, Value, or AverageValue",
        );
    }
    let set = |f: &str| present(t, f).is_some();
    if !set("averageUtilization") && !set("averageValue") && !set("value") {
        // Upstream's path for this one really is `target. utilization, value and averageValue`.
        errs.invalid_str(
            child(path, " utilization, value and averageValue"),
            kind,
            "at least one not nil",
        );
    }
    for field in ["value", "averageValue"] {
        if let Some(v) = present(t, field)
            && Quantity::from_json(v).is_some_and(|q| q <= Quantity::parse("0").unwrap_or(q))
        {
            errs.invalid(child(path, field), v, "must be positive");
        }
    }
    if let Some(u) = int(t, "averageUtilization")
        && u < 1
    {
        errs.invalid(
            child(path, "averageUtilization"),
            &Value::from(u),
            "must be greater than 0",
        );
    }
}

fn scaling_rules(rules: &Value, path: &str, errs: &mut Errs) {
    if let Some(w) = int(rules, "stabilizationWindowSeconds") {
        let wp = child(path, "stabilizationWindowSeconds");
        if w < 0 {
            errs.invalid(&wp, &Value::from(w), "must be greater than or equal to zero");
        }
        if w > 3600 {
            errs.invalid(&wp, &Value::from(w), "must be less than or equal to 3600");
        }
    }
    if let Some(select) = str_of(rules, "selectPolicy")
        && !["Disabled", "Max", "Min"].contains(&select)
    {
        errs.not_supported(
            child(path, "selectPolicy"),
            &Value::from(select),
            &["Disabled", "Max", "Min"],
        );
    }
    // Defaulting fills absent policies; an explicitly empty list stays empty.
    let pp = child(path, "policies");
    if rules
        .get("policies")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        errs.required(&pp, "must specify at least one Policy");
    }
    for (i, policy) in list(rules, "policies").iter().enumerate() {
        let p = index(&pp, i);
        let kind = string(policy, "type");
        if kind != "Pods" && kind != "Percent" {
            errs.not_supported(child(&p, "type"), &Value::from(kind), &["Percent", "Pods"]);
        }
        let value = int(policy, "value").unwrap_or(0);
        if value <= 0 {
            errs.invalid(
                child(&p, "value"),
                &Value::from(value),
                "must be greater than zero",
            );
        }
        let period = int(policy, "periodSeconds").unwrap_or(0);
        let period_path = child(&p, "periodSeconds");
        if period <= 0 {
            errs.invalid(&period_path, &Value::from(period), "must be greater than zero");
        }
        if period > 1800 {
            errs.invalid(
                &period_path,
                &Value::from(period),
                "must be less than or equal to 1800",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::test_support::{self, pair};

    fn run(obj: Value) -> Vec<(String, String)> {
        test_support::run(horizontal_pod_autoscaler, obj)
    }

    #[test]
    fn valid_autoscalers_pass() {
        let v2 = json!({"spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Pods", "pods": {"metric": {"name": "packets-per-second"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                {"type": "Object", "object": {"metric": {"name": "requests-per-second"}, "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main-route"}, "target": {"type": "Value", "value": "10k"}}},
                {"type": "External", "external": {"metric": {"name": "queue_messages_ready", "selector": {"matchLabels": {"queue": "worker_tasks"}}}, "target": {"type": "AverageValue", "averageValue": 30}}},
                {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "application", "target": {"type": "Utilization", "averageUtilization": 60}}}
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                         "scaleUp": {"selectPolicy": "Max"}}
        }});
        assert_eq!(run(v2), []);
        let v1 = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80}});
        assert_eq!(run(v1), []);
    }

    #[test]
    fn replica_bounds_and_target() {
        let errs = run(
            json!({"spec": {"scaleTargetRef": {"kind": "Deploy/ment"}, "minReplicas": 0, "maxReplicas": 0,
            "metrics": [{"type": "Bogus"}]}}),
        );
        assert_eq!(
            errs,
            [
                pair(
                    "spec.minReplicas",
                    "Invalid value: 0: must be greater than or equal to 1"
                ),
                pair("spec.maxReplicas", "Invalid value: 0: must be greater than 0"),
                pair(
                    "spec.scaleTargetRef.kind",
                    "Invalid value: \"Deploy/ment\": may not contain '/'"
                ),
                pair("spec.scaleTargetRef.name", "Required value"),
            ]
        );
        let errs = run(
            json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "minReplicas": 5, "maxReplicas": 2}}),
        );
        assert_eq!(
            errs,
            [pair(
                "spec.maxReplicas",
                "Invalid value: 2: must be greater than or equal to `minReplicas`"
            )]
        );
    }

    #[test]
    fn metrics_and_behavior() {
        let errs = run(
            json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 2,
                "metrics": [
                    {"type": "Resource", "pods": {}, "external": {}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Percent", "averageValue": "0"}}},
                    {"type": "Pods", "pods": {"metric": {}, "target": {"type": "Value", "value": "1"}}},
                    {"type": "Unknown"}
                ],
                "behavior": {"scaleUp": {"stabilizationWindowSeconds": 4000, "selectPolicy": "Avg", "policies": [{"type": "Nodes", "value": 0, "periodSeconds": 1801}]},
                             "scaleDown": {"policies": []}}
            }}),
        );
        let m = "spec.metrics";
        let up = "spec.behavior.scaleUp";
        assert_eq!(
            errs,
            [
                pair(
                    &format!("{m}[0].external.metric.name"),
                    "Required value: must specify a metric name"
                ),
                pair(
                    &format!("{m}[0].external.target.type"),
                    "Required value: must specify a metric target type"
                ),
                pair(
                    &format!("{m}[0].external.target.type"),
                    "Invalid value: \"\": must be either Utilization, Value, or AverageValue"
                ),
                pair(
                    &format!("{m}[0].external.target. utilization, value and averageValue"),
                    "Invalid value: \"\": at least one not nil"
                ),
                pair(
                    &format!("{m}[0].external.target.averageValue"),
                    "Required value: must set either a target value for metric or a per-pod target"
                ),
                pair(
                    &format!("{m}[0].resource"),
                    "Required value: must populate information for the given metric source"
                ),
                pair(
                    &format!("{m}[0].external"),
                    "Forbidden: must populate the given metric source only"
                ),
                pair(
                    &format!("{m}[0].pods"),
                    "Forbidden: must populate the given metric source only"
                ),
                pair(
                    &format!("{m}[1].resource.target.type"),
                    "Invalid value: \"Percent\": must be either Utilization, Value, or AverageValue"
                ),
                pair(
                    &format!("{m}[1].resource.target.averageValue"),
                    "Invalid value: \"0\": must be positive"
                ),
                pair(
                    &format!("{m}[2].pods.metric.name"),
                    "Required value: must specify a metric name"
                ),
                pair(
                    &format!("{m}[2].pods.target.averageValue"),
                    "Required value: must specify a positive target averageValue"
                ),
                pair(
                    &format!("{m}[3].type"),
                    "Unsupported value: \"Unknown\": supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\""
                ),
                pair(
                    &format!("{m}[3].type"),
                    "Unsupported value: \"Unknown\": supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\""
                ),
                pair(
                    &format!("{up}.stabilizationWindowSeconds"),
                    "Invalid value: 4000: must be less than or equal to 3600"
                ),
                pair(
                    &format!("{up}.selectPolicy"),
                    "Unsupported value: \"Avg\": supported values: \"Disabled\", \"Max\", \"Min\""
                ),
                pair(
                    &format!("{up}.policies[0].type"),
                    "Unsupported value: \"Nodes\": supported values: \"Percent\", \"Pods\""
                ),
                pair(
                    &format!("{up}.policies[0].value"),
                    "Invalid value: 0: must be greater than zero"
                ),
                pair(
                    &format!("{up}.policies[0].periodSeconds"),
                    "Invalid value: 1801: must be less than or equal to 1800"
                ),
                pair(
                    "spec.behavior.scaleDown.policies",
                    "Required value: must specify at least one Policy"
                ),
            ]
        );
    }
}
