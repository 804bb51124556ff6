//! The disruption controller (upstream `disruption-controller`): keeps every
//! PodDisruptionBudget's status — `currentHealthy`, `desiredHealthy`, `expectedPods`,
//! `disruptionsAllowed`, `disruptedPods` and the `DisruptionAllowed` condition — which the API
//! server's `pods/eviction` consults. `minAvailable` / `maxUnavailable` may be numbers or
//! percentages; percentages and `maxUnavailable` count against the scale of the pods'
//! controllers (Deployment, ReplicaSet, ReplicationController, StatefulSet). It also resets a
//! pod's `DisruptionTarget` condition left `True` for two minutes on a pod never deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use api_util::labels::LabelSelector;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::EventSink;
use crate::informer::SharedInformers;
use crate::support::informer::{self, Cache, Key, Requeue};
use crate::support::pods;
use crate::support::queue::WorkQueue;

/// The controller's name.
pub const CONTROLLER_NAME: &str = "disruption-controller";
/// The PDB condition type.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Reason: disruptions are allowed.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// Reason: no disruption is allowed.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
/// Reason: the status could not be computed.
pub const SYNC_FAILED: &str = "SyncFailed";
/// The pod condition set by whoever disrupts a pod.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
/// How long an eviction's entry in `disruptedPods` waits for the pod's deletion.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a pod's `DisruptionTarget=True` may stay without the pod being deleted.
pub const STALE_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct DisruptionConfig {
    /// This process's identity, reported in events.
    pub identity: String,
}

impl Default for DisruptionConfig {
    fn default() -> Self {
        DisruptionConfig {
            identity: component_base::leader::default_identity(),
        }
    }
}

/// Controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The budget's numbers cannot be computed (its condition says why).
    #[error("{0}")]
    Budget(String),
}

/// Upstream `GetScaledValueFromIntOrPercent`: a number as is, `N%` of `total` rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let product = pct * i64::from(total);
            let v = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// `(expectedPods, desiredHealthy)` of a budget with `matching` pods; `scale` gives the pods'
/// controllers' total scale when a percentage or `maxUnavailable` needs it.
pub fn expected_counts(
    pdb: &PodDisruptionBudget,
    matching: usize,
    scale: impl FnOnce() -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let matching = i32::try_from(matching).unwrap_or(i32::MAX);
    if let Some(max_unavailable) = &spec.max_unavailable {
        let expected = scale()?;
        let unavailable = scaled_value(max_unavailable, expected, true)?;
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((matching, *n)),
        Some(pct @ IntOrString::String(_)) => {
            let expected = scale()?;
            Ok((expected, scaled_value(pct, expected, true)?))
        }
        None => Ok((matching, 0)),
    }
}

/// The budget's `disruptedPods` without entries whose pod is gone, being deleted, or older than
/// [`DELETION_TIMEOUT`]; with the time the oldest kept one expires.
pub fn prune_disrupted(
    disrupted: &BTreeMap<String, Time>,
    pods_of: &[&Pod],
    now: jiff::Timestamp,
) -> (BTreeMap<String, Time>, Option<jiff::Timestamp>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<jiff::Timestamp> = None;
    for pod in pods_of {
        if pods::is_terminating(pod) {
            continue;
        }
        let name = pod.name_any();
        let Some(at) = disrupted.get(&name) else { continue };
        let expires = at.0 + jiff::SignedDuration::from_secs(DELETION_TIMEOUT.as_secs() as i64);
        if expires < now {
            tracing::info!(pod = %name, expected_at = %expires, "disruption: pod was expected to be deleted but was not");
            continue;
        }
        kept.insert(name, at.clone());
        recheck = Some(recheck.map_or(expires, |r: jiff::Timestamp| r.min(expires)));
    }
    (kept, recheck)
}

