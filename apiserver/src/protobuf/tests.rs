use k8s_openapi::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::*;

/// A JSON value normalised through its k8s-openapi type, so samples are valid objects.
fn typed<T: DeserializeOwned + Serialize + Resource>(mut v: Value) -> Value {
    v["apiVersion"] = json!(T::API_VERSION);
    v["kind"] = json!(T::KIND);
    let t: T = serde_json::from_value(v).expect("sample matches its type");
    serde_json::to_value(t).unwrap()
}

fn round_trip(v: &Value) -> Value {
    let bytes = encode(v).unwrap_or_else(|e| panic!("encode {}: {e}", v["kind"]));
    assert!(bytes.starts_with(MAGIC));
    decode(&bytes).unwrap_or_else(|e| panic!("decode {}: {e}", v["kind"]))
}

fn meta(name: &str) -> Value {
    json!({
        "name": name, "namespace": "default", "uid": "6f1c1d9a-0d7c-4c2b-9a0e-1f2e3d4c5b6a",
        "resourceVersion": "42", "generation": 3,
        "creationTimestamp": "2025-01-02T03:04:05Z",
        "labels": {"app": name, "tier": "web"}, "annotations": {"note": "x"},
        "finalizers": ["example.com/f"],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1",
            "controller": true, "blockOwnerDeletion": false}],
        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "time": "2025-01-02T03:04:05Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]
    })
}

fn pod_spec() -> Value {
    json!({
        "containers": [{
            "name": "web", "image": "nginx:1.27", "args": ["-g", "daemon off;"],
            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": false}}},
                {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ],
            "envFrom": [{"configMapRef": {"name": "cm"}}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 3},
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false},
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]
        }],
        "volumes": [
            {"name": "data", "configMap": {"name": "cm", "defaultMode": 420, "items": [{"key": "a", "path": "a"}]}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "sec", "secret": {"secretName": "s"}}
        ],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 0}],
        "automountServiceAccountToken": false,
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}
    })
}

