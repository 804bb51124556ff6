//! `keelson server --simulated-nodes 3` reconciles workloads end to end, driven with stock
//! kubectl: the scheduler places pods on the simulated nodes, the controller-manager rolls out
//! Deployments and runs Jobs, the garbage collector and namespace controller clean up, and the
//! components report healthy in `kubectl get cs`.

mod common;

use common::{KeelsonServer, start_server};

/// One cluster shared by the scenarios of a test (each in its own namespace).
fn cluster(dir: &std::path::Path) -> KeelsonServer {
    start_server(&dir.join("data"), &["--ephemeral", "--simulated-nodes", "3"])
}

/// kubectl 1.`minor` in namespace `ns`; panics with its output when it fails.
fn k(server: &KeelsonServer, minor: u32, ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    server.kubectl(minor, &all).ok()
}

fn new_namespace(server: &KeelsonServer, ns: &str) {
    server.kubectl(33, &["create", "namespace", ns]).ok();
}

#[test]
fn deployments_roll_out_scale_and_roll_back_on_simulated_nodes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = cluster(tmp.path());
    for minor in [27, 33] {
        let ns = format!("deploy-{minor}");
        new_namespace(&server, &ns);
        k(
            &server,
            minor,
            &ns,
            &[
                "create",
                "deployment",
                "web",
                "--image=nginx:1.25",
                "--replicas=3",
            ],
        );
        let out = k(
            &server,
            minor,
            &ns,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        assert!(out.contains("successfully rolled out"), "{out}");
        let ready = k(
            &server,
            minor,
            &ns,
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
        );
        assert_eq!(ready, "3");
        // Every pod runs on a simulated node with an address from its node's range.
        let pods = k(
            &server,
            minor,
            &ns,
            &[
                "get",
                "pods",
                "-o",
                "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.status.podIP}{\"\\n\"}{end}",
            ],
        );
        assert_eq!(pods.lines().count(), 3, "{pods}");
        for line in pods.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert!(f[0].starts_with("sim-"), "{line}");
            assert_eq!(f[1], "Running", "{line}");
            assert!(f[2].starts_with("10.42."), "{line}");
        }

        k(&server, minor, &ns, &["scale", "deployment/web", "--replicas=5"]);
        k(
            &server,
            minor,
            &ns,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        k(
            &server,
            minor,
            &ns,
            &["set", "image", "deployment/web", "nginx=nginx:1.26"],
        );
        let out = k(
            &server,
            minor,
            &ns,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        assert!(out.contains("successfully rolled out"), "{out}");
        let history = k(&server, minor, &ns, &["rollout", "history", "deployment/web"]);
        assert!(history.contains('1') && history.contains('2'), "{history}");
        k(&server, minor, &ns, &["rollout", "undo", "deployment/web"]);
        k(
            &server,
            minor,
            &ns,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        let image = k(
            &server,
            minor,
            &ns,
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        );
        assert_eq!(image, "nginx:1.25");
        k(&server, minor, &ns, &["rollout", "restart", "deployment/web"]);
        k(
            &server,
            minor,
            &ns,
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        k(&server, minor, &ns, &["scale", "deployment/web", "--replicas=1"]);
        common::eventually("the deployment to scale down to one pod", || {
            let pods = k(&server, minor, &ns, &["get", "pods", "-o", "name"]);
            pods.lines().count() == 1
        });

        // Deleting the Deployment cascades to its ReplicaSets and pods.
        k(&server, minor, &ns, &["delete", "deployment", "web"]);
        common::eventually("the deployment's pods to go", || {
            k(&server, minor, &ns, &["get", "replicasets,pods", "-o", "name"]).is_empty()
        });
    }
}

#[test]
fn scheduling_jobs_namespaces_and_component_health() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = cluster(tmp.path());

    // Three simulated nodes, Ready.
    common::eventually("three ready nodes", || {
        let out = server
            .kubectl(33, &["get", "nodes", "-o", "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"])
            .ok();
        out.lines().filter(|l| *l == "True").count() == 3
    });

    // The scheduler and controller-manager answer `kubectl get cs`.
    common::eventually("healthy components", || {
        let out = server.kubectl(33, &["get", "componentstatuses"]).ok();
        out.contains("scheduler") && out.contains("controller-manager") && !out.contains("Unhealthy")
    });

    // A pod no node can hold says why, in upstream's words.
    let ns = "sched";
    new_namespace(&server, ns);
    k(
        &server,
        33,
        ns,
        &[
            "run",
            "huge",
            "--image=nginx",
            "--overrides={\"spec\":{\"containers\":[{\"name\":\"huge\",\"image\":\"nginx\",\"resources\":{\"requests\":{\"cpu\":\"1000\"}}}]}}",
        ],
    );
    common::eventually("the FailedScheduling reason", || {
        let out = k(
            &server,
            33,
            ns,
            &[
                "get",
                "pod",
                "huge",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
            ],
        );
        out.contains("0/3 nodes are available: 3 Insufficient cpu.")
    });
    let events = k(
        &server,
        33,
        ns,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
            "-o",
            "name",
        ],
    );
    assert!(!events.is_empty(), "no FailedScheduling event");

    // A Job with parallelism completes on the simulated nodes.
    let ns = "jobs";
    new_namespace(&server, ns);
    k(
        &server,
        33,
        ns,
        &[
            "create",
            "job",
            "hello",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            "sleep 1",
        ],
    );
    k(
        &server,
        33,
        ns,
        &["wait", "--for=condition=complete", "job/hello", "--timeout=90s"],
    );

    // Deleting a namespace removes what is in it, then the namespace.
    let ns = "doomed";
    new_namespace(&server, ns);
    k(
        &server,
        33,
        ns,
        &["create", "deployment", "web", "--image=nginx", "--replicas=2"],
    );
    k(
        &server,
        33,
        ns,
        &["create", "configmap", "settings", "--from-literal=a=b"],
    );
    k(
        &server,
        33,
        ns,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    server
        .kubectl(33, &["delete", "namespace", ns, "--wait=false"])
        .ok();
    common::eventually("the namespace to disappear", || {
        let out = server.kubectl(33, &["get", "namespaces", "-o", "name"]).ok();
        !out.contains("namespace/doomed")
    });

    // Every namespace has its default ServiceAccount and the root CA bundle.
    for ns in ["sched", "jobs"] {
        k(&server, 33, ns, &["get", "serviceaccount", "default"]);
        k(&server, 33, ns, &["get", "configmap", "kube-root-ca.crt"]);
    }
}
