//! The EndpointSlice controller (upstream `endpointslice-controller`): every Service with a
//! selector gets EndpointSlices per address family and resolved port set, at most
//! `--max-endpoints-per-slice` endpoints each, owned by the Service and labelled with its name.
//! Endpoints carry upstream's `ready` / `serving` / `terminating` conditions (terminating pods
//! stay listed, serving as their readiness says), hostname, node name, the node's zone and a
//! reference to the pod. [`reconcile::plan`] decides the writes.

pub mod reconcile;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::endpoints::{self as classic, PodServices};
use crate::informer::SharedInformers;
use crate::support::informer::{self, Cache, Key, Requeue};
use crate::support::pods::{self, Family};
use crate::support::queue::WorkQueue;
use reconcile::Group;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The node label giving an endpoint's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct EndpointSliceConfig {
    /// Services synced at once (`--concurrent-service-endpoint-syncs`, 5).
    pub workers: usize,
    /// Endpoints per slice at most (`--max-endpoints-per-slice`, 100).
    pub max_endpoints_per_slice: usize,
}

impl Default for EndpointSliceConfig {
    fn default() -> Self {
        EndpointSliceConfig {
            workers: 5,
            max_endpoints_per_slice: 100,
        }
    }
}

/// Controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The ports `svc` resolves to on `pod` (ports not found on the pod are left out).
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let mut ports: Vec<EndpointPort> = svc
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|sp| match pods::find_port(pod, sp) {
            Ok(port) => Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            }),
            Err(e) => {
                tracing::debug!(pod = %pod.name_any(), port = ?sp.name, error = %e, "endpointslice: port not found on pod");
                None
            }
        })
        .collect();
    ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
    ports
}

/// The endpoint of `pod` (at `ip`) in `svc`'s slices.
pub fn endpoint(svc: &Service, pod: &Pod, ip: &str, zone: Option<String>) -> Endpoint {
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let terminating = pods::is_terminating(pod);
    let serving = publish || pods::is_ready(pod);
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pods::endpoint_hostname(pod, svc),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        zone,
        target_ref: Some(classic::target_ref(pod)),
        ..Endpoint::default()
    }
}

