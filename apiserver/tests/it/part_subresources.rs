//! Subresources that write one part of their object: `pods/ephemeralcontainers` (kube-rs and
//! `kubectl debug`), `certificatesigningrequests/approval` and `/status` (kube-rs
//! `patch_approval`, `kubectl certificate approve|deny`), in discovery and under RBAC.

use std::path::Path;

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

use crate::kube_client::Running;
use crate::kubectl::{Kubectl, KubectlExt, with_each_kubectl};

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    }))
    .unwrap()
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn ephemeral_containers_with_kube_rs() {
    let running = Running::start().await;
    let client = running.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("eph")).await.unwrap();

    let got = pods.get_ephemeral_containers("eph").await.unwrap();
    assert_eq!(got.spec.unwrap().ephemeral_containers, None);

    // Replace with a body that carries nothing but the ephemeral containers.
    let body: Pod = serde_json::from_value(json!({
        "metadata": {"name": "eph"},
        "spec": {"ephemeralContainers": [{"name": "debug1", "image": "busybox", "targetContainerName": "app"}]}
    }))
    .unwrap();
    let replaced = pods
        .replace_ephemeral_containers("eph", &PostParams::default(), &body)
        .await
        .unwrap();
    let spec = replaced.spec.unwrap();
    assert_eq!(spec.containers[0].name, "app", "the rest of the pod is kept");
    let ecs = spec.ephemeral_containers.unwrap();
    assert_eq!(ecs.len(), 1);
    // Defaulted like every container.
    assert_eq!(ecs[0].termination_message_policy.as_deref(), Some("File"));
    assert_eq!(ecs[0].image_pull_policy.as_deref(), Some("Always"));

    // A strategic merge patch adds one (merge key `name`).
    let patch: Pod = serde_json::from_value(json!({
        "spec": {"ephemeralContainers": [{"name": "debug2", "image": "busybox:1.36"}]}
    }))
    .unwrap();
    let patched = pods
        .patch_ephemeral_containers("eph", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let names: Vec<String> = patched
        .spec
        .unwrap()
        .ephemeral_containers
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["debug1", "debug2"]);

    // What may not happen, each a 422 with upstream's reason.
    let cases = [
        (
            json!({"spec": {"ephemeralContainers": [{"name": "debug1", "image": "other"}, {"name": "debug2", "image": "busybox:1.36"}]}}),
            r#"existing ephemeral containers "debug1" may not be changed"#,
        ),
        (
            json!({"spec": {"ephemeralContainers": [{"name": "debug2", "image": "busybox:1.36"}]}}),
            r#"existing ephemeral containers "debug1" may not be removed"#,
        ),
        (
            json!({"spec": {"ephemeralContainers": [{"name": "p", "image": "busybox", "ports": [{"containerPort": 80}]}]}}),
            "].ports: Forbidden: cannot be set for an Ephemeral Container",
        ),
        (
            json!({"spec": {"ephemeralContainers": [{"name": "app", "image": "busybox"}]}}),
            r#"].name: Duplicate value: "app""#,
        ),
        (
            json!({"spec": {"ephemeralContainers": [{"name": "t", "image": "busybox", "targetContainerName": "nope"}]}}),
            r#"].targetContainerName: Not found: "nope""#,
        ),
    ];
    let current = pods.get("eph").await.unwrap();
    for (i, (spec_patch, message)) in cases.into_iter().enumerate() {
        let err = if i < 2 {
            // Replacing the whole list.
            let mut body = current.clone();
            body.spec.as_mut().unwrap().ephemeral_containers =
                serde_json::from_value(spec_patch["spec"]["ephemeralContainers"].clone()).unwrap();
            pods.replace_ephemeral_containers("eph", &PostParams::default(), &body)
                .await
                .unwrap_err()
        } else {
            pods.patch_ephemeral_containers("eph", &PatchParams::default(), &Patch::Strategic(spec_patch))
                .await
                .unwrap_err()
        };
        let status = api_error(err);
        assert_eq!(status.code, 422, "{status:?}");
        assert!(status.message.contains(message), "{message}: {}", status.message);
    }

    // The pod itself cannot add them, nor can a new pod carry them.
    let err = pods
        .patch(
            "eph",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [{"name": "x", "image": "busybox"}]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).code, 422);
    // Nor does the subresource change anything else.
    let patched = pods
        .patch_ephemeral_containers(
            "eph",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"sneaky": "yes"}}, "spec": {"containers": [{"name": "app", "image": "evil"}]}})),
        )
        .await
        .unwrap();
    assert!(patched.metadata.labels.is_none());
    assert_eq!(
        patched.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx")
    );

    // Discovery lists the subresource with its verbs.
    let resources = client.list_core_api_resources("v1").await.unwrap().resources;
    let eph = resources
        .iter()
        .find(|r| r.name == "pods/ephemeralcontainers")
        .expect("pods/ephemeralcontainers in discovery");
    let mut verbs = eph.verbs.clone();
    verbs.sort();
    assert_eq!(verbs, ["get", "patch", "update"]);
    assert_eq!(eph.kind, "Pod");
}

