//! The root CA publisher (upstream `root-ca-certificate-publisher-controller`): a
//! `kube-root-ca.crt` ConfigMap holding the cluster's CA bundle under `ca.crt` in every
//! namespace, re-created when deleted and restored when changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::support::per_namespace;

/// The ConfigMap's name.
pub const CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
/// The key holding the bundle.
pub const CA_KEY: &str = "ca.crt";
/// The annotation describing the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's description.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Settings of the publisher.
#[derive(Clone, Debug)]
pub struct RootCaConfig {
    /// The CA bundle (PEM), from `--root-ca-file`.
    pub root_ca: Vec<u8>,
    /// Namespaces synced at once.
    pub workers: u16,
}

impl RootCaConfig {
    /// A publisher of `root_ca` with upstream's defaults.
    pub fn new(root_ca: Vec<u8>) -> Self {
        RootCaConfig { root_ca, workers: 5 }
    }
}

/// Publisher failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The bundle is not UTF-8 PEM.
    #[error("the root CA bundle is not text")]
    NotText,
}

/// What the ConfigMap must become, when `current` differs from it (`None`: fine as it is).
pub fn desired(current: &ConfigMap, root_ca: &str) -> Option<ConfigMap> {
    let data: BTreeMap<String, String> = [(CA_KEY.to_string(), root_ca.to_string())].into();
    let described = current
        .annotations()
        .get(DESCRIPTION_ANNOTATION)
        .is_some_and(|d| !d.is_empty());
    if current.data.as_ref() == Some(&data) && described {
        return None;
    }
    let mut cm = current.clone();
    cm.data = Some(data);
    cm.annotations_mut()
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    Some(cm)
}

async fn sync(client: Client, reader: Client, root_ca: Arc<str>, ns: Arc<Namespace>) -> Result<(), Error> {
    let name = ns.name_any();
    let api: Api<ConfigMap> = Api::namespaced(client, &name);
    let read: Api<ConfigMap> = Api::namespaced(reader, &name);
    match read.get_opt(CONFIG_MAP_NAME).await? {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIG_MAP_NAME.into()),
                    annotations: Some([(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string())].into()),
                    ..ObjectMeta::default()
                },
                data: Some([(CA_KEY.to_string(), root_ca.to_string())].into()),
                ..ConfigMap::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                Err(e) if per_namespace::namespace_gone_or_terminating(&e) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Some(cm) => {
            if let Some(cm) = desired(&cm, &root_ca) {
                tracing::info!(namespace = %name, "root CA publisher: restoring {CONFIG_MAP_NAME}");
                api.replace(CONFIG_MAP_NAME, &PostParams::default(), &cm).await?;
            }
            Ok(())
        }
    }
}

/// Runs the publisher until `shutdown` is cancelled.
pub async fn run(client: Client, config: RootCaConfig, shutdown: CancellationToken) -> Result<(), Error> {
    run_split(client.clone(), client, config, shutdown).await
}

/// [`run`] writing through `client` and watching and reading through `reader`, as upstream's
/// controllers write with their ServiceAccount and read from the manager's informers.
pub async fn run_split(
    client: Client,
    reader: Client,
    config: RootCaConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let root_ca: Arc<str> = String::from_utf8(config.root_ca)
        .map_err(|_| Error::NotText)?
        .into();
    let (c, r) = (client, reader.clone());
    per_namespace::run::<ConfigMap, _, _, _>(reader, CONFIG_MAP_NAME, config.workers, shutdown, move |ns| {
        sync(c.clone(), r.clone(), root_ca.clone(), ns)
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_undescribed_config_map_is_restored() {
        let good = ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIG_MAP_NAME.into()),
                annotations: Some([(DESCRIPTION_ANNOTATION.to_string(), "anything".to_string())].into()),
                labels: Some([("keep".to_string(), "me".to_string())].into()),
                ..ObjectMeta::default()
            },
            data: Some([(CA_KEY.to_string(), "PEM".to_string())].into()),
            ..ConfigMap::default()
        };
        assert_eq!(desired(&good, "PEM"), None);
        let fixed = desired(&good, "NEW").unwrap();
        assert_eq!(fixed.data.unwrap()[CA_KEY], "NEW");
        assert_eq!(fixed.metadata.labels.unwrap()["keep"], "me");
        let mut bare = good.clone();
        bare.metadata.annotations = None;
        let fixed = desired(&bare, "PEM").unwrap();
        assert_eq!(fixed.annotations()[DESCRIPTION_ANNOTATION], DESCRIPTION);
        let mut extra = good;
        extra.data.as_mut().unwrap().insert("other".into(), "x".into());
        assert_eq!(desired(&extra, "PEM").unwrap().data.unwrap().len(), 1);
    }
}
