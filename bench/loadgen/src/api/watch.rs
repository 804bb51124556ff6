//! Watch fan-out through the Kubernetes API: every watcher is one `watch` request on the ConfigMaps
//! of one namespace (kube-rs speaks HTTP/1.1, so one TLS connection per watcher), all started at the
//! same resourceVersion; writers create ConfigMaps stamped with their send time.
//!
//! Watchers read the raw event stream (`Client::request_stream`) and take each event's type and
//! send stamp from its line without decoding the whole object: on a 2-core machine the 1 000
//! watchers share the cores with the server, and a full decode per event would mostly measure
//! the client.

use std::pin::Pin;

use anyhow::{Context, Result, bail};
use futures::io::{AsyncBufRead, AsyncBufReadExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams, WatchParams};
use kube::{Api, Client, Resource};

use crate::api::objects::{config_map, stamp_in};
use crate::kv::Outcome;
use crate::stats::now_ns;
use crate::watch::{EventSource, WatchLoad, Writer, fan_out, open_all};

/// One watch request's response body, read line by line (one event per line).
struct KubeSource {
    body: Pin<Box<dyn AsyncBufRead + Send>>,
    line: Vec<u8>,
}

impl EventSource for KubeSource {
    async fn next_stamps(&mut self) -> Result<Option<Vec<u64>>> {
        self.line.clear();
        let n = self
            .body
            .read_until(b'\n', &mut self.line)
            .await
            .context("reading watch events")?;
        if n == 0 {
            return Ok(None);
        }
        let line = &self.line[..];
        match event_type(line) {
            Some("ADDED") => Ok(Some(vec![stamp_in(line).unwrap_or_else(now_ns)])),
            Some("BOOKMARK") => Ok(Some(Vec::new())),
            Some("ERROR") => bail!("watch ERROR event: {}", String::from_utf8_lossy(line)),
            Some(other) => bail!("unexpected {other} event: the case only creates"),
            None => bail!("not a watch event: {}", String::from_utf8_lossy(line)),
        }
    }
}

/// The `type` of a JSON watch event line (`{"type":"ADDED","object":...}`).
fn event_type(line: &[u8]) -> Option<&str> {
    const TAG: &[u8] = b"\"type\":\"";
    let at = line.windows(TAG.len()).position(|w| w == TAG)? + TAG.len();
    let rest = &line[at..];
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Opens a watch of the ConfigMaps of `ns` from `rv`.
async fn open(client: Client, ns: String, rv: String) -> Result<KubeSource> {
    let url = ConfigMap::url_path(&(), Some(&ns));
    let req = kube::core::Request::new(url)
        .watch(&WatchParams::default().timeout(290), &rv)
        .context("building the watch request")?;
    let body = client.request_stream(req).await.context("starting a watch")?;
    Ok(KubeSource {
        body: Box::pin(body),
        line: Vec::with_capacity(1024),
    })
}

/// Creates `{tag}-w{id}-{seq}` ConfigMaps.
struct KubeWriter {
    api: Api<ConfigMap>,
    tag: String,
    id: usize,
}

impl Writer for KubeWriter {
    async fn write(&mut self, seq: u64) -> Result<()> {
        let cm = config_map(format!("{}-w{}-{seq:08}", self.tag, self.id), now_ns());
        self.api.create(&PostParams::default(), &cm).await?;
        Ok(())
    }
}

/// Runs the fan-out case `tag`: `load.watchers` watches (through `watch_client`) on the ConfigMaps
/// of namespace `ns` from its current resourceVersion, then `load.puts` creates through `writer`.
pub async fn run(
    watch_client: &Client,
    writer: &Client,
    ns: &str,
    tag: &str,
    load: &WatchLoad,
    server_pids: &[u32],
) -> Result<Outcome> {
    let write_api: Api<ConfigMap> = Api::namespaced(writer.clone(), ns);
    let rv = write_api
        .list(&ListParams::default().limit(1))
        .await
        .context("listing the watched namespace")?
        .metadata
        .resource_version
        .unwrap_or_default();
    let sources = open_all(load.watchers, |_| {
        open(watch_client.clone(), ns.to_owned(), rv.clone())
    })
    .await?;
    let writers = (0..load.putters)
        .map(|id| KubeWriter {
            api: write_api.clone(),
            tag: tag.to_owned(),
            id,
        })
        .collect();
    fan_out(sources, writers, load, server_pids).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_give_their_type_and_stamp() {
        let line =
            br#"{"type":"ADDED","object":{"kind":"ConfigMap","data":{"v":"00000000000000001234xxxx"}}}"#;
        assert_eq!(event_type(line), Some("ADDED"));
        assert_eq!(stamp_in(line), Some(1234));
        assert_eq!(event_type(b"{}"), None);
    }
}
