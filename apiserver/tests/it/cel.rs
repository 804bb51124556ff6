//! CEL validation rules of CRDs (`x-kubernetes-validations`) end to end over TLS with kube-rs:
//! rules that do not compile are refused with the CRD, custom resources that break rules get
//! 422 with upstream's causes, transition rules guard updates, and a kube-rs
//! `#[derive(CustomResource, KubeSchema)]` type's `#[x_kube(validation)]` rules are enforced.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kube_client::Running;

fn gadget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.cel.example.com"},
        "spec": {
            "group": "cel.example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('g-')", "message": "name must start with g-"}],
                    "properties": {"spec": {"type": "object",
                        "x-kubernetes-validations": [
                            {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas cannot be larger than maxReplicas"},
                            {"rule": "!has(self.mode) || self.mode in ['fast', 'slow']", "fieldPath": ".mode", "reason": "FieldValueForbidden",
                             "messageExpression": "'mode ' + self.mode + ' is not offered'"},
                        ],
                        "properties": {
                            "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 10", "message": "must be at most 10"}]},
                            "minReplicas": {"type": "integer", "default": 0},
                            "maxReplicas": {"type": "integer", "default": 5},
                            "mode": {"type": "string"},
                            "id": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "id is immutable"}]},
                            "tags": {"type": "array", "items": {"type": "string"},
                                     "x-kubernetes-validations": [{"rule": "self.all(t, t.lowerAscii() == t)", "message": "tags must be lower case"}]},
                        }}}}}}],
        },
    })
}

async fn install(client: &Client, crd: Value) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    let name = crd.metadata.name.clone().unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .expect("established in time")
    .unwrap();
}

fn gadgets(client: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cel.example.com", "v1", "Gadget"),
        "gadgets",
    );
    Api::namespaced_with(client.clone(), "default", &ar)
}

fn gadget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "cel.example.com/v1", "kind": "Gadget",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

/// The status of a refused request, and its causes as `field|reason|message`, sorted.
fn causes(e: kube::Error) -> (kube::core::Status, Vec<String>) {
    let kube::Error::Api(status) = e else {
        panic!("not an API error: {e:?}");
    };
    let mut causes: Vec<String> = status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| format!("{}|{}|{}", c.field, c.reason, c.message))
                .collect()
        })
        .unwrap_or_default();
    causes.sort();
    (*status, causes)
}

#[tokio::test]
async fn crd_validation_rules_are_enforced() {
    let running = Running::start().await;
    let client = running.client().await;

    // A rule that does not compile: the CRD is refused with the compiler's message.
    let mut broken = gadget_crd();
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
        [0]["rule"] = json!("self.minReplicas <=");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let err = crds
        .create(&PostParams::default(), &serde_json::from_value(broken).unwrap())
        .await
        .unwrap_err();
    let (status, found) = causes(err);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule|FieldValueInvalid|Invalid value: apiextensions.ValidationRule{Rule:\"self.minReplicas <=\", Message:\"minReplicas cannot be larger than maxReplicas\""
        ),
        "{found:?}"
    );
    assert!(
        found[0].contains("compilation failed: ERROR: <input>:1:"),
        "{found:?}"
    );
    let mut typo = gadget_crd();
    typo["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"]
        ["x-kubernetes-validations"][0]["rule"] = json!("self.value <= 10");
    let (_, found) = causes(
        crds.create(&PostParams::default(), &serde_json::from_value(typo).unwrap())
            .await
            .unwrap_err(),
    );
    assert!(
        found[0].starts_with(
            "spec.validation.openAPIV3Schema.properties[spec].properties[replicas].x-kubernetes-validations[0].rule|FieldValueInvalid|"
        ) && found[0].contains("type 'int' does not support field selection"),
        "{found:?}"
    );

    install(&client, gadget_crd()).await;
    let api = gadgets(&client);

    // Good objects pass (after defaulting: minReplicas 0 <= maxReplicas 5).
    api.create(
        &PostParams::default(),
        &gadget(
            "g-one",
            json!({"replicas": 3, "id": "a", "mode": "fast", "tags": ["x"]}),
        ),
    )
    .await
    .unwrap();

    // Bad objects: one cause per broken rule, at upstream's paths.
    let err = api
        .create(
            &PostParams::default(),
            &gadget(
                "bad",
                json!({"replicas": 11, "minReplicas": 9, "maxReplicas": 2, "mode": "warp", "tags": ["X"]}),
            ),
        )
        .await
        .unwrap_err();
    let (status, found) = causes(err);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .starts_with("Gadget.cel.example.com \"bad\" is invalid: ["),
        "{}",
        status.message
    );
    assert_eq!(
        found,
        [
            "<nil>|FieldValueInvalid|Invalid value: name must start with g-",
            "spec.mode|FieldValueForbidden|Forbidden: mode warp is not offered",
            "spec.replicas|FieldValueInvalid|Invalid value: 11: must be at most 10",
            "spec.tags|FieldValueInvalid|Invalid value: tags must be lower case",
            "spec|FieldValueInvalid|Invalid value: minReplicas cannot be larger than maxReplicas",
        ]
    );
    assert!(
        status
            .message
            .contains("spec.replicas: Invalid value: 11: must be at most 10")
    );

    // Transition rule: the id is immutable on update; other changes pass.
    let mut current = api.get("g-one").await.unwrap();
    current.data["spec"]["replicas"] = json!(4);
    let current = api
        .replace("g-one", &PostParams::default(), &current)
        .await
        .unwrap();
    let mut changed = current.clone();
    changed.data["spec"]["id"] = json!("b");
    let (status, found) = causes(
        api.replace("g-one", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        found,
        ["spec.id|FieldValueInvalid|Invalid value: \"b\": id is immutable"]
    );
    assert_eq!(
        status.message,
        "Gadget.cel.example.com \"g-one\" is invalid: spec.id: Invalid value: \"b\": id is immutable"
    );
    // A JSON merge patch goes through the same rules.
    let err = api
        .patch(
            "g-one",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 12}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        causes(err).1,
        ["spec.replicas|FieldValueInvalid|Invalid value: 12: must be at most 10"]
    );
}

/// A kube-rs custom resource whose rules come from `#[x_kube(validation)]`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug)]
#[kube(group = "derive.cel.example.com", version = "v1", kind = "Bucket", namespaced)]
#[x_kube(validation = Rule::new("self.size <= self.limit").message("size exceeds limit"))]
pub struct BucketSpec {
    size: i64,
    limit: i64,
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable"))]
    region: String,
}

#[tokio::test]
async fn kube_derive_validation_rules_are_enforced() {
    let running = Running::start().await;
    let client = running.client().await;
    install(&client, serde_json::to_value(Bucket::crd()).unwrap()).await;
    let api: Api<Bucket> = Api::namespaced(client, "default");
    let ok = Bucket::new(
        "ok",
        BucketSpec {
            size: 1,
            limit: 2,
            region: "eu".into(),
        },
    );
    let created = api.create(&PostParams::default(), &ok).await.unwrap();
    let (_, found) = causes(
        api.create(
            &PostParams::default(),
            &Bucket::new(
                "big",
                BucketSpec {
                    size: 3,
                    limit: 2,
                    region: "eu".into(),
                },
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        found,
        ["spec|FieldValueInvalid|Invalid value: size exceeds limit"]
    );
    let mut moved = created;
    moved.spec.region = "us".into();
    let (_, found) = causes(
        api.replace("ok", &PostParams::default(), &moved)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        found,
        ["spec.region|FieldValueInvalid|Invalid value: \"us\": region is immutable"]
    );
}
