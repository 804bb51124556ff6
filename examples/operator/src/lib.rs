//! An example operator written with kube-rs, the way a user would write one: a `StaticSite`
//! custom resource (its CRD derived with `#[derive(CustomResource)]` and installed by the operator
//! itself) whose controller serves the site's pages from an owned ConfigMap mounted into an owned
//! nginx Deployment. It uses a finalizer to clean up, server-side apply for everything it writes,
//! a status with a `Ready` condition, and events.
//!
//! Run it against any cluster (`keelson server`, kind, ...) with `cargo run -p
//! keelson-example-operator` and a kubeconfig; its integration test runs it against
//! `apiserver::testing::TestServer`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The field manager of everything the operator applies.
pub const MANAGER: &str = "staticsite-operator";
/// The finalizer that makes deleting a site remove its objects first.
pub const FINALIZER: &str = "sites.example.keelson.dev/cleanup";

/// A static web site: pages served by nginx.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "example.keelson.dev",
    version = "v1",
    kind = "StaticSite",
    namespaced,
    status = "StaticSiteStatus",
    shortname = "site",
    printcolumn = r#"{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StaticSiteSpec {
    /// Pages by file name (`index.html`).
    pub pages: BTreeMap<String, String>,
    /// nginx replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,
    /// The web server image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

fn default_replicas() -> i32 {
    1
}

/// What the operator reports.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaticSiteStatus {
    /// The generation last reconciled.
    pub observed_generation: Option<i64>,
    /// Number of pages published.
    pub pages: i32,
    /// `Ready` when the ConfigMap and Deployment are applied.
    pub conditions: Vec<Condition>,
}

/// Reconcile failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    /// The object lacks a namespace or name.
    #[error("object without {0}")]
    Missing(&'static str),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// Shared state of the reconciler.
pub struct Context {
    /// The client.
    pub client: Client,
    /// Publishes events.
    pub recorder: Recorder,
}

/// Installs (or updates) the StaticSite CRD with server-side apply and waits until it is
/// established.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = StaticSite::crd();
    let name = crd.name_any();
    crds.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd))
        .await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await??;
    Ok(())
}

/// Runs the controller until the future is dropped.
pub async fn run(client: Client) {
    let sites: Api<StaticSite> = Api::all(client.clone());
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: None,
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
    });
    Controller::new(sites, watcher::Config::default())
        .owns(Api::<ConfigMap>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::info!(site = %obj.name, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

fn error_policy(_site: Arc<StaticSite>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// One reconcile: the finalizer helper dispatches to [`apply`] or [`cleanup`].
pub async fn reconcile(site: Arc<StaticSite>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = site.namespace().ok_or(Error::Missing("namespace"))?;
    let sites: Api<StaticSite> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&sites, FINALIZER, site, |event| async {
        match event {
            Finalizer::Apply(site) => apply(&site, &ctx).await,
            Finalizer::Cleanup(site) => cleanup(&site, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The ConfigMap holding a site's pages.
pub fn config_map(site: &StaticSite) -> ConfigMap {
    let mut cm = ConfigMap {
        data: Some(site.spec.pages.clone()),
        ..Default::default()
    };
    cm.metadata.name = Some(format!("{}-pages", site.name_any()));
    cm.metadata.namespace = site.namespace();
    cm.metadata.labels = Some(labels(site));
    cm.metadata.owner_references = site.controller_owner_ref(&()).map(|o| vec![o]);
    cm
}

fn labels(site: &StaticSite) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name".to_string(), "staticsite".to_string()),
        ("app.kubernetes.io/instance".to_string(), site.name_any()),
    ]
    .into()
}

/// The Deployment serving a site.
pub fn deployment(site: &StaticSite) -> Result<Deployment, Error> {
    let name = site.name_any();
    let image = site
        .spec
        .image
        .clone()
        .unwrap_or_else(|| "nginx:1.27".to_string());
    let mut d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(site)},
        "spec": {
            "replicas": site.spec.replicas,
            "selector": {"matchLabels": labels(site)},
            "template": {
                "metadata": {"labels": labels(site)},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": image,
                        "ports": [{"containerPort": 80}],
                        "volumeMounts": [{"name": "pages", "mountPath": "/usr/share/nginx/html"}],
                    }],
                    "volumes": [{"name": "pages", "configMap": {"name": format!("{name}-pages")}}],
                },
            },
        },
    }))
    .map_err(|_| Error::Missing("a valid deployment"))?;
    d.metadata.namespace = site.namespace();
    d.metadata.owner_references = site.controller_owner_ref(&()).map(|o| vec![o]);
    Ok(d)
}

async fn apply(site: &StaticSite, ctx: &Context) -> Result<Action, Error> {
    let ns = site.namespace().ok_or(Error::Missing("namespace"))?;
    let pp = PatchParams::apply(MANAGER).force();
    let cm = config_map(site);
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &cm.name_any(),
            &pp,
            &Patch::Apply(with_type(&cm, "v1", "ConfigMap")),
        )
        .await?;
    let d = deployment(site)?;
    Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &d.name_any(),
            &pp,
            &Patch::Apply(with_type(&d, "apps/v1", "Deployment")),
        )
        .await?;

    let generation = site.metadata.generation;
    let ready = site
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let up_to_date = site.status.as_ref().and_then(|s| s.observed_generation) == generation
        && ready.is_some_and(|c| c.status == "True");
    if !up_to_date {
        let condition = Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Applied".into(),
            message: format!("ConfigMap and Deployment {} applied", site.name_any()),
            observed_generation: generation,
            last_transition_time: ready.filter(|c| c.status == "True").map_or_else(
                || Time(k8s_openapi::jiff::Timestamp::now()),
                |c| c.last_transition_time.clone(),
            ),
        };
        let status = StaticSiteStatus {
            observed_generation: generation,
            pages: i32::try_from(site.spec.pages.len()).unwrap_or(i32::MAX),
            conditions: vec![condition],
        };
        let patch = json!({
            "apiVersion": StaticSite::api_version(&()),
            "kind": StaticSite::kind(&()),
            "status": status,
        });
        Api::<StaticSite>::namespaced(ctx.client.clone(), &ns)
            .patch_status(&site.name_any(), &pp, &Patch::Apply(&patch))
            .await?;
        publish(
            ctx,
            site,
            EventType::Normal,
            "Reconciled",
            "ConfigMap and Deployment applied",
        )
        .await;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The object with `apiVersion`/`kind` set (apply patches need them).
fn with_type<T: Serialize>(obj: &T, api_version: &str, kind: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    v
}

async fn cleanup(site: &StaticSite, ctx: &Context) -> Result<Action, Error> {
    let ns = site.namespace().ok_or(Error::Missing("namespace"))?;
    let name = site.name_any();
    let gone = |r: Result<_, kube::Error>| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    };
    gone(
        Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
            .delete(&name, &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    gone(
        Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .delete(&format!("{name}-pages"), &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    publish(
        ctx,
        site,
        EventType::Normal,
        "Deleted",
        "ConfigMap and Deployment deleted",
    )
    .await;
    Ok(Action::await_change())
}

async fn publish(ctx: &Context, site: &StaticSite, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &site.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}
