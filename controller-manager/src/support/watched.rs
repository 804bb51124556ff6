//! A watch of one resource type kept in a kube-runtime store, calling a handler on every change
//! (added, modified or deleted object) so controllers can queue the keys it concerns.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// Starts watching `api` until `shutdown`; `on_change` sees every object applied or deleted.
/// The returned store is ready once the initial list is in (`Store::wait_until_ready`).
pub fn spawn<K, F>(api: Api<K>, shutdown: CancellationToken, on_change: F) -> Store<K>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    F: Fn(&K) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = stream.next() => event,
            };
            match event {
                None => return,
                Some(Ok(
                    watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) | watcher::Event::Delete(obj),
                )) => on_change(&obj),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!("watch of {} failed: {e}", K::kind(&Default::default())),
            }
        }
    });
    reader
}
