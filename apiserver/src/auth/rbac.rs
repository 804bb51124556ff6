//! The RBAC authorizer: rule matching over request attributes, the binding/role cache it reads,
//! the rules that apply to a user (for `SelfSubjectRulesReview` and escalation checks) and the
//! rule-coverage test behind escalation prevention.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use serde_json::Value;

use super::Attributes;
use crate::registry::subresource::UserInfo;

/// The group whose members may do everything (upstream's privileged group).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// A RoleBinding or ClusterRoleBinding, reduced to what authorization reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Binding {
    /// `roleRef.kind`: `Role` or `ClusterRole`.
    pub role_kind: String,
    /// `roleRef.name`.
    pub role_name: String,
    /// Who it binds.
    pub subjects: Vec<Subject>,
}

impl Binding {
    /// Reads a binding object; `None` when it is not one.
    pub fn from_object(obj: &Value) -> Option<Binding> {
        let role_ref = obj.get("roleRef")?;
        Some(Binding {
            role_kind: role_ref.get("kind")?.as_str()?.to_string(),
            role_name: role_ref.get("name")?.as_str()?.to_string(),
            subjects: obj
                .get("subjects")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default(),
        })
    }
}

/// The rules of a role object (empty when it has none or they do not parse).
pub fn rules_of(obj: &Value) -> Vec<PolicyRule> {
    obj.get("rules")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default()
}

/// The RBAC objects authorization evaluates, keyed by `(namespace, name)` (namespace "" for
/// cluster-scoped ones).
#[derive(Debug, Default)]
pub struct Policy {
    /// Roles.
    pub roles: HashMap<(String, String), Vec<PolicyRule>>,
    /// ClusterRoles.
    pub cluster_roles: HashMap<String, Vec<PolicyRule>>,
    /// RoleBindings by namespace, then name.
    pub role_bindings: HashMap<String, BTreeMap<String, Binding>>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: BTreeMap<String, Binding>,
}

/// Whether `subject` (of a binding in `binding_ns`, "" for cluster bindings) names the user.
fn applies(subject: &Subject, user: &UserInfo, binding_ns: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == value)
}

fn opt(list: &Option<Vec<String>>) -> &[String] {
    list.as_deref().unwrap_or(&[])
}

/// Whether a rule's `resources` match `resource` (`pods/log` when a subresource is asked for).
fn resource_matches(rule_resources: &[String], resource: &str, subresource: &str) -> bool {
    let combined = if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    };
    rule_resources.iter().any(|r| {
        r == "*" || *r == combined || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// Whether a `nonResourceURLs` entry matches `path` (`*` anywhere, or a trailing `*` prefix).
fn url_matches(pattern: &str, path: &str) -> bool {
    pattern == "*"
        || pattern == path
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Whether one rule allows the request.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !(has(&rule.verbs, "*") || has(&rule.verbs, &a.verb)) {
        return false;
    }
    if !a.resource_request {
        return opt(&rule.non_resource_urls)
            .iter()
            .any(|u| url_matches(u, &a.path));
    }
    let groups = opt(&rule.api_groups);
    if !(has(groups, "*") || has(groups, &a.group)) {
        return false;
    }
    if !resource_matches(opt(&rule.resources), &a.resource, &a.subresource) {
        return false;
    }
    let names = opt(&rule.resource_names);
    names.is_empty() || has(names, &a.name)
}

impl Policy {
    /// Calls `visit` with the rules of every binding that applies to `user` in `namespace`
    /// (cluster bindings first); stops when `visit` returns true. Returns whether it stopped.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&PolicyRule) -> bool,
    ) -> bool {
        for b in self.cluster_role_bindings.values() {
            if b.role_kind == "ClusterRole"
                && b.subjects.iter().any(|s| applies(s, user, ""))
                && let Some(rules) = self.cluster_roles.get(&b.role_name)
                && rules.iter().any(&mut visit)
            {
                return true;
            }
        }
        if namespace.is_empty() {
            return false;
        }
        let Some(bindings) = self.role_bindings.get(namespace) else {
            return false;
        };
        for b in bindings.values() {
            if !b.subjects.iter().any(|s| applies(s, user, namespace)) {
                continue;
            }
            let rules = match b.role_kind.as_str() {
                "ClusterRole" => self.cluster_roles.get(&b.role_name),
                "Role" => self.roles.get(&(namespace.to_string(), b.role_name.clone())),
                _ => None,
            };
            if rules.is_some_and(|r| r.iter().any(&mut visit)) {
                return true;
            }
        }
        false
    }

    /// The RBAC decision for a request (members of `system:masters` may do everything).
    pub fn allows(&self, a: &Attributes) -> bool {
        if a.user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            return true;
        }
        self.visit_rules(&a.user, &a.namespace, |r| rule_allows(r, a))
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide ones included).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        self.visit_rules(user, namespace, |r| {
            out.push(r.clone());
            false
        });
        out
    }
}

/// One rule broken down to a single verb and a single group/resource/name or URL.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| Some(vec![s.clone()]);
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for group in opt(&rule.api_groups) {
            for resource in opt(&rule.resources) {
                let names = opt(&rule.resource_names);
                if names.is_empty() {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        ..Default::default()
                    });
                }
                for name in names {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..Default::default()
                    });
                }
            }
        }
        for url in opt(&rule.non_resource_urls) {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

/// Whether `owner` grants everything the single-verb, single-object rule `sub` does.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let all = |owned: &[String], wanted: &[String]| has(owned, "*") || wanted.iter().all(|w| has(owned, w));
    if !all(&owner.verbs, &sub.verbs) {
        return false;
    }
    if let Some(urls) = &sub.non_resource_urls {
        return urls
            .iter()
            .all(|u| opt(&owner.non_resource_urls).iter().any(|p| url_matches(p, u)));
    }
    if !all(opt(&owner.api_groups), opt(&sub.api_groups)) {
        return false;
    }
    let resources_ok = opt(&sub.resources).iter().all(|r| {
        let (res, subres) = r.split_once('/').unwrap_or((r, ""));
        has(opt(&owner.resources), r) || (res != "*" && resource_matches(opt(&owner.resources), res, subres))
    });
    let owner_names = opt(&owner.resource_names);
    let names_ok = owner_names.is_empty()
        || (!opt(&sub.resource_names).is_empty() && all(owner_names, opt(&sub.resource_names)));
    resources_ok && names_ok
}

