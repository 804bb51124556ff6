//! The kube-rs client built from a kubeconfig, the ConfigMaps the cases write, and the namespaces
//! they live in.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::kv::VALUE_SIZE;

/// Key of the one data entry of every ConfigMap the benchmark writes.
const DATA_KEY: &str = "v";
/// Digits of the send time at the start of the value.
const STAMP_DIGITS: usize = 20;

/// Loads the current context of `kubeconfig`. `timeout` bounds every request's connect and reads
/// (`None`: no read timeout, for watches).
pub async fn config(kubeconfig: &Path, timeout: Option<Duration>) -> Result<Config> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))?;
    config.read_timeout = timeout;
    config.write_timeout = Some(Duration::from_secs(30));
    config.connect_timeout = Some(Duration::from_secs(10));
    Ok(config)
}

/// A client for the current context of `kubeconfig` (see [`config`]).
pub async fn client(kubeconfig: &Path, timeout: Option<Duration>) -> Result<Client> {
    Client::try_from(config(kubeconfig, timeout).await?).context("building the kube client")
}

/// A ConfigMap `name` whose one value is 256 bytes long and starts with `sent_ns` (20 digits).
pub fn config_map(name: String, sent_ns: u64) -> ConfigMap {
    let mut v = format!("{sent_ns:0STAMP_DIGITS$}");
    v.extend(std::iter::repeat_n('x', VALUE_SIZE.saturating_sub(v.len())));
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), v)])),
        ..ConfigMap::default()
    }
}

/// The send time carried by the ConfigMap of [`config_map`] in a JSON text (a watch event line):
/// the digits after `"v":"`.
pub fn stamp_in(json: &[u8]) -> Option<u64> {
    let tag = format!("\"{DATA_KEY}\":\"");
    let at = json.windows(tag.len()).position(|w| w == tag.as_bytes())? + tag.len();
    std::str::from_utf8(json.get(at..at + STAMP_DIGITS)?)
        .ok()?
        .parse()
        .ok()
}

/// Creates namespace `name`.
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Deletes namespace `name` (its content goes with it where a namespace controller runs).
pub async fn delete_namespace(client: &Client, name: &str) -> Result<()> {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting namespace {name}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_value_is_256_bytes_and_carries_its_stamp() {
        let cm = config_map("a".to_owned(), 1234);
        let v = cm
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .cloned()
            .unwrap_or_default();
        assert_eq!(v.len(), VALUE_SIZE);
        let json = serde_json::to_vec(&cm).unwrap_or_default();
        assert_eq!(stamp_in(&json), Some(1234));
    }
}
