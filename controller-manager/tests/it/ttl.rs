//! The TTL-after-finished controller deletes a finished Job after its TTL.

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

use controller_manager::job;
use controller_manager::ttl_after_finished::{self, TtlAfterFinishedConfig};

use crate::job::{config, create_job, drive};
use crate::poll::Running;

#[tokio::test]
async fn the_ttl_controller_deletes_a_finished_job() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let c = client.clone();
    let controller = Running::spawn(move |t| job::run(c, config(), t));
    let c = client.clone();
    let ttl = Running::spawn(move |t| ttl_after_finished::run(c, TtlAfterFinishedConfig::default(), t));

    let created = create_job(&client, "default", "brief", json!({"ttlSecondsAfterFinished": 1})).await;
    let done = drive(&client, "default", "brief", 1, |_| 0).await;
    assert_eq!(done.uid(), created.uid());
    crate::poll::gone(&Api::<Job>::namespaced(client.clone(), "default"), "brief", 30).await;
    ttl.stop().await;
    controller.stop().await;
    server.shutdown().await;
}
