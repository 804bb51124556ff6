//! Pod resource requests and limits as upstream counts them (`k8s.io/component-helpers/resource`
//! `PodRequests` / `PodLimits`): app containers add up; sidecars (init containers with
//! `restartPolicy: Always`) add up too and keep running beside the init containers after them;
//! every other init container runs alone (with the sidecars started before it), so the pod needs
//! at least the largest of those; pod-level `resources` (cpu, memory, hugepages) replace the
//! containers' sum; `overhead` is added to requests, and to limits that are set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use crate::quantity::Quantity;

/// A resource list (`cpu` → `500m`), sorted by name.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Options of [`pod_requests`] and [`pod_limits`] (upstream's `PodResourcesOptions`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Leave `spec.overhead` out.
    pub exclude_overhead: bool,
    /// Use the containers' sum even when pod-level resources are set.
    pub skip_pod_level: bool,
}

/// The parsed entries of a k8s-openapi resource list (entries that are not quantities are
/// skipped: validation rejects them).
pub fn resource_list(list: Option<&BTreeMap<String, K8sQuantity>>) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::from_k8s(v).map(|q| (k.clone(), q)))
        .collect()
}

/// Adds `from` into `into`, name by name.
pub fn add(into: &mut ResourceList, from: &ResourceList) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += *v;
    }
}

/// Raises each entry of `into` to at least the one in `from`.
pub fn max(into: &mut ResourceList, from: &ResourceList) {
    for (k, v) in from {
        match into.get_mut(k) {
            Some(cur) if *cur >= *v => {}
            Some(cur) => *cur = *v,
            None => {
                into.insert(k.clone(), *v);
            }
        }
    }
}