/// The endpoint groups (address type × ports) of `svc`'s pods; `zone_of` maps node names to
/// zones.
pub fn desired_groups(
    svc: &Service,
    pods_of: &[&Pod],
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<Group> {
    let mut groups: BTreeMap<(Family, reconcile::PortsKey), Group> = BTreeMap::new();
    for family in pods::service_families(svc) {
        for pod in pods_of {
            if !pods::belongs_in_endpoints(pod, true) {
                continue;
            }
            let Some(ip) = pods::pod_ip(pod, family) else {
                continue;
            };
            let ports = endpoint_ports(svc, pod);
            let key = ports
                .iter()
                .map(|p| {
                    (
                        p.name.clone().unwrap_or_default(),
                        p.port.unwrap_or(0),
                        p.protocol.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let zone = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(zone_of);
            groups
                .entry((family, key))
                .or_insert_with(|| Group {
                    address_type: family.address_type().into(),
                    ports,
                    endpoints: Vec::new(),
                })
                .endpoints
                .push(endpoint(svc, pod, ip, zone));
        }
    }
    groups.into_values().collect()
}

/// The metadata every slice of `svc` carries: `generateName`, the Service's labels (reserved
/// ones excepted) plus the service-name, managed-by and headless labels, the trigger time and
/// a controller reference to the Service.
pub fn slice_template(svc: &Service, trigger_time: Option<String>) -> ObjectMeta {
    let name = svc.name_any();
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| {
            ![SERVICE_NAME_LABEL, MANAGED_BY_LABEL, classic::HEADLESS_LABEL].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    if pods::is_headless(svc) {
        labels.insert(classic::HEADLESS_LABEL.into(), String::new());
    }
    ObjectMeta {
        generate_name: Some(format!("{name}-")),
        namespace: svc.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: trigger_time.map(|t| [(classic::TRIGGER_TIME_ANNOTATION.to_string(), t)].into()),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name,
            uid: svc.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..ObjectMeta::default()
    }
}

/// Creates, updates and deletes slices as `plan` says.
pub(crate) async fn apply(api: &Api<EndpointSlice>, plan: reconcile::Plan) -> Result<(), kube::Error> {
    for slice in plan.delete {
        match api.delete(&slice.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    for slice in plan.update {
        api.replace(&slice.name_any(), &PostParams::default(), &slice)
            .await?;
    }
    for slice in plan.create {
        match api.create(&PostParams::default(), &slice).await {
            Ok(_) => {}
            Err(e) if crate::support::per_namespace::namespace_gone_or_terminating(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The slices labelled as `manager`'s for Service `name`.
pub(crate) async fn owned_slices(
    api: &Api<EndpointSlice>,
    name: &str,
    manager: &str,
) -> Result<Vec<EndpointSlice>, kube::Error> {
    let selector = format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={manager}");
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

struct Stores {
    services: Cache<Service>,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
}

async fn sync(client: Client, stores: Arc<Stores>, max: usize, key: Key) -> Result<Requeue, Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client, &key.namespace);
    let svc = stores.services.get(&key);
    let external_name = svc
        .as_ref()
        .is_some_and(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName"));
    if svc.is_none() || external_name {
        // Gone (the garbage collector would remove owned slices too) or ExternalName.
        let existing = owned_slices(&api, &key.name, CONTROLLER_NAME).await?;
        if !existing.is_empty() {
            let plan = reconcile::Plan {
                delete: existing,
                ..Default::default()
            };
            apply(&api, plan).await?;
        }
        return Ok(None);
    }
    let Some(svc) = svc else { return Ok(None) };
    if pods::service_selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let selected = classic::selected_pods(&svc, &stores.pods);
    let refs: Vec<&Pod> = selected.iter().map(Arc::as_ref).collect();
    let zone_of = |node: &str| {
        stores
            .nodes
            .get(&Key::new("", node))
            .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
    };
    let groups = desired_groups(&svc, &refs, &zone_of);
    let template = slice_template(&svc, classic::trigger_time(&svc, &refs));
    let existing = owned_slices(&api, &key.name, CONTROLLER_NAME).await?;
    let placeholder = pods::service_families(&svc)[0].address_type();
    let plan = reconcile::plan(&existing, &groups, &template, max, Some(placeholder));
    if !plan.is_empty() {
        tracing::debug!(service = %key, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "endpointslice: writing slices");
        apply(&api, plan).await?;
    }
    Ok(None)
}

/// Runs the controller over informers of its own until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    config: EndpointSliceConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
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
    config: EndpointSliceConfig,
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
    let nodes = informer::watch(&informers, |_: &Node, _| {});
    let q = queue.clone();
    let slices = informer::watch(&informers, move |s: &EndpointSlice, _| {
        enqueue_owner(s, CONTROLLER_NAME, &q)
    });
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async { services.synced().await; pods_store.synced().await; nodes.synced().await; slices.synced().await } => {}
    }
    // Whatever was listed before the handlers were in place.
    for svc in services.state() {
        queue.add(Key::of(svc.as_ref()));
    }
    for s in slices.state() {
        enqueue_owner(&s, CONTROLLER_NAME, &queue);
    }
    for pod in pods_store.state() {
        pod_services.pod_changed(&pod, false, &services, &queue);
    }
    let stores = Arc::new(Stores {
        services,
        pods: pods_store,
        nodes,
    });
    let max = config.max_endpoints_per_slice;
    informer::run_workers(queue, config.workers, shutdown, CONTROLLER_NAME, move |key| {
        sync(client.clone(), stores.clone(), max, key)
    })
    .await;
    Ok(())
}

/// Queues the Service of a slice managed by `manager`.
pub(crate) fn enqueue_owner(slice: &EndpointSlice, manager: &str, queue: &WorkQueue<Key>) {
    if slice.labels().get(MANAGED_BY_LABEL).map(String::as_str) != Some(manager) {
        return;
    }
    if let Some(name) = slice.labels().get(SERVICE_NAME_LABEL) {
        queue.add(Key::new(&slice.namespace().unwrap_or_default(), name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::pods::tests::pod;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn service() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("svc-uid".into()),
                labels: Some([("tier".to_string(), "front".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ip_families: Some(vec!["IPv4".into()]),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("web".into())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn conditions(e: &Endpoint) -> (bool, bool, bool) {
        let c = e.conditions.clone().unwrap();
        (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let svc = service();
        let ready = pod("a", "10.0.0.1", true, &[("web", 8080)]);
        let unready = pod("b", "10.0.0.2", false, &[("web", 8080)]);
        let mut leaving = pod("c", "10.0.0.3", true, &[("web", 8080)]);
        leaving.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut leaving_unready = unready.clone();
        leaving_unready.metadata.name = Some("d".into());
        leaving_unready.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let groups = desired_groups(&svc, &[&ready, &unready, &leaving, &leaving_unready], &|_| {
            Some("z1".into())
        });
        assert_eq!(groups.len(), 1);
        let eps = &groups[0].endpoints;
        assert_eq!(conditions(&eps[0]), (true, true, false));
        assert_eq!(conditions(&eps[1]), (false, false, false));
        assert_eq!(conditions(&eps[2]), (false, true, true));
        assert_eq!(conditions(&eps[3]), (false, false, true));
        assert_eq!(eps[0].zone.as_deref(), Some("z1"));
        assert_eq!(eps[0].node_name.as_deref(), Some("node-a"));
        assert_eq!(groups[0].ports[0].port, Some(8080));
        assert_eq!(groups[0].address_type, "IPv4");
    }

    #[test]
    fn pods_resolving_different_ports_land_in_different_groups() {
        let svc = service();
        let a = pod("a", "10.0.0.1", true, &[("web", 8080)]);
        let b = pod("b", "10.0.0.2", true, &[("web", 9090)]);
        let c = pod("c", "10.0.0.3", true, &[]);
        let v6 = pod("d", "fd00::1", true, &[("web", 8080)]);
        let groups = desired_groups(&svc, &[&a, &b, &c, &v6], &|_| None);
        let ports: Vec<Vec<i32>> = groups
            .iter()
            .map(|g| g.ports.iter().filter_map(|p| p.port).collect())
            .collect();
        assert_eq!(ports, vec![vec![], vec![8080], vec![9090]]);
        assert_eq!(
            groups.iter().map(|g| g.endpoints.len()).sum::<usize>(),
            3,
            "the IPv6-only pod is left out"
        );
    }

    #[test]
    fn slices_are_owned_by_and_labelled_for_the_service() {
        let t = slice_template(&service(), Some("2026-01-01T00:00:00Z".into()));
        let labels = t.labels.unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(labels["tier"], "front");
        assert_eq!(t.generate_name.as_deref(), Some("web-"));
        let owner = &t.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", "svc-uid", Some(true))
        );
    }
}
