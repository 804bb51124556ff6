//! The ResourceQuota controller: status.used follows the pods of the namespace, dropping when a
//! pod completes.

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, PostParams};
use serde_json::json;

use controller_manager::resource_quota::{self, ResourceQuotaConfig};

use crate::fixtures::{node, pod, set_phase};
use crate::poll::{Running, until};

fn used(rq: &ResourceQuota, key: &str) -> Option<String> {
    rq.status.as_ref()?.used.as_ref()?.get(key).map(|q| q.0.clone())
}

#[tokio::test]
async fn used_pods_drop_when_a_pod_succeeds() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    crate::poll::namespace(&client, "quota").await;
    node(&client, "n1", json!({}), "True").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "quota");
    let rq: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "10", "count/configmaps": "20"}},
    }))
    .unwrap();
    quotas
        .create(&PostParams::default(), &rq)
        .await
        .expect("quota created");
    let c = client.clone();
    let controller = Running::spawn(move |t| resource_quota::run(c, ResourceQuotaConfig::default(), t));
    let first = until("the quota's usage computed", 30, || async {
        let rq = quotas.get("q").await.unwrap();
        used(&rq, "pods").map(|_| rq)
    })
    .await;
    assert_eq!(used(&first, "pods").as_deref(), Some("0"));
    assert_eq!(
        first.status.as_ref().unwrap().hard,
        first.spec.as_ref().unwrap().hard
    );

    pod(&client, "quota", "job", "n1", json!([])).await;
    until("one pod used", 30, || async {
        let rq = quotas.get("q").await.unwrap();
        (used(&rq, "pods").as_deref() == Some("1")).then_some(())
    })
    .await;
    set_phase(&client, "quota", "job", "Succeeded").await;
    until("the completed pod no longer counted", 30, || async {
        let rq = quotas.get("q").await.unwrap();
        (used(&rq, "pods").as_deref() == Some("0")).then_some(())
    })
    .await;
    controller.stop().await;
    server.shutdown().await;
}
