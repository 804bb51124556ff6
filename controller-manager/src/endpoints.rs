//! The Endpoints controller (upstream `endpoints-controller`): every Service with a selector gets
//! an Endpoints object of the same name listing its pods — ready ones under `addresses`, others
//! under `notReadyAddresses` (all ready with `publishNotReadyAddresses`) — grouped into subsets by
//! the ports each pod resolves (named `targetPort`s differ per pod), capped at 1 000 addresses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::informer::SharedInformers;
use crate::support::informer::{self, Cache, Key, Requeue};
use crate::support::pods;
use crate::support::queue::WorkQueue;

/// The label marking Endpoints this controller manages.
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Its value.
pub const CONTROLLER_NAME: &str = "endpoint-controller";
/// The annotation with the time of the last pod or Service change reflected.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The annotation set (to [`TRUNCATED`]) when addresses were dropped above [`MAX_CAPACITY`].
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// The over-capacity annotation's value.
pub const TRUNCATED: &str = "truncated";
/// Addresses an Endpoints object holds at most.
pub const MAX_CAPACITY: usize = 1000;
/// The label on objects of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct EndpointsConfig {
    /// Services synced at once (`--concurrent-endpoint-syncs`, 5).
    pub workers: usize,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        EndpointsConfig { workers: 5 }
    }
}

/// Controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The subsets a Service's pods make, and whether addresses were truncated to
/// [`MAX_CAPACITY`].
pub fn desired_subsets(svc: &Service, pods: &[&Pod]) -> (Vec<EndpointSubset>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let family = pods::service_families(svc)[0];
    let headless_without_ports = spec.ports.as_ref().is_none_or(|p| p.is_empty()) && pods::is_headless(svc);
    // Ports (sorted) → (ready, not ready) addresses.
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for pod in pods {
        if !pods::belongs_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = pods::pod_ip(pod, family) else {
            tracing::debug!(pod = %pod.name_any(), "endpoints: pod has no IP of the service's family");
            continue;
        };
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: pods::endpoint_hostname(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(pod)),
        };
        let mut ports = Vec::new();
        for sp in spec.ports.iter().flatten() {
            match pods::find_port(pod, sp) {
                Ok(port) => ports.push(PortKey {
                    name: sp.name.clone().unwrap_or_default(),
                    port,
                    protocol: sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    app_protocol: sp.app_protocol.clone(),
                }),
                Err(e) => {
                    tracing::debug!(pod = %pod.name_any(), port = ?sp.name, error = %e, "endpoints: port not found on pod")
                }
            }
        }
        if ports.is_empty() && !headless_without_ports {
            continue;
        }
        ports.sort();
        let entry = groups.entry(ports).or_default();
        if publish_not_ready || pods::is_ready(pod) {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let mut budget = MAX_CAPACITY;
    let total: usize = groups.values().map(|(r, n)| r.len() + n.len()).sum();
    let truncated = total > MAX_CAPACITY;
    let mut groups: Vec<_> = groups.into_iter().collect();
    if truncated {
        // Ready addresses first, then not ready ones, until the cap.
        for (_, (ready, _)) in groups.iter_mut() {
            ready.truncate(budget);
            budget -= ready.len();
        }
        for (_, (_, not_ready)) in groups.iter_mut() {
            not_ready.truncate(budget);
            budget -= not_ready.len();
        }
    }
    let subsets = groups
        .into_iter()
        .filter(|(_, (r, n))| !r.is_empty() || !n.is_empty())
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(address_order);
            not_ready.sort_by(address_order);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| ports.into_iter().map(PortKey::into_port).collect()),
            }
        })
        .collect();
    (subsets, truncated)
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: String,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

impl PortKey {
    fn into_port(self) -> EndpointPort {
        EndpointPort {
            name: (!self.name.is_empty()).then_some(self.name),
            port: self.port,
            protocol: Some(self.protocol),
            app_protocol: self.app_protocol,
        }
    }
}

fn address_order(a: &EndpointAddress, b: &EndpointAddress) -> std::cmp::Ordering {
    a.ip.cmp(&b.ip).then_with(|| {
        let name = |x: &EndpointAddress| x.target_ref.as_ref().and_then(|r| r.name.clone());
        name(a).cmp(&name(b))
    })
}

/// A reference to `pod` as endpoints carry it.
pub fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The labels of a Service's Endpoints: the Service's, the managed-by label, and the headless
/// label for headless Services.
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    if pods::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// Upstream's trigger time: the latest change among the Service and its pods (creation,
/// readiness transition, deletion), RFC 3339 in seconds.
pub fn trigger_time(svc: &Service, pods: &[&Pod]) -> Option<String> {
    let pod_times = pods.iter().flat_map(|p| {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time.clone());
        [
            p.metadata.creation_timestamp.clone(),
            ready,
            p.metadata.deletion_timestamp.clone(),
        ]
    });
    pod_times
        .chain([svc.metadata.creation_timestamp.clone()])
        .flatten()
        .map(|t| t.0)
        .max()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The Endpoints to write for `svc` given `current`, or `None` when `current` is up to date.
