//! The EndpointSlice mirroring controller (upstream `endpointslice-mirroring-controller`): a
//! selector-less Service's hand-made Endpoints are mirrored into EndpointSlices (owned by the
//! Endpoints, labelled as the mirroring controller's), unless the Endpoints carry
//! `endpointslice.kubernetes.io/skip-mirror: "true"` or are a leader-election record. At most
//! `--mirroring-max-endpoints-per-subset` addresses of each subset are mirrored.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::endpointslice::reconcile::{self, Group};
use crate::endpointslice::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL, apply, enqueue_owner, owned_slices};
use crate::informer::SharedInformers;
use crate::support::informer::{self, Cache, Key, Requeue};
use crate::support::pods::{self, Family};
use crate::support::queue::WorkQueue;

/// This controller's value of the managed-by label.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// The label that keeps Endpoints from being mirrored (value `true`).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// The annotation of leader-election records kept in Endpoints (never mirrored).
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct MirroringConfig {
    /// Endpoints synced at once (`--mirroring-concurrent-service-endpoint-syncs`, 5).
    pub workers: usize,
    /// Addresses mirrored per subset at most (`--mirroring-max-endpoints-per-subset`, 1000);
    /// also the size of a mirrored slice.
    pub max_endpoints_per_subset: usize,
}

impl Default for MirroringConfig {
    fn default() -> Self {
        MirroringConfig {
            workers: 5,
            max_endpoints_per_subset: 1000,
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

/// True when `ep` (of Service `svc`) is to be mirrored.
pub fn should_mirror(ep: &Endpoints, svc: Option<&Service>) -> bool {
    let Some(svc) = svc else { return false };
    pods::service_selector(svc).is_none()
        && ep.labels().get(SKIP_MIRROR_LABEL).map(String::as_str) != Some("true")
        && !ep.annotations().contains_key(LEADER_ANNOTATION)
        && ep.metadata.deletion_timestamp.is_none()
}

fn mirrored(address: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![address.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..EndpointConditions::default()
        }),
        hostname: address.hostname.clone(),
        node_name: address.node_name.clone(),
        target_ref: address.target_ref.clone(),
        ..Endpoint::default()
    }
}

/// The endpoint groups mirroring `ep`'s subsets (addresses first, then not-ready ones, at most
/// `max_per_subset` per subset).
pub fn desired_groups(ep: &Endpoints, max_per_subset: usize) -> Vec<Group> {
    let mut groups: BTreeMap<(Family, reconcile::PortsKey), Group> = BTreeMap::new();
    for subset in ep.subsets.iter().flatten() {
        let mut ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let port_key: Vec<(String, i32, String)> = ports
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port.unwrap_or(0),
                    p.protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        let addresses = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| (a, true))
            .chain(subset.not_ready_addresses.iter().flatten().map(|a| (a, false)))
            .take(max_per_subset);
        for (address, ready) in addresses {
            if address.ip.is_empty() {
                continue;
            }
            let family = Family::of(&address.ip);
            let group = groups.entry((family, port_key.clone())).or_insert_with(|| Group {
                address_type: family.address_type().into(),
                ports: ports.clone(),
                endpoints: Vec::new(),
            });
            let e = mirrored(address, ready);
            if !group.endpoints.iter().any(|x| x.addresses == e.addresses) {
                group.endpoints.push(e);
            }
        }
    }
    groups.into_values().collect()
}

/// The metadata of `ep`'s mirrored slices: its labels and annotations (but the trigger time and
/// kubectl's last-applied configuration) plus the service-name and managed-by labels, and a
/// controller reference to the Endpoints.
pub fn slice_template(ep: &Endpoints) -> ObjectMeta {
    let name = ep.name_any();
    let mut labels = ep.labels().clone();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    let annotations: BTreeMap<String, String> = ep
        .annotations()
        .iter()
        .filter(|(k, _)| {
            k.as_str() != crate::endpoints::TRIGGER_TIME_ANNOTATION && k.as_str() != LAST_APPLIED
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ObjectMeta {
        generate_name: Some(format!("{name}-")),
        namespace: ep.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Endpoints".into(),
            name,
            uid: ep.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..ObjectMeta::default()
    }
}

struct Stores {
    endpoints: Cache<Endpoints>,
    services: Cache<Service>,
}

async fn sync(client: Client, stores: Arc<Stores>, max: usize, key: Key) -> Result<Requeue, Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client, &key.namespace);
    let ep = stores.endpoints.get(&key);
    let svc = stores.services.get(&key);
    let existing = owned_slices(&api, &key.name, CONTROLLER_NAME).await?;
    let plan = match ep.filter(|ep| should_mirror(ep, svc.as_deref())) {
        Some(ep) => reconcile::plan(
            &existing,
            &desired_groups(&ep, max),
            &slice_template(&ep),
            max,
            None,
        ),
        None => reconcile::Plan {
            delete: existing,
            ..Default::default()
        },
    };
    if !plan.is_empty() {
        tracing::debug!(endpoints = %key, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "endpointslice mirroring: writing slices");
        apply(&api, plan).await?;
    }
    Ok(None)
}

