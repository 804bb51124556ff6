//! The pure decisions of the Deployment controller, as upstream's `deployment/util`: surge and
//! unavailability arithmetic (ints and percentages with upstream's rounding), the new replica
//! set's size, proportional scaling, revisions and their history, the replica annotations, the
//! pod-template hash, and the status and its conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// The revision of a replica set (and of its deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a replica set served, comma-separated.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The deployment's replicas when the replica set was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The deployment's replicas plus max surge when the replica set was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label telling the replica sets of one deployment apart.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Longest revision history kept, in characters.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations never copied to its replica sets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// `Available` condition reasons and `Progressing` condition reasons.
pub mod reasons {
    /// Available=True.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Available=False.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    /// Progressing=True after creating the new replica set.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// Progressing=True on finding an existing new replica set.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// Progressing=True while pods move.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// Progressing=True when the rollout completed.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progressing=False after progressDeadlineSeconds without progress.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// Progressing=False when creating the replica set failed.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    /// Progressing=Unknown while paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// Progressing=Unknown after resuming.
    pub const RESUMED: &str = "DeploymentResumed";
}

/// `spec.replicas` (1 when unset, as defaulted).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// A replica set's `spec.replicas`.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

/// Sum of `spec.replicas`.
pub fn spec_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_replicas(rs)).sum()
}

/// Sum of `status.replicas`.
pub fn actual_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_status(rs).0).sum()
}

/// Sum of `status.readyReplicas`.
pub fn ready_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_status(rs).1).sum()
}

/// Sum of `status.availableReplicas`.
pub fn available_replicas(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_status(rs).2).sum()
}

/// A replica set's `status.availableReplicas`.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs_status(rs).2
}

/// True for the RollingUpdate strategy (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// An int, or a percentage of `total` rounded up or down (upstream's
/// `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%') else {
                return Err(format!("invalid type: string is not a percentage: {s:?}"));
            };
            let p: i64 = p
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            let exact = p as f64 * f64::from(total) / 100.0;
            Ok(if round_up { exact.ceil() } else { exact.floor() } as i32)
        }
    }
}

/// Max surge and max unavailable for `desired` replicas; both zero becomes unavailable 1.
pub fn resolve_fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(surge.unwrap_or(&zero), desired, true)?;
    let unavailable = scaled_value(unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
    .unwrap_or((0, 0))
}

/// The deployment's max surge (0 for Recreate or an invalid value).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// The deployment's max unavailable, at most its replicas (0 for Recreate).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// How big the new replica set may be now (upstream's `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> Result<i32, String> {
    if !is_rolling(d) {
        return Ok(replicas(d));
    }
    let surge = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_surge.clone())
        .unwrap_or(IntOrString::Int(0));
    let surge = scaled_value(&surge, replicas(d), true)?;
    let current = spec_replicas(all);
    let max_total = replicas(d) + surge;
    if current >= max_total {
        return Ok(rs_replicas(new_rs));
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new_rs));
    Ok(rs_replicas(new_rs) + up)
}

fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The `desired-replicas` annotation.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation_i32(rs, DESIRED_REPLICAS)
}

/// True when the new replica set carries the whole deployment and all of it is available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = desired_replicas_annotation(rs) else {
        return false;
    };
    rs_replicas(rs) == replicas(d) && desired == replicas(d) && rs_available(rs) == replicas(d)
}

/// Sets the desired and max replicas annotations; true when something changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// True when the replica annotations differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.as_ref();
    a.and_then(|a| a.get(DESIRED_REPLICAS)) != Some(&desired.to_string())
        || a.and_then(|a| a.get(MAX_REPLICAS)) != Some(&max.to_string())
}

/// How many replicas this replica set gains (or loses) when the deployment's total changes by
/// `to_add` and `added` was already handed out (upstream's `GetProportion`).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// The replica set's share of the deployment's new size, minus its current size.
fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = replicas(d) + max_surge(d);
    let annotated = annotation_i32(rs, MAX_REPLICAS)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

/// New sizes of `active` replica sets (the deployment's active ones) when the deployment
/// scales during a rollout (upstream's proportional scaling): largest first (ties: newest first
/// when growing, oldest first when shrinking), each gets its proportion, and the rounding
/// leftover goes to the first. Also returns `up` or `down`.
pub fn proportional_sizes(d: &Deployment, active: &mut [&ReplicaSet]) -> (Vec<(String, i32)>, &'static str) {
    let current = spec_replicas(active);
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        replicas(d)
    };
    let to_add = allowed - current;
    let op = if to_add > 0 {
        active.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| created(b).cmp(&created(a)))
        });
        "up"
    } else {
        active.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| created(a).cmp(&created(b)))
        });
        "down"
    };
    let mut added = 0;
    let mut sizes: Vec<(String, i32)> = Vec::new();
    for rs in active.iter() {
        let mut size = rs_replicas(rs);
        if to_add != 0 {
            let p = proportion(rs, d, to_add, added);
            size += p;
            added += p;
        }
        sizes.push((rs.metadata.name.clone().unwrap_or_default(), size));
    }
    if to_add != 0 && !sizes.is_empty() {
        let leftover = to_add - added;
        sizes[0].1 = (sizes[0].1 + leftover).max(0);
    }
    (sizes, op)
}

