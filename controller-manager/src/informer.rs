//! Shared informers: one list+watch per resource type for the whole process, an in-memory store
//! indexed by namespace, and change handlers (added, updated with the old object, deleted) that
//! every controller registers before the informers start, as client-go's shared informer
//! factory does. Handlers are synchronous and cheap (they enqueue keys and lower expectations).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Resource, ResourceExt};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A change an informer observed.
#[derive(Debug)]
pub enum Change<K> {
    /// A new object (also every object of the first list).
    Added(Arc<K>),
    /// An object changed (also objects relisted after a watch restart, possibly unchanged).
    Updated {
        /// The object before.
        old: Arc<K>,
        /// The object now.
        new: Arc<K>,
    },
    /// An object was deleted (its last known state).
    Deleted(Arc<K>),
}

/// A handler of changes.
pub type Handler<K> = Arc<dyn Fn(&Change<K>) + Send + Sync>;

/// The objects of one resource type, by namespace then name (cluster-scoped: namespace "").
pub struct Store<K> {
    objects: RwLock<HashMap<String, HashMap<String, Arc<K>>>>,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Store {
            objects: RwLock::default(),
        }
    }
}

impl<K: Resource> Store<K> {
    /// The object `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.objects.read().get(namespace)?.get(name).cloned()
    }

    /// Every object of a namespace.
    pub fn list(&self, namespace: &str) -> Vec<Arc<K>> {
        self.objects
            .read()
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object.
    pub fn list_all(&self) -> Vec<Arc<K>> {
        self.objects
            .read()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// How many objects the store holds.
    pub fn len(&self) -> usize {
        self.objects.read().values().map(HashMap::len).sum()
    }

    /// True when the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, obj: Arc<K>) -> Option<Arc<K>> {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        let name = obj.meta().name.clone().unwrap_or_default();
        self.objects.write().entry(ns).or_default().insert(name, obj)
    }

    fn remove(&self, obj: &K) -> Option<Arc<K>> {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        let name = obj.meta().name.clone().unwrap_or_default();
        let mut objects = self.objects.write();
        let by_name = objects.get_mut(&ns)?;
        let old = by_name.remove(&name);
        if by_name.is_empty() {
            objects.remove(&ns);
        }
        old
    }

    fn replace(&self, all: Vec<Arc<K>>) -> HashMap<(String, String), Arc<K>> {
        let mut fresh: HashMap<String, HashMap<String, Arc<K>>> = HashMap::new();
        for obj in all {
            let ns = obj.meta().namespace.clone().unwrap_or_default();
            fresh.entry(ns).or_default().insert(obj.name_any(), obj);
        }
        let old = std::mem::replace(&mut *self.objects.write(), fresh);
        old.into_iter()
            .flat_map(|(ns, m)| m.into_iter().map(move |(n, o)| ((ns.clone(), n), o)))
            .collect()
    }
}

/// One resource type's informer: its store, its handlers and whether the first list is in.
pub struct Informer<K> {
    store: Arc<Store<K>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn new() -> Self {
        Informer {
            store: Arc::default(),
            handlers: RwLock::default(),
            synced: watch::channel(false).0,
        }
    }

    /// The store (read by reconcilers).
    pub fn store(&self) -> Arc<Store<K>> {
        self.store.clone()
    }

    /// Adds a change handler; handlers added after the start see only later changes.
    pub fn add_handler(&self, handler: impl Fn(&Change<K>) + Send + Sync + 'static) {
        self.handlers.write().push(Arc::new(handler));
    }

    /// True once the first list has been stored.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list has been stored (or forever if the informer never starts).
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn dispatch(&self, change: &Change<K>) {
        let handlers = self.handlers.read().clone();
        for h in handlers {
            h(change);
        }
    }

    /// Lists and watches every object of the type until `shutdown`, retrying with backoff.
    async fn run(self: Arc<Self>, client: kube::Client, shutdown: CancellationToken) {
        let api: Api<K> = Api::all(client);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut initial: Vec<Arc<K>> = Vec::new();
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                e = stream.next() => match e {
                    Some(e) => e,
                    None => return,
                },
            };
            match event {
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                }
                Ok(Event::Init) => initial.clear(),
                Ok(Event::InitApply(obj)) => initial.push(Arc::new(trimmed(obj))),
                Ok(Event::InitDone) => {
                    let fresh = std::mem::take(&mut initial);
                    let mut old = self.store.replace(fresh.clone());
                    for new in fresh {
                        let key = (new.meta().namespace.clone().unwrap_or_default(), new.name_any());
                        match old.remove(&key) {
                            Some(old) => self.dispatch(&Change::Updated { old, new }),
                            None => self.dispatch(&Change::Added(new)),
                        }
                    }
                    for (_, gone) in old {
                        self.dispatch(&Change::Deleted(gone));
                    }
                    self.synced.send_replace(true);
                }
                Ok(Event::Apply(obj)) => {
                    let new = Arc::new(trimmed(obj));
                    match self.store.insert(new.clone()) {
                        Some(old) => self.dispatch(&Change::Updated { old, new }),
                        None => self.dispatch(&Change::Added(new)),
                    }
                }
                Ok(Event::Delete(obj)) => {
                    let last = self.store.remove(&obj).unwrap_or_else(|| Arc::new(trimmed(obj)));
                    self.dispatch(&Change::Deleted(last));
                }
            }
        }
    }
}

/// Drops `managedFields` (upstream's controller-manager trims them from its caches too: they
/// are large and no controller reads them; updates without them keep the stored ones).
fn trimmed<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

type Starter = Box<dyn FnOnce(kube::Client, CancellationToken) -> tokio::task::JoinHandle<()> + Send>;

/// The process's informers, created on first request and started together.
#[derive(Clone)]
pub struct SharedInformers {
    client: kube::Client,
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    informers: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    pending: Vec<Starter>,
    started: Option<(CancellationToken, Vec<tokio::task::JoinHandle<()>>)>,
}

impl SharedInformers {
    /// Informers that list and watch through `client`.
    pub fn new(client: kube::Client) -> Self {
        SharedInformers {
            client,
            inner: Arc::default(),
        }
    }

    /// The informer of `K`, shared by every caller. Informers requested after
    /// [`SharedInformers::start`] start at once.
    pub fn informer<K>(&self) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut reg = self.inner.lock();
        if let Some(existing) = reg.informers.get(&TypeId::of::<K>())
            && let Ok(inf) = existing.clone().downcast::<Informer<K>>()
        {
            return inf;
        }
        let inf = Arc::new(Informer::<K>::new());
        reg.informers.insert(TypeId::of::<K>(), inf.clone());
        let runner = inf.clone();
        let starter: Starter = Box::new(move |client, shutdown| tokio::spawn(runner.run(client, shutdown)));
        match &mut reg.started {
            Some((token, tasks)) => tasks.push(starter(self.client.clone(), token.clone())),
            None => reg.pending.push(starter),
        }
        inf
    }

    /// Starts every informer requested so far (and later ones on request) until `shutdown`.
    pub fn start(&self, shutdown: CancellationToken) {
        let mut reg = self.inner.lock();
        let pending = std::mem::take(&mut reg.pending);
        let tasks = pending
            .into_iter()
            .map(|s| s(self.client.clone(), shutdown.clone()))
            .collect();
        reg.started = Some((shutdown, tasks));
    }

    /// Waits until every started informer's task has ended (after shutdown).
    pub async fn stopped(&self) {
        let tasks = self
            .inner
            .lock()
            .started
            .as_mut()
            .map(|(_, t)| std::mem::take(t))
            .unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
    }
}
