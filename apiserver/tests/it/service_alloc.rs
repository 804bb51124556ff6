//! Service cluster IPs and node ports across a restart on the same store and data dir: what
//! stored services hold stays theirs, nothing is handed out twice, deletes give values back, and
//! the repair pass releases claims no service holds.

use std::collections::HashSet;
use std::sync::Arc;

use apiserver::defaults::alloc::Suspects;
use apiserver::registry::WriteOptions;
use serde_json::{Value, json};
use storage::{Expect, PutRequest, Storage, StorageExt};

/// A /28: 14 usable addresses, the first is the `kubernetes` service's.
const CIDR: &str = "10.0.0.0/28";

async fn start(dir: &std::path::Path, store: &Arc<storage::mem::MemStorage>) -> apiserver::RunningServer {
    let mut config = apiserver::Config::new(dir).bind("127.0.0.1:0".parse().unwrap());
    config.registry.services.cluster_ip_cidr = CIDR.into();
    apiserver::start(config, store.clone())
        .await
        .expect("server starts")
}

fn service(name: &str, ty: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"type": ty, "ports": [{"port": 80}]}})
}

async fn create(
    server: &apiserver::RunningServer,
    name: &str,
    ty: &str,
) -> Result<Value, apiserver::error::ApiError> {
    let svcs = server.api.table.lookup("", "v1", "services").unwrap();
    server
        .api
        .registry
        .create(&svcs, "default", service(name, ty), &WriteOptions::default())
        .await
        .map(|r| r.body)
}

async fn services(server: &apiserver::RunningServer) -> Vec<Value> {
    let svcs = server.api.table.lookup("", "v1", "services").unwrap();
    let list = server
        .api
        .registry
        .list(&svcs, "", &Default::default())
        .await
        .unwrap();
    list["items"].as_array().unwrap().clone()
}

async fn exists(store: &storage::mem::MemStorage, key: &str) -> bool {
    let (kv, _) = store.get(key.as_bytes(), 0).await.unwrap();
    kv.is_some()
}

#[tokio::test]
async fn allocations_survive_a_restart_and_leaks_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(storage::mem::MemStorage::new());
    let server = start(dir.path(), &store).await;
    let a = create(&server, "a", "ClusterIP").await.unwrap();
    let np = create(&server, "np", "NodePort").await.unwrap();
    let a_ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    server.shutdown().await;

    // While stopped: a's claim is lost (a service stored before claims were tracked) and a
    // claim for a service that never got stored is left behind.
    let a_claim = format!("/registry/ranges/serviceips/{a_ip}");
    store.delete_if(a_claim.as_bytes(), Expect::Any).await.unwrap();
    let used: HashSet<String> = [
        a_ip.clone(),
        np["spec"]["clusterIP"].as_str().unwrap().to_string(),
    ]
    .into();
    let ghost_ip = (2..15)
        .map(|i| format!("10.0.0.{i}"))
        .find(|ip| !used.contains(ip))
        .unwrap();
    let ghost = format!("/registry/ranges/serviceips/{ghost_ip}");
    store
        .put(PutRequest {
            key: ghost.clone().into_bytes().into(),
            value: br#"{"owner":"default/ghost"}"#.to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let server = start(dir.path(), &store).await;
    assert!(
        exists(&store, &a_claim).await,
        "the restart claims what stored services hold"
    );
    let alloc = server.api.registry.service_allocator();
    let suspects = alloc
        .repair(&services(&server).await, &Suspects::new())
        .await
        .unwrap();
    assert!(suspects.contains_key(&ghost), "{suspects:?}");
    assert!(
        exists(&store, &ghost).await,
        "a first sighting is only a suspicion"
    );
    let suspects = alloc.repair(&services(&server).await, &suspects).await.unwrap();
    assert!(suspects.is_empty(), "{suspects:?}");
    assert!(!exists(&store, &ghost).await, "released at the second sighting");

    let np2 = create(&server, "np2", "NodePort").await.unwrap();
    assert_ne!(np2["spec"]["ports"][0]["nodePort"].as_u64().unwrap(), node_port);

    // Fill the range: every address once, none of the ones held before the restart.
    let mut ips: HashSet<String> = services(&server)
        .await
        .iter()
        .map(|s| s["spec"]["clusterIP"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips.len(), 4, "kubernetes, a, np and np2");
    for i in 0.. {
        match create(&server, &format!("s{i}"), "ClusterIP").await {
            Ok(svc) => {
                let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
                assert!(ips.insert(ip.clone()), "{ip} handed out twice");
            }
            Err(e) => {
                assert_eq!(e.code(), 422, "{e}");
                assert!(e.message().contains("range is full"), "{e}");
                break;
            }
        }
    }
    assert_eq!(ips.len(), 14);
    // A delete gives its address back.
    let svcs = server.api.table.lookup("", "v1", "services").unwrap();
    server
        .api
        .registry
        .delete(&svcs, "default", "a", &Default::default())
        .await
        .unwrap();
    assert!(!exists(&store, &a_claim).await);
    let again = create(&server, "again", "ClusterIP").await.unwrap();
    assert_eq!(again["spec"]["clusterIP"], a_ip.as_str());
    server.shutdown().await;
}