/// A replica set's creation time (for ordering).
pub fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, then by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn sort_by_creation(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The replica set's revision (0 when missing or invalid).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest revision.
pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter().map(revision).max().unwrap_or(0)
}

/// Drops the hash label and empty values so two templates compare as upstream's semantic
/// equality does.
fn normalized_template(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH_LABEL);
    }
    prune(&mut v);
    v
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                prune(child);
            }
            m.retain(|_, c| !is_empty(c));
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Templates equal except for the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized_template(a) == normalized_template(b)
}

/// The replica set running the deployment's current template: the oldest whose template
/// matches.
pub fn find_new_rs<'a>(d: &Deployment, sorted: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    sorted.iter().find(|rs| {
        rs.spec
            .template
            .as_ref()
            .is_some_and(|t| equal_ignore_hash(t, &d.spec.template))
    })
}

/// The pod-template hash: FNV-32a over the template (and the collision count), encoded with
/// upstream's safe alphabet.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// Upstream's `SafeEncodeString`: each byte mapped onto consonants and digits that cannot
/// spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Copies the deployment's annotations (except the controller's own) onto the replica set;
/// true when something changed.
pub fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Sets the new replica set's annotations for `new_revision` (upstream's
/// `SetNewReplicaSetAnnotations`): copies the deployment's, raises the revision (remembering
/// the old one in the history, at most `limit` characters), and on creation sets the replica
/// annotations. True when something changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    limit: usize,
) -> bool {
    let mut changed = copy_annotations(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = a.get(REVISION).cloned();
    let old_n: i64 = match old.as_deref() {
        None => 0,
        Some(v) => match v.parse() {
            Ok(n) => n,
            Err(_) => {
                tracing::warn!(
                    revision = v,
                    "updating replica set revision: invalid old revision"
                );
                return false;
            }
        },
    };
    let Ok(new_n) = new_revision.parse::<i64>() else {
        tracing::warn!(
            revision = new_revision,
            "updating replica set revision: invalid new revision"
        );
        return false;
    };
    if old_n < new_n {
        a.insert(REVISION.into(), new_revision.into());
        changed = true;
    }
    if let Some(old) = old
        && old_n < new_n
    {
        let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
        if history.is_empty() {
            a.insert(REVISION_HISTORY.into(), old);
        } else {
            let mut parts: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > limit && start < parts.len() {
                total -= parts[start].len() + 1;
                start += 1;
            }
            if total <= limit {
                parts = parts.split_off(start);
                parts.push(&old);
                a.insert(REVISION_HISTORY.into(), parts.join(","));
            } else {
                tracing::warn!("not appending revision to the history: it would exceed the limit");
            }
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// The `Progressing` / `Available` / `ReplicaFailure` condition of a status.
pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// A condition stamped `now` (whole seconds, as the API stores it).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition: unchanged when status and reason are the same; the transition time kept
/// when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = condition(status, c.type_.as_deref().unwrap_or_default()) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, c.type_.as_deref().unwrap_or_default());
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Removes a condition.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

/// A progress deadline is set (and is not "infinite").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.progress_deadline_seconds.is_some_and(|s| s != i32::MAX)
}

fn num(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Every replica updated and available, and the generation observed.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    num(s.updated_replicas) == r
        && num(s.replicas) == r
        && num(s.available_replicas) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Progress since the stored status: more updated, fewer old, more ready or more available.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = num(old.replicas) - num(old.updated_replicas);
    let new_old = num(new.replicas) - num(new.updated_replicas);
    num(new.updated_replicas) > num(old.updated_replicas)
        || new_old < old_old
        || num(new.ready_replicas) > num(old.ready_replicas)
        || num(new.available_replicas) > num(old.available_replicas)
}

/// No progress for `progressDeadlineSeconds` since the Progressing condition's last update.
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = condition(new, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reasons::NEW_RS_AVAILABLE) => return false,
        Some(reasons::TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    let deadline = SignedDuration::from_secs(i64::from(d.spec.progress_deadline_seconds.unwrap_or(0)));
    from.0 + deadline < now
}

/// The status from the replica sets (upstream's `calculateStatus`), with the Available
/// condition; other conditions carried over.
pub fn calculate_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = available_replicas(all);
    let total = spec_replicas(all);
    let old = d.status.clone().unwrap_or_default();
    let mut s = DeploymentStatus {
        observed_generation: Some(d.metadata.generation.unwrap_or(0)),
        replicas: Some(actual_replicas(all)),
        updated_replicas: Some(new_rs.map_or(0, |rs| actual_replicas(&[rs]))),
        ready_replicas: Some(ready_replicas(all)),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: Some(old.conditions.clone().unwrap_or_default()),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut s,
            new_condition(
                "Available",
                "True",
                reasons::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut s,
            new_condition(
                "Available",
                "False",
                reasons::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    s
}

/// Statuses equal once unset counters count as zero and empty condition lists as none.
pub fn same_status(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let norm = |s: &DeploymentStatus| {
        (
            num(s.replicas),
            num(s.updated_replicas),
            num(s.ready_replicas),
            num(s.available_replicas),
            num(s.unavailable_replicas),
            s.observed_generation.unwrap_or(0),
            s.collision_count,
            s.conditions.clone().unwrap_or_default(),
        )
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests;
