//! RBAC roles and bindings (upstream `pkg/apis/rbac/validation`).

use serde_json::Value;

use super::field::{Errs, child, index, list, string};
use super::names;

const GROUP: &str = "rbac.authorization.k8s.io";

fn rules(obj: &Value, namespaced: bool, errs: &mut Errs) {
    for (i, rule) in list(obj, "rules").iter().enumerate() {
        let p = index("rules", i);
        if list(rule, "verbs").is_empty() {
            errs.required(child(&p, "verbs"), "verbs must contain at least one value");
        }
        let urls = list(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let value = Value::from(urls.to_vec());
            if namespaced {
                errs.invalid(
                    child(&p, "nonResourceURLs"),
                    &value,
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !list(rule, "apiGroups").is_empty()
                || !list(rule, "resources").is_empty()
                || !list(rule, "resourceNames").is_empty()
            {
                errs.invalid(
                    child(&p, "nonResourceURLs"),
                    &value,
                    "nonResourceURLs cannot be used with apiGroups, resources, or resourceNames",
                );
            }
            continue;
        }
        if list(rule, "apiGroups").is_empty() {
            errs.required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if list(rule, "resources").is_empty() {
            errs.required(
                child(&p, "resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

/// A Role.
pub fn role(obj: &Value, errs: &mut Errs) {
    rules(obj, true, errs);
}

/// A ClusterRole (aggregated roles have their rules filled by the controller).
pub fn cluster_role(obj: &Value, errs: &mut Errs) {
    rules(obj, false, errs);
}

fn binding(obj: &Value, namespaced: bool, errs: &mut Errs) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let group = string(role_ref, "apiGroup");
    if !group.is_empty() && group != GROUP {
        errs.not_supported("roleRef.apiGroup", &Value::from(group), &[GROUP]);
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = string(role_ref, "kind");
    if !kinds.contains(&kind) {
        errs.not_supported("roleRef.kind", &Value::from(kind), kinds);
    }
    let name = string(role_ref, "name");
    if name.is_empty() {
        errs.required("roleRef.name", "");
    } else if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        errs.invalid_str("roleRef.name", name, "may not contain '/' or '%'");
    }
    for (i, s) in list(obj, "subjects").iter().enumerate() {
        subject(s, namespaced, &index("subjects", i), errs);
    }
}

fn subject(s: &Value, namespaced: bool, path: &str, errs: &mut Errs) {
    let name = string(s, "name");
    if name.is_empty() {
        errs.required(child(path, "name"), "");
    }
    let group = string(s, "apiGroup");
    match string(s, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                errs.invalid_each(&child(path, "name"), name, names::dns1123_subdomain(name));
            }
            if !group.is_empty() {
                errs.not_supported(child(path, "apiGroup"), &Value::from(group), &[""]);
            }
            if !namespaced && string(s, "namespace").is_empty() {
                errs.required(child(path, "namespace"), "");
            }
        }
        // An empty group is defaulted to the RBAC group for users and groups.
        "User" | "Group" => {
            if !group.is_empty() && group != GROUP {
                errs.not_supported(child(path, "apiGroup"), &Value::from(group), &[GROUP]);
            }
        }
        other => errs.not_supported(
            child(path, "kind"),
            &Value::from(other),
            &["ServiceAccount", "User", "Group"],
        ),
    }
}

/// A RoleBinding.
pub fn role_binding(obj: &Value, errs: &mut Errs) {
    binding(obj, true, errs);
}

/// A ClusterRoleBinding.
pub fn cluster_role_binding(obj: &Value, errs: &mut Errs) {
    binding(obj, false, errs);
}

/// Binding updates: `roleRef` is fixed.
pub fn binding_update(new: &Value, old: &Value, errs: &mut Errs) {
    let norm = |v: &Value| {
        let r = v.get("roleRef").cloned().unwrap_or(Value::Null);
        let group = string(&r, "apiGroup");
        let group = if group.is_empty() { GROUP } else { group };
        (
            group.to_string(),
            string(&r, "kind").to_string(),
            string(&r, "name").to_string(),
        )
    };
    if norm(new) != norm(old) {
        errs.invalid(
            "roleRef",
            new.get("roleRef").unwrap_or(&Value::Null),
            "cannot change roleRef",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rbac_rules() {
        let mut errs = Errs::default();
        role(
            &json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]}),
            &mut errs,
        );
        let got: Vec<_> = errs
            .0
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "rules[0].verbs",
                    "Required value: verbs must contain at least one value"
                ),
                (
                    "rules[1].nonResourceURLs",
                    "Invalid value: [\"/x\"]: namespaced rules cannot apply to non-resource URLs"
                )
            ]
        );
        let mut errs = Errs::default();
        cluster_role_binding(
            &json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "x"}, {"kind": "User", "name": "u"}]}),
            &mut errs,
        );
        let got: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, ["roleRef.kind", "subjects[0].namespace", "subjects[1].kind"]);
        let old = json!({"roleRef": {"kind": "ClusterRole", "name": "a"}});
        let new = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "b"}});
        let mut errs = Errs::default();
        binding_update(&new, &old, &mut errs);
        assert_eq!(errs.0[0].field, "roleRef");
        assert!(errs.0[0].message.ends_with(": cannot change roleRef"));
    }
}