pub fn desired_endpoints(svc: &Service, pods: &[&Pod], current: Option<&Endpoints>) -> Option<Endpoints> {
    let (subsets, truncated) = desired_subsets(svc, pods);
    let labels = desired_labels(svc);
    let current_subsets = current.and_then(|c| c.subsets.clone()).unwrap_or_default();
    let current_truncated = current.is_some_and(|c| c.annotations().get(OVER_CAPACITY_ANNOTATION).is_some());
    if let Some(c) = current
        && current_subsets == subsets
        && c.labels() == &labels
        && current_truncated == truncated
    {
        return None;
    }
    let mut ep = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        ..Endpoints::default()
    });
    ep.metadata.labels = Some(labels);
    let annotations = ep.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger_time(svc, pods) {
        Some(t) => annotations.insert(TRIGGER_TIME_ANNOTATION.into(), t),
        None => annotations.remove(TRIGGER_TIME_ANNOTATION),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY_ANNOTATION.into(), TRUNCATED.into());
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    ep.subsets = (!subsets.is_empty()).then_some(subsets);
    Some(ep)
}

/// Which Services (by key) select each pod, so a pod's relabelling re-syncs the Services it left.
#[derive(Default)]
pub(crate) struct PodServices(Mutex<HashMap<Key, HashSet<Key>>>);

impl PodServices {
    /// Queues the Services that select `pod` now or did before.
    pub(crate) fn pod_changed(
        &self,
        pod: &Pod,
        deleted: bool,
        services: &Cache<Service>,
        queue: &WorkQueue<Key>,
    ) {
        let key = Key::of(pod);
        let now: HashSet<Key> = if deleted {
            HashSet::new()
        } else {
            services
                .list(pod.metadata.namespace.as_deref().unwrap_or_default())
                .iter()
                .filter(|s| pods::service_selector(s).is_some_and(|sel| pods::selects(sel, pod)))
                .map(|s| Key::of(s.as_ref()))
                .collect()
        };
        let before = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_empty() {
                map.remove(&key)
            } else {
                map.insert(key, now.clone())
            }
        };
        for svc in now.into_iter().chain(before.into_iter().flatten()) {
            queue.add(svc);
        }
    }
}

/// The pods of `svc` in `pods`.
pub(crate) fn selected_pods(svc: &Service, pods: &Cache<Pod>) -> Vec<Arc<Pod>> {
    let Some(selector) = pods::service_selector(svc) else {
        return Vec::new();
    };
    let mut selected: Vec<Arc<Pod>> = pods
        .list(svc.metadata.namespace.as_deref().unwrap_or_default())
        .into_iter()
        .filter(|p| pods::selects(selector, p))
        .collect();
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    selected
}

/// True when the Service is one whose endpoints the controllers compute.
pub(crate) fn has_selector(svc: &Service) -> bool {
    let external_name = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    !external_name && pods::service_selector(svc).is_some()
}

