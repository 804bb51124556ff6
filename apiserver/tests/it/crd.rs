//! CustomResourceDefinitions end to end with kube-rs over TLS: install → Established → CRUD,
//! watch, selectors, schema validation/defaulting/pruning, status and scale subresources,
//! several versions, discovery, name conflicts, and deletion with the cleanup finalizer.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Discovery};
use serde_json::{Value, json};

use crate::kube_client::Running;

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["color"], "properties": {
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "replicas": {"type": "integer", "minimum": 0, "default": 1},
                        "selector": {"type": "string"}}},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "phase": {"type": "string"}}}}}},
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".spec.selector"}},
                 "selectableFields": [{"jsonPath": ".spec.color"}],
                 "additionalPrinterColumns": [{"name": "Color", "type": "string", "jsonPath": ".spec.color"}]},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
            ],
        },
    })
}

fn widgets(client: &Client, version: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", version, "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), "default", &ar)
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

async fn install(client: &Client, crd: Value) -> Api<CustomResourceDefinition> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    let name = crd.metadata.name.clone().unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        await_condition(crds.clone(), &name, conditions::is_crd_established()),
    )
    .await
    .expect("established in time")
    .unwrap();
    crds
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test]
async fn crd_lifecycle_with_kube_rs() {
    let running = Running::start().await;
    let client = running.client().await;
    let crds = install(&client, widget_crd()).await;

    let crd = crds.get("widgets.example.com").await.unwrap();
    let status = crd.status.unwrap();
    assert_eq!(status.stored_versions, Some(vec!["v1".to_string()]));
    assert_eq!(
        status.accepted_names.unwrap().short_names,
        Some(vec!["wd".to_string()])
    );

    // Discovery, legacy and aggregated.
    for discovery in [
        Discovery::new(client.clone()).run().await.unwrap(),
        Discovery::new(client.clone()).run_aggregated().await.unwrap(),
    ] {
        let group = discovery.get("example.com").expect("group discovered");
        let versions: Vec<String> = group.versions().map(str::to_string).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        let (ar, caps) = group.recommended_kind("Widget").expect("kind discovered");
        assert_eq!(ar.plural, "widgets");
        assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
        assert!(
            caps.subresources
                .iter()
                .any(|(s, _)| s.plural == "widgets/scale" || s.plural == "scale")
        );
    }

    let api = widgets(&client, "v1");
    // Defaulting and pruning on create.
    let mut w = widget("a", json!({"color": "red", "bogus": 1}));
    w.metadata.labels = Some([("tier".to_string(), "front".to_string())].into());
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"], json!({"color": "red", "replicas": 1}));
    assert_eq!(created.metadata.generation, Some(1));

    // Schema violations: 422 with upstream's field paths.
    let err = api_error(
        api.create(
            &PostParams::default(),
            &widget("bad", json!({"color": "green", "replicas": -1})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("Widget.example.com \"bad\" is invalid: ["),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"")
    );
    assert!(err.message.contains(
        "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
    ));
    let missing = api_error(
        api.create(&PostParams::default(), &widget("bad", json!({})))
            .await
            .unwrap_err(),
    );
    assert!(
        missing.message.contains("spec.color: Required value"),
        "{}",
        missing.message
    );

    api.create(
        &PostParams::default(),
        &widget("b", json!({"color": "blue", "replicas": 2})),
    )
    .await
    .unwrap();

    // Label and field selectors (metadata and selectableFields).
    let names = |l: kube::core::ObjectList<DynamicObject>| -> Vec<String> {
        l.items.into_iter().map(|o| o.metadata.name.unwrap()).collect()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=front"))
                .await
                .unwrap()
        ),
        ["a"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("spec.color=blue"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=a"))
                .await
                .unwrap()
        ),
        ["a"]
    );
    let bad_field = api_error(
        api.list(&ListParams::default().fields("spec.size=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(bad_field.code, 400);

    // Status subresource: status ignored on the main resource, generation only on spec changes.
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ignored"}})),
        )
        .await
        .unwrap();
    assert!(patched.data.get("status").is_none());
    let st = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready", "replicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Ready");
    assert_eq!(st.metadata.generation, Some(1));
    let spec = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "blue"}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
    assert_eq!(spec.data["status"]["phase"], "Ready");

    // Scale subresource with the CRD's paths.
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": "app=a"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["selector"], "app=a");
    let scale = api.get_scale("a").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.as_ref().unwrap().selector.as_deref(), Some("app=a"));
    api.patch_scale(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    assert_eq!(api.get("a").await.unwrap().data["spec"]["replicas"], 5);

    // Versions: written through v1beta1, stored as v1, served in the requested version.
    let beta = widgets(&client, "v1beta1");
    let mut c = widget("c", json!({"color": "red", "extra": "kept by v1beta1's schema"}));
    c.types.as_mut().unwrap().api_version = "example.com/v1beta1".into();
    let made = beta.create(&PostParams::default(), &c).await.unwrap();
    assert_eq!(made.types.unwrap().api_version, "example.com/v1beta1");
    let as_v1 = api.get("c").await.unwrap();
    assert_eq!(as_v1.types.unwrap().api_version, "example.com/v1");
    assert_eq!(as_v1.data["spec"]["replicas"], 1, "v1 defaults applied on read");

    // Watch through the kube-rs runtime.
    let mut events = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = events.try_next().await.unwrap().unwrap();
    assert!(["a", "b", "c"].contains(&first.metadata.name.as_deref().unwrap()));

    // A finalizer on a CR holds the CRD's deletion; new CRs are refused meanwhile.
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    let crd_uid = crds
        .get("widgets.example.com")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = crds.get("widgets.example.com").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(
        terminating
            .metadata
            .finalizers
            .unwrap()
            .contains(&"customresourcecleanup.apiextensions.k8s.io".to_string())
    );
    let held = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let list = api.list(&ListParams::default()).await.unwrap();
            if list.items.len() == 1 {
                break list.items.into_iter().next().unwrap();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("objects without finalizers deleted in time");
    assert_eq!(held.metadata.name.as_deref(), Some("b"));
    assert!(held.metadata.deletion_timestamp.is_some());
    let refused = api_error(
        api.create(&PostParams::default(), &widget("d", json!({"color": "red"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 405);
    assert_eq!(
        refused.message,
        "create not allowed while custom resource definition is terminating"
    );
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        await_condition(
            crds.clone(),
            "widgets.example.com",
            conditions::is_deleted(&crd_uid),
        ),
    )
    .await
    .expect("CRD deleted in time")
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match api.list(&ListParams::default()).await {
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("rows removed in time");
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.get("example.com").is_none());
}

#[tokio::test]
async fn invalid_crds_and_name_conflicts() {
    let running = Running::start().await;
    let client = running.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());

    let mut bad = widget_crd();
    bad["metadata"]["name"] = json!("gadgets.example.com");
    bad["spec"]["versions"][1]["storage"] = json!(true);
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["color"] =
        json!({"enum": ["red"]});
    let crd: CustomResourceDefinition = serde_json::from_value(bad).unwrap();
    let err = api_error(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(err.code, 422);
    let causes: Vec<String> = err.details.unwrap().causes.into_iter().map(|c| c.field).collect();
    assert_eq!(
        causes,
        [
            "metadata.name",
            "spec.versions",
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[color].type",
            "spec.versions[0].selectableFields[0].jsonPath",
        ]
    );

    // A second CRD whose kind is taken in the group: NamesAccepted False, not established.
    install(&client, widget_crd()).await;
    let mut clash = widget_crd();
    clash["metadata"]["name"] = json!("gizmos.example.com");
    clash["spec"]["names"] = json!({"plural": "gizmos", "kind": "Widget"});
    let crd: CustomResourceDefinition = serde_json::from_value(clash).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let cond = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        await_condition(
            crds.clone(),
            "gizmos.example.com",
            |c: Option<&CustomResourceDefinition>| {
                c.and_then(|c| c.status.as_ref())
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "NamesAccepted"))
            },
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let conds = cond.status.unwrap().conditions.unwrap();
    let names = conds.iter().find(|c| c.type_ == "NamesAccepted").unwrap();
    assert_eq!(
        (names.status.as_str(), names.reason.as_deref()),
        ("False", Some("KindConflict"))
    );
    let established = conds.iter().find(|c| c.type_ == "Established").unwrap();
    assert_eq!(established.status, "False");
}

#[tokio::test]
async fn cluster_scoped_crd_and_version_changes() {
    let running = Running::start().await;
    let client = running.client().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Cluster",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}],
        },
    });
    let crds = install(&client, crd).await;
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Gadget"), "gadgets");
    let gadgets: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let g: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"any": {"thing": [1]}}
    }))
    .unwrap();
    let made = gadgets.create(&PostParams::default(), &g).await.unwrap();
    assert!(made.metadata.namespace.is_none());
    assert_eq!(made.data["spec"]["any"]["thing"], json!([1]));
    assert_eq!(gadgets.list(&ListParams::default()).await.unwrap().items.len(), 1);

    // Adding a served version installs its row; the object is served in it.
    crds.patch(
        "gadgets.example.com",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "add", "path": "/spec/versions/-", "value":
                {"name": "v2", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    let ar2 =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v2", "Gadget"), "gadgets");
    let v2: Api<DynamicObject> = Api::all_with(client.clone(), &ar2);
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Ok(o) = v2.get("g1").await {
                break o;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("v2 served in time");
    assert_eq!(got.types.unwrap().api_version, "example.com/v2");
    gadgets.delete("g1", &DeleteParams::default()).await.unwrap();
    assert!(
        gadgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
