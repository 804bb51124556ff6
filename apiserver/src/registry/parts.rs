//! Subresources that write one part of an object of their own kind, as upstream's strategies:
//! `pods/ephemeralcontainers` (only `spec.ephemeralContainers`), CertificateSigningRequest
//! `approval` (only `status.conditions`) and the request's `status` (everything in `status` but
//! its Approved/Denied conditions).

use serde_json::{Value, json};

use super::subresource::UserInfo;
use crate::descriptor::ResourceDescriptor;

/// True for the `certificatesigningrequests` row.
pub fn is_csr(desc: &ResourceDescriptor) -> bool {
    desc.group == "certificates.k8s.io" && desc.resource == "certificatesigningrequests"
}

/// A new certificate request names who asked for it: `spec.username`, `uid`, `groups` and
/// `extra` are the requesting user's, whatever the body said (upstream's `PrepareForCreate`).
pub fn stamp_requestor(csr: &mut Value, user: &UserInfo) {
    let non_empty = |v: Value| (!v.as_str().is_some_and(str::is_empty)).then_some(v);
    put(csr, "spec", "username", non_empty(json!(user.name)));
    put(csr, "spec", "uid", non_empty(json!(user.uid)));
    put(
        csr,
        "spec",
        "groups",
        (!user.groups.is_empty()).then(|| json!(user.groups)),
    );
    put(
        csr,
        "spec",
        "extra",
        (!user.extra.is_empty()).then(|| json!(user.extra)),
    );
}

/// Sets or removes `/<parent>/<field>` of `obj` to `value`.
fn put(obj: &mut Value, parent: &str, field: &str, value: Option<Value>) {
    if !obj.get(parent).is_some_and(Value::is_object) {
        obj[parent] = Value::Object(Default::default());
    }
    if let Some(map) = obj.get_mut(parent).and_then(Value::as_object_mut) {
        match value.filter(|v| !v.is_null()) {
            Some(v) => map.insert(field.into(), v),
            None => map.remove(field),
        };
    }
}

/// `pods/ephemeralcontainers`: the stored pod with the body's ephemeral containers.
pub fn ephemeral_containers(old: &Value, new: &Value) -> Value {
    let mut merged = old.clone();
    let containers = new.pointer("/spec/ephemeralContainers").cloned();
    put(&mut merged, "spec", "ephemeralContainers", containers);
    merged
}

/// `certificatesigningrequests/approval`: the stored request with the body's conditions (their
/// timestamps filled in).
pub fn approval(old: &Value, new: &Value, now: &str) -> Value {
    let mut conditions = new.pointer("/status/conditions").cloned();
    if let Some(list) = conditions.as_mut().and_then(Value::as_array_mut) {
        stamp_conditions(list, old, now);
    }
    let mut merged = old.clone();
    put(&mut merged, "status", "conditions", conditions);
    merged
}

/// `certificatesigningrequests/status` after the generic status merge: the stored Approved and
/// Denied conditions are kept in place of the body's when it has as many of them (adding or
/// removing one is left to validation to refuse), and timestamps are filled in.
pub fn csr_status(old: &Value, merged: &mut Value, now: &str) {
    let Some(list) = merged
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let old_list: &[Value] = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    for ty in ["Approved", "Denied"] {
        let of_type = |l: &[Value]| -> Vec<usize> {
            l.iter()
                .enumerate()
                .filter(|(_, c)| c.get("type").and_then(Value::as_str) == Some(ty))
                .map(|(i, _)| i)
                .collect()
        };
        let (old_at, new_at) = (of_type(old_list), of_type(list));
        if old_at.len() == new_at.len() {
            for (o, n) in old_at.into_iter().zip(new_at) {
                list[n] = old_list[o].clone();
            }
        }
    }
    stamp_conditions(list, old, now);
}

/// Fills `lastUpdateTime` (now) and `lastTransitionTime` (the stored condition's of the same
/// type and status, else now) where a condition has none.
fn stamp_conditions(list: &mut [Value], old: &Value, now: &str) {
    let old_list: &[Value] = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let unset = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).is_none_or(str::is_empty);
    for c in list.iter_mut().filter(|c| c.is_object()) {
        if unset(c, "lastUpdateTime") {
            c["lastUpdateTime"] = Value::from(now);
        }
        if unset(c, "lastTransitionTime") {
            let earlier = old_list
                .iter()
                .find(|o| {
                    o.get("type") == c.get("type")
                        && o.get("status") == c.get("status")
                        && !unset(o, "lastTransitionTime")
                })
                .and_then(|o| o.get("lastTransitionTime").cloned());
            c["lastTransitionTime"] = earlier.unwrap_or_else(|| Value::from(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ephemeral_containers_change_nothing_else() {
        let old =
            json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}});
        let new = json!({"metadata": {"name": "p"}, "spec": {"ephemeralContainers": [{"name": "d"}], "containers": []}});
        let merged = ephemeral_containers(&old, &new);
        assert_eq!(merged["metadata"]["labels"]["a"], "b");
        assert_eq!(merged["spec"]["containers"][0]["name"], "c");
        assert_eq!(merged["spec"]["ephemeralContainers"][0]["name"], "d");
    }

    #[test]
    fn approval_takes_conditions_only_and_stamps_them() {
        let old = json!({"spec": {"request": "x"}, "status": {"certificate": "Y2VydA=="}});
        let new = json!({"spec": {"request": "changed"}, "status": {"certificate": null, "conditions": [{"type": "Approved", "status": "True"}]}});
        let merged = approval(&old, &new, "2026-01-01T00:00:00Z");
        assert_eq!(merged["spec"]["request"], "x");
        assert_eq!(merged["status"]["certificate"], "Y2VydA==");
        let c = &merged["status"]["conditions"][0];
        assert_eq!(c["lastUpdateTime"], "2026-01-01T00:00:00Z");
        assert_eq!(c["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn status_keeps_the_stored_approval() {
        let approved = json!({"type": "Approved", "status": "True", "reason": "ok", "lastUpdateTime": "t0", "lastTransitionTime": "t0"});
        let old = json!({"status": {"conditions": [approved]}});
        let mut merged = json!({"status": {"certificate": "Y2VydA==", "conditions": [
            {"type": "Approved", "status": "True", "reason": "rewritten"},
            {"type": "Failed", "status": "True"}
        ]}});
        csr_status(&old, &mut merged, "t1");
        assert_eq!(merged["status"]["conditions"][0], approved);
        assert_eq!(merged["status"]["conditions"][1]["lastTransitionTime"], "t1");
    }
}