async fn sync(
    client: Client,
    services: Cache<Service>,
    pods_store: Cache<Pod>,
    key: Key,
) -> Result<Requeue, Error> {
    let api: Api<Endpoints> = Api::namespaced(client, &key.namespace);
    let Some(svc) = services.get(&key) else {
        // The Service is gone: remove the Endpoints this controller made for it.
        if let Some(ep) = api.get_opt(&key.name).await?
            && ep.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME)
        {
            let dp = DeleteParams {
                preconditions: ep.uid().map(|uid| kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&key.name, &dp).await {
                Ok(_) => tracing::info!(endpoints = %key, "endpoints: deleted for a deleted service"),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    };
    if !has_selector(&svc) || svc.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let selected = selected_pods(&svc, &pods_store);
    let refs: Vec<&Pod> = selected.iter().map(Arc::as_ref).collect();
    let current = api.get_opt(&key.name).await?;
    let Some(ep) = desired_endpoints(&svc, &refs, current.as_ref()) else {
        return Ok(None);
    };
    let result = if current.is_some() {
        api.replace(&key.name, &PostParams::default(), &ep).await
    } else {
        api.create(&PostParams::default(), &ep).await
    };
    match result {
        Ok(_) => Ok(None),
        // Creating in a namespace being deleted: nothing to do.
        Err(e) if crate::support::per_namespace::namespace_gone_or_terminating(&e) && current.is_none() => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the controller over informers of its own until `shutdown` is cancelled.
pub async fn run(client: Client, config: EndpointsConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let c = client.clone();
    let token = shutdown.clone();
    informer::standalone(client, shutdown, move |informers| {
        run_shared(c, config, informers, token)
    })
    .await
}

/// Runs the controller over the process's shared informers until `shutdown` is cancelled.
pub async fn run_shared(
    client: Client,
    config: EndpointsConfig,
    informers: SharedInformers,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let pod_services = Arc::new(PodServices::default());
    let q = queue.clone();
    let services = informer::watch(&informers, move |svc: &Service, _| q.add(Key::of(svc)));
    let (q, svcs, ps) = (queue.clone(), services.clone(), pod_services.clone());
    let pods_store = informer::watch(&informers, move |pod: &Pod, deleted| {
        ps.pod_changed(pod, deleted, &svcs, &q)
    });
    let q = queue.clone();
    let endpoints = informer::watch(&informers, move |ep: &Endpoints, _| q.add(Key::of(ep)));
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async { services.synced().await; pods_store.synced().await; endpoints.synced().await } => {}
    }
    // Whatever was listed before the handlers were in place.
    for svc in services.state() {
        queue.add(Key::of(svc.as_ref()));
    }
    for ep in endpoints.state() {
        queue.add(Key::of(ep.as_ref()));
    }
    for pod in pods_store.state() {
        pod_services.pod_changed(&pod, false, &services, &queue);
    }
    let (svcs, ps) = (services.clone(), pods_store.clone());
    informer::run_workers(queue, config.workers, shutdown, CONTROLLER_NAME, move |key| {
        sync(client.clone(), svcs.clone(), ps.clone(), key)
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::pods::tests::pod;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    pub(crate) fn service(ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                labels: Some([("tier".to_string(), "front".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                cluster_ip: Some("10.96.0.10".into()),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn named(name: &str, target: &str) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port: 80,
            target_port: Some(IntOrString::String(target.into())),
            ..ServicePort::default()
        }
    }

    #[test]
    fn ready_and_not_ready_pods_split_and_named_ports_group_subsets() {
        let svc = service(vec![named("http", "web")]);
        let a = pod("a", "10.0.0.2", true, &[("web", 8080)]);
        let b = pod("b", "10.0.0.1", false, &[("web", 8080)]);
        let c = pod("c", "10.0.0.3", true, &[("web", 9090)]);
        let d = pod("d", "10.0.0.4", true, &[("other", 1)]);
        let (subsets, truncated) = desired_subsets(&svc, &[&a, &b, &c, &d]);
        assert!(!truncated);
        assert_eq!(subsets.len(), 2, "8080 and 9090; d has no such port");
        let s8080 = &subsets[0];
        assert_eq!(s8080.ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(s8080.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
        assert_eq!(s8080.addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(s8080.not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
        assert_eq!(
            s8080.addresses.as_ref().unwrap()[0]
                .target_ref
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
        assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 9090);

        let mut publish = svc;
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let (subsets, _) = desired_subsets(&publish, &[&a, &b]);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 2);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn hostname_needs_the_service_as_subdomain() {
        let svc = service(vec![named("http", "web")]);
        let mut a = pod("a", "10.0.0.2", true, &[("web", 8080)]);
        a.spec.as_mut().unwrap().hostname = Some("host-a".into());
        let (s, _) = desired_subsets(&svc, &[&a]);
        assert_eq!(s[0].addresses.as_ref().unwrap()[0].hostname, None);
        a.spec.as_mut().unwrap().subdomain = Some("web".into());
        let (s, _) = desired_subsets(&svc, &[&a]);
        let addr = &s[0].addresses.as_ref().unwrap()[0];
        assert_eq!(addr.hostname.as_deref(), Some("host-a"));
        assert_eq!(addr.node_name.as_deref(), Some("node-a"));
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated_ready_first() {
        let svc = service(vec![named("http", "web")]);
        let pods: Vec<Pod> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i:04}"),
                    &format!("10.1.{}.{}", i / 250, i % 250),
                    i % 2 == 0,
                    &[("web", 80)],
                )
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let (subsets, truncated) = desired_subsets(&svc, &refs);
        assert!(truncated);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 550);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 450);
        let ep = desired_endpoints(&svc, &refs, None).unwrap();
        assert_eq!(ep.annotations()[OVER_CAPACITY_ANNOTATION], TRUNCATED);
    }

    #[test]
    fn labels_follow_the_service_and_unchanged_endpoints_are_not_rewritten() {
        let mut svc = service(vec![named("http", "web")]);
        let a = pod("a", "10.0.0.2", true, &[("web", 8080)]);
        let ep = desired_endpoints(&svc, &[&a], None).unwrap();
        assert_eq!(ep.labels()["tier"], "front");
        assert_eq!(ep.labels()[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert!(!ep.labels().contains_key(HEADLESS_LABEL));
        assert_eq!(desired_endpoints(&svc, &[&a], Some(&ep)), None);
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let headless = desired_endpoints(&svc, &[&a], Some(&ep)).unwrap();
        assert_eq!(headless.labels()[HEADLESS_LABEL], "");
        // A headless Service without ports still lists its pods.
        svc.spec.as_mut().unwrap().ports = None;
        let (s, _) = desired_subsets(&svc, &[&a]);
        assert_eq!(s.len(), 1);
        assert!(s[0].ports.is_none());
    }
}