fn kubectl_debug(k: &Kubectl, _: &Path) {
    let ns = format!("debug-{}", k.minor());
    k.ok(&["create", "namespace", &ns]);
    k.ok(&["-n", &ns, "run", "web", "--image=nginx", "--restart=Never"]);
    let debug_out = k.ok(&["-n", &ns, "debug", "web", "--image=busybox", "--target=web"]);
    let listed = k.ok(&[
        "-n",
        &ns,
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.spec.ephemeralContainers[*].name} {.spec.ephemeralContainers[*].targetContainerName} {.spec.ephemeralContainers[*].image}",
    ]);
    let fields: Vec<&str> = listed.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{listed} ({debug_out})");
    assert!(fields[0].starts_with("debugger-"), "{listed}");
    assert_eq!(&fields[1..], ["web", "busybox"], "{listed}");
    // A second debug container joins the first.
    k.ok(&["-n", &ns, "debug", "web", "--image=busybox:1.36", "-c", "second"]);
    let listed = k.ok(&[
        "-n",
        &ns,
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.spec.ephemeralContainers[*].name}",
    ]);
    assert_eq!(listed.split_whitespace().count(), 2, "{listed}");
    assert!(listed.contains("second"), "{listed}");
}

#[tokio::test]
async fn kubectl_debug_adds_ephemeral_containers() {
    with_each_kubectl("kubectl debug", kubectl_debug).await;
}

/// A PEM certificate signing request, base64 as the API carries it.
fn csr_request(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    base64::engine::general_purpose::STANDARD.encode(pem)
}

fn csr(name: &str) -> CertificateSigningRequest {
    serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": csr_request(name),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 86400,
            "usages": ["client auth"]
        }
    }))
    .unwrap()
}

fn condition_types(c: &CertificateSigningRequest) -> Vec<String> {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| cs.iter().map(|c| c.type_.clone()).collect())
        .unwrap_or_default()
}

fn certificate_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["issued".to_string()]).unwrap();
    params.self_signed(&key).unwrap().pem()
}

