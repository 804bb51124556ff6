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

/// `kubectl apply -f` of `yaml` (written to a file in `dir`) in namespace `ns`.
fn apply(server: &KeelsonServer, dir: &std::path::Path, ns: &str, yaml: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("manifest-{n}.yaml"));
    std::fs::write(&file, yaml).expect("write manifest");
    k(
        server,
        33,
        ns,
        &["apply", "-f", file.to_str().unwrap_or_default()],
    )
}

/// `node pod` lines of the pods in `ns` with label `selector`.
fn placements(server: &KeelsonServer, ns: &str, selector: &str) -> Vec<(String, String)> {
    let out = k(
        server,
        33,
        ns,
        &[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.metadata.name}{\"\\n\"}{end}",
        ],
    );
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(node, pod)| (node.to_string(), pod.to_string()))
        .collect()
}

#[test]
fn placement_preemption_disruption_services_and_quota() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = cluster(tmp.path());
    let dir = tmp.path();
    common::eventually("three ready nodes", || {
        let out = server
            .kubectl(33, &["get", "nodes", "-o", "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"])
            .ok();
        out.lines().filter(|l| *l == "True").count() == 3
    });
    let ns = "place";
    new_namespace(&server, ns);
    // A CronJob that fires every minute; checked at the end.
    k(
        &server,
        33,
        ns,
        &[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=* * * * *",
            "--",
            "sh",
            "-c",
            "exit 0",
        ],
    );

    // Taints and tolerations, node affinity: sim-0 is reserved; only the tolerating pod that
    // asks for it by label lands there.
    server
        .kubectl(33, &["taint", "nodes", "sim-0", "dedicated=gpu:NoSchedule"])
        .ok();
    server.kubectl(33, &["label", "nodes", "sim-0", "accel=gpu"]).ok();
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: gpu-job, labels: {role: gpu}}
spec:
  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: accel, operator: In, values: [gpu]}]}]
  containers: [{name: c, image: nginx}]
"#,
    );
    // Topology spread across the two untainted nodes, and required anti-affinity.
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      # Honor: the tainted node is no domain of the spread (by default it would be one, with
      # no pods, and block a third replica, as upstream).
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: spread}}}
      containers: [{name: c, image: nginx}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: lonely}
spec:
  replicas: 3
  selector: {matchLabels: {app: lonely}}
  template:
    metadata: {labels: {app: lonely}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: lonely}}}
      containers: [{name: c, image: nginx}]
"#,
    );
    k(
        &server,
        33,
        ns,
        &["wait", "--for=condition=Ready", "pod/gpu-job", "--timeout=60s"],
    );
    assert_eq!(placements(&server, ns, "role=gpu")[0].0, "sim-0");
    k(
        &server,
        33,
        ns,
        &["rollout", "status", "deployment/spread", "--timeout=60s"],
    );
    let spread = placements(&server, ns, "app=spread");
    assert_eq!(spread.len(), 4);
    for node in ["sim-1", "sim-2"] {
        assert_eq!(
            spread.iter().filter(|(n, _)| n == node).count(),
            2,
            "two per untainted node: {spread:?}"
        );
    }
    // Two untainted nodes hold two of the three anti-affine replicas; the third says why.
    common::eventually("two lonely pods placed, one pending", || {
        let placed = placements(&server, ns, "app=lonely");
        let on_nodes: Vec<_> = placed.iter().filter(|(n, _)| !n.is_empty()).collect();
        placed.len() == 3 && on_nodes.len() == 2 && on_nodes[0].0 != on_nodes[1].0
    });
    common::eventually("the pending pod's reason", || {
        let out = k(
            &server,
            33,
            ns,
            &[
                "get",
                "pods",
                "-l",
                "app=lonely",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type==\"PodScheduled\")].message}",
            ],
        );
        out.contains("0/3 nodes are available:")
            && out.contains("didn't match pod anti-affinity rules")
            && out.contains("untolerated taint")
    });
    k(&server, 33, ns, &["delete", "deployment", "lonely", "spread"]);

    // Preemption: low-priority pods fill both untainted nodes; a high-priority pod evicts one.
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: urgent}
value: 1000
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: filler}
spec:
  replicas: 2
  selector: {matchLabels: {app: filler}}
  template:
    metadata: {labels: {app: filler}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: filler}}}
      terminationGracePeriodSeconds: 0
      containers: [{name: c, image: nginx, resources: {requests: {cpu: "30"}}}]