/// The parts of `requested` that `owned` does not grant (empty: no escalation).
pub fn uncovered(owned: &[PolicyRule], requested: &[PolicyRule]) -> Vec<PolicyRule> {
    requested
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owned.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> PolicyRule {
        serde_json::from_value(v).unwrap()
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn req(verb: &str, group: &str, resource: &str, sub: &str, name: &str, ns: &str) -> Attributes {
        Attributes {
            user: user("alice", &["devs", "system:authenticated"]),
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rule_matching_verbs_groups_resources_names_urls() {
        let r = rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}));
        assert!(rule_allows(&r, &req("get", "", "pods", "", "web", "d")));
        assert!(rule_allows(&r, &req("get", "", "pods", "log", "web", "d")));
        assert!(!rule_allows(&r, &req("get", "", "pods", "exec", "web", "d")));
        assert!(!rule_allows(&r, &req("delete", "", "pods", "", "web", "d")));
        assert!(!rule_allows(&r, &req("get", "apps", "pods", "", "web", "d")));
        let star = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        assert!(rule_allows(
            &star,
            &req("deletecollection", "apps", "deployments", "scale", "", "x")
        ));
        let sub = rule(json!({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]}));
        assert!(rule_allows(
            &sub,
            &req("update", "apps", "deployments", "status", "d", "x")
        ));
        assert!(!rule_allows(
            &sub,
            &req("update", "apps", "deployments", "", "d", "x")
        ));
        let named = rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"]}),
        );
        assert!(rule_allows(&named, &req("get", "", "configmaps", "", "cfg", "x")));
        assert!(!rule_allows(
            &named,
            &req("get", "", "configmaps", "", "other", "x")
        ));
        assert!(!rule_allows(&named, &req("list", "", "configmaps", "", "", "x")));
        let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        let mut a = req("get", "", "", "", "", "");
        a.resource_request = false;
        for (path, ok) in [
            ("/healthz", true),
            ("/apis/apps/v1", true),
            ("/metrics", false),
            ("/healthz/x", false),
        ] {
            a.path = path.into();
            assert_eq!(rule_allows(&urls, &a), ok, "{path}");
        }
        // Resource rules never match non-resource requests and the reverse.
        a.path = "/api".into();
        assert!(!rule_allows(&star, &a));
        assert!(!rule_allows(&urls, &req("get", "", "pods", "", "", "d")));
    }

    #[test]
    fn bindings_by_user_group_and_service_account() {
        let mut p = Policy::default();
        p.cluster_roles.insert(
            "reader".into(),
            vec![rule(
                json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}),
            )],
        );
        p.roles.insert(
            ("team".into(), "cm".into()),
            vec![rule(
                json!({"verbs": ["create"], "apiGroups": [""], "resources": ["configmaps"]}),
            )],
        );
        let bind = |kind: &str, name: &str, subjects: Value| Binding {
            role_kind: kind.into(),
            role_name: name.into(),
            subjects: serde_json::from_value(subjects).unwrap(),
        };
        p.role_bindings.entry("team".into()).or_default().insert(
            "a".into(),
            bind(
                "ClusterRole",
                "reader",
                json!([{"kind": "Group", "name": "devs"}]),
            ),
        );
        p.role_bindings.entry("team".into()).or_default().insert(
            "b".into(),
            bind("Role", "cm", json!([{"kind": "ServiceAccount", "name": "bot"}])),
        );
        assert!(p.allows(&req("list", "", "pods", "", "", "team")));
        assert!(!p.allows(&req("list", "", "pods", "", "", "other")));
        assert!(!p.allows(&req("list", "", "pods", "", "", "")));
        let mut sa = req("create", "", "configmaps", "", "", "team");
        assert!(!p.allows(&sa));
        sa.user = user("system:serviceaccount:team:bot", &[]);
        assert!(p.allows(&sa));
        p.cluster_role_bindings.insert(
            "all".into(),
            bind(
                "ClusterRole",
                "reader",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        );
        assert!(p.allows(&req("list", "", "pods", "", "", "")));
        assert_eq!(p.rules_for(&user("alice", &["devs"]), "team").len(), 2);
        let mut root = req("delete", "x", "y", "", "", "");
        root.user = user("root", &[SYSTEM_MASTERS]);
        assert!(p.allows(&root));
    }

    #[test]
    fn escalation_coverage() {
        let owned = vec![
            rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "configmaps"]})),
            rule(
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/logs/*"]})),
        ];
        let ok = vec![
            rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})),
            rule(
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/logs/a"]})),
        ];
        assert!(uncovered(&owned, &ok).is_empty());
        for bad in [
            json!({"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}),
            json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]}),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}),
            json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]}),
        ] {
            assert_eq!(uncovered(&owned, &[rule(bad.clone())]).len(), 1, "{bad}");
        }
        let admin = vec![rule(
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
        )];
        assert!(
            uncovered(
                &admin,
                &[rule(
                    json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]})
                )]
            )
            .is_empty()
        );
    }
}