async fn client_as(running: &Running, user: &str) -> Client {
    let kc = Kubeconfig::read_from(running.kubeconfig()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn csr_approval_and_status_with_kube_rs() {
    let running = Running::start().await;
    let client = running.client().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    // Users cannot create pre-approved requests.
    let mut pre = csr("fake");
    pre.status =
        serde_json::from_value(json!({"conditions": [{"type": "Approved", "status": "True"}]})).unwrap();
    pre.spec.username = Some("someone-else".into());
    let created = csrs.create(&PostParams::default(), &pre).await.unwrap();
    assert!(condition_types(&created).is_empty(), "{created:?}");
    // The requestor is who created it.
    assert_eq!(
        created.spec.username.as_deref(),
        Some("admin"),
        "{:?}",
        created.spec
    );
    assert!(
        created
            .spec
            .groups
            .unwrap()
            .contains(&"system:masters".to_string())
    );

    // A request is validated as upstream does.
    let mut bad = csr("bad");
    bad.spec.request = k8s_openapi::ByteString(b"not a request".to_vec());
    bad.spec.usages = Some(vec!["client auth".into(), "client auth".into(), "flying".into()]);
    bad.spec.signer_name = "no-path".into();
    bad.spec.expiration_seconds = Some(60);
    let err = api_error(csrs.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422, "{err:?}");
    for expected in [
        "spec.request: Invalid value: \"bm90IGEgcmVxdWVzdA==\": PEM block type must be CERTIFICATE REQUEST",
        "spec.usages[1]: Duplicate value: \"client auth\"",
        "spec.usages[2]: Unsupported value: \"flying\"",
        "spec.signerName: Invalid value: \"no-path\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)",
    ] {
        assert!(err.message.contains(expected), "{expected}\n{}", err.message);
    }

    // kube-rs's approval: any condition type through /approval.
    let patch = json!({"status": {"conditions": [
        {"type": "ApprovedFake", "status": "True", "reason": "kube-rsClient", "message": "ApprovedFake by kube-rs client"}
    ]}});
    csrs.patch_approval("fake", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let after = csrs.get_approval("fake").await.unwrap();
    assert_eq!(condition_types(&after), ["ApprovedFake"]);
    let cond = &after.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
    assert!(cond.last_update_time.is_some() && cond.last_transition_time.is_some());

    // Approve for real, then the signer sets the certificate through /status.
    let approve = json!({"status": {"conditions": [
        {"type": "ApprovedFake", "status": "True", "reason": "kube-rsClient"},
        {"type": "Approved", "status": "True", "reason": "Test"}
    ]}});
    let approved = csrs
        .patch_approval("fake", &PatchParams::default(), &Patch::Merge(&approve))
        .await
        .unwrap();
    assert_eq!(condition_types(&approved), ["ApprovedFake", "Approved"]);
    let cert = base64::engine::general_purpose::STANDARD.encode(certificate_pem());
    let issued = csrs
        .patch_status(
            "fake",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"certificate": cert}})),
        )
        .await
        .unwrap();
    assert!(issued.status.as_ref().unwrap().certificate.is_some());
    assert_eq!(condition_types(&issued), ["ApprovedFake", "Approved"]);

    // What each path may not do.
    let status_err = |e| api_error(e).message;
    let again = base64::engine::general_purpose::STANDARD.encode(certificate_pem());
    let msg = status_err(
        csrs.patch_status(
            "fake",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"certificate": again}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        msg.contains("updates may not modify existing certificate content"),
        "{msg}"
    );
    let msg = status_err(
        csrs.patch_status(
            "fake",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
                {"type": "ApprovedFake", "status": "True"}, {"type": "Approved", "status": "True"},
                {"type": "Denied", "status": "True"}
            ]}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        msg.contains(r#"updates may not add a condition of type \"Denied\""#)
            || msg.contains(r#"updates may not add a condition of type "Denied""#),
        "{msg}"
    );
    let msg = status_err(
        csrs.patch_approval(
            "fake",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Denied", "status": "True"}]}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(msg.contains(r#"may not remove a condition of type"#), "{msg}");
    let msg = status_err(
        csrs.patch_approval(
            "fake",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Approved", "status": "True"}, {"type": "ApprovedFake", "status": "True"}]}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(msg.contains("Duplicate value"), "{msg}");
    // Approval writes nothing but conditions; the main resource changes neither spec nor status.
    let unchanged = csrs
        .patch_approval(
            "fake",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"usages": ["digital signature"]}, "status": {"certificate": null}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        unchanged.spec.usages.as_deref(),
        Some(&["client auth".to_string()][..])
    );
    assert!(unchanged.status.as_ref().unwrap().certificate.is_some());
    let main = csrs
        .patch(
            "fake",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "spec": {"usages": ["digital signature"]}, "status": {"conditions": []}})),
        )
        .await
        .unwrap();
    assert_eq!(main.metadata.labels.as_ref().unwrap()["a"], "b");
    assert_eq!(
        main.spec.usages.as_deref(),
        Some(&["client auth".to_string()][..])
    );
    assert_eq!(condition_types(&main), ["ApprovedFake", "Approved"]);

    // Discovery and RBAC see /approval as a subresource.
    let resources = client
        .list_api_group_resources("certificates.k8s.io/v1")
        .await
        .unwrap()
        .resources;
    for sub in [
        "certificatesigningrequests/approval",
        "certificatesigningrequests/status",
    ] {
        let r = resources
            .iter()
            .find(|r| r.name == sub)
            .unwrap_or_else(|| panic!("{sub} in discovery"));
        let mut verbs = r.verbs.clone();
        verbs.sort();
        assert_eq!(verbs, ["get", "patch", "update"], "{sub}");
    }
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "csr-editor"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["get", "list", "create", "update", "patch"]}]
    }))
    .unwrap();
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles.create(&PostParams::default(), &role).await.unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "csr-editor"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "csr-editor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let alice: Api<CertificateSigningRequest> = Api::all(client_as(&running, "alice").await);
    let by_alice = alice
        .create(&PostParams::default(), &csr("alices"))
        .await
        .unwrap();
    assert_eq!(by_alice.spec.username.as_deref(), Some("alice"));
    let approve_alices =
        Patch::Merge(json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}}));
    let err = api_error(
        alice
            .patch_approval("alices", &PatchParams::default(), &approve_alices)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403, "{err:?}");
    assert!(
        err.message.contains("certificatesigningrequests/approval"),
        "{}",
        err.message
    );
    let mut with_approval = role.clone();
    with_approval.rules.as_mut().unwrap()[0].resources = Some(vec![
        "certificatesigningrequests".into(),
        "certificatesigningrequests/approval".into(),
    ]);
    roles
        .replace("csr-editor", &PostParams::default(), &with_approval)
        .await
        .unwrap();
    // Approving also takes `approve` on the signer (upstream's CertificateApproval admission).
    let err = api_error(
        alice
            .patch_approval("alices", &PatchParams::default(), &approve_alices)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403, "{err:?}");
    assert!(
        err.message.ends_with(
            r#"is forbidden: user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client""#
        ),
        "{}",
        err.message
    );
    let mut with_signer = with_approval.clone();
    with_signer.rules.as_mut().unwrap().push(
        serde_json::from_value(json!({
            "apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
            "resourceNames": ["kubernetes.io/*"], "verbs": ["approve"]
        }))
        .unwrap(),
    );
    roles
        .replace("csr-editor", &PostParams::default(), &with_signer)
        .await
        .unwrap();
    let approved = alice
        .patch_approval("alices", &PatchParams::default(), &approve_alices)
        .await
        .unwrap();
    assert_eq!(condition_types(&approved), ["Approved"]);

    // Issuing the certificate through /status takes `sign` on the signer; other status writes
    // do not.
    let mut with_status = with_signer.clone();
    with_status.rules.as_mut().unwrap()[0]
        .resources
        .as_mut()
        .unwrap()
        .push("certificatesigningrequests/status".into());
    roles
        .replace("csr-editor", &PostParams::default(), &with_status)
        .await
        .unwrap();
    let failed = json!({"status": {"conditions": [
        {"type": "Approved", "status": "True"}, {"type": "Extra", "status": "False"}
    ]}});
    alice
        .patch_status("alices", &PatchParams::default(), &Patch::Merge(&failed))
        .await
        .unwrap();
    let cert = json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode(certificate_pem())}});
    let err = api_error(
        alice
            .patch_status("alices", &PatchParams::default(), &Patch::Merge(&cert))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403, "{err:?}");
    assert!(
        err.message.ends_with(
            r#"user not permitted to sign requests with signerName "kubernetes.io/kube-apiserver-client""#
        ),
        "{}",
        err.message
    );
    assert!(
        alice
            .get("alices")
            .await
            .unwrap()
            .status
            .unwrap()
            .certificate
            .is_none()
    );
    with_status.rules.as_mut().unwrap().push(
        serde_json::from_value(json!({
            "apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
            "resourceNames": ["kubernetes.io/kube-apiserver-client"], "verbs": ["sign"]
        }))
        .unwrap(),
    );
    roles
        .replace("csr-editor", &PostParams::default(), &with_status)
        .await
        .unwrap();
    let issued = alice
        .patch_status("alices", &PatchParams::default(), &Patch::Merge(&cert))
        .await
        .unwrap();
    assert!(issued.status.unwrap().certificate.is_some());
}

