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

#[test]
fn names_use_upstream_messages() {
    let svc = json!({"metadata": {"name": "1svc"}, "spec": {"type": "ClusterIP", "sessionAffinity": "None",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}});
    let errs = crate::strategy::validate(&row("", "services"), &svc);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message,
        "Invalid value: \"1svc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    );
    let role = json!({"metadata": {"name": "a/b%"}});
    let errs = crate::strategy::validate(&row("rbac.authorization.k8s.io", "roles"), &role);
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Invalid value: \"a/b%\": may not contain '/'",
            "Invalid value: \"a/b%\": may not contain '%'"
        ]
    );
}
