//! Placing a Service's endpoints into EndpointSlices with little churn (shared by the
//! EndpointSlice and mirroring controllers).
//!
//! Endpoints are grouped by address type and ports (a slice holds one such group). For each
//! group: existing slices keep the endpoints still wanted (updated in place), drop the ones gone;
//! new endpoints first fill slices that change anyway, then, when they all fit into one untouched
//! slice with room, go there (one update rather than a create), otherwise into new slices of at
//! most `max` endpoints. Slices left empty are deleted, slices of groups no longer wanted too.
//! Upstream's reconciler is similar in spirit (it also prefers slices already being updated);
//! it adds a placeholder slice for Services without endpoints, as this does.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

/// The annotation left out of metadata comparisons (it changes with every change).
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// One group of desired endpoints: an address type, the ports, the endpoints in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// `IPv4` or `IPv6`.
    pub address_type: String,
    /// The resolved ports.
    pub ports: Vec<EndpointPort>,
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// The writes that bring existing slices to the desired state.
#[derive(Debug, Default)]
pub struct Plan {
    /// Slices to create (with `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Slices to replace.
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    /// True when nothing must be written.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Ports as a comparable key: name, number, protocol.
pub type PortsKey = Vec<(String, i32, String)>;

type EndpointKey = (Vec<String>, Option<String>);

type GroupKey = (String, Vec<(String, i32, String, Option<String>)>);

fn group_key(address_type: &str, ports: &[EndpointPort]) -> GroupKey {
    let mut ports: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    ports.sort();
    (address_type.to_string(), ports)
}

fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    (
        ep.addresses.clone(),
        ep.target_ref.as_ref().and_then(|r| r.name.clone()),
    )
}

fn without_trigger(a: Option<&BTreeMap<String, String>>) -> BTreeMap<&str, &str> {
    a.into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != TRIGGER_TIME)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn meta_stale(slice: &EndpointSlice, template: &ObjectMeta) -> bool {
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    labels != template.labels.clone().unwrap_or_default()
        || slice.metadata.owner_references.clone().unwrap_or_default()
            != template.owner_references.clone().unwrap_or_default()
        || without_trigger(slice.metadata.annotations.as_ref())
            != without_trigger(template.annotations.as_ref())
}

fn with_meta(mut slice: EndpointSlice, template: &ObjectMeta) -> EndpointSlice {
    slice.metadata.labels = template.labels.clone();
    slice.metadata.owner_references = template.owner_references.clone();
    slice.metadata.annotations = template.annotations.clone();
    slice
}

fn new_slice(
    template: &ObjectMeta,
    address_type: &str,
    ports: &[EndpointPort],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: template.generate_name.clone(),
            namespace: template.namespace.clone(),
            labels: template.labels.clone(),
            annotations: template.annotations.clone(),
            owner_references: template.owner_references.clone(),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_string(),
        ports: Some(ports.to_vec()),
        endpoints: Some(endpoints),
    }
}

struct Slot {
    slice: EndpointSlice,
    endpoints: Vec<Endpoint>,
    changed: bool,
}

