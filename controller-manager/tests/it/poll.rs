//! Shared helpers: waiting for a condition with a deadline, running a controller in the
//! background, building objects.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

/// Polls `f` until it answers `Some`, for at most `secs` seconds.
pub async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A controller task stopped (and awaited) on drop of the guard via [`Running::stop`].
pub struct Running {
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Spawns `run(token)`; the controller must return when the token is cancelled.
    pub fn spawn<Fut, E>(run: impl FnOnce(CancellationToken) -> Fut) -> Running
    where
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Debug + Send + 'static,
    {
        let token = CancellationToken::new();
        let fut = run(token.clone());
        let task = tokio::spawn(async move {
            fut.await.expect("the controller ends cleanly");
        });
        Running { token, task }
    }

    /// Cancels the controller and waits for it to return.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the controller stops within 10 s")
            .expect("the controller task does not panic");
    }
}

/// Creates namespace `name`.
pub async fn namespace(client: &Client, name: &str) -> Namespace {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created")
}

/// A reference to `owner` (a ConfigMap unless `api_version`/`kind` say otherwise).
pub fn reference(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        block_owner_deletion: block.then_some(true),
        ..OwnerReference::default()
    }
}

/// A reference to the ConfigMap `owner`.
pub fn owned_by(owner: &ConfigMap, block: bool) -> OwnerReference {
    reference(
        "v1",
        "ConfigMap",
        &owner.name_any(),
        &owner.uid().unwrap_or_default(),
        block,
    )
}

/// Creates ConfigMap `name` with `owners` and `finalizers`.
pub async fn config_map(
    api: &Api<ConfigMap>,
    name: &str,
    owners: Vec<OwnerReference>,
    finalizers: &[&str],
) -> ConfigMap {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: (!owners.is_empty()).then_some(owners),
            finalizers: (!finalizers.is_empty()).then(|| finalizers.iter().map(|f| f.to_string()).collect()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &cm)
        .await
        .expect("config map created")
}

/// Waits until `name` is gone from `api`.
pub async fn gone<K>(api: &Api<K>, name: &str, secs: u64)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    until(&format!("{name} to be deleted"), secs, || async {
        match api.get_opt(name).await.expect("get") {
            None => Some(()),
            Some(_) => None,
        }
    })
    .await
}
