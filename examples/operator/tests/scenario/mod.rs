//! The StaticSite operator's life cycle, shared by the in-process test (this crate) and the test
//! against a real `keelson server` process (the root package's tests/operator.rs).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use keelson_example_operator::{FINALIZER, StaticSite, StaticSiteSpec, install_crd, run};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn is_ready_at(generation: i64) -> impl Condition<StaticSite> {
    move |s: Option<&StaticSite>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
            st.observed_generation == Some(generation)
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }
}

/// Installs the CRD, runs the operator, and drives one site through create, a spec change, an
/// event and deletion by the finalizer, checking the owned objects at each step. With
/// `rolls_out` (a cluster with a scheduler, controllers and nodes) its Deployment must also
/// complete its rollout.
pub async fn site_lifecycle(client: Client, rolls_out: bool) {
    install_crd(&client).await.unwrap();
    let operator = tokio::spawn(run(client.clone()));

    let sites: Api<StaticSite> = Api::default_namespaced(client.clone());
    let pages = BTreeMap::from([("index.html".to_string(), "<h1>hello</h1>".to_string())]);
    let site = StaticSite::new(
        "home",
        StaticSiteSpec {
            pages,
            replicas: 2,
            image: None,
        },
    );
    sites.create(&PostParams::default(), &site).await.unwrap();

    tokio::time::timeout(WAIT, await_condition(sites.clone(), "home", is_ready_at(1)))
        .await
        .expect("site ready in time")
        .unwrap();
    let site = sites.get("home").await.unwrap();
    assert!(site.metadata.finalizers.unwrap().contains(&FINALIZER.to_string()));
    assert_eq!(site.status.unwrap().pages, 1);

    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = cms.get("home-pages").await.unwrap();
    assert_eq!(cm.data.unwrap()["index.html"], "<h1>hello</h1>");
    let owner = &cm.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("StaticSite", "home", Some(true))
    );
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let d = deploys.get("home").await.unwrap();
    assert_eq!(d.spec.replicas, Some(2));

    // A spec change reaches the Deployment and the status.
    sites
        .patch(
            "home",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    tokio::time::timeout(WAIT, await_condition(sites.clone(), "home", is_ready_at(2)))
        .await
        .expect("second generation reconciled in time")
        .unwrap();
    assert_eq!(deploys.get("home").await.unwrap().spec.replicas, Some(3));
    if rolls_out {
        tokio::time::timeout(
            Duration::from_secs(90),
            await_condition(deploys.clone(), "home", conditions::is_deployment_completed()),
        )
        .await
        .expect("the site's Deployment rolled out in time")
        .unwrap();
        let status = deploys.get("home").await.unwrap().status.unwrap();
        assert_eq!(status.available_replicas, Some(3));
    }

    // Events through the Recorder (events.k8s.io/v1).
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let list = events.list(&ListParams::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Reconciled")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("home")),
        "{:?}",
        list.items
    );

    // Deletion runs the finalizer: owned objects go, then the site.
    let uid = sites.get("home").await.unwrap().metadata.uid.unwrap();
    sites.delete("home", &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(sites.clone(), "home", conditions::is_deleted(&uid)),
    )
    .await
    .expect("site deleted in time")
    .unwrap();
    assert!(matches!(cms.get("home-pages").await, Err(kube::Error::Api(s)) if s.code == 404));
    assert!(matches!(deploys.get("home").await, Err(kube::Error::Api(s)) if s.code == 404));

    operator.abort();
}