/// Ready pods, not being deleted and not just evicted.
pub fn current_healthy(pods_of: &[&Pod], disrupted: &BTreeMap<String, Time>) -> i32 {
    let n = pods_of
        .iter()
        .filter(|p| !pods::is_terminating(p) && !disrupted.contains_key(&p.name_any()) && pods::is_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Sets the `DisruptionAllowed` condition, moving its transition time only when its status
/// changes.
fn set_condition(
    status: &mut PodDisruptionBudgetStatus,
    allowed: bool,
    reason: &str,
    message: String,
    now: &Time,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let value = if allowed { "True" } else { "False" };
    let observed = status.observed_generation;
    match conditions.iter_mut().find(|c| c.type_ == DISRUPTION_ALLOWED) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = now.clone();
            }
            c.status = value.into();
            c.reason = reason.into();
            c.message = message;
            c.observed_generation = observed;
        }
        None => conditions.push(Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: value.into(),
            reason: reason.into(),
            message,
            observed_generation: observed,
            last_transition_time: now.clone(),
        }),
    }
}

/// The status a budget gets from its pods' numbers.
pub fn computed_status(
    pdb: &PodDisruptionBudget,
    expected: i32,
    desired_healthy: i32,
    healthy: i32,
    disrupted: BTreeMap<String, Time>,
    now: &Time,
) -> PodDisruptionBudgetStatus {
    let mut allowed = healthy - desired_healthy;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let mut status = pdb.status.clone().unwrap_or_default();
    status.current_healthy = Some(healthy);
    status.desired_healthy = Some(desired_healthy);
    status.expected_pods = Some(expected);
    status.disruptions_allowed = Some(allowed);
    status.disrupted_pods = (!disrupted.is_empty()).then_some(disrupted);
    status.observed_generation = pdb.metadata.generation;
    let reason = if allowed > 0 {
        SUFFICIENT_PODS
    } else {
        INSUFFICIENT_PODS
    };
    set_condition(&mut status, allowed > 0, reason, String::new(), now);
    status
}

/// The status of a budget whose numbers could not be computed: no disruption allowed.
pub fn failed_status(pdb: &PodDisruptionBudget, error: &str, now: &Time) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = Some(0);
    set_condition(&mut status, false, SYNC_FAILED, error.to_string(), now);
    status
}

fn controller_of(meta: &kube::api::ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

async fn get_owned<K>(client: &Client, ns: &str, owner: &OwnerReference) -> Result<Option<K>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let obj = Api::<K>::namespaced(client.clone(), ns)
        .get_opt(&owner.name)
        .await?;
    Ok(obj.filter(|o| o.meta().uid.as_deref() == Some(owner.uid.as_str())))
}

