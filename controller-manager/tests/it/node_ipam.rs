//! Node IPAM: new nodes get pod CIDRs from the cluster CIDRs, never one an existing node holds.

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use serde_json::json;

use controller_manager::node_ipam::{self, NodeIpamConfig};

use crate::fixtures::node;
use crate::poll::{Running, until};

#[tokio::test]
async fn new_nodes_get_dual_stack_pod_cidrs() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    node(
        &client,
        "old",
        json!({"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24", "fd00:10::/64"]}),
        "True",
    )
    .await;
    let config = NodeIpamConfig {
        allocate_node_cidrs: true,
        cluster_cidr: "10.244.0.0/16,fd00:10::/56".into(),
        ..NodeIpamConfig::default()
    };
    let c = client.clone();
    let ipam = Running::spawn(move |t| node_ipam::run(c, config, t));
    node(&client, "a", json!({}), "True").await;
    node(&client, "b", json!({}), "True").await;
    let nodes: Api<Node> = Api::all(client.clone());
    let mut seen = vec![vec!["10.244.0.0/24".to_string(), "fd00:10::/64".to_string()]];
    for name in ["a", "b"] {
        let cidrs = until(&format!("pod CIDRs on {name}"), 30, || async {
            let spec = nodes.get(name).await.unwrap().spec?;
            spec.pod_cidrs
                .filter(|c| !c.is_empty())
                .map(|c| (spec.pod_cidr, c))
        })
        .await;
        assert_eq!(cidrs.0.as_ref(), Some(&cidrs.1[0]));
        assert_eq!(cidrs.1.len(), 2);
        assert!(cidrs.1[0].starts_with("10.244.") && cidrs.1[0].ends_with("/24"));
        assert!(cidrs.1[1].starts_with("fd00:10:") && cidrs.1[1].ends_with("/64"));
        for other in &seen {
            assert!(
                !other.contains(&cidrs.1[0]) && !other.contains(&cidrs.1[1]),
                "{cidrs:?} reused"
            );
        }
        seen.push(cidrs.1);
    }
    ipam.stop().await;
    server.shutdown().await;
}
