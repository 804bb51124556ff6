//! Upstream's storage admission plugins. DefaultStorageClass: a new PVC that names no class gets
//! the default StorageClass (annotated `storageclass.kubernetes.io/is-default-class: "true"`;
//! the newest wins when several are). StorageObjectInUseProtection: new PVCs and PVs get the
//! `kubernetes.io/pvc-protection` / `kubernetes.io/pv-protection` finalizer, which the
//! protection controllers remove once nothing uses them.

use serde_json::{Value, json};

/// The annotation that marks the default StorageClass.
pub const DEFAULT_CLASS: &str = api_util::volumes::ANN_DEFAULT_CLASS;
/// Its beta spelling, still honoured.
pub const DEFAULT_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The class annotation PVCs used before `spec.storageClassName`.
const LEGACY_CLASS: &str = api_util::volumes::ANN_BETA_STORAGE_CLASS;

/// The finalizer protecting a PVC in use by a pod.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer protecting a bound PV.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn is_default(class: &Value) -> bool {
    [DEFAULT_CLASS, DEFAULT_CLASS_BETA].iter().any(|a| {
        class
            .pointer(&format!("/metadata/annotations/{}", a.replace('/', "~1")))
            .and_then(Value::as_str)
            == Some("true")
    })
}

/// The default class among `classes`: the newest of those marked default (by creation time,
/// then name, as upstream).
pub fn default_class(classes: &[Value]) -> Option<&str> {
    fn field<'a>(c: &'a Value, path: &str) -> &'a str {
        c.pointer(path).and_then(Value::as_str).unwrap_or("")
    }
    classes
        .iter()
        .filter(|c| is_default(c))
        .max_by(|a, b| {
            let ta = field(a, "/metadata/creationTimestamp");
            let tb = field(b, "/metadata/creationTimestamp");
            ta.cmp(tb)
                .then_with(|| field(b, "/metadata/name").cmp(field(a, "/metadata/name")))
        })
        .and_then(|c| c.pointer("/metadata/name").and_then(Value::as_str))
}

/// Gives a PVC that names no class (neither `spec.storageClassName` nor the legacy annotation)
/// the default class, if there is one.
pub fn default_pvc_class(pvc: &mut Value, classes: &[Value]) {
    let named = pvc
        .pointer("/spec/storageClassName")
        .is_some_and(|v| !v.is_null())
        || pvc
            .pointer(&format!(
                "/metadata/annotations/{}",
                LEGACY_CLASS.replace('/', "~1")
            ))
            .is_some();
    if named {
        return;
    }
    if let Some(class) = default_class(classes)
        && let Some(spec) = pvc.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("storageClassName".into(), json!(class));
    }
}

/// Adds `finalizer` to the object's finalizers unless it is there.
pub fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f.as_str() == Some(finalizer))
    {
        list.push(json!(finalizer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, created: &str, default: Option<&str>) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
        if let Some(v) = default {
            c["metadata"]["annotations"] = json!({DEFAULT_CLASS: v});
        }
        c
    }

    #[test]
    fn the_newest_default_class_wins() {
        let classes = [
            class("old", "2026-01-01T00:00:00Z", Some("true")),
            class("new", "2026-02-01T00:00:00Z", Some("true")),
            class("plain", "2026-03-01T00:00:00Z", None),
            class("off", "2026-04-01T00:00:00Z", Some("false")),
        ];
        assert_eq!(default_class(&classes), Some("new"));
        assert_eq!(default_class(&classes[2..]), None);
        let beta = json!({"metadata": {"name": "b", "annotations": {DEFAULT_CLASS_BETA: "true"}}});
        assert_eq!(default_class(&[beta]), Some("b"));
    }

    #[test]
    fn only_claims_without_a_class_get_the_default() {
        let classes = [class("local-path", "2026-01-01T00:00:00Z", Some("true"))];
        let mut none = json!({"spec": {"resources": {}}});
        default_pvc_class(&mut none, &classes);
        assert_eq!(none["spec"]["storageClassName"], "local-path");
        let mut empty = json!({"spec": {"storageClassName": ""}});
        default_pvc_class(&mut empty, &classes);
        assert_eq!(empty["spec"]["storageClassName"], "", "\"\" asks for no class");
        let mut legacy = json!({"metadata": {"annotations": {LEGACY_CLASS: "x"}}, "spec": {}});
        default_pvc_class(&mut legacy, &classes);
        assert!(legacy["spec"].get("storageClassName").is_none());
    }

    #[test]
    fn finalizers_are_added_once() {
        let mut pvc = json!({"metadata": {"finalizers": ["a"]}});
        add_finalizer(&mut pvc, PVC_PROTECTION);
        add_finalizer(&mut pvc, PVC_PROTECTION);
        assert_eq!(pvc["metadata"]["finalizers"], json!(["a", PVC_PROTECTION]));
    }
}