"#,
    );
    k(
        &server,
        33,
        ns,
        &["rollout", "status", "deployment/filler", "--timeout=60s"],
    );
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: vip, labels: {role: vip}}
spec:
  priorityClassName: urgent
  containers: [{name: c, image: nginx, resources: {requests: {cpu: "20"}}}]
"#,
    );
    k(
        &server,
        33,
        ns,
        &["wait", "--for=condition=Ready", "pod/vip", "--timeout=90s"],
    );
    let preempted = k(
        &server,
        33,
        ns,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=Preempted",
            "-o",
            "name",
        ],
    );
    assert!(!preempted.is_empty(), "no Preempted event");
    k(&server, 33, ns, &["delete", "pod", "vip", "gpu-job"]);
    k(&server, 33, ns, &["delete", "deployment", "filler"]);

    // A Service's EndpointSlice follows its ready pods; a PDB blocks an eviction.
    k(
        &server,
        33,
        ns,
        &["create", "deployment", "web", "--image=nginx", "--replicas=2"],
    );
    k(&server, 33, ns, &["expose", "deployment", "web", "--port=80"]);
    k(
        &server,
        33,
        ns,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
    let endpoints = |want: usize| {
        common::eventually(&format!("{want} ready endpoints"), || {
            let out = k(
                &server,
                33,
                ns,
                &[
                    "get",
                    "endpointslices",
                    "-l",
                    "kubernetes.io/service-name=web",
                    "-o",
                    "jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{\"\\n\"}{end}",
                ],
            );
            out.lines().filter(|l| l.starts_with("10.42.")).count() == want
        })
    };
    endpoints(2);
    k(&server, 33, ns, &["scale", "deployment/web", "--replicas=3"]);
    endpoints(3);
    k(
        &server,
        33,
        ns,
        &[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=3",
        ],
    );
    common::eventually("the budget allows no disruption", || {
        let out = k(
            &server,
            33,
            ns,
            &[
                "get",
                "pdb",
                "web",
                "-o",
                "jsonpath={.status.currentHealthy}/{.status.disruptionsAllowed}",
            ],
        );
        out == "3/0"
    });
    let node = placements(&server, ns, "app=web")[0].0.clone();
    let drain = server.kubectl(
        33,
        &[
            "drain",
            &node,
            "--pod-selector=app=web",
            "--timeout=5s",
            "--ignore-daemonsets",
        ],
    );
    assert!(!drain.ok, "the drain should be blocked");
    assert!(
        drain.stderr.contains("disruption budget") || drain.stdout.contains("disruption budget"),
        "{drain:?}"
    );
    server.kubectl(33, &["uncordon", &node]).ok();

    // A ResourceQuota's usage drops when its pod completes.
    k(&server, 33, ns, &["create", "quota", "pods", "--hard=pods=20"]);
    k(
        &server,
        33,
        ns,
        &[
            "run",
            "once",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sh",
            "-c",
            "sleep 1",
        ],
    );
    common::eventually("the completed pod no longer counts", || {
        let phase = k(
            &server,
            33,
            ns,
            &["get", "pod", "once", "-o", "jsonpath={.status.phase}"],
        );
        let used = k(
            &server,
            33,
            ns,
            &["get", "quota", "pods", "-o", "jsonpath={.status.used.pods}"],
        );
        phase == "Succeeded" && used == "3"
    });

    // An Indexed Job runs each index once.
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: indexed}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "exit 0"]}]
"#,
    );
    k(
        &server,
        33,
        ns,
        &["wait", "--for=condition=complete", "job/indexed", "--timeout=60s"],
    );
    let indexes = k(
        &server,
        33,
        ns,
        &[
            "get",
            "job",
            "indexed",
            "-o",
            "jsonpath={.status.completedIndexes}",
        ],
    );
    assert_eq!(indexes, "0-2");

    // The CronJob fired (within its first minute) and its Job completed.
    common::eventually("the CronJob to fire and succeed", || {
        let out = k(
            &server,
            33,
            ns,
            &[
                "get",
                "cronjob",
                "tick",
                "-o",
                "jsonpath={.status.lastSuccessfulTime}",
            ],
        );
        !out.is_empty()
    });
}

#[test]
fn a_node_that_stops_heartbeating_goes_unknown_and_its_pods_are_evicted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start_server(
        &tmp.path().join("data"),
        &[
            "--ephemeral",
            "--simulated-nodes",
            "1",
            "--kube-controller-manager-arg=node-monitor-grace-period=8s",
            "--kube-controller-manager-arg=node-startup-grace-period=8s",
            "--kube-controller-manager-arg=node-monitor-period=1s",
        ],
    );
    let ns = "default";
    // A node nobody runs: registered Ready once, never renewed.
    apply(
        &server,
        tmp.path(),
        ns,
        r#"
apiVersion: v1
kind: Node
metadata: {name: ghost, labels: {kubernetes.io/hostname: ghost}}
status:
  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: ready}]