/// The summed scale of the controllers of `pods_of` (each counted once).
async fn expected_scale(client: &Client, ns: &str, pods_of: &[&Pod]) -> Result<i32, Error> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    for pod in pods_of {
        let name = pod.name_any();
        let owner = controller_of(&pod.metadata)
            .ok_or_else(|| Error::Budget(format!("found no controller ref for pod {name:?}")))?;
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let found: Option<(String, i32)> = match (owner.api_version.split('/').next(), owner.kind.as_str()) {
            (Some("apps"), "ReplicaSet") => match get_owned::<ReplicaSet>(client, ns, owner).await? {
                Some(rs) => match controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
                    Some(d) => get_owned::<Deployment>(client, ns, d)
                        .await?
                        .map(|d| (d.uid().unwrap_or_default(), d.spec.replicas.unwrap_or(1))),
                    None => Some((rs.uid().unwrap_or_default(), rs.spec.replicas.unwrap_or(1))),
                },
                None => None,
            },
            (Some("v1"), "ReplicationController") => get_owned::<ReplicationController>(client, ns, owner)
                .await?
                .map(|rc| {
                    (
                        rc.uid().unwrap_or_default(),
                        rc.spec.and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
            (Some("apps"), "StatefulSet") => get_owned::<StatefulSet>(client, ns, owner)
                .await?
                .map(|s| (s.uid().unwrap_or_default(), s.spec.replicas.unwrap_or(1))),
            _ => None,
        };
        let (uid, scale) =
            found.ok_or_else(|| Error::Budget(format!("found no controllers for pod {name:?}")))?;
        scales.insert(owner.uid.clone(), 0);
        scales.insert(uid, scale);
    }
    Ok(scales.values().sum())
}

struct Stores {
    pdbs: Cache<PodDisruptionBudget>,
    pods: Cache<Pod>,
    events: EventSink,
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

async fn write_status(
    api: &Api<PodDisruptionBudget>,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<(), kube::Error> {
    if pdb.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = pdb.clone();
    updated.status = Some(status);
    api.replace_status(&pdb.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(())
}

async fn sync(client: Client, stores: Arc<Stores>, key: Key) -> Result<Requeue, Error> {
    let Some(pdb) = stores.pdbs.get(&key) else {
        return Ok(None);
    };
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &key.namespace);
    let selector = match pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        None => None,
        Some(sel) => match LabelSelector::from_label_selector(sel) {
            Ok(sel) => Some(sel),
            Err(e) => {
                let status = failed_status(&pdb, &format!("invalid selector: {e}"), &now());
                write_status(&api, &pdb, status).await?;
                return Ok(None);
            }
        },
    };
    // A budget without a selector selects no pods (upstream's nil selector).
    let mut matched: Vec<Arc<Pod>> = match &selector {
        None => Vec::new(),
        Some(sel) => stores
            .pods
            .list(&key.namespace)
            .into_iter()
            .filter(|p| sel.matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
            .collect(),
    };
    matched.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let refs: Vec<&Pod> = matched.iter().map(Arc::as_ref).collect();
    if refs.is_empty() {
        stores
            .events
            .normal(pdb.as_ref(), "NoPods", "Sync", "No matching pods found".into());
    }
    let scale = expected_scale(&client, &key.namespace, &refs).await;
    let counts = match scale {
        Ok(s) => expected_counts(&pdb, refs.len(), || Ok(s)),
        Err(Error::Budget(e)) => expected_counts(&pdb, refs.len(), || Err(e)),
        Err(e) => return Err(e),
    };
    let now_time = now();
    let (expected, desired) = match counts {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(pdb = %key, error = %e, "disruption: failed to calculate the number of expected pods");
            stores.events.warning(
                pdb.as_ref(),
                "CalculateExpectedPodCountFailed",
                "Sync",
                format!("Failed to calculate the number of expected pods: {e}"),
            );
            write_status(&api, &pdb, failed_status(&pdb, &e, &now_time)).await?;
            return Ok(None);
        }
    };
    let disrupted = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    let (disrupted, recheck) = prune_disrupted(&disrupted, &refs, now_time.0);
    let healthy = current_healthy(&refs, &disrupted);
    let status = computed_status(&pdb, expected, desired, healthy, disrupted, &now_time);
    write_status(&api, &pdb, status).await?;
    Ok(recheck.map(|at| {
        let wait = at.duration_since(jiff::Timestamp::now());
        Duration::try_from(wait).unwrap_or_default() + Duration::from_secs(1)
    }))
}

/// When `pod`'s `DisruptionTarget=True` condition goes stale (`None`: it has none, or the pod
/// is being deleted).
pub fn disruption_target_expiry(pod: &Pod) -> Option<jiff::Timestamp> {
    if pods::is_terminating(pod) {
        return None;
    }
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == DISRUPTION_TARGET && c.status == "True")?;
    let since = c
        .last_transition_time
        .as_ref()
        .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0);
    Some(since + jiff::SignedDuration::from_secs(STALE_DISRUPTION_TIMEOUT.as_secs() as i64))
}