/// Runs the controller over informers of its own until `shutdown` is cancelled.
pub async fn run(client: Client, config: MirroringConfig, shutdown: CancellationToken) -> Result<(), Error> {
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
    config: MirroringConfig,
    informers: SharedInformers,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let q = queue.clone();
    let services = informer::watch(&informers, move |svc: &Service, _| q.add(Key::of(svc)));
    let q = queue.clone();
    let endpoints = informer::watch(&informers, move |ep: &Endpoints, _| q.add(Key::of(ep)));
    let q = queue.clone();
    let slices = informer::watch(&informers, move |s: &EndpointSlice, _| {
        enqueue_owner(s, CONTROLLER_NAME, &q)
    });
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async { services.synced().await; endpoints.synced().await; slices.synced().await } => {}
    }
    // Whatever was listed before the handlers were in place.
    for ep in endpoints.state() {
        queue.add(Key::of(ep.as_ref()));
    }
    for s in slices.state() {
        enqueue_owner(&s, CONTROLLER_NAME, &queue);
    }
    let stores = Arc::new(Stores { endpoints, services });
    let max = config.max_endpoints_per_subset;
    informer::run_workers(queue, config.workers, shutdown, CONTROLLER_NAME, move |key| {
        sync(client.clone(), stores.clone(), max, key)
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EndpointPort as CorePort, EndpointSubset, ServiceSpec};

    fn endpoints(labels: &[(&str, &str)]) -> Endpoints {
        Endpoints {
            metadata: ObjectMeta {
                name: Some("ext".into()),
                namespace: Some("default".into()),
                uid: Some("ep-uid".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_string(), "{}".to_string()),
                        ("note".to_string(), "kept".to_string()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![
                    EndpointAddress {
                        ip: "192.168.1.1".into(),
                        ..EndpointAddress::default()
                    },
                    EndpointAddress {
                        ip: "fd00::1".into(),
                        ..EndpointAddress::default()
                    },
                ]),
                not_ready_addresses: Some(vec![EndpointAddress {
                    ip: "192.168.1.2".into(),
                    ..EndpointAddress::default()
                }]),
                ports: Some(vec![CorePort {
                    name: Some("http".into()),
                    port: 80,
                    ..CorePort::default()
                }]),
            }]),
        }
    }

    fn selectorless() -> Service {
        Service {
            spec: Some(ServiceSpec::default()),
            ..Service::default()
        }
    }

    #[test]
    fn only_hand_made_endpoints_of_selectorless_services_are_mirrored() {
        let svc = selectorless();
        assert!(should_mirror(&endpoints(&[]), Some(&svc)));
        assert!(!should_mirror(&endpoints(&[]), None));
        assert!(!should_mirror(
            &endpoints(&[(SKIP_MIRROR_LABEL, "true")]),
            Some(&svc)
        ));
        let mut selecting = svc;
        selecting.spec.as_mut().unwrap().selector = Some([("a".to_string(), "b".to_string())].into());
        assert!(!should_mirror(&endpoints(&[]), Some(&selecting)));
    }

    #[test]
    fn subsets_become_groups_per_family_with_readiness() {
        let groups = desired_groups(&endpoints(&[]), 1000);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].address_type, "IPv4");
        let ready: Vec<bool> = groups[0]
            .endpoints
            .iter()
            .map(|e| e.conditions.as_ref().unwrap().ready.unwrap())
            .collect();
        assert_eq!(ready, vec![true, false]);
        assert_eq!(groups[0].ports[0].port, Some(80));
        assert_eq!(groups[1].address_type, "IPv6");
        assert_eq!(desired_groups(&endpoints(&[]), 1)[0].endpoints.len(), 1);
        let t = slice_template(&endpoints(&[("x", "y")]));
        let labels = t.labels.unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(labels[SERVICE_NAME_LABEL], "ext");
        assert_eq!(labels["x"], "y");
        let annotations = t.annotations.unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["note"], "kept");
        assert_eq!(t.owner_references.unwrap()[0].kind, "Endpoints");
    }
}