fn samples() -> Vec<Value> {
    use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apireg;
    vec![
        typed::<core::v1::Pod>(json!({"metadata": meta("p"), "spec": pod_spec(),
            "status": {"phase": "Running", "podIP": "10.0.0.5", "startTime": "2025-01-02T03:04:05Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-02T03:04:05Z"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 2, "image": "nginx", "imageID": "x",
                    "state": {"running": {"startedAt": "2025-01-02T03:04:05Z"}}}]}})),
        typed::<core::v1::ConfigMap>(json!({"metadata": meta("cm"), "data": {"a": "b", "empty": ""},
            "binaryData": {"bin": "AAEC"}, "immutable": false})),
        typed::<core::v1::Secret>(json!({"metadata": meta("s"), "type": "Opaque",
            "data": {"password": "c2VjcmV0", "zero": ""}})),
        typed::<core::v1::Service>(json!({"metadata": meta("svc"), "spec": {"type": "ClusterIP",
            "selector": {"app": "web"}, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                      {"name": "named", "port": 443, "targetPort": "https"}],
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}})),
        typed::<core::v1::Namespace>(json!({"metadata": {"name": "ns1", "labels": {"a": "b"}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})),
        typed::<core::v1::ServiceAccount>(json!({"metadata": meta("sa"),
            "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "reg"}]})),
        typed::<core::v1::PersistentVolumeClaim>(json!({"metadata": meta("pvc"), "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "resources": {"requests": {"storage": "10Gi"}}}})),
        typed::<core::v1::Event>(
            json!({"metadata": meta("ev"), "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Started", "message": "ok", "count": 1, "type": "Normal",
            "eventTime": "2025-01-02T03:04:05.123456Z", "firstTimestamp": "2025-01-02T03:04:05Z"}),
        ),
        typed::<core::v1::Node>(
            json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24",
            "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "c",
                    "kernelVersion": "k", "kubeProxyVersion": "", "machineID": "m", "operatingSystem": "linux",
                    "osImage": "o", "systemUUID": "s"}}}),
        ),
        typed::<apps::v1::Deployment>(json!({"metadata": meta("d"), "spec": {"replicas": 0,
            "selector": {"matchLabels": {"app": "d"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": pod_spec()}},
            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 3}})),
        typed::<apps::v1::StatefulSet>(json!({"metadata": meta("st"), "spec": {"serviceName": "s",
            "selector": {"matchLabels": {"app": "st"}},
            "template": {"metadata": {"labels": {"app": "st"}}, "spec": pod_spec()},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]}})),
        typed::<batch::v1::Job>(
            json!({"metadata": meta("j"), "spec": {"backoffLimit": 0, "completions": 1,
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}}),
        ),
        typed::<batch::v1::CronJob>(json!({"metadata": meta("cj"), "spec": {"schedule": "*/5 * * * *",
            "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}}})),
        typed::<rbac::v1::Role>(json!({"metadata": meta("r"), "rules": [{"apiGroups": [""],
            "resources": ["pods"], "verbs": ["get", "list"]}]})),
        typed::<rbac::v1::RoleBinding>(json!({"metadata": meta("rb"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]})),
        typed::<rbac::v1::ClusterRole>(json!({"metadata": {"name": "cr"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]},
            "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]})),
        typed::<networking::v1::Ingress>(
            json!({"metadata": meta("ing"), "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}}]}}),
        ),
        typed::<networking::v1::NetworkPolicy>(json!({"metadata": meta("np"), "spec": {
            "podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}, {"port": "dns"}]}]}})),
        typed::<autoscaling::v2::HorizontalPodAutoscaler>(json!({"metadata": meta("hpa"), "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "minReplicas": 1, "maxReplicas": 5, "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]}})),
        typed::<policy::v1::PodDisruptionBudget>(
            json!({"metadata": meta("pdb"), "spec": {"minAvailable": "50%",
            "selector": {"matchLabels": {"a": "b"}}}}),
        ),
        typed::<apiext::CustomResourceDefinition>(
            json!({"metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"spec": {"type": "object", "default": {"size": 1, "tags": ["a"]},
                    "additionalProperties": {"type": "string"},
                    "properties": {"size": {"type": "integer", "minimum": 0.5, "maximum": 10.0},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "items": {"type": "array", "items": {"type": "string"}},
                        "any": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}},
                    "required": ["size"]}}}}}]}}),
        ),
        typed::<apireg::APIService>(json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {
            "group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
            "service": {"name": "metrics", "namespace": "kube-system", "port": 443}, "caBundle": "AAEC"}})),
    ]
}

/// Request and subresource bodies kubectl 1.32+ sends as protobuf (`create token`, `auth can-i`,
/// `auth whoami`, scale, bind, evict) and a few more field shapes (MicroTime, bytes, ExtraValue).
fn body_samples() -> Vec<Value> {
    use k8s_openapi::api::{
        authentication, authorization, autoscaling, certificates, coordination, core, policy,
    };
    vec![
        typed::<authentication::v1::TokenRequest>(
            json!({"metadata": {"name": "default", "namespace": "default"},
            "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}},
            "status": {"token": "abc", "expirationTimestamp": "2025-01-02T04:04:05Z"}}),
        ),
        typed::<authorization::v1::SelfSubjectAccessReview>(json!({"metadata": {}, "spec": {
            "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
            "status": {"allowed": true, "reason": "RBAC"}})),
        typed::<authorization::v1::SelfSubjectRulesReview>(
            json!({"metadata": {}, "spec": {"namespace": "default"},
            "status": {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false}}),
        ),
        typed::<authorization::v1::SubjectAccessReview>(json!({"metadata": {}, "spec": {"user": "u",
            "groups": ["g"], "extra": {"scopes": ["a"]}, "nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
            "status": {"allowed": false, "denied": true}})),
        typed::<authentication::v1::SelfSubjectReview>(json!({"metadata": {}, "status": {"userInfo": {
            "username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}}})),
        typed::<autoscaling::v1::Scale>(json!({"metadata": {"name": "d", "namespace": "default"},
            "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=d"}})),
        typed::<policy::v1::Eviction>(json!({"metadata": {"name": "p", "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u"}}})),
        typed::<core::v1::Binding>(json!({"metadata": {"name": "p", "namespace": "default"},
            "target": {"kind": "Node", "name": "n1"}})),
        typed::<coordination::v1::Lease>(json!({"metadata": {"name": "l", "namespace": "kube-system"},
            "spec": {"holderIdentity": "h", "leaseDurationSeconds": 15,
                "renewTime": "2025-01-02T03:04:05.250000Z", "leaseTransitions": 0}})),
        typed::<certificates::v1::CertificateSigningRequest>(json!({"metadata": {"name": "csr"}, "spec": {
            "request": "LS0tLS1CRUdJTg==", "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"], "extra": {"k": ["v1", "v2"]}, "expirationSeconds": 600}})),
    ]
}

#[test]
fn request_bodies_round_trip() {
    for sample in body_samples() {
        assert_eq!(round_trip(&sample), sample, "{}", sample["kind"]);
    }
}

#[test]
fn json_protobuf_json_round_trips_many_kinds() {
    for mut sample in samples() {
        // k8s-openapi writes apiVersion/kind into embedded PVC templates; Go (and protobuf) has
        // no TypeMeta there.
        if let Some(Value::Array(templates)) = sample.pointer_mut("/spec/volumeClaimTemplates") {
            for t in templates {
                t.as_object_mut()
                    .unwrap()
                    .retain(|k, _| k != "apiVersion" && k != "kind");
            }
        }
        assert_eq!(round_trip(&sample), sample, "{}", sample["kind"]);
    }
}

#[test]
fn lists_and_status_round_trip() {
    let list = json!({"apiVersion": "v1", "kind": "ConfigMapList",
        "metadata": {"resourceVersion": "7", "continue": "abc", "remainingItemCount": 0},
        "items": [{"metadata": {"name": "a"}, "data": {"x": "y"}}, {"metadata": {"name": "b"}}]});
    assert_eq!(round_trip(&list), list);
    let status = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": "configmaps \"a\" not found", "reason": "NotFound",
        "details": {"name": "a", "kind": "configmaps"}, "code": 404});
    assert_eq!(round_trip(&status), status);
}

#[test]
fn special_types_take_their_json_forms() {
    // IntOrString as number and string, Quantity as string, Time at seconds, MicroTime at micros.
    let v = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [
        {"port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "web"}]}});
    let back = round_trip(&v);
    assert_eq!(back["spec"]["ports"][0]["targetPort"], json!(8080));
    assert_eq!(back["spec"]["ports"][1]["targetPort"], json!("web"));
    // A Quantity given as a JSON number becomes its string form.
    let v = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": 10}}});
    assert_eq!(round_trip(&v)["spec"]["hard"]["pods"], json!("10"));
    // Time drops sub-second precision like Go's metav1.Time; MicroTime keeps microseconds.
    let v = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e",
        "creationTimestamp": "2025-01-02T03:04:05.9Z"}, "eventTime": "2025-01-02T03:04:05.123456789Z"});
    let back = round_trip(&v);
    assert_eq!(
        back["metadata"]["creationTimestamp"],
        json!("2025-01-02T03:04:05Z")
    );
    assert_eq!(back["eventTime"], json!("2025-01-02T03:04:05.123456Z"));
    // Duration as Go duration text.
    let v = json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": "f"}, "spec": {"priorityLevelConfiguration": {"name": "p"}}});
    assert_eq!(round_trip(&v), v);
    // RawExtension embeds JSON.
    let v = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
        "revision": 2, "data": {"spec": {"template": {"x": [1, "two"]}}}});
    assert_eq!(round_trip(&v), v);
    // Maps of string-array aliases (authentication ExtraValue).
    let v = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
        "spec": {"token": "t", "audiences": ["api"]},
        "status": {"authenticated": true, "user": {"username": "u", "groups": ["g"],
            "extra": {"scopes": ["a", "b"]}}}});
    assert_eq!(round_trip(&v), v);
}

