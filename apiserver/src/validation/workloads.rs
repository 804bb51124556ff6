//! The `apps` workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet), ReplicationController
//! and PodTemplate: selectors that match their template, a valid template with `restartPolicy:
//! Always`, counts, rollout strategies, and what an update may not change (upstream
//! `pkg/apis/apps/validation`).

use serde_json::Value;

use super::field::{Errs, NEGATIVE, child, int, object, string};
use super::{metadata, names, pod};

/// `spec.selector` + `spec.template` of the `apps` kinds; `kind` names the kind in upstream's
/// "empty selector" message.
fn selector_and_template(spec: &Value, kind: &str, errs: &mut Errs) {
    selector_and_template_with_claims(spec, kind, &[], errs);
}

/// The same, with volume claim templates the containers may mount.
fn selector_and_template_with_claims(spec: &Value, kind: &str, claims: &[&str], errs: &mut Errs) {
    let tmpl = spec.get("template").unwrap_or(&Value::Null);
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.required("spec.selector", ""),
        Some(sel) => {
            let before = errs.0.len();
            metadata::label_selector(sel, "spec.selector", errs);
            if api_util::labels::json_selector_is_empty(sel) {
                errs.invalid(
                    "spec.selector",
                    sel,
                    &format!("empty selector is invalid for {kind}"),
                );
            } else if errs.0.len() == before {
                template_matches(sel, tmpl, "spec.template", errs);
            }
        }
    }
    pod::template_with_claims(tmpl, "spec.template", claims, errs);
    pod::template_restart_policy(tmpl, "spec.template", &["Always"], errs);
}

/// `` `selector` does not match template `labels` `` unless the selector selects the template.
pub fn template_matches(sel: &Value, tmpl: &Value, path: &str, errs: &mut Errs) {
    let labels = tmpl.pointer("/metadata/labels");
    let empty = serde_json::Map::new();
    if !api_util::labels::json_selector_matches(sel, labels.and_then(Value::as_object).unwrap_or(&empty)) {
        errs.invalid(
            child(path, "metadata.labels"),
            labels.unwrap_or(&Value::Null),
            "`selector` does not match template `labels`",
        );
    }
}

fn no_active_deadline(spec: &Value, kind: &str, errs: &mut Errs) {
    if spec
        .pointer("/template/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        );
    }
}

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

/// The number an int-or-percent stands for (percent without the sign); `None` when invalid.
pub(super) fn int_or_percent(v: &Value, path: &str, errs: &mut Errs) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let n = n.as_i64()?;
            if n < 0 {
                errs.invalid(path, v, NEGATIVE);
            }
            Some(n)
        }
        Value::String(s) => {
            let msgs = names::percent(s);
            if msgs.is_empty() {
                let n: i64 = s.trim_end_matches('%').parse().ok()?;
                if n > 100 {
                    errs.invalid(path, v, "must not be greater than 100%");
                }
                Some(n)
            } else {
                errs.invalid_each(path, s, msgs);
                None
            }
        }
        _ => None,
    }
}

/// A Deployment.
pub fn deployment(obj: &Value, errs: &mut Errs) {
    let spec = spec_of(obj);
    for field in [
        "replicas",
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        errs.nonnegative(spec, "spec", field);
    }
    selector_and_template(spec, "deployment", errs);
    no_active_deadline(spec, "ReplicaSet", errs);
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    let rolling = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    match (string(strategy, "type"), rolling) {
        ("Recreate", Some(_)) => errs.forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        ),
        ("Recreate", None) => {}
        ("RollingUpdate", None) => errs.required(
            "spec.strategy.rollingUpdate",
            "this should be defaulted and never be nil",
        ),
        ("RollingUpdate", Some(ru)) => {
            let p = "spec.strategy.rollingUpdate";
            let unavailable = ru.get("maxUnavailable").unwrap_or(&Value::Null);
            let surge = ru.get("maxSurge").unwrap_or(&Value::Null);
            let u = int_or_percent(unavailable, &child(p, "maxUnavailable"), errs);
            let s = int_or_percent(surge, &child(p, "maxSurge"), errs);
            if u.unwrap_or(0) == 0 && s.unwrap_or(0) == 0 {
                errs.invalid(
                    child(p, "maxUnavailable"),
                    unavailable,
                    "may not be 0 when `maxSurge` is 0",
                );
            }
        }
        (other, _) => errs.not_supported(
            "spec.strategy",
            &Value::from(other),
            &["Recreate", "RollingUpdate"],
        ),
    }
    if let Some(deadline) = int(spec, "progressDeadlineSeconds")
        && deadline <= int(spec, "minReadySeconds").unwrap_or(0)
    {
        errs.invalid(
            "spec.progressDeadlineSeconds",
            &Value::from(deadline),
            "must be greater than minReadySeconds",
        );
    }
}