/// Resources upstream allows at pod level.
pub fn is_pod_level_resource(name: &str) -> bool {
    name == "cpu" || name == "memory" || name.starts_with("hugepages-")
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Upstream's aggregation over containers of one side (requests or limits) of their resources.
fn aggregate(spec: &PodSpec, side: impl Fn(&Container) -> ResourceList) -> ResourceList {
    let mut total = ResourceList::new();
    for c in &spec.containers {
        add(&mut total, &side(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in spec.init_containers.iter().flatten() {
        let own = side(c);
        let running = if is_sidecar(c) {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut with_sidecars = own;
            add(&mut with_sidecars, &sidecars);
            with_sidecars
        };
        max(&mut init_max, &running);
    }
    max(&mut total, &init_max);
    total
}

fn requests_of(c: &Container) -> ResourceList {
    resource_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

fn limits_of(c: &Container) -> ResourceList {
    resource_list(c.resources.as_ref().and_then(|r| r.limits.as_ref()))
}

/// Replaces entries with the pod-level ones of `level` (when pod-level resources apply).
fn pod_level(total: &mut ResourceList, spec: &PodSpec, opts: Options, level: ResourceList) {
    if opts.skip_pod_level || !pod_level_set(spec) {
        return;
    }
    for (k, v) in level {
        if is_pod_level_resource(&k) {
            total.insert(k, v);
        }
    }
}

/// True when the pod sets a supported pod-level request or limit.
pub fn pod_level_set(spec: &PodSpec) -> bool {
    let r = spec.resources.as_ref();
    [
        r.and_then(|r| r.requests.as_ref()),
        r.and_then(|r| r.limits.as_ref()),
    ]
    .into_iter()
    .flatten()
    .any(|m| m.keys().any(|k| is_pod_level_resource(k)))
}

/// The pod's effective requests (upstream's `PodRequests`).
pub fn pod_requests(spec: &PodSpec, opts: Options) -> ResourceList {
    let mut total = aggregate(spec, requests_of);
    let level = resource_list(spec.resources.as_ref().and_then(|r| r.requests.as_ref()));
    pod_level(&mut total, spec, opts, level);
    if !opts.exclude_overhead {
        add(&mut total, &resource_list(spec.overhead.as_ref()));
    }
    total
}

/// The pod's effective limits (upstream's `PodLimits`): overhead is added only to limits that
/// are set.
pub fn pod_limits(spec: &PodSpec, opts: Options) -> ResourceList {
    let mut total = aggregate(spec, limits_of);
    let level = resource_list(spec.resources.as_ref().and_then(|r| r.limits.as_ref()));
    pod_level(&mut total, spec, opts, level);
    if !opts.exclude_overhead {
        for (k, v) in resource_list(spec.overhead.as_ref()) {
            if let Some(cur) = total.get_mut(&k) {
                *cur += v;
            }
        }
    }
    total
}

/// [`pod_requests`] and [`pod_limits`] of the JSON form of a pod, default options; `None` when
/// its `spec` does not decode.
pub fn pod_requests_and_limits_json(pod: &serde_json::Value) -> Option<(ResourceList, ResourceList)> {
    use serde::Deserialize;
    let spec = PodSpec::deserialize(pod.get("spec")?).ok()?;
    Some((
        pod_requests(&spec, Options::default()),
        pod_limits(&spec, Options::default()),
    ))
}

/// The pod's QoS class as upstream computes it (`GetPodQOS`): `BestEffort` without any cpu or
/// memory request or limit, `Guaranteed` when every container limits both and the summed requests
/// equal the summed limits, else `Burstable`. Pod-level resources, when set, decide instead.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    use Quantity as Q;
    const QOS: [&str; 2] = ["cpu", "memory"];
    let mut requests: BTreeMap<&str, Q> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Q> = BTreeMap::new();
    let mut guaranteed = true;
    let add = |sum: &mut BTreeMap<&'static str, Q>, list: Option<&BTreeMap<String, K8sQuantity>>| -> usize {
        let mut seen = 0;
        for name in QOS {
            let q = list
                .and_then(|l| l.get(name))
                .and_then(|q| Q::parse(&q.0))
                .filter(|q| !q.is_zero());
            if let Some(q) = q {
                seen += 1;
                let slot = sum.entry(name).or_default();
                *slot += q;
            }
        }
        seen
    };
    let pod_level = spec.resources.as_ref().filter(|r| {
        QOS.iter().any(|n| {
            r.requests.as_ref().is_some_and(|m| m.contains_key(*n))
                || r.limits.as_ref().is_some_and(|m| m.contains_key(*n))
        })
    });
    if let Some(r) = pod_level {
        add(&mut requests, r.requests.as_ref());
        guaranteed = add(&mut limits, r.limits.as_ref()) == QOS.len();
    } else {
        for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
            let r = c.resources.as_ref();
            add(&mut requests, r.and_then(|r| r.requests.as_ref()));
            if add(&mut limits, r.and_then(|r| r.limits.as_ref())) != QOS.len() {
                guaranteed = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests.iter().all(|(name, q)| limits.get(name) == Some(q)) {
        return "Guaranteed";
    }
    "Burstable"
}

/// `a=1,b=2` (upstream's rendering of a resource list in quota messages).
pub fn render(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn c(name: &str, req: Value, lim: Value) -> Value {
        json!({"name": name, "resources": {"requests": req, "limits": lim}})
    }

    fn list(v: Value) -> ResourceList {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), Quantity::from_json(v).unwrap()))
            .collect()
    }

    #[test]
    fn containers_add_up_and_init_containers_set_a_floor() {
        let s = spec(json!({
            "containers": [c("a", json!({"cpu": "100m", "memory": "64Mi"}), json!({"cpu": "1"})),
                           c("b", json!({"cpu": "200m"}), json!({}))],
            "initContainers": [c("i", json!({"cpu": "1", "memory": "32Mi"}), json!({"cpu": "2"}))],
            "overhead": {"cpu": "10m", "memory": "1Mi"}}));
        assert_eq!(
            pod_requests(&s, Options::default()),
            list(json!({"cpu": "1010m", "memory": "65Mi"}))
        );
        // Overhead goes only to limits that are set.
        assert_eq!(pod_limits(&s, Options::default()), list(json!({"cpu": "2010m"})));
        let no_overhead = Options {
            exclude_overhead: true,
            ..Options::default()
        };
        assert_eq!(
            pod_requests(&s, no_overhead),
            list(json!({"cpu": "1", "memory": "64Mi"}))
        );
    }

    #[test]
    fn sidecars_run_beside_later_init_containers() {
        let mut sidecar = c("s", json!({"cpu": "500m"}), json!({"cpu": "500m"}));
        sidecar["restartPolicy"] = json!("Always");
        let s = spec(json!({
            "containers": [c("a", json!({"cpu": "100m"}), json!({}))],
            "initContainers": [c("before", json!({"cpu": "1"}), json!({})), sidecar,
                               c("after", json!({"cpu": "800m"}), json!({}))]}));
        // Init containers alone: max(1, 500m + 800m) = 1300m; running: 100m + 500m.
        assert_eq!(
            pod_requests(&s, Options::default()),
            list(json!({"cpu": "1300m"}))
        );
        assert_eq!(pod_limits(&s, Options::default()), list(json!({"cpu": "500m"})));
    }

    #[test]
    fn pod_level_resources_replace_the_sum() {
        let s = spec(json!({
            "containers": [c("a", json!({"cpu": "100m", "example.com/gpu": "1"}), json!({}))],
            "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "1Gi"}}}));
        assert_eq!(
            pod_requests(&s, Options::default()),
            list(json!({"cpu": "2", "example.com/gpu": "1"}))
        );
        assert_eq!(pod_limits(&s, Options::default()), list(json!({"memory": "1Gi"})));
        let skip = Options {
            skip_pod_level: true,
            ..Options::default()
        };
        assert_eq!(
            pod_requests(&s, skip),
            list(json!({"cpu": "100m", "example.com/gpu": "1"}))
        );
    }

    #[test]
    fn json_pods_and_rendering() {
        let pod = json!({"spec": {"containers": [c("a", json!({"cpu": "1"}), json!({"cpu": "2"}))]}});
        let (req, lim) = pod_requests_and_limits_json(&pod).unwrap();
        assert_eq!(render(&req), "cpu=1");
        assert_eq!(render(&lim), "cpu=2");
        assert!(pod_requests_and_limits_json(&json!({"spec": {"containers": 1}})).is_none());
    }

    #[test]
    fn qos_classes() {
        let qos = |containers: Value| qos_class(&spec(json!({"containers": containers})));
        assert_eq!(qos(json!([{"name": "a"}])), "BestEffort");
        assert_eq!(
            qos(json!([c("a", json!({"cpu": "100m"}), json!({}))])),
            "Burstable"
        );
        let same = c(
            "a",
            json!({"cpu": "1", "memory": "1Gi"}),
            json!({"cpu": "1000m", "memory": "1Gi"}),
        );
        assert_eq!(qos(json!([same])), "Guaranteed");
        let less = c(
            "a",
            json!({"cpu": "500m", "memory": "1Gi"}),
            json!({"cpu": "1", "memory": "1Gi"}),
        );
        assert_eq!(qos(json!([less])), "Burstable");
        let with_init = spec(json!({"containers": [same], "initContainers": [{"name": "i"}]}));
        assert_eq!(
            qos_class(&with_init),
            "Burstable",
            "the init container has no limits"
        );
        let gpu = c(
            "a",
            json!({"example.com/gpu": "1"}),
            json!({"example.com/gpu": "1"}),
        );
        assert_eq!(qos(json!([gpu])), "BestEffort", "only cpu and memory count");
        let pod_level = spec(json!({"containers": [{"name": "a"}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}));
        assert_eq!(qos_class(&pod_level), "Guaranteed", "pod-level resources decide");
    }
}