#[test]
fn zero_values_follow_go_pointer_semantics() {
    // `replicas` is a Go pointer: an explicit 0 survives. `minReadySeconds` is not: Go omits 0.
    let v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 0, "minReadySeconds": 0, "paused": false, "selector": {},
            "template": {"metadata": {}, "spec": {"containers": []}}}});
    let back = round_trip(&v);
    assert_eq!(back["spec"]["replicas"], json!(0));
    assert!(back["spec"].get("minReadySeconds").is_none());
    assert!(back["spec"].get("paused").is_none());
    // A pointer string keeps "" (storageClassName "" disables dynamic provisioning).
    let v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
        "spec": {"storageClassName": "", "volumeName": ""}});
    let back = round_trip(&v);
    assert_eq!(back["spec"]["storageClassName"], json!(""));
    assert!(back["spec"].get("volumeName").is_none());
}

#[test]
fn kubectl_133_configmap_body_decodes() {
    // `kubectl create configmap cm3 --from-literal=a=b` as kubectl 1.33 sends it.
    let mut cm = Vec::new();
    // ObjectMeta{name: "cm3", namespace: "default"}, creationTimestamp zero (empty message)
    let meta: &[u8] = b"\x0a\x03cm3\x1a\x07default\x42\x00";
    cm.extend_from_slice(b"\x0a");
    cm.push(meta.len() as u8);
    cm.extend_from_slice(meta);
    cm.extend_from_slice(b"\x12\x06\x0a\x01a\x12\x01b"); // data {a: b}
    let mut body = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12".to_vec();
    body.push(cm.len() as u8);
    body.extend_from_slice(&cm);
    body.extend_from_slice(b"\x1a\x00\x22\x00");
    let v = decode(&body).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm3", "namespace": "default"}, "data": {"a": "b"}})
    );
}

