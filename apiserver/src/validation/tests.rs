use serde_json::json;

use super::*;

fn row(group: &str, resource: &str) -> ResourceDescriptor {
    crate::builtin::rows()
        .into_iter()
        .find(|d| d.group == group && d.resource == resource)
        .unwrap()
}

#[test]
fn every_table_row_is_a_served_resource() {
    let rows = crate::builtin::rows();
    for (g, r, _) in TABLE {
        assert!(rows.iter().any(|d| d.group == *g && d.resource == *r), "{g}/{r}");
    }
}

#[test]
fn metadata_applies_to_every_resource_and_kind_rules_by_table() {
    let errs = validate(
        &row("", "configmaps"),
        &json!({"metadata": {"name": "x", "labels": {"a": "-"}}, "data": {"k": "v"}}),
    );
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "metadata.labels");
    let errs = validate(&row("", "pods"), &json!({"metadata": {"name": "p"}, "spec": {}}));
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.containers", "spec.restartPolicy", "spec.dnsPolicy"]
    );
}

#[test]
fn status_writes_validate_status_only() {
    let d = row("apps", "deployments");
    let errs = validate_status(&d, &json!({"spec": {}, "status": {"replicas": -1}}));
    assert_eq!(errs[0].field, "status.replicas");
    assert!(validate_status(&row("", "configmaps"), &json!({})).is_empty());
}

#[test]
fn updates_check_immutability() {
    let rb = row("rbac.authorization.k8s.io", "rolebindings");
    let old = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a"}});
    let mut new = old.clone();
    new["roleRef"]["name"] = json!("b");
    let errs = validate_update(&rb, &new, &old);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "roleRef");
}