/// The writes turning `existing` (this owner's slices) into `desired`, slices holding at most
/// `max` endpoints and carrying `template`'s labels, annotations, owners and `generateName`.
/// With no desired endpoints at all and `placeholder` set, one empty slice of that address type
/// is kept (upstream's placeholder).
pub fn plan(
    existing: &[EndpointSlice],
    desired: &[Group],
    template: &ObjectMeta,
    max: usize,
    placeholder: Option<&str>,
) -> Plan {
    let max = max.max(1);
    let mut plan = Plan::default();
    let mut existing: Vec<&EndpointSlice> = existing.iter().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let total: usize = desired.iter().map(|g| g.endpoints.len()).sum();
    if total == 0 {
        let Some(address_type) = placeholder else {
            plan.delete = existing.into_iter().cloned().collect();
            return plan;
        };
        let mut kept = false;
        for slice in existing {
            let is_placeholder = slice.endpoints.as_ref().is_none_or(|e| e.is_empty())
                && slice.ports.as_ref().is_none_or(|p| p.is_empty())
                && slice.address_type == address_type;
            if is_placeholder && !kept {
                kept = true;
                if meta_stale(slice, template) {
                    plan.update.push(with_meta(slice.clone(), template));
                }
            } else {
                plan.delete.push(slice.clone());
            }
        }
        if !kept {
            plan.create
                .push(new_slice(template, address_type, &[], Vec::new()));
        }
        return plan;
    }

    let groups: HashMap<GroupKey, usize> = desired
        .iter()
        .enumerate()
        .map(|(i, g)| (group_key(&g.address_type, &g.ports), i))
        .collect();
    let mut remaining: Vec<HashMap<EndpointKey, &Endpoint>> = desired
        .iter()
        .map(|g| g.endpoints.iter().map(|e| (endpoint_key(e), e)).collect())
        .collect();
    let mut slots: Vec<Vec<Slot>> = desired.iter().map(|_| Vec::new()).collect();
    for slice in existing {
        let key = group_key(&slice.address_type, slice.ports.as_deref().unwrap_or_default());
        let Some(&g) = groups
            .get(&key)
            .filter(|_| !desired[groups[&key]].endpoints.is_empty())
        else {
            plan.delete.push(slice.clone());
            continue;
        };
        let mut changed = meta_stale(slice, template);
        let mut endpoints = Vec::new();
        for ep in slice.endpoints.iter().flatten() {
            match remaining[g].remove(&endpoint_key(ep)) {
                Some(want) if endpoints.len() < max => {
                    changed |= want != ep;
                    endpoints.push(want.clone());
                }
                Some(want) => {
                    // Over the cap (e.g. a lowered --max-endpoints-per-slice): placed anew.
                    remaining[g].insert(endpoint_key(want), want);
                    changed = true;
                }
                None => changed = true,
            }
        }
        slots[g].push(Slot {
            slice: slice.clone(),
            endpoints,
            changed,
        });
    }

    for (g, group) in desired.iter().enumerate() {
        let mut leftover: Vec<Endpoint> = group
            .endpoints
            .iter()
            .filter(|e| remaining[g].contains_key(&endpoint_key(e)))
            .cloned()
            .collect();
        leftover.reverse();
        for slot in slots[g].iter_mut().filter(|s| s.changed) {
            while slot.endpoints.len() < max {
                match leftover.pop() {
                    Some(e) => slot.endpoints.push(e),
                    None => break,
                }
            }
        }
        while !leftover.is_empty() {
            let fits = slots[g]
                .iter_mut()
                .filter(|s| !s.changed && max - s.endpoints.len().min(max) >= leftover.len())
                .min_by_key(|s| max - s.endpoints.len());
            if let Some(slot) = fits.filter(|_| leftover.len() < max) {
                slot.changed = true;
                while let Some(e) = leftover.pop() {
                    slot.endpoints.push(e);
                }
            } else {
                let n = leftover.len().min(max);
                let chunk: Vec<Endpoint> = (0..n).filter_map(|_| leftover.pop()).collect();
                plan.create
                    .push(new_slice(template, &group.address_type, &group.ports, chunk));
            }
        }
        for slot in slots[g].drain(..) {
            if !slot.changed {
                continue;
            }
            if slot.endpoints.is_empty() {
                plan.delete.push(slot.slice);
            } else {
                let mut slice = with_meta(slot.slice, template);
                slice.endpoints = Some(slot.endpoints);
                slice.ports = Some(group.ports.clone());
                plan.update.push(slice);
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointConditions;

    fn ep(i: usize, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.{}.{}", i / 200, i % 200)],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            ..Endpoint::default()
        }
    }

    fn port(n: i32) -> EndpointPort {
        EndpointPort {
            name: Some("http".into()),
            port: Some(n),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }
    }

    fn template() -> ObjectMeta {
        ObjectMeta {
            generate_name: Some("web-".into()),
            namespace: Some("default".into()),
            labels: Some([("kubernetes.io/service-name".to_string(), "web".to_string())].into()),
            ..ObjectMeta::default()
        }
    }

    fn group(range: std::ops::Range<usize>, p: i32) -> Group {
        Group {
            address_type: "IPv4".into(),
            ports: vec![port(p)],
            endpoints: range.map(|i| ep(i, true)).collect(),
        }
    }

    /// Applies a plan as the server would (names for created slices).
    fn apply(mut existing: Vec<EndpointSlice>, plan: Plan, next: &mut usize) -> Vec<EndpointSlice> {
        let gone: Vec<_> = plan
            .delete
            .iter()
            .chain(&plan.update)
            .map(|s| s.metadata.name.clone())
            .collect();
        existing.retain(|s| !gone.contains(&s.metadata.name));
        existing.extend(plan.update);
        for mut s in plan.create {
            *next += 1;
            s.metadata.name = Some(format!("web-{next:03}"));
            existing.push(s);
        }
        existing
    }

    #[test]
    fn endpoints_are_split_into_slices_of_at_most_max() {
        let p = plan(&[], &[group(0..250, 80)], &template(), 100, Some("IPv4"));
        let sizes: Vec<usize> = p
            .create
            .iter()
            .map(|s| s.endpoints.as_ref().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(
            p.create
                .iter()
                .all(|s| s.metadata.generate_name.as_deref() == Some("web-"))
        );
    }

    #[test]
    fn one_change_touches_one_slice_and_steady_state_writes_nothing() {
        let mut n = 0;
        let desired = [group(0..250, 80)];
        let slices = apply(vec![], plan(&[], &desired, &template(), 100, None), &mut n);
        assert!(plan(&slices, &desired, &template(), 100, None).is_empty());
        // One endpoint turns unready: only its slice is rewritten.
        let mut changed = group(0..250, 80);
        changed.endpoints[120] = ep(120, false);
        let p = plan(&slices, &[changed.clone()], &template(), 100, None);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert!(p.update[0].endpoints.as_ref().unwrap().contains(&ep(120, false)));
        // One endpoint goes, another comes: the new one takes the freed place in the same slice.
        let slices = apply(slices, p, &mut n);
        let mut swapped = changed;
        swapped.endpoints.remove(10);
        swapped.endpoints.push(ep(900, true));
        let p = plan(&slices, &[swapped.clone()], &template(), 100, None);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        let slices = apply(slices, p, &mut n);
        assert_eq!(
            slices
                .iter()
                .map(|s| s.endpoints.as_ref().unwrap().len())
                .sum::<usize>(),
            250
        );
        // A few new endpoints go into the slice with room instead of a new slice.
        swapped.endpoints.extend((1000..1010).map(|i| ep(i, true)));
        let p = plan(&slices, &[swapped], &template(), 100, None);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].endpoints.as_ref().unwrap().len(), 60);
    }

    #[test]
    fn changed_ports_and_no_endpoints_replace_slices_and_keep_a_placeholder() {
        let mut n = 0;
        let slices = apply(
            vec![],
            plan(&[], &[group(0..3, 80)], &template(), 100, Some("IPv4")),
            &mut n,
        );
        let p = plan(&slices, &[group(0..3, 8080)], &template(), 100, Some("IPv4"));
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 1));
        let slices = apply(slices, p, &mut n);
        let p = plan(&slices, &[], &template(), 100, Some("IPv4"));
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 1));
        let slices = apply(slices, p, &mut n);
        assert!(plan(&slices, &[], &template(), 100, Some("IPv4")).is_empty());
        // Without placeholders (mirroring) everything goes.
        assert_eq!(plan(&slices, &[], &template(), 100, None).delete.len(), 1);
    }

    #[test]
    fn new_labels_rewrite_every_slice() {
        let mut n = 0;
        let slices = apply(
            vec![],
            plan(&[], &[group(0..150, 80)], &template(), 100, None),
            &mut n,
        );
        let mut t = template();
        t.labels.as_mut().unwrap().insert("tier".into(), "front".into());
        let p = plan(&slices, &[group(0..150, 80)], &t, 100, None);
        assert_eq!(p.update.len(), 2);
        assert!(
            p.update
                .iter()
                .all(|s| s.metadata.labels.as_ref().unwrap()["tier"] == "front")
        );
    }
}
