//! The endpoints, EndpointSlice and mirroring controllers against a real API server: the test
//! plays the kubelet (pod IPs and readiness through `pods/status`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use controller_manager::endpoints::{self as classic, EndpointsConfig};
use controller_manager::endpointslice::{self, EndpointSliceConfig};
use controller_manager::endpointslice_mirroring::{self, MirroringConfig};

use crate::poll::{Running, until};

/// Creates pod `name` (label app=web, container port `web` = `port`) on node `n1`.
pub async fn pod(api: &Api<Pod>, name: &str, port: i32, extra: serde_json::Value) -> Pod {
    let mut spec = json!({
        "nodeName": "n1",
        "containers": [{"name": "app", "image": "nginx", "ports": [{"name": "web", "containerPort": port}]}]
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &pod)
        .await
        .expect("pod created")
}

/// Plays the kubelet: the pod runs at `ip`, ready or not.
pub async fn set_status(api: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("pod status patched");
}

async fn service(client: &Client, name: &str, selector: Option<serde_json::Value>) -> Service {
    let mut spec = json!({"ports": [{"name": "http", "port": 80, "targetPort": "web"}]});
    if let Some(sel) = selector {
        spec["selector"] = sel;
    }
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"tier": "front"}},
        "spec": spec,
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .expect("service created")
}

async fn slices_of(api: &Api<EndpointSlice>, service: &str, manager: &str) -> Vec<EndpointSlice> {
    let selector =
        format!("kubernetes.io/service-name={service},endpointslice.kubernetes.io/managed-by={manager}");
    api.list(&ListParams::default().labels(&selector))
        .await
        .expect("slices listed")
        .items
}

fn slice_endpoints(slices: &[EndpointSlice]) -> BTreeMap<String, Endpoint> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter_map(|e| Some((e.target_ref.as_ref()?.name.clone()?, e.clone())))
        .collect()
}

fn conditions(e: &Endpoint) -> (bool, bool, bool) {
    let c = e.conditions.clone().unwrap_or_default();
    (
        c.ready.unwrap_or(false),
        c.serving.unwrap_or(false),
        c.terminating.unwrap_or(false),
    )
}

fn names(addresses: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    addresses
        .iter()
        .flatten()
        .filter_map(|a| a.target_ref.as_ref()?.name.clone())
        .collect()
}

