//! The smaller core and coordination kinds: Namespaces, Nodes, Leases, Events,
//! PersistentVolumeClaims.

use std::collections::HashSet;

use serde_json::Value;

use super::field::{Errs, child, index, int, list, object, string};
use super::quantity::{self, Quantity};
use super::{metadata, names};

const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// A Namespace: its `spec.finalizers` are standard or fully qualified.
pub fn namespace(obj: &Value, errs: &mut Errs) {
    for f in list(obj.get("spec").unwrap_or(&Value::Null), "finalizers") {
        let f = f.as_str().unwrap_or("");
        errs.invalid_each("spec.finalizers", f, names::qualified_name(f));
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f) {
            errs.invalid_str(
                "spec.finalizers",
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
}

/// A Node: taints (key, value, effect, unique by key and effect).
pub fn node(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut seen = HashSet::new();
    for (i, t) in list(spec, "taints").iter().enumerate() {
        let p = index("spec.taints", i);
        let key = string(t, "key");
        if key.is_empty() {
            errs.required(child(&p, "key"), "");
        }
        errs.invalid_each(&child(&p, "key"), key, names::qualified_name(key));
        let value = string(t, "value");
        errs.invalid_each(&child(&p, "value"), value, names::label_value(value));
        let effect = string(t, "effect");
        match effect {
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            "" => errs.required(child(&p, "effect"), ""),
            other => errs.not_supported(
                child(&p, "effect"),
                &Value::from(other),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ),
        }
        if !seen.insert((key, effect)) {
            errs.invalid(&p, t, "taints must be unique by key and effect pair");
        }
    }
}

/// A Lease: positive duration, non-negative transitions.
pub fn lease(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(d) = int(spec, "leaseDurationSeconds")
        && d <= 0
    {
        errs.invalid(
            "spec.leaseDurationSeconds",
            &Value::from(d),
            "must be greater than 0",
        );
    }
    errs.nonnegative(spec, "spec", "leaseTransitions");
}

/// A core/v1 Event: without `eventTime` its namespace matches the involved object's.
pub fn core_event(obj: &Value, errs: &mut Errs) {
    if obj.get("eventTime").is_some_and(|t| !t.is_null()) {
        return;
    }
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ok = if involved.is_empty() {
        ns.is_empty() || ns == "default"
    } else {
        ns == involved
    };
    if !ok {
        errs.invalid_str(
            "involvedObject.namespace",
            involved,
            "does not match event.namespace",
        );
    }
}

/// An events.k8s.io/v1 Event: the fields the new API requires.
pub fn event(obj: &Value, errs: &mut Errs) {
    if obj.get("eventTime").is_none_or(Value::is_null) {
        errs.required("eventTime", "");
    }
    let ty = string(obj, "type");
    if ty != "Normal" && ty != "Warning" {
        errs.invalid_str("type", "", &format!("has invalid value: {ty}"));
    }
    for field in ["reportingController", "reportingInstance", "action", "reason"] {
        if string(obj, field).is_empty() {
            errs.required(field, "");
        }
    }
    if string(obj, "note").len() > 1024 {
        errs.invalid_str("note", "", "can have at most 1024 characters");
    }
}

/// A PersistentVolumeClaim: access modes and a storage request.
pub fn persistent_volume_claim(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let modes = list(spec, "accessModes");
    if modes.is_empty() {
        errs.required("spec.accessModes", "at least 1 access mode is required");
    }
    const MODES: [&str; 4] = [
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !MODES.contains(&m) {
            errs.not_supported("spec.accessModes", &Value::from(m), &MODES);
        }
    }
    let storage = object(spec, "resources")
        .and_then(|r| r.get("requests"))
        .and_then(|r| r.get("storage"));
    match storage {
        None => errs.required("spec.resources[storage]", ""),
        Some(q) => match Quantity::from_json(q) {
            None => errs.invalid_str(
                "spec.resources[storage]",
                &quantity::display(q),
                quantity::FORMAT_ERROR,
            ),
            Some(v) if v <= Quantity::parse("0").unwrap_or(v) => errs.invalid_str(
                "spec.resources[storage]",
                &quantity::display(q),
                "must be greater than zero",
            ),
            Some(_) => {}
        },
    }
    metadata::label_selector(
        spec.get("selector").unwrap_or(&Value::Null),
        "spec.selector",
        errs,
    );
}

/// PVC updates: the spec is fixed except a first `volumeName`, the storage request of a bound
/// claim, and `volumeAttributesClassName`.
pub fn persistent_volume_claim_update(new: &Value, old: &Value, errs: &mut Errs) {
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = spec.as_object_mut() {
            m.remove("volumeAttributesClassName");
            if old
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                m.remove("volumeName");
            }
            let bound = new.pointer("/status/phase").and_then(Value::as_str) == Some("Bound")
                || old.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
            if bound
                && let Some(r) = m
                    .get_mut("resources")
                    .and_then(|r| r.get_mut("requests"))
                    .and_then(Value::as_object_mut)
            {
                r.remove("storage");
            }
        }
        spec
    };
    if strip(new) != strip(old) {
        errs.forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs_of(f: fn(&Value, &mut Errs), obj: &Value) -> Vec<(String, String)> {
        let mut errs = Errs::default();
        f(obj, &mut errs);
        errs.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn namespaces_nodes_leases() {
        assert_eq!(
            errs_of(
                namespace,
                &json!({"spec": {"finalizers": ["kubernetes", "example.com/x"]}})
            ),
            []
        );
        assert_eq!(
            errs_of(namespace, &json!({"spec": {"finalizers": ["custom"]}})),
            [(
                "spec.finalizers".into(),
                "Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
                    .into()
            )]
        );
        let node_obj = json!({"spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "cpu", "effect": "NoSchedule"},
            {"key": "k", "effect": "Sometimes"}]}});
        let errs = errs_of(node, &node_obj);
        assert_eq!(errs[0].0, "spec.taints[1]");
        assert!(
            errs[0]
                .1
                .ends_with("taints must be unique by key and effect pair")
        );
        assert_eq!(errs[1].0, "spec.taints[2].effect");
        assert_eq!(
            errs_of(
                lease,
                &json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}})
            ),
            [
                (
                    "spec.leaseDurationSeconds".into(),
                    "Invalid value: 0: must be greater than 0".into()
                ),
                (
                    "spec.leaseTransitions".into(),
                    "Invalid value: -1: must be greater than or equal to 0".into()
                )
            ]
        );
    }

    #[test]
    fn events() {
        let e = json!({"metadata": {"namespace": "a"}, "involvedObject": {"namespace": "b"}});
        assert_eq!(
            errs_of(core_event, &e),
            [(
                "involvedObject.namespace".into(),
                "Invalid value: \"b\": does not match event.namespace".into()
            )]
        );
        let node_event = json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Node"}});
        assert_eq!(errs_of(core_event, &node_event), []);
        let fields: Vec<String> = errs_of(event, &json!({"type": "Normal", "reason": "R"}))
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(
            fields,
            ["eventTime", "reportingController", "reportingInstance", "action"]
        );
    }

    #[test]
    fn persistent_volume_claims() {
        let pvc = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(errs_of(persistent_volume_claim, &pvc), []);
        assert_eq!(
            errs_of(persistent_volume_claim, &json!({"spec": {}})),
            [
                (
                    "spec.accessModes".into(),
                    "Required value: at least 1 access mode is required".into()
                ),
                ("spec.resources[storage]".into(), "Required value".into())
            ]
        );
        let mut bound = pvc;
        bound["status"] = json!({"phase": "Bound"});
        let mut grown = bound.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        grown["spec"]["volumeName"] = json!("pv-1");
        let mut errs = Errs::default();
        persistent_volume_claim_update(&grown, &bound, &mut errs);
        assert!(errs.0.is_empty(), "{:?}", errs.0);
        grown["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        persistent_volume_claim_update(&grown, &bound, &mut errs);
        assert_eq!(errs.0[0].field, "spec");
    }
}