async fn sync_stale_pod(client: Client, pods_store: Cache<Pod>, key: Key) -> Result<Requeue, Error> {
    let Some(pod) = pods_store.get(&key) else {
        return Ok(None);
    };
    let Some(expiry) = disruption_target_expiry(&pod) else {
        return Ok(None);
    };
    let wait = expiry.duration_since(jiff::Timestamp::now());
    if wait.is_positive() {
        return Ok(Some(Duration::try_from(wait).unwrap_or_default()));
    }
    let patch = json!({"status": {"conditions": [{
        "type": DISRUPTION_TARGET,
        "status": "False",
        "lastTransitionTime": now(),
    }]}});
    tracing::info!(pod = %key, "disruption: resetting a stale DisruptionTarget condition");
    Api::<Pod>::namespaced(client, &key.namespace)
        .patch_status(&key.name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(None)
}

/// Queues every budget of `namespace`.
fn enqueue_namespace(pdbs: &Cache<PodDisruptionBudget>, queue: &WorkQueue<Key>, namespace: Option<&str>) {
    for pdb in pdbs.list(namespace.unwrap_or_default()) {
        queue.add(Key::of(pdb.as_ref()));
    }
}

/// Re-syncs a namespace's budgets when a workload (and so maybe its scale) changes.
fn watch_scale<K>(informers: &SharedInformers, pdbs: &Cache<PodDisruptionBudget>, queue: &WorkQueue<Key>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (pdbs, queue) = (pdbs.clone(), queue.clone());
    informer::watch(informers, move |o: &K, _| {
        enqueue_namespace(&pdbs, &queue, o.meta().namespace.as_deref())
    });
}

/// Runs the controller over informers of its own until `shutdown` is cancelled.
pub async fn run(client: Client, config: DisruptionConfig, shutdown: CancellationToken) -> Result<(), Error> {
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
    config: DisruptionConfig,
    informers: SharedInformers,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let queue: WorkQueue<Key> = WorkQueue::default();
    let stale: WorkQueue<Key> = WorkQueue::default();
    let q = queue.clone();
    let pdbs = informer::watch(&informers, move |pdb: &PodDisruptionBudget, _| {
        q.add(Key::of(pdb))
    });
    let (q, s, p) = (queue.clone(), stale.clone(), pdbs.clone());
    let pods_store = informer::watch(&informers, move |pod: &Pod, deleted| {
        enqueue_namespace(&p, &q, pod.metadata.namespace.as_deref());
        if !deleted && disruption_target_expiry(pod).is_some() {
            s.add(Key::of(pod));
        }
    });
    watch_scale::<ReplicaSet>(&informers, &pdbs, &queue);
    watch_scale::<Deployment>(&informers, &pdbs, &queue);
    watch_scale::<StatefulSet>(&informers, &pdbs, &queue);
    watch_scale::<ReplicationController>(&informers, &pdbs, &queue);
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async { pdbs.synced().await; pods_store.synced().await } => {}
    }
    // Whatever was listed before the handlers were in place.
    for pdb in pdbs.state() {
        queue.add(Key::of(pdb.as_ref()));
    }
    for pod in pods_store.state() {
        if disruption_target_expiry(&pod).is_some() {
            stale.add(Key::of(pod.as_ref()));
        }
    }
    let stores = Arc::new(Stores {
        pdbs,
        pods: pods_store.clone(),
        events: EventSink::new(client.clone(), CONTROLLER_NAME, &config.identity),
    });
    let c = client.clone();
    let budgets = informer::run_workers(queue, 1, shutdown.clone(), CONTROLLER_NAME, move |key| {
        sync(c.clone(), stores.clone(), key)
    });
    let stale_pods = informer::run_workers(stale, 1, shutdown, CONTROLLER_NAME, move |key| {
        sync_stale_pod(client.clone(), pods_store.clone(), key)
    });
    tokio::join!(budgets, stale_pods);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::pods::tests::pod;
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: kube::api::ObjectMeta {
                name: Some("web".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn percentages_round_up_as_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&pct("50%"), 5, true), Ok(3));
        assert_eq!(scaled_value(&pct("50%"), 5, false), Ok(2));
        assert_eq!(scaled_value(&pct("0%"), 5, true), Ok(0));
        assert_eq!(scaled_value(&pct("100%"), 7, true), Ok(7));
        assert_eq!(scaled_value(&IntOrString::Int(2), 7, true), Ok(2));
        assert!(scaled_value(&pct("half"), 7, true).is_err());
    }

    #[test]
    fn expected_and_desired_counts_follow_min_available_and_max_unavailable() {
        let int = IntOrString::Int;
        let pct = |s: &str| IntOrString::String(s.into());
        let no_scale = || Err::<i32, _>("no scale".to_string());
        assert_eq!(expected_counts(&pdb(Some(int(2)), None), 3, no_scale), Ok((3, 2)));
        assert_eq!(
            expected_counts(&pdb(Some(pct("50%")), None), 3, || Ok(5)),
            Ok((5, 3))
        );
        assert_eq!(expected_counts(&pdb(None, Some(int(1))), 3, || Ok(4)), Ok((4, 3)));
        // maxUnavailable rounds up, so desiredHealthy rounds down.
        assert_eq!(
            expected_counts(&pdb(None, Some(pct("30%"))), 3, || Ok(5)),
            Ok((5, 3))
        );
        assert_eq!(expected_counts(&pdb(None, Some(int(9))), 3, || Ok(4)), Ok((4, 0)));
        assert_eq!(
            expected_counts(&pdb(None, Some(int(1))), 3, no_scale),
            Err("no scale".to_string())
        );
    }

    #[test]
    fn status_counts_ready_pods_and_sets_the_condition() {
        let a = pod("a", "10.0.0.1", true, &[]);
        let b = pod("b", "10.0.0.2", true, &[]);
        let c = pod("c", "10.0.0.3", false, &[]);
        let now = Time(jiff::Timestamp::from_second(1_000_000).unwrap());
        let healthy = current_healthy(&[&a, &b, &c], &BTreeMap::new());
        assert_eq!(healthy, 2);
        let budget = pdb(Some(IntOrString::Int(1)), None);
        let s = computed_status(&budget, 3, 1, healthy, BTreeMap::new(), &now);
        assert_eq!(
            (
                s.disruptions_allowed,
                s.current_healthy,
                s.desired_healthy,
                s.expected_pods
            ),
            (Some(1), Some(2), Some(1), Some(3))
        );
        assert_eq!(s.observed_generation, Some(3));
        let cond = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("True", SUFFICIENT_PODS)
        );
        let mut spent = budget;
        spent.status = Some(s);
        let later = Time(jiff::Timestamp::from_second(1_000_100).unwrap());
        let s = computed_status(&spent, 3, 2, 2, BTreeMap::new(), &later);
        let cond = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (s.disruptions_allowed, cond.status.as_str(), cond.reason.as_str()),
            (Some(0), "False", INSUFFICIENT_PODS)
        );
        assert_eq!(cond.last_transition_time, later);
        let failed = failed_status(&spent, "found no controller ref for pod \"a\"", &later);
        let cond = &failed.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (failed.disruptions_allowed, cond.reason.as_str()),
            (Some(0), SYNC_FAILED)
        );
    }

    #[test]
    fn a_disruption_target_goes_stale_two_minutes_after_it_was_set_unless_the_pod_is_deleting() {
        use k8s_openapi::api::core::v1::PodCondition;
        let set_at = jiff::Timestamp::from_second(1_000_000).unwrap();
        let mut p = pod("a", "10.0.0.1", true, &[]);
        assert_eq!(disruption_target_expiry(&p), None);
        p.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(PodCondition {
                type_: DISRUPTION_TARGET.into(),
                status: "True".into(),
                last_transition_time: Some(Time(set_at)),
                ..PodCondition::default()
            });
        assert_eq!(
            disruption_target_expiry(&p),
            Some(set_at + jiff::SignedDuration::from_secs(120))
        );
        p.metadata.deletion_timestamp = Some(Time(set_at));
        assert_eq!(disruption_target_expiry(&p), None);
    }

    #[test]
    fn disrupted_pods_expire_after_two_minutes_or_when_deleting() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let at = |secs_ago: i64| Time(now - jiff::SignedDuration::from_secs(secs_ago));
        let a = pod("a", "10.0.0.1", true, &[]);
        let b = pod("b", "10.0.0.2", true, &[]);
        let mut c = pod("c", "10.0.0.3", true, &[]);
        c.metadata.deletion_timestamp = Some(at(1));
        let map: BTreeMap<String, Time> = [
            ("a".to_string(), at(30)),
            ("b".to_string(), at(121)),
            ("c".to_string(), at(1)),
            ("gone".to_string(), at(1)),
        ]
        .into();
        let (kept, recheck) = prune_disrupted(&map, &[&a, &b, &c], now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(recheck, Some(now + jiff::SignedDuration::from_secs(90)));
        assert_eq!(
            current_healthy(&[&a, &b, &c], &kept),
            1,
            "a was just evicted, c is leaving"
        );
    }
}
