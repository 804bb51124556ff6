//! One list-and-watch per resource (kube-runtime's watcher, with its backoff), delivered as
//! [`Change`]s: single upserts and deletes, and after each (re)list the complete set, so a
//! handler can drop what disappeared while the watch was down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// What an informer saw.
#[derive(Debug)]
pub enum Change<K> {
    /// An object was added or modified.
    Upsert(K),
    /// An object was deleted.
    Delete(K),
    /// A (re)list finished: these are all the objects.
    Relisted(Vec<K>),
}

/// Runs a watcher on `api` until `shutdown`, handing every change to `handle`; `synced` is set
/// after the first complete list.
pub async fn run<K, F>(
    api: Api<K>,
    config: watcher::Config,
    synced: Arc<AtomicBool>,
    shutdown: CancellationToken,
    mut handle: F,
) where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: FnMut(Change<K>),
{
    let kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object");
    let stream = watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Vec<K> = Vec::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            e = stream.next() => e,
        };
        match event {
            None => return,
            Some(Err(e)) => tracing::warn!(%kind, error = %e, "watch failed; retrying"),
            Some(Ok(watcher::Event::Init)) => listing.clear(),
            Some(Ok(watcher::Event::InitApply(obj))) => listing.push(obj),
            Some(Ok(watcher::Event::InitDone)) => {
                handle(Change::Relisted(std::mem::take(&mut listing)));
                if !synced.swap(true, Ordering::AcqRel) {
                    tracing::debug!(%kind, "informer synced");
                }
            }
            Some(Ok(watcher::Event::Apply(obj))) => handle(Change::Upsert(obj)),
            Some(Ok(watcher::Event::Delete(obj))) => handle(Change::Delete(obj)),
        }
    }
}
