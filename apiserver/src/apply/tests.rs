//! Field-manager scenarios over the engine (no server): apply, update, conflicts, removal.

use serde_json::{Value, json};

use super::*;

fn row(group: &str, resource: &str) -> ResourceDescriptor {
    crate::builtin::rows()
        .into_iter()
        .find(|d| d.group == group && d.resource == resource)
        .unwrap()
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": data})
}

/// An apply as the registry runs it: merge, then record.
fn apply(
    desc: &ResourceDescriptor,
    live: Option<&Value>,
    config: Value,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let mut config = config;
    check_applied(desc, &mut config, "d", "c")?;
    let mut merged = merge_applied(desc, live, &config, manager, None)?;
    let writer = Writer {
        manager,
        force,
        applied: Some(&config),
    };
    track(desc, live, &mut merged, &writer, None)?;
    Ok(merged)
}

fn update(desc: &ResourceDescriptor, live: Option<&Value>, mut new: Value, manager: &str) -> Value {
    let writer = Writer {
        manager,
        force: false,
        applied: None,
    };
    track(desc, live, &mut new, &writer, None).unwrap();
    new
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

#[test]
fn apply_records_an_apply_entry() {
    let d = row("", "configmaps");
    let out = apply(&d, None, cm(json!({"a": "1"})), "kubectl", false).unwrap();
    let e = entry(&out, "kubectl").unwrap();
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(e["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    assert!(e["time"].is_string());
    assert!(e.get("subresource").is_none());
}

#[test]
fn unapplied_fields_are_removed_unless_owned_by_others() {
    let d = row("", "configmaps");
    let v1 = apply(&d, None, cm(json!({"a": "1", "b": "2", "c": "3"})), "m", false).unwrap();
    // Another manager co-owns b by applying the same value.
    let v2 = apply(&d, Some(&v1), cm(json!({"b": "2"})), "other", false).unwrap();
    assert_eq!(
        entry(&v2, "other").unwrap()["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
    let v3 = apply(&d, Some(&v2), cm(json!({"a": "1"})), "m", false).unwrap();
    assert_eq!(
        v3["data"],
        json!({"a": "1", "b": "2"}),
        "c removed, b kept for other"
    );
    assert_eq!(
        entry(&v3, "m").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
}

#[test]
fn conflicts_and_force_transfer_ownership() {
    let d = row("apps", "deployments");
    let dep = |replicas: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c", "namespace": "d"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "c"}},
                "template": {"metadata": {"labels": {"app": "c"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    };
    // Created by an update (kubectl create); then an applier changes replicas.
    let created = update(&d, None, dep(1), "kubectl-create");
    let e = entry(&created, "kubectl-create").unwrap();
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["fieldsV1"]["f:metadata"], Value::Null, "name is not owned");
    assert_eq!(e["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    let err = apply(&d, Some(&created), dep(3), "mgr", false).unwrap_err();
    assert_eq!((err.code(), err.reason()), (409, "Conflict"));
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.replicas"
    );
    let causes = err.to_json()["details"]["causes"].clone();
    assert_eq!(
        causes,
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-create\" using apps/v1", "field": ".spec.replicas"}])
    );
    // The same values do not conflict: both own them.
    let shared = apply(&d, Some(&created), dep(1), "mgr", false).unwrap();
    assert_eq!(shared["metadata"]["managedFields"].as_array().unwrap().len(), 2);
    // Forced: the applier takes replicas away from the creator.
    let forced = apply(&d, Some(&shared), dep(3), "mgr", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    let creator = entry(&forced, "kubectl-create").unwrap();
    assert!(creator["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    assert!(creator["fieldsV1"]["f:spec"].get("f:selector").is_some());
    // An update taking a field from an applier makes a later apply of the old value conflict.
    let mut edited = forced.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let edited = update(&d, Some(&forced), edited, "kubectl-edit");
    let err = apply(&d, Some(&edited), dep(3), "mgr", false).unwrap_err();
    assert!(
        err.message()
            .ends_with(".spec.template.spec.containers[name=\"web\"].image"),
        "{}",
        err.message()
    );
}

#[test]
fn several_conflicts_are_listed_by_manager() {
    let d = row("", "configmaps");
    let base = update(&d, None, cm(json!({"a": "1", "b": "1"})), "x");
    let err = apply(&d, Some(&base), cm(json!({"a": "2", "b": "2"})), "m", false).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"x\" using v1\n- .data.a\n- .data.b"
    );
}

#[test]
fn updates_merge_per_manager_and_managed_fields_reset() {
    let d = row("", "configmaps");
    let v1 = update(&d, None, cm(json!({"a": "1"})), "ed");
    let v2 = update(&d, Some(&v1), cm(json!({"a": "1", "b": "2"})), "ed");
    let entries = v2["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}})
    );
    // No change: nothing recorded (the entry, time included, is kept).
    let v3 = update(&d, Some(&v2), v2.clone(), "other");
    assert_eq!(v3["metadata"]["managedFields"], v2["metadata"]["managedFields"]);
    // An empty list in the body clears them.
    let mut reset = v2.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let v4 = update(&d, Some(&v2), reset, "other");
    assert!(v4["metadata"].get("managedFields").is_none());
    // Omitted: the stored ones are kept.
    let mut omitted = v2.clone();
    omitted["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    let v5 = update(&d, Some(&v2), omitted, "other");
    assert_eq!(v5["metadata"]["managedFields"], v2["metadata"]["managedFields"]);
}

#[test]
fn first_apply_on_an_unmanaged_object_keeps_existing_fields_owned() {
    let d = row("", "configmaps");
    let live = cm(json!({"a": "1", "keep": "x"}));
    // Updates of an untracked object stay untracked.
    let mut changed = live.clone();
    changed["data"]["a"] = json!("0");
    let untracked = update(&d, Some(&live), changed, "ed");
    assert!(untracked["metadata"].get("managedFields").is_none());
    // The first apply: existing fields belong to before-first-apply.
    let err = apply(&d, Some(&live), cm(json!({"a": "2"})), "m", false).unwrap_err();
    assert!(
        err.message()
            .contains("conflict with \"before-first-apply\" using v1: .data.a")
    );
    let out = apply(&d, Some(&live), cm(json!({"b": "2"})), "m", false).unwrap();
    assert_eq!(out["data"], json!({"a": "1", "b": "2", "keep": "x"}));
    let before = entry(&out, managed::BEFORE_FIRST_APPLY).unwrap();
    assert_eq!(before["fieldsV1"]["f:data"]["f:keep"], json!({}));
    assert_eq!(
        entry(&out, "m").unwrap()["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
}

#[test]
fn bad_applied_configurations() {
    let d = row("", "configmaps");
    let mut wrong_version = cm(json!({}));
    wrong_version["apiVersion"] = json!("v2");
    assert_eq!(
        apply(&d, None, wrong_version, "m", false).unwrap_err().code(),
        400
    );
    let mut with_managed = cm(json!({}));
    with_managed["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(&d, None, with_managed, "m", false).unwrap_err().message(),
        "metadata.managedFields must be nil"
    );
    let mut unknown = cm(json!({}));
    unknown["bogus"] = json!(1);
    let err = apply(&d, None, unknown, "m", false).unwrap_err();
    assert_eq!(
        err.message(),
        "failed to create typed patch object (d/c; v1, Kind=ConfigMap): .bogus: field not declared in schema"
    );
    let p = row("", "pods");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"},
        "spec": {"containers": [{"image": "x"}]}});
    let err = apply(&p, None, pod, "m", false).unwrap_err();
    assert!(
        err.message().contains("omits key field \"name\""),
        "{}",
        err.message()
    );
}

#[test]
fn status_applies_own_only_status() {
    let d = row("apps", "deployments");
    let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c"},
        "spec": {"replicas": 1}, "status": {"replicas": 0}});
    let mut config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c", "labels": {"x": "y"}},
        "status": {"replicas": 1}});
    check_applied(&d, &mut config, "d", "c").unwrap();
    let mut merged = merge_applied(&d, Some(&live), &config, "ctl", Some(SubresourceKind::Status)).unwrap();
    // The registry keeps everything but status from the stored object.
    merged["metadata"] = live["metadata"].clone();
    let writer = Writer {
        manager: "ctl",
        force: false,
        applied: Some(&config),
    };
    track(
        &d,
        Some(&live),
        &mut merged,
        &writer,
        Some(SubresourceKind::Status),
    )
    .unwrap();
    let e = entry(&merged, "ctl").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn kubectl_server_side_apply_upgrades_client_side_apply() {
    let d = row("", "configmaps");
    let last = cm(json!({"a": "1"})).to_string();
    let mut created = cm(json!({"a": "1"}));
    created["metadata"]["annotations"] = json!({LAST_APPLIED: last});
    let created = update(&d, None, created, "kubectl-client-side-apply");
    // Another applier conflicts with the client-side applier ...
    assert_eq!(
        apply(&d, Some(&created), cm(json!({"a": "2"})), "tool", false)
            .unwrap_err()
            .code(),
        409
    );
    // ... kubectl takes the fields the annotation names, and keeps the annotation current.
    let out = apply(&d, Some(&created), cm(json!({"a": "2"})), "kubectl", false).unwrap();
    assert_eq!(out["data"]["a"], "2");
    let synced: Value =
        serde_json::from_str(out["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap()).unwrap();
    assert_eq!(synced["data"], json!({"a": "2"}));
    let csa = entry(&out, "kubectl-client-side-apply").unwrap();
    assert_eq!(
        csa["fieldsV1"]["f:data"],
        json!({}),
        "only the map itself stays: {csa}"
    );
    assert!(
        csa["fieldsV1"]["f:metadata"]["f:annotations"]
            .get(format!("f:{LAST_APPLIED}"))
            .is_some()
    );
}
