//! Watch fan-out through the Kubernetes API: every watcher is one `watch` request on the ConfigMaps
//! of one namespace (kube-rs speaks HTTP/1.1, so one TLS connection per watcher), all started at the
//! same resourceVersion; writers create ConfigMaps stamped with their send time.

use std::pin::Pin;

use anyhow::{Context, Result, bail};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};

use crate::api::objects::{config_map, sent_ns};
use crate::kv::Outcome;
use crate::stats::now_ns;
use crate::watch::{EventSource, WatchLoad, Writer, fan_out, open_all};

type Events = Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Send>>;

/// One watch request's event stream.
struct KubeSource(Events);

impl EventSource for KubeSource {
    async fn next_stamps(&mut self) -> Result<Option<Vec<u64>>> {
        let Some(ev) = self.0.next().await else {
            return Ok(None);
        };
        match ev.context("reading watch events")? {
            WatchEvent::Added(cm) => Ok(Some(vec![sent_ns(&cm).unwrap_or_else(now_ns)])),
            WatchEvent::Bookmark(_) => Ok(Some(Vec::new())),
            WatchEvent::Modified(_) | WatchEvent::Deleted(_) => {
                bail!("unexpected MODIFIED/DELETED event: the case only creates")
            }
            WatchEvent::Error(s) => bail!("watch ERROR event: {} ({})", s.message, s.code),
        }
    }
}

/// Creates `w{id}-{seq}` ConfigMaps.
struct KubeWriter {
    api: Api<ConfigMap>,
    id: usize,
}

impl Writer for KubeWriter {
    async fn write(&mut self, seq: u64) -> Result<()> {
        let cm = config_map(format!("w{}-{seq:08}", self.id), now_ns());
        self.api.create(&PostParams::default(), &cm).await?;
        Ok(())
    }
}

/// Runs the fan-out case: `load.watchers` watches on the ConfigMaps of `watch_api`'s namespace from
/// its current resourceVersion, then `load.puts` creates through `write_api`.
pub async fn run(
    watch_api: &Api<ConfigMap>,
    write_api: &Api<ConfigMap>,
    load: &WatchLoad,
    server_pids: &[u32],
) -> Result<Outcome> {
    let rv = write_api
        .list(&ListParams::default().limit(1))
        .await
        .context("listing the watched namespace")?
        .metadata
        .resource_version
        .unwrap_or_default();
    let sources = open_all(load.watchers, |_| {
        let (api, rv) = (watch_api.clone(), rv.clone());
        async move {
            let wp = WatchParams::default().timeout(290);
            let events = api.watch(&wp, &rv).await.context("starting a watch")?;
            let events: Events = Box::pin(events);
            Ok(KubeSource(events))
        }
    })
    .await?;
    let writers = (0..load.putters)
        .map(|id| KubeWriter {
            api: write_api.clone(),
            id,
        })
        .collect();
    fan_out(sources, writers, load, server_pids).await
}
