//! One metadata-only watch per collectable resource type (upstream's monitors), started and
//! stopped as discovery changes, feeding the graph.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::graph::{GraphEvent, Identity, Observed};
use crate::support::discovery::{DiscoveredResource, discover};

/// The verbs a resource needs to be collected.
const COLLECTABLE_VERBS: [&str; 3] = ["delete", "list", "watch"];

struct Monitor {
    resource: DiscoveredResource,
    stop: CancellationToken,
    task: JoinHandle<()>,
    synced: watch::Receiver<bool>,
}

/// The running monitors.
pub(crate) struct Monitors {
    shared: Arc<Shared>,
    ignored: HashSet<(String, String)>,
    shutdown: CancellationToken,
    running: HashMap<(String, String), Monitor>,
}

fn observed(resource: &DiscoveredResource, obj: PartialObjectMeta<DynamicObject>) -> Option<Observed> {
    let meta = obj.metadata;
    let uid = meta.uid?;
    Some(Observed {
        identity: Identity {
            api_version: resource.api.api_version.clone(),
            kind: resource.api.kind.clone(),
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            uid,
        },
        owners: meta.owner_references.unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.unwrap_or_default(),
    })
}

/// Watches one resource until `stop`, applying its events to the graph. After each (re)list the
/// graph's objects of this type that were not listed again are deleted.
async fn watch_resource(
    shared: Arc<Shared>,
    resource: DiscoveredResource,
    stop: CancellationToken,
    synced: watch::Sender<bool>,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(shared.client.clone(), &resource.api);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = stream.next() => e,
        };
        match event {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(resource = %resource.group_resource(), error = %e, "garbage collector: watch failed, retrying");
            }
            Some(Ok(Event::Init)) => listed = Some(HashSet::new()),
            Some(Ok(Event::InitApply(obj))) => {
                if let Some(o) = observed(&resource, obj) {
                    if let Some(l) = listed.as_mut() {
                        l.insert(o.identity.uid.clone());
                    }
                    shared.apply(GraphEvent::Upsert(o));
                }
            }
            Some(Ok(Event::InitDone)) => {
                let listed = listed.take().unwrap_or_default();
                let gone: Vec<Identity> = shared.with_graph(|g| {
                    g.observed_uids()
                        .filter(|n| {
                            n.identity.api_version == resource.api.api_version
                                && n.identity.kind == resource.api.kind
                                && !listed.contains(&n.identity.uid)
                        })
                        .map(|n| n.identity.clone())
                        .collect()
                });
                for identity in gone {
                    shared.apply(GraphEvent::Delete(Observed {
                        identity,
                        ..Observed::default()
                    }));
                }
                synced.send_replace(true);
            }
            Some(Ok(Event::Apply(obj))) => {
                if let Some(o) = observed(&resource, obj) {
                    shared.apply(GraphEvent::Upsert(o));
                }
            }
            Some(Ok(Event::Delete(obj))) => {
                if let Some(o) = observed(&resource, obj) {
                    shared.apply(GraphEvent::Delete(o));
                }
            }
        }
    }
}

impl Monitors {
    pub(crate) fn new(
        shared: Arc<Shared>,
        ignored: HashSet<(String, String)>,
        shutdown: CancellationToken,
    ) -> Self {
        Monitors {
            shared,
            ignored,
            shutdown,
            running: HashMap::new(),
        }
    }

    /// Runs discovery; starts monitors for new collectable resources and stops those of
    /// resources no longer served. A failed discovery keeps the current monitors.
    pub(crate) async fn resync(&mut self) {
        let discovered = match discover(&self.shared.client).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector: discovery failed, keeping the current monitors");
                return;
            }
        };
        if let Some(msg) = discovered.failure_message() {
            tracing::warn!(error = %msg, "garbage collector: partial discovery");
        }
        let wanted: HashMap<(String, String), DiscoveredResource> = discovered
            .preferred
            .iter()
            .filter(|r| r.supports(&COLLECTABLE_VERBS))
            .map(|r| ((r.api.group.clone(), r.api.plural.clone()), r.clone()))
            .filter(|(k, _)| !self.ignored.contains(k))
            .collect();
        *self.shared.discovered.write().unwrap_or_else(|p| p.into_inner()) = discovered;
        // Stop monitors of resources gone or served at another version now. Upstream does not
        // stop monitors for resources that vanish only from a partial discovery; we keep those
        // whose group failed.
        let failed_groups: HashSet<String> = self
            .shared
            .discovered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .failed
            .keys()
            .map(|gv| gv.split('/').next().unwrap_or_default().to_string())
            .collect();
        let stale: Vec<(String, String)> = self
            .running
            .iter()
            .filter(|(k, m)| match wanted.get(*k) {
                Some(r) => r.api != m.resource.api,
                None => !failed_groups.contains(&k.0),
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(m) = self.running.remove(&k) {
                tracing::info!(resource = %m.resource.group_resource(), "garbage collector: stopping the monitor");
                m.stop.cancel();
                let _ = m.task.await;
            }
        }
        for (k, r) in wanted {
            if self.running.contains_key(&k) {
                continue;
            }
            tracing::debug!(resource = %r.group_resource(), "garbage collector: starting a monitor");
            let stop = self.shutdown.child_token();
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(watch_resource(self.shared.clone(), r.clone(), stop.clone(), tx));
            self.running.insert(
                k,
                Monitor {
                    resource: r,
                    stop,
                    task,
                    synced: rx,
                },
            );
        }
    }

    /// Waits until every running monitor listed once, at most `timeout`; true when all did.
    pub(crate) async fn wait_synced(&self, timeout: Duration) -> bool {
        let all = futures::future::join_all(self.running.values().map(|m| {
            let mut rx = m.synced.clone();
            async move { rx.wait_for(|s| *s).await.is_ok() }
        }));
        tokio::time::timeout(timeout, all)
            .await
            .is_ok_and(|r| r.into_iter().all(|ok| ok))
    }

    /// Stops every monitor.
    pub(crate) async fn stop(self) {
        for (_, m) in self.running {
            m.stop.cancel();
            let _ = m.task.await;
        }
    }
}
