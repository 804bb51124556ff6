use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::{Cluster, until};

fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

#[tokio::test]
async fn three_nodes_register_go_ready_and_renew_their_leases() {
    let cluster = Cluster::start_with(3, |c| {
        c.node_labels.insert("zone".into(), "a".into());
        c.register_with_taints = kubelet::node::parse_taints("dedicated=sim:PreferNoSchedule").unwrap();
    })
    .await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    for i in 0..3 {
        let name = format!("sim-{i}");
        let node = until(&format!("{name} Ready"), 20, || {
            let nodes = nodes.clone();
            let name = name.clone();
            async move {
                let n = nodes.get_opt(&name).await.ok()??;
                (condition(&n, "Ready")?.status == "True").then_some(n)
            }
        })
        .await;
        let ready = condition(&node, "Ready").unwrap();
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(ready.message.as_deref(), Some("kubelet is posting ready status"));
        for (kind, reason) in [
            ("MemoryPressure", "KubeletHasSufficientMemory"),
            ("DiskPressure", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "KubeletHasSufficientPID"),
        ] {
            let c = condition(&node, kind).unwrap();
            assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some(reason)));
        }
        let labels = node.metadata.labels.clone().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], name);
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["zone"], "a");
        assert_eq!(labels[kubelet::config::SIMULATED_LABEL], "true");
        let taints = node.spec.clone().unwrap().taints.unwrap();
        assert_eq!(
            (taints[0].key.as_str(), taints[0].effect.as_str()),
            ("dedicated", "PreferNoSchedule")
        );
        let status = node.status.clone().unwrap();
        let addresses = status.addresses.unwrap();
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, format!("198.18.0.{}", i + 1));
        assert_eq!(status.capacity.unwrap()["pods"].0, "110");
        let info = status.node_info.unwrap();
        assert!(
            info.kubelet_version.starts_with("v1."),
            "{}",
            info.kubelet_version
        );
        assert_eq!(info.operating_system, "linux");
        assert_eq!(
            status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
            10250
        );
    }

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let first = until("sim-2's lease", 20, || {
        let leases = leases.clone();
        async move { leases.get_opt("sim-2").await.ok()? }
    })
    .await;
    let spec = first.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("sim-2"));
    assert_eq!(spec.lease_duration_seconds, Some(4));
    let owner = &first.metadata.owner_references.clone().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", "sim-2"));
    let renewed_at = spec.renew_time.unwrap().0;
    until("sim-2's lease renewed", 20, || {
        let leases = leases.clone();
        async move {
            let l = leases.get("sim-2").await.ok()?;
            (l.spec?.renew_time?.0 > renewed_at).then_some(())
        }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_restarted_simulator_adopts_its_nodes_and_a_lost_ready_comes_back() {
    let cluster = Cluster::start(1).await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let first = until("sim-0 Ready", 20, || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt("sim-0").await.ok()??;
            (condition(&n, "Ready")?.status == "True").then_some(n)
        }
    })
    .await;
    // A second simulator for the same node (a restart) adopts it rather than failing.
    let stop = tokio_util::sync::CancellationToken::new();
    let config = kubelet::Config {
        node_names: vec!["sim-0".into()],
        node_lease_duration_seconds: 4,
        ..kubelet::Config::default()
    };
    let second = tokio::spawn(kubelet::run(config, cluster.client.clone(), stop.clone()));
    // Someone (the node lifecycle controller) marks the node Unknown: the kubelet reports Ready again.
    let mut patched = first.clone();
    for c in patched.status.as_mut().unwrap().conditions.as_mut().unwrap() {
        if c.type_ == "Ready" {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
        }
    }
    nodes
        .replace_status("sim-0", &Default::default(), &patched)
        .await
        .expect("status replaced");
    let back = until("sim-0 Ready again", 30, || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("sim-0").await.ok()?;
            let ready = condition(&n, "Ready")?;
            (ready.status == "True").then(|| ready.clone())
        }
    })
    .await;
    assert_eq!(back.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(
        nodes.get("sim-0").await.unwrap().metadata.uid,
        first.metadata.uid,
        "the same Node, adopted"
    );
    stop.cancel();
    second.await.unwrap().unwrap();
    cluster.stop().await;
}