/// A ReplicaSet.
pub fn replica_set(obj: &Value, errs: &mut Errs) {
    let spec = spec_of(obj);
    for field in ["replicas", "minReadySeconds"] {
        errs.nonnegative(spec, "spec", field);
    }
    selector_and_template(spec, "deployment", errs);
    no_active_deadline(spec, "ReplicaSet", errs);
}

/// A StatefulSet.
pub fn stateful_set(obj: &Value, errs: &mut Errs) {
    let spec = spec_of(obj);
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        errs.nonnegative(spec, "spec", field);
    }
    match string(spec, "podManagementPolicy") {
        "OrderedReady" | "Parallel" => {}
        "" => errs.required("spec.podManagementPolicy", ""),
        other => errs.not_supported(
            "spec.podManagementPolicy",
            &Value::from(other),
            &["OrderedReady", "Parallel"],
        ),
    }
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match string(strategy, "type") {
        "RollingUpdate" => {
            if let Some(ru) = strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
                errs.nonnegative(ru, "spec.updateStrategy.rollingUpdate", "partition");
                if let Some(mu) = ru.get("maxUnavailable").filter(|v| !v.is_null())
                    && int_or_percent(mu, "spec.updateStrategy.rollingUpdate.maxUnavailable", errs) == Some(0)
                {
                    errs.invalid(
                        "spec.updateStrategy.rollingUpdate.maxUnavailable",
                        mu,
                        "must be greater than 0",
                    );
                }
            }
        }
        "OnDelete" => {
            if let Some(ru) = strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
                errs.invalid(
                    "spec.updateStrategy.rollingUpdate",
                    ru,
                    "only allowed for updateStrategy 'RollingUpdate'",
                );
            }
        }
        "" => errs.required("spec.updateStrategy", ""),
        other => errs.not_supported(
            "spec.updateStrategy",
            &Value::from(other),
            &["OnDelete", "RollingUpdate"],
        ),
    }
    // Upstream leaves the template's volume mounts unchecked for StatefulSets: the claim
    // templates become volumes of the pods. Here they count as volumes.
    let claims: Vec<&str> = spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    selector_and_template_with_claims(spec, "statefulset", &claims, errs);
    no_active_deadline(spec, "StatefulSet", errs);
}