"#,
    );
    apply(
        &server,
        tmp.path(),
        ns,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: stranded}
spec:
  nodeName: ghost
  tolerations:
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
  containers: [{name: c, image: nginx}]
"#,
    );
    common::eventually("the node to go Unknown and be tainted", || {
        let out = k(
            &server,
            33,
            ns,
            &[
                "get",
                "node",
                "ghost",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints[*].key}",
            ],
        );
        out.starts_with("Unknown") && out.contains("node.kubernetes.io/unreachable")
    });
    // Evicted (deleted) once its toleration runs out; with no kubelet to confirm, it stays
    // Terminating, as upstream.
    common::eventually("the stranded pod to be evicted", || {
        let out = k(
            &server,
            33,
            ns,
            &[
                "get",
                "pod",
                "stranded",
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ],
        );
        !out.is_empty()
    });
    // The simulated node keeps heartbeating and stays Ready.
    let sim = k(
        &server,
        33,
        ns,
        &[
            "get",
            "node",
            "sim-0",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(sim, "True");
}

#[test]
fn stateful_sets_get_their_volumes_and_daemon_sets_cover_every_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = cluster(tmp.path());
    let dir = tmp.path();
    let ns = "apps";
    new_namespace(&server, ns);
    // The default StorageClass provisions a local-path volume per claim, on the pod's node.
    common::eventually("the default StorageClass", || {
        let out = server.kubectl(33, &["get", "storageclass"]).ok();
        out.contains("local-path (default)")
    });
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, name: web}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#,
    );
    for minor in [27, 33] {
        let out = k(
            &server,
            minor,
            ns,
            &["rollout", "status", "statefulset/web", "--timeout=90s"],
        );
        assert!(
            out.contains("roll out complete") || out.contains("rolling update complete"),
            "{out}"
        );
    }
    // Created in order, each with its claim bound to a volume on its node.
    let created: Vec<String> = (0..3)
        .map(|i| {
            k(
                &server,
                33,
                ns,
                &[
                    "get",
                    "pod",
                    &format!("web-{i}"),
                    "-o",
                    "jsonpath={.metadata.creationTimestamp}",
                ],
            )
        })
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");
    for i in 0..3 {
        let claim = k(
            &server,
            33,
            ns,
            &[
                "get",
                "pvc",
                &format!("www-web-{i}"),
                "-o",
                "jsonpath={.status.phase} {.spec.volumeName} {.spec.storageClassName}",
            ],
        );
        let f: Vec<&str> = claim.split(' ').collect();
        assert_eq!((f[0], f[2]), ("Bound", "local-path"), "{claim}");
        let pv_node = server
            .kubectl(
                33,
                &[
                    "get",
                    "pv",
                    f[1],
                    "-o",
                    "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
                ],
            )
            .ok();
        let pod_node = k(
            &server,
            33,
            ns,
            &[
                "get",
                "pod",
                &format!("web-{i}"),
                "-o",
                "jsonpath={.spec.nodeName}",
            ],
        );
        assert_eq!(pv_node, pod_node, "web-{i}'s volume is on its node");
    }
    k(&server, 33, ns, &["scale", "statefulset/web", "--replicas=1"]);
    common::eventually("the highest ordinals to go", || {
        k(&server, 33, ns, &["get", "pods", "-l", "app=web", "-o", "name"]).trim() == "pod/web-0"
    });

    // A DaemonSet runs one pod per node, and one on a node that joins.
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox, command: [sleep, infinity]}]
"#,
    );
    k(
        &server,
        33,
        ns,
        &["rollout", "status", "daemonset/agent", "--timeout=90s"],
    );
    let mut nodes: Vec<String> = placements(&server, ns, "app=agent")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["sim-0", "sim-1", "sim-2"]);
    apply(
        &server,
        dir,
        ns,
        r#"
apiVersion: v1
kind: Node
metadata: {name: joiner, labels: {kubernetes.io/hostname: joiner}}
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: ready}]
"#,
    );
    common::eventually("a daemon pod bound to the new node", || {
        placements(&server, ns, "app=agent")
            .iter()
            .any(|(node, _)| node == "joiner")
    });
    k(&server, 33, ns, &["rollout", "history", "daemonset/agent"]);
}