fn kubectl_certificate(k: &Kubectl, dir: &Path) {
    let yes = format!("approve-{}", k.minor());
    let no = format!("deny-{}", k.minor());
    for name in [&yes, &no] {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(&csr(name)).unwrap()).unwrap();
        k.ok(&["create", "-f", file.to_str().unwrap()]);
    }
    let out = k.ok(&["certificate", "approve", &yes]);
    assert!(out.contains("approved"), "{out}");
    let out = k.ok(&["certificate", "deny", &no]);
    assert!(out.contains("denied"), "{out}");
    let get =
        |name: &str| -> Value { serde_json::from_str(&k.ok(&["get", "csr", name, "-o", "json"])).unwrap() };
    let approved = get(&yes);
    let cond = &approved["status"]["conditions"][0];
    assert_eq!(
        (cond["type"].as_str(), cond["status"].as_str()),
        (Some("Approved"), Some("True")),
        "{approved}"
    );
    assert_eq!(cond["reason"], "KubectlApprove");
    let denied = get(&no);
    assert_eq!(denied["status"]["conditions"][0]["type"], "Denied", "{denied}");
    // `kubectl get csr` shows the condition.
    let out = k.ok(&["get", "csr", &yes]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    assert!(
        out.contains("kubernetes.io/kube-apiserver-client") && out.contains("24h"),
        "{out}"
    );
    assert!(out.lines().nth(1).unwrap().ends_with("Approved"), "{out}");
    // Denied stays denied: kubectl refuses to approve it, and so does the server when asked
    // through the approval subresource directly.
    let (ok, _, err) = k.attempt(&["certificate", "approve", &no]);
    assert!(!ok && err.contains("already Denied"), "{err}");
    let mut both = denied;
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Approved", "status": "True", "reason": "Forced"}));
    let file = dir.join(format!("{no}-both.json"));
    std::fs::write(&file, serde_json::to_vec(&both).unwrap()).unwrap();
    let uri = format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{no}/approval");
    let (ok, out, err) = k.attempt(&["replace", "--raw", &uri, "-f", file.to_str().unwrap()]);
    assert!(!ok, "approving a denied request: {out}");
    assert!(err.contains("mutually exclusive"), "{err}");
}

#[tokio::test]
async fn kubectl_certificate_approve_and_deny() {
    with_each_kubectl("kubectl certificate", kubectl_certificate).await;
}
