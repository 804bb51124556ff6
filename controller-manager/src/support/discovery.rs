//! The server's resources from discovery, as upstream's `ServerPreferredResources`: every
//! group version is asked, a resource is taken from the most preferred version that serves it,
//! and a failing group version is reported without failing the rest.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;
use kube::discovery::ApiResource;

/// One resource (no subresources) as discovery describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Namespace-scoped.
    pub namespaced: bool,
    /// The verbs discovery lists (`get`, `list`, `watch`, `delete`, `deletecollection`, ...).
    pub verbs: Vec<String>,
}

impl DiscoveredResource {
    /// True when every verb of `wanted` is supported.
    pub fn supports(&self, wanted: &[&str]) -> bool {
        wanted.iter().all(|w| self.verbs.iter().any(|v| v == w))
    }

    /// `<resource>.<group>` (`configmaps.` for the core group, as upstream prints it).
    pub fn group_resource(&self) -> String {
        format!("{}.{}", self.api.plural, self.api.group)
    }
}

/// What discovery found.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    /// Per group and resource, the most preferred version's resource.
    pub preferred: Vec<DiscoveredResource>,
    /// Every version's resources (for mapping any `apiVersion` + `kind` to its resource).
    pub all: Vec<DiscoveredResource>,
    /// Group versions whose resources could not be listed, with why.
    pub failed: BTreeMap<String, String>,
    /// Group versions that do not parse as `group/version` or `version`.
    pub unparsable: Vec<String>,
}

impl Discovered {
    /// The message of upstream's `ErrGroupDiscoveryFailed`, when some group failed.
    pub fn failure_message(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let parts: Vec<String> = self.failed.iter().map(|(gv, e)| format!("{gv}: {e}")).collect();
        Some(format!(
            "unable to retrieve the complete list of server APIs: {}",
            parts.join(", ")
        ))
    }

    /// The resource serving objects of `api_version` + `kind`, any version.
    pub fn resource_for(&self, api_version: &str, kind: &str) -> Option<&DiscoveredResource> {
        self.all
            .iter()
            .find(|r| r.api.api_version == api_version && r.api.kind == kind)
    }
}

/// Splits `group/version` (or a core `version`); `None` when it has more than one `/` or empty
/// parts.
pub fn parse_group_version(gv: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = gv.split('/').collect();
    match parts.as_slice() {
        [v] if !v.is_empty() => Some((String::new(), (*v).to_string())),
        [g, v] if !g.is_empty() && !v.is_empty() => Some(((*g).to_string(), (*v).to_string())),
        _ => None,
    }
}

/// Adds the resources of one listed group version (subresources skipped).
fn add_list(out: &mut Discovered, seen: &mut HashSet<(String, String)>, list: &APIResourceList) {
    let Some((group, version)) = parse_group_version(&list.group_version) else {
        out.unparsable.push(list.group_version.clone());
        return;
    };
    for r in &list.resources {
        if r.name.contains('/') {
            continue;
        }
        let resource = DiscoveredResource {
            api: ApiResource {
                group: r.group.clone().unwrap_or_else(|| group.clone()),
                version: r.version.clone().unwrap_or_else(|| version.clone()),
                api_version: list.group_version.clone(),
                kind: r.kind.clone(),
                plural: r.name.clone(),
            },
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
        };
        if seen.insert((resource.api.group.clone(), resource.api.plural.clone())) {
            out.preferred.push(resource.clone());
        }
        out.all.push(resource);
    }
}

/// Asks the server for every group version's resources. Only listing the groups themselves
/// failing is an error; a failing group version lands in [`Discovered::failed`].
pub async fn discover(client: &Client) -> Result<Discovered, kube::Error> {
    let mut out = Discovered::default();
    let mut seen = HashSet::new();
    let core = client.list_core_api_versions().await?;
    for v in &core.versions {
        match client.list_core_api_resources(v).await {
            Ok(list) => add_list(&mut out, &mut seen, &list),
            Err(e) => {
                out.failed.insert(v.clone(), e.to_string());
            }
        }
    }
    let groups = client.list_api_groups().await?;
    for g in &groups.groups {
        // The preferred version first, then the rest in the server's order.
        let preferred = g.preferred_version.as_ref().map(|p| p.group_version.clone());
        let mut versions: Vec<String> = preferred.iter().cloned().collect();
        versions.extend(
            g.versions
                .iter()
                .map(|v| v.group_version.clone())
                .filter(|gv| Some(gv) != preferred.as_ref()),
        );
        for gv in versions {
            match client.list_api_group_resources(&gv).await {
                Ok(list) => add_list(&mut out, &mut seen, &list),
                Err(e) => {
                    out.failed.insert(gv, e.to_string());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    fn list(gv: &str, resources: &[(&str, &str)]) -> APIResourceList {
        APIResourceList {
            group_version: gv.into(),
            resources: resources
                .iter()
                .map(|(name, kind)| APIResource {
                    name: (*name).into(),
                    kind: (*kind).into(),
                    namespaced: true,
                    verbs: vec!["delete".into(), "list".into()],
                    ..APIResource::default()
                })
                .collect(),
        }
    }

    #[test]
    fn the_first_version_serving_a_resource_wins_and_subresources_are_skipped() {
        let mut out = Discovered::default();
        let mut seen = HashSet::new();
        add_list(
            &mut out,
            &mut seen,
            &list(
                "apps/v1",
                &[("deployments", "Deployment"), ("deployments/scale", "Scale")],
            ),
        );
        add_list(
            &mut out,
            &mut seen,
            &list("apps/v1beta1", &[("deployments", "Deployment"), ("olds", "Old")]),
        );
        add_list(&mut out, &mut seen, &list("a/b/c", &[("x", "X")]));
        let preferred: Vec<_> = out
            .preferred
            .iter()
            .map(|r| (r.api.api_version.as_str(), r.api.plural.as_str()))
            .collect();
        assert_eq!(preferred, [("apps/v1", "deployments"), ("apps/v1beta1", "olds")]);
        assert_eq!(out.all.len(), 3);
        assert_eq!(out.unparsable, ["a/b/c"]);
        assert!(out.resource_for("apps/v1beta1", "Deployment").is_some());
        assert!(out.preferred[0].supports(&["delete", "list"]));
        assert!(!out.preferred[0].supports(&["watch"]));
        assert_eq!(out.preferred[0].group_resource(), "deployments.apps");
    }

    #[test]
    fn group_versions_parse_as_upstream() {
        assert_eq!(parse_group_version("v1"), Some((String::new(), "v1".into())));
        assert_eq!(parse_group_version("apps/v1"), Some(("apps".into(), "v1".into())));
        assert_eq!(parse_group_version("a/b/c"), None);
        assert_eq!(parse_group_version(""), None);
    }

    #[test]
    fn failures_read_like_upstream() {
        let mut d = Discovered::default();
        assert_eq!(d.failure_message(), None);
        d.failed.insert(
            "metrics.k8s.io/v1beta1".into(),
            "the server is currently unable to handle the request".into(),
        );
        assert_eq!(
            d.failure_message().unwrap(),
            "unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
        );
    }
}