#[tokio::test]
async fn endpoints_and_slices_follow_pod_readiness_ports_and_termination() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let endpoints_controller = Running::spawn(move |t| classic::run(c, EndpointsConfig::default(), t));
    let c = client.clone();
    let slice_controller = Running::spawn(move |t| endpointslice::run(c, EndpointSliceConfig::default(), t));
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}},
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pod(&pods, "a", 8080, json!({})).await;
    pod(&pods, "b", 9090, json!({"hostname": "bee", "subdomain": "web"})).await;
    set_status(&pods, "a", "10.1.0.1", false).await;
    set_status(&pods, "b", "10.1.0.2", true).await;
    let svc = service(&client, "web", Some(json!({"app": "web"}))).await;

    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let first = until("endpoints with a not ready and b ready", 30, || async {
        let ep = eps.get_opt("web").await.unwrap()?;
        let subsets = ep.subsets.clone()?;
        let ready: Vec<String> = subsets.iter().flat_map(|s| names(&s.addresses)).collect();
        let not_ready: Vec<String> = subsets
            .iter()
            .flat_map(|s| names(&s.not_ready_addresses))
            .collect();
        (ready == ["b"] && not_ready == ["a"]).then_some(ep)
    })
    .await;
    assert_eq!(
        first.labels()[classic::MANAGED_BY_LABEL],
        classic::CONTROLLER_NAME
    );
    assert_eq!(first.labels()["tier"], "front");
    assert!(first.annotations().contains_key(classic::TRIGGER_TIME_ANNOTATION));
    let subsets = first.subsets.unwrap();
    assert_eq!(subsets.len(), 2, "a and b resolve the named port differently");
    let port_of = |who: &str| {
        subsets
            .iter()
            .find(|s| {
                names(&s.addresses).contains(&who.to_string())
                    || names(&s.not_ready_addresses).contains(&who.to_string())
            })
            .and_then(|s| s.ports.as_ref()?.first().map(|p| (p.name.clone(), p.port)))
    };
    assert_eq!(port_of("a"), Some((Some("http".into()), 8080)));
    assert_eq!(port_of("b"), Some((Some("http".into()), 9090)));
    let b_address = subsets
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .find(|a| a.ip == "10.1.0.2")
        .unwrap();
    assert_eq!(b_address.hostname.as_deref(), Some("bee"));
    assert_eq!(b_address.node_name.as_deref(), Some("n1"));

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let found = until("slices listing a (not ready) and b (ready)", 30, || async {
        let s = slices_of(&slices, "web", endpointslice::CONTROLLER_NAME).await;
        let eps = slice_endpoints(&s);
        (eps.len() == 2
            && conditions(&eps["a"]) == (false, false, false)
            && conditions(&eps["b"]) == (true, true, false))
            .then_some(s)
    })
    .await;
    assert_eq!(found.len(), 2, "one slice per resolved port set");
    for s in &found {
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Service", svc.uid().unwrap().as_str())
        );
        assert_eq!(s.address_type, "IPv4");
        assert!(s.name_any().starts_with("web-"));
        assert_eq!(s.labels()["tier"], "front");
    }
    let eps_now = slice_endpoints(&found);
    assert_eq!(eps_now["b"].zone.as_deref(), Some("zone-a"));
    assert_eq!(eps_now["b"].hostname.as_deref(), Some("bee"));
    assert_eq!(eps_now["b"].addresses, vec!["10.1.0.2".to_string()]);

    // a becomes ready: it moves to addresses and its endpoint turns ready.
    set_status(&pods, "a", "10.1.0.1", true).await;
    until("a ready in the Endpoints", 30, || async {
        let ep = eps.get("web").await.unwrap();
        let ready: Vec<String> = ep.subsets?.iter().flat_map(|s| names(&s.addresses)).collect();
        (ready.len() == 2).then_some(())
    })
    .await;
    until("a ready in its slice", 30, || async {
        let eps = slice_endpoints(&slices_of(&slices, "web", endpointslice::CONTROLLER_NAME).await);
        (conditions(eps.get("a")?) == (true, true, false)).then_some(())
    })
    .await;

    // a terminates (a finalizer holds it): gone from the Endpoints, serving and terminating in
    // its slice.
    pods.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["keelson.test/hold"]}})),
    )
    .await
    .unwrap();
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    until("a terminating in its slice", 30, || async {
        let eps = slice_endpoints(&slices_of(&slices, "web", endpointslice::CONTROLLER_NAME).await);
        (conditions(eps.get("a")?) == (false, true, true)).then_some(())
    })
    .await;
    until("a gone from the Endpoints", 30, || async {
        let ep = eps.get("web").await.unwrap();
        let all: Vec<String> = ep
            .subsets?
            .iter()
            .flat_map(|s| {
                names(&s.addresses)
                    .into_iter()
                    .chain(names(&s.not_ready_addresses))
            })
            .collect();
        (all == ["b"]).then_some(())
    })
    .await;
    pods.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let last = until("a gone from the slices", 30, || async {
        let s = slices_of(&slices, "web", endpointslice::CONTROLLER_NAME).await;
        let eps = slice_endpoints(&s);
        (eps.len() == 1 && eps.contains_key("b")).then_some(s)
    })
    .await;
    assert_eq!(last.len(), 1, "a's emptied slice is deleted");

    // The Service goes: its Endpoints and slices too.
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    crate::poll::gone(&eps, "web", 30).await;
    until("the slices deleted", 30, || async {
        slices_of(&slices, "web", endpointslice::CONTROLLER_NAME)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    endpoints_controller.stop().await;
    slice_controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn more_than_a_hundred_pods_split_into_slices() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..150 {
        let name = format!("p{i:03}");
        pod(&pods, &name, 8080, json!({})).await;
        set_status(&pods, &name, &format!("10.2.{}.{}", i / 100, i % 100 + 1), true).await;
    }
    service(&client, "many", Some(json!({"app": "web"}))).await;
    let c = client.clone();
    let controller = Running::spawn(move |t| endpointslice::run(c, EndpointSliceConfig::default(), t));
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let found = until("150 endpoints in slices", 60, || async {
        let s = slices_of(&slices, "many", endpointslice::CONTROLLER_NAME).await;
        (slice_endpoints(&s).len() == 150).then_some(s)
    })
    .await;
    let mut sizes: Vec<usize> = found
        .iter()
        .map(|s| s.endpoints.as_ref().map_or(0, Vec::len))
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![50, 100]);
    // Removing one pod rewrites one slice; nothing is created.
    pods.delete("p007", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let after = until("149 endpoints", 60, || async {
        let s = slices_of(&slices, "many", endpointslice::CONTROLLER_NAME).await;
        (slice_endpoints(&s).len() == 149).then_some(s)
    })
    .await;
    let mut before_names: Vec<String> = found.iter().map(|s| s.name_any()).collect();
    let mut after_names: Vec<String> = after.iter().map(|s| s.name_any()).collect();
    before_names.sort();
    after_names.sort();
    assert_eq!(before_names, after_names, "the same slices are reused");
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_selectorless_services_manual_endpoints_are_mirrored() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| endpointslice_mirroring::run(c, MirroringConfig::default(), t));
    service(&client, "ext", None).await;
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let manual: Endpoints = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "ext", "labels": {"owner": "me"}},
        "subsets": [{
            "addresses": [{"ip": "192.168.5.1"}, {"ip": "192.168.5.2"}],
            "notReadyAddresses": [{"ip": "192.168.5.3"}],
            "ports": [{"name": "http", "port": 8443}],
        }],
    }))
    .unwrap();
    let manual = eps.create(&PostParams::default(), &manual).await.unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let mirrored = until("the mirrored slice", 30, || async {
        let s = slices_of(&slices, "ext", endpointslice_mirroring::CONTROLLER_NAME).await;
        (s.len() == 1 && s[0].endpoints.as_ref().map_or(0, Vec::len) == 3).then(|| s[0].clone())
    })
    .await;
    assert_eq!(mirrored.labels()["owner"], "me");
    assert_eq!(mirrored.owner_references()[0].uid, manual.uid().unwrap());
    assert_eq!(mirrored.ports.as_ref().unwrap()[0].port, Some(8443));
    let ready: BTreeMap<String, bool> = mirrored
        .endpoints
        .iter()
        .flatten()
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        ready,
        [
            ("192.168.5.1".to_string(), true),
            ("192.168.5.2".to_string(), true),
            ("192.168.5.3".to_string(), false)
        ]
        .into()
    );
    // An address removed by hand is removed from the mirror.
    eps.patch(
        "ext",
        &PatchParams::default(),
        &Patch::Merge(json!({"subsets": [{"addresses": [{"ip": "192.168.5.1"}], "ports": [{"name": "http", "port": 8443}]}]})),
    )
    .await
    .unwrap();
    until("the mirror follows", 30, || async {
        let s = slices_of(&slices, "ext", endpointslice_mirroring::CONTROLLER_NAME).await;
        (s.len() == 1 && s[0].endpoints.as_ref().map_or(0, Vec::len) == 1).then_some(())
    })
    .await;
    // skip-mirror: the mirror goes.
    eps.patch(
        "ext",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}})),
    )
    .await
    .unwrap();
    until("the mirror removed", 30, || async {
        slices_of(&slices, "ext", endpointslice_mirroring::CONTROLLER_NAME)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    controller.stop().await;
    server.shutdown().await;
}
