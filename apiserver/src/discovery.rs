//! Discovery documents, built from the descriptor table: legacy (`APIVersions`, `APIGroupList`,
//! `APIGroup`, `APIResourceList`) and aggregated (`apidiscovery.k8s.io` v2 and v2beta1
//! `APIGroupDiscoveryList`, chosen by the `Accept` header), plus `/version`.

use serde_json::{Value, json};

use crate::codec::MediaType;
use crate::descriptor::{ResourceDescriptor, ResourceTable};

k8s_openapi::k8s_if_1_33! { const MINOR: &str = "33"; }
k8s_openapi::k8s_if_1_34! { const MINOR: &str = "34"; }
k8s_openapi::k8s_if_1_35! { const MINOR: &str = "35"; }
k8s_openapi::k8s_if_1_36! { const MINOR: &str = "36"; }
k8s_openapi::k8s_if_1_37! { const MINOR: &str = "37"; }

/// The Kubernetes minor version served (the k8s-openapi schema the types come from).
pub const KUBERNETES_MINOR: &str = MINOR;

/// The `/version` document.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "gitVersion": format!("v1.{MINOR}.0-keelson"),
        "gitCommit": "keelson",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": format!("rust-keelson-{}", env!("CARGO_PKG_VERSION")),
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, goarch()),
    })
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Which aggregated discovery version the client asked for, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregated {
    /// `apidiscovery.k8s.io/v2`.
    V2,
    /// `apidiscovery.k8s.io/v2beta1`.
    V2Beta1,
}

impl Aggregated {
    /// Reads the Accept header: the first entry decides (legacy JSON if it is plain JSON).
    pub fn negotiate(accept: Option<&str>) -> Option<Aggregated> {
        for m in MediaType::parse_list(accept.unwrap_or("")) {
            if m.param("as") == Some("APIGroupDiscoveryList") && m.param("g") == Some("apidiscovery.k8s.io") {
                match m.param("v") {
                    Some("v2") => return Some(Aggregated::V2),
                    Some("v2beta1") => return Some(Aggregated::V2Beta1),
                    _ => continue,
                }
            }
            if m.param("as").is_none() && matches!(m.essence.as_str(), "application/json" | "*/*") {
                return None;
            }
        }
        None
    }

    fn version(self) -> &'static str {
        match self {
            Aggregated::V2 => "v2",
            Aggregated::V2Beta1 => "v2beta1",
        }
    }

    /// The response Content-Type (clients recognize the format by it).
    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.version()
        )
    }
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(name, v), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn api_group_list(table: &ResourceTable) -> Value {
    let groups: Vec<Value> = table.groups().iter().map(|(g, vs)| api_group(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, or None when the group is not served.
pub fn api_group_doc(table: &ResourceTable, group: &str) -> Option<Value> {
    let (name, versions) = table.groups().into_iter().find(|(g, _)| g == group)?;
    let mut doc = api_group(&name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` or `/apis/<group>/<version>`, or None when not served.
pub fn api_resource_list(table: &ResourceTable, group: &str, version: &str) -> Option<Value> {
    let rows = table.resources(group, version);
    if rows.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in &rows {
        let mut r = json!({
            "name": d.resource,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs.names(),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        for s in &d.subresources {
            let mut sr = json!({
                "name": format!("{}/{}", d.resource, s.name),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": s.response_kind,
                "verbs": s.verbs,
            });
            if s.response_group != d.group || s.response_version != d.version {
                sr["group"] = json!(s.response_group);
                sr["version"] = json!(s.response_version);
            }
            resources.push(sr);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    }))
}

fn discovery_resource(d: &ResourceDescriptor) -> Value {
    let mut r = json!({
        "resource": d.resource,
        "responseKind": {"group": "", "version": "", "kind": d.kind},
        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": d.singular,
        "verbs": d.verbs.names(),
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    if !d.subresources.is_empty() {
        r["subresources"] = json!(
            d.subresources
                .iter()
                .map(|s| json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.response_group, "version": s.response_version, "kind": s.response_kind},
                    "verbs": s.verbs,
                }))
                .collect::<Vec<_>>()
        );
    }
    r
}

fn discovery_group(table: &ResourceTable, name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = table
                .resources(name, v)
                .iter()
                .map(|d| discovery_resource(d))
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": name}, "versions": versions})
}

/// The aggregated document of `/api` (`core == true`) or `/apis`.
pub fn aggregated(table: &ResourceTable, core: bool, version: Aggregated) -> Value {
    let items: Vec<Value> = if core {
        vec![discovery_group(table, "", &["v1".to_string()])]
    } else {
        table
            .groups()
            .iter()
            .map(|(g, vs)| discovery_group(table, g, vs))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", version.version()),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ResourceTable {
        let t = ResourceTable::new();
        for r in crate::builtin::rows() {
            t.install(r);
        }
        t
    }

    #[test]
    fn negotiates_aggregated_by_accept() {
        let k133 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(Aggregated::negotiate(Some(k133)), Some(Aggregated::V2));
        let k127 =
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(Aggregated::negotiate(Some(k127)), Some(Aggregated::V2Beta1));
        assert_eq!(Aggregated::negotiate(Some("application/json, */*")), None);
        assert_eq!(Aggregated::negotiate(None), None);
    }

    #[test]
    fn documents() {
        let t = table();
        let groups = api_group_list(&t);
        let apps = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        let autoscaling = api_group_doc(&t, "autoscaling").unwrap();
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        let core = api_resource_list(&t, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"namespaces/finalize")
        );
        let scale = api_resource_list(&t, "apps", "v1").unwrap()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .cloned()
            .unwrap();
        assert_eq!(
            (scale["group"].as_str(), scale["kind"].as_str()),
            (Some("autoscaling"), Some("Scale"))
        );
        assert!(api_resource_list(&t, "nope", "v1").is_none());
        let agg = aggregated(&t, false, Aggregated::V2);
        assert_eq!(agg["apiVersion"], "apidiscovery.k8s.io/v2");
        assert!(
            agg["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["metadata"]["name"] != "")
        );
        let core = aggregated(&t, true, Aggregated::V2Beta1);
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .cloned()
            .unwrap();
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(version()["major"], "1");
    }
}
