//! The pod garbage collector: pods of a node that does not exist are removed after the
//! quarantine; terminated pods above the threshold are removed oldest first.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

use controller_manager::pod_gc::{self, PodGcConfig};

use crate::fixtures::{node, pod, set_phase};
use crate::poll::{Running, gone};

#[tokio::test]
async fn orphaned_and_excess_terminated_pods_are_collected() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    node(&client, "present", json!({}), "True").await;
    pod(&client, "default", "orphan", "ghost", json!([])).await;
    pod(&client, "default", "kept", "present", json!([])).await;
    pod(&client, "default", "done-old", "present", json!([])).await;
    set_phase(&client, "default", "done-old", "Succeeded").await;
    // Creation timestamps have second precision: make the second pod clearly newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pod(&client, "default", "done-new", "present", json!([])).await;
    set_phase(&client, "default", "done-new", "Succeeded").await;

    let config = PodGcConfig {
        terminated_pod_gc_threshold: 1,
        gc_check_period: Duration::from_millis(200),
        quarantine: Duration::from_secs(1),
    };
    let c = client.clone();
    let gc = Running::spawn(move |t| pod_gc::run(c, config, t));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    gone(&pods, "orphan", 30).await;
    gone(&pods, "done-old", 30).await;
    assert!(pods.get_opt("done-new").await.unwrap().is_some());
    assert!(pods.get_opt("kept").await.unwrap().is_some());
    gc.stop().await;
    server.shutdown().await;
}
