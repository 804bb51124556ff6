//! kube-rs against the real TLS server on 127.0.0.1:0, configured from the generated kubeconfig.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

/// A TLS server in a temp dir, shut down on drop.
pub struct Running {
    pub server: Option<apiserver::RunningServer>,
    _dir: tempfile::TempDir,
}

impl Running {
    pub async fn start() -> Running {
        Running::start_with(|_| {}).await
    }

    /// Starts with `adjust` applied to the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut apiserver::Config)) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let mut config = apiserver::Config::new(dir.path()).bind("127.0.0.1:0".parse().unwrap());
        adjust(&mut config);
        let server = apiserver::start(config, Arc::new(storage::mem::MemStorage::new()))
            .await
            .expect("server starts");
        Running {
            server: Some(server),
            _dir: dir,
        }
    }

    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.server.as_ref().unwrap().kubeconfig.clone()
    }

    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown_token().cancel();
        }
    }
}

#[tokio::test]
async fn kube_rs_typed_crud_conflict_paging_watch() {
    let running = Running::start().await;
    let client = running.client().await;
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");

    // Unauthenticated requests are refused (no client certificate).
    let kc = Kubeconfig::read_from(running.kubeconfig()).unwrap();
    let mut anon = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    anon.auth_info.client_certificate_data = None;
    anon.auth_info.client_key_data = None;
    let anon = Client::try_from(anon).unwrap();
    let err = Api::<ConfigMap>::default_namespaced(anon)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 401), "{err:?}");

    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"kube-system".to_string()));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "kube-rs"}, "data": {"a": "1"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.reason == "AlreadyExists"),
        "{err:?}"
    );

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data.as_mut().unwrap().insert("a".into(), "2".into());
    let replaced = cms
        .replace("kube-rs", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    stale.data.as_mut().unwrap().insert("a".into(), "3".into());
    let err = cms
        .replace("kube-rs", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );

    let patched = cms
        .patch(
            "kube-rs",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["b"], "x");
    let got = cms.get_opt("missing").await.unwrap();
    assert!(got.is_none());

    // Paging.
    for i in 0..5 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("page-{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut seen = 0;
    let mut lp = ListParams::default().limit(2);
    loop {
        let page = cms.list(&lp).await.unwrap();
        assert!(page.items.len() <= 2);
        seen += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(seen, 6);

    // Deployments: typed create, server-side apply (approximated), scale via patch.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}
    }))
    .unwrap();
    let d = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let d = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    assert_eq!(d.metadata.generation, Some(2));
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));

    // Watch from the list's resourceVersion.
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "kube-rs",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"c": "y"}})),
    )
    .await
    .unwrap();
    cms.delete("kube-rs", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match stream.try_next().await.unwrap().expect("watch ended early") {
            WatchEvent::Modified(cm) => kinds.push(format!("MODIFIED {}", cm.metadata.name.unwrap())),
            WatchEvent::Deleted(cm) => kinds.push(format!("DELETED {}", cm.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["MODIFIED kube-rs", "DELETED kube-rs"]);

    // kube-rs discovery: legacy and aggregated.
    let discovery = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(discovery.groups().any(|g| g.name() == "apps"));
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.groups().any(|g| g.name() == "batch"));
}
