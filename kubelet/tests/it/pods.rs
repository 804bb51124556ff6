use std::net::IpAddr;
use std::time::Instant;

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, ExecAction, Node, NodeSpec, Pod, PodSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use crate::{Cluster, until};

fn pod(name: &str, node: &str, script: Option<&str>, policy: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            restart_policy: Some(policy.into()),
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox:1.36".into()),
                command: script.map(|s| vec!["sh".into(), "-c".into(), s.into()]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

async fn create(pods: &Api<Pod>, pod: &Pod) {
    pods.create(&PostParams::default(), pod)
        .await
        .expect("pod created");
}

/// Waits for the pod's phase to be `phase`.
async fn phase(pods: &Api<Pod>, name: &str, phase: &str) -> Pod {
    until(&format!("{name} {phase}"), 20, || {
        let pods = pods.clone();
        let name = name.to_string();
        let phase = phase.to_string();
        async move {
            let p = pods.get(&name).await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some(phase.as_str())).then_some(p)
        }
    })
    .await
}

fn condition(pod: &Pod, kind: &str) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn main_status(pod: &Pod) -> ContainerStatus {
    pod.status.clone().unwrap().container_statuses.unwrap()[0].clone()
}

#[tokio::test]
async fn pods_run_and_are_ready_with_ips_from_their_nodes_range() {
    // sim-0 exists already with a podCIDR (as node IPAM assigns it): the simulator adopts it.
    // sim-1 has none and uses its slice of the cluster CIDR.
    let cluster = Cluster::start_after(
        2,
        |_| {},
        |client| async move {
            let node = Node {
                metadata: ObjectMeta {
                    name: Some("sim-0".into()),
                    ..ObjectMeta::default()
                },
                spec: Some(NodeSpec {
                    pod_cidr: Some("10.100.5.0/24".into()),
                    pod_cidrs: Some(vec!["10.100.5.0/24".into()]),
                    ..NodeSpec::default()
                }),
                status: None,
            };
            let nodes: Api<Node> = Api::all(client);
            nodes
                .create(&PostParams::default(), &node)
                .await
                .expect("node created");
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    create(&pods, &pod("web-0", "sim-0", None, "Always")).await;
    create(&pods, &pod("web-1", "sim-1", None, "Always")).await;
    let mut host_net = pod("host", "sim-1", None, "Always");
    host_net.spec.as_mut().unwrap().host_network = Some(true);
    create(&pods, &host_net).await;

    let p0 = phase(&pods, "web-0", "Running").await;
    assert_eq!(p0.spec.as_ref().unwrap().node_name.as_deref(), Some("sim-0"));
    let p0 = until("web-0 Ready", 20, || {
        let pods = pods.clone();
        async move {
            let p = pods.get("web-0").await.ok()?;
            (condition(&p, "Ready").as_deref() == Some("True")).then_some(p)
        }
    })
    .await;
    let status = p0.status.clone().unwrap();
    let ip: IpAddr = status.pod_ip.clone().unwrap().parse().unwrap();
    assert!(
        ip.to_string().starts_with("10.100.5."),
        "{ip} not from sim-0's podCIDR"
    );
    assert_eq!(status.pod_ips.unwrap()[0].ip, ip.to_string());
    assert_eq!(status.host_ip.as_deref(), Some("198.18.0.1"));
    assert!(status.start_time.is_some());
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(condition(&p0, kind).as_deref(), Some("True"), "{kind}");
    }
    let c = main_status(&p0);
    assert!(c.ready && c.started == Some(true));
    assert!(c.container_id.unwrap().starts_with("sim://"));
    assert!(c.image_id.contains("@sha256:"));
    assert!(c.state.unwrap().running.unwrap().started_at.is_some());
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"), "qosClass kept");

    let p1 = phase(&pods, "web-1", "Running").await;
    let ip1 = p1.status.unwrap().pod_ip.unwrap();
    assert!(
        ip1.starts_with("10.244.1."),
        "{ip1} not from sim-1's slice of 10.244.0.0/16"
    );
    let h = phase(&pods, "host", "Running").await;
    assert_eq!(
        h.status.unwrap().pod_ip.as_deref(),
        Some("198.18.0.2"),
        "host network: the node IP"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn jobs_complete_and_fail_as_their_commands_say() {
    let cluster = Cluster::start(1).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    create(&pods, &pod("fails", "sim-0", Some("exit 3"), "Never")).await;
    create(&pods, &pod("sleeps", "sim-0", Some("sleep 1"), "Never")).await;
    let created = Instant::now();

    let failed = phase(&pods, "fails", "Failed").await;
    let t = main_status(&failed).state.unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert!(t.finished_at.is_some() && t.container_id.is_some());
    assert_eq!(condition(&failed, "Ready").as_deref(), Some("False"));

    let done = phase(&pods, "sleeps", "Succeeded").await;
    assert!(
        created.elapsed().as_secs_f64() >= 1.0,
        "completed before its sleep ended"
    );
    let t = main_status(&done).state.unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    let ready = done
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    cluster.stop().await;
}

#[tokio::test]
async fn a_crashing_container_restarts_with_back_off() {
    let cluster = Cluster::start(1).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    create(&pods, &pod("crash", "sim-0", Some("false"), "Always")).await;
    let p = until("crash in CrashLoopBackOff", 20, || {
        let pods = pods.clone();
        async move {
            let p = pods.get("crash").await.ok()?;
            let waiting = main_status(&p).state?.waiting?;
            (waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some(p)
        }
    })
    .await;
    let c = main_status(&p);
    assert_eq!(c.restart_count, 1);
    assert_eq!(c.last_state.unwrap().terminated.unwrap().exit_code, 1);
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    cluster.stop().await;
}

#[tokio::test]
async fn deleting_a_pod_stops_it_and_removes_it() {
    let cluster = Cluster::start(1).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    create(&pods, &pod("web", "sim-0", None, "Always")).await;
    phase(&pods, "web", "Running").await;
    let asked = Instant::now();
    pods.delete("web", &DeleteParams::default().grace_period(30))
        .await
        .expect("delete accepted");
    until("web gone", 20, || {
        let pods = pods.clone();
        async move { pods.get_opt("web").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let took = asked.elapsed();
    assert!(
        took.as_secs() < 10,
        "took {took:?}: the simulated stop time, not the 30 s grace period"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn readiness_waits_for_the_probes_initial_delay() {
    let cluster = Cluster::start(1).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let mut p = pod("slow", "sim-0", None, "Always");
    p.spec.as_mut().unwrap().containers[0].readiness_probe = Some(Probe {
        initial_delay_seconds: Some(2),
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        ..Probe::default()
    });
    create(&pods, &p).await;
    let created = Instant::now();
    let running = phase(&pods, "slow", "Running").await;
    if created.elapsed().as_millis() < 1500 {
        assert_eq!(
            condition(&running, "Ready").as_deref(),
            Some("False"),
            "ready before the delay"
        );
        assert!(!main_status(&running).ready);
    }
    let ready = until("slow Ready", 20, || {
        let pods = pods.clone();
        async move {
            let p = pods.get("slow").await.ok()?;
            (condition(&p, "Ready").as_deref() == Some("True")).then_some(p)
        }
    })
    .await;
    assert!(
        created.elapsed().as_secs_f64() >= 2.0,
        "ready after {:?}",
        created.elapsed()
    );
    assert!(main_status(&ready).ready);
    cluster.stop().await;
}

#[tokio::test]
async fn pods_on_other_nodes_are_left_alone() {
    let cluster = Cluster::start(1).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    create(&pods, &pod("elsewhere", "real-node", None, "Always")).await;
    create(&pods, &pod("here", "sim-0", None, "Always")).await;
    phase(&pods, "here", "Running").await;
    let other = pods.get("elsewhere").await.unwrap();
    assert_eq!(other.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    cluster.stop().await;
}