/// A DaemonSet.
pub fn daemon_set(obj: &Value, errs: &mut Errs) {
    let spec = spec_of(obj);
    for field in ["minReadySeconds", "revisionHistoryLimit", "templateGeneration"] {
        errs.nonnegative(spec, "spec", field);
    }
    selector_and_template(spec, "daemonset", errs);
    no_active_deadline(spec, "DaemonSet", errs);
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match string(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = strategy.get("rollingUpdate").filter(|v| !v.is_null()) else {
                errs.required("spec.updateStrategy.rollingUpdate", "");
                return;
            };
            let p = "spec.updateStrategy.rollingUpdate";
            let surge = ru.get("maxSurge").unwrap_or(&Value::Null);
            let u = int_or_percent(
                ru.get("maxUnavailable").unwrap_or(&Value::Null),
                &child(p, "maxUnavailable"),
                errs,
            );
            let s = int_or_percent(surge, &child(p, "maxSurge"), errs);
            match (u.unwrap_or(0) != 0, s.unwrap_or(0) != 0) {
                (true, true) => errs.invalid(
                    child(p, "maxSurge"),
                    surge,
                    "may not be set when maxUnavailable is non-zero",
                ),
                (false, false) => errs.required(child(p, "maxUnavailable"), "cannot be 0 when maxSurge is 0"),
                _ => {}
            }
        }
        "" => errs.required("spec.updateStrategy.type", ""),
        other => errs.not_supported(
            "spec.updateStrategy.type",
            &Value::from(other),
            &["OnDelete", "RollingUpdate"],
        ),
    }
}

/// A ReplicationController (map selector; upstream defaults it from the template labels).
pub fn replication_controller(obj: &Value, errs: &mut Errs) {
    let spec = spec_of(obj);
    for field in ["replicas", "minReadySeconds"] {
        errs.nonnegative(spec, "spec", field);
    }
    let tmpl = spec.get("template").filter(|t| !t.is_null());
    let selector = object(spec, "selector").filter(|s| !s.is_empty());
    metadata::labels(selector, "spec.selector", errs);
    match (selector, tmpl) {
        (None, t) if t.and_then(|t| t.pointer("/metadata/labels")).is_none() => {
            errs.required("spec.selector", "");
        }
        (Some(sel), Some(t)) => {
            template_matches(
                &serde_json::json!({ "matchLabels": sel }),
                t,
                "spec.template",
                errs,
            );
        }
        _ => {}
    }
    match tmpl {
        None => errs.required("spec.template", ""),
        Some(t) => {
            pod::template(t, "spec.template", errs);
            pod::template_restart_policy(t, "spec.template", &["Always"], errs);
        }
    }
}

/// A PodTemplate.
pub fn pod_template(obj: &Value, errs: &mut Errs) {
    pod::template(obj.get("template").unwrap_or(&Value::Null), "template", errs);
}

/// Updates of Deployments, ReplicaSets and DaemonSets: the selector is immutable.
pub fn selector_immutable(new: &Value, old: &Value, errs: &mut Errs) {
    errs.immutable(
        "spec.selector",
        new.pointer("/spec/selector"),
        old.pointer("/spec/selector"),
    );
}

/// StatefulSet updates may change only some spec fields.
pub fn stateful_set_update(new: &Value, old: &Value, errs: &mut Errs) {
    let mutable = [
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let strip = |v: &Value| {
        let mut v = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.retain(|k, v| !mutable.contains(&k.as_str()) && !v.is_null());
        }
        v
    };
    if strip(new) != strip(old) {
        errs.forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        );
    }
}

/// Status counts of the workloads: not negative, and no more ready/available/updated replicas
/// than replicas.
pub fn status(obj: &Value, errs: &mut Errs) {
    let Some(status) = obj.get("status").filter(|s| s.is_object()) else {
        return;
    };
    for (field, value) in status.as_object().into_iter().flatten() {
        if let Some(n) = value.as_i64()
            && n < 0
            && field != "collisionCount"
        {
            errs.invalid(child("status", field), value, NEGATIVE);
        }
    }
    let replicas = int(status, "replicas").unwrap_or(0);
    for field in [
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "fullyLabeledReplicas",
    ] {
        if let Some(n) = int(status, field)
            && n > replicas
        {
            errs.invalid(
                child("status", field),
                &Value::from(n),
                "cannot be greater than status.replicas",
            );
        }
    }
    if let (Some(available), Some(ready)) = (int(status, "availableReplicas"), int(status, "readyReplicas"))
        && available > ready
    {
        errs.invalid(
            "status.availableReplicas",
            &Value::from(available),
            "cannot be greater than readyReplicas",
        );
    }
}

#[cfg(test)]
mod tests;