#[test]
fn bad_bodies_are_reported() {
    assert!(matches!(decode(b"{}"), Err(ProtobufError::NoMagic)));
    assert!(matches!(
        decode(b"k8s\0\xff\xff"),
        Err(ProtobufError::Envelope(_))
    ));
    let unknown = |api: &str, kind: &str, raw: &[u8]| {
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw.to_vec()),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let body = [MAGIC, &unknown("example.com/v1", "Widget", b"")].concat();
    assert!(matches!(decode(&body), Err(ProtobufError::UnknownKind { .. })));
    let body = [MAGIC, &unknown("v1", "ConfigMap", b"\x0a\xff")].concat();
    assert!(matches!(decode(&body), Err(ProtobufError::Message { .. })));
    let body = [MAGIC, &unknown("", "", b"")].concat();
    assert!(matches!(decode(&body), Err(ProtobufError::MissingKind)));
    let err = encode(&json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": 1}})).unwrap_err();
    assert_eq!(err.to_string(), "ConfigMap data.a: number is not a valid string");
}

#[test]
fn watch_frames_carry_enveloped_objects() {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
    let mut stream = encode_watch_event("ADDED", &obj).unwrap();
    stream.extend(encode_watch_event("DELETED", &obj).unwrap());
    let (t, v, used) = decode_watch_frame(&stream).unwrap().unwrap();
    assert_eq!((t.as_str(), &v), ("ADDED", &obj));
    let (t, _, rest) = decode_watch_frame(&stream[used..]).unwrap().unwrap();
    assert_eq!((t.as_str(), used + rest), ("DELETED", stream.len()));
    assert!(decode_watch_frame(&stream[..3]).is_none());
}

/// Decode+encode throughput for a Pod: `cargo test -p apiserver --release --lib
/// protobuf::tests::pod_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn pod_throughput() {
    let pod = samples().remove(0);
    let bytes = encode(&pod).unwrap();
    let n = 20_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(decode(std::hint::black_box(&bytes)).unwrap());
    }
    let decode_rate = n as f64 / start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(encode(std::hint::black_box(&pod)).unwrap());
    }
    let encode_rate = n as f64 / start.elapsed().as_secs_f64();
    let desc = schema().message_for("v1", "Pod").unwrap();
    let raw = json_to_message(&desc, &pod).unwrap().encode_to_vec();
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(prost_reflect::DynamicMessage::decode(desc.clone(), raw.as_slice()).unwrap());
    }
    println!(
        "wire decode only {:.0}/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    let msg = prost_reflect::DynamicMessage::decode(desc.clone(), raw.as_slice()).unwrap();
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(message_to_json(&msg).unwrap());
    }
    println!("to json only {:.0}/s", n as f64 / start.elapsed().as_secs_f64());
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(json_to_message(&desc, &pod).unwrap());
    }
    println!("from json only {:.0}/s", n as f64 / start.elapsed().as_secs_f64());
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(msg.encode_to_vec());
    }
    println!(
        "wire encode only {:.0}/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    println!(
        "Pod ({} protobuf bytes, {} JSON bytes): decode {decode_rate:.0}/s, encode {encode_rate:.0}/s",
        bytes.len(),
        serde_json::to_vec(&pod).unwrap().len()
    );
}
