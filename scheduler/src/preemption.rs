//! Whether preemption could help a pod no node fits (upstream's DefaultPreemption PostFilter up
//! to its dry run): a pod with `preemptionPolicy: Never` may not preempt; nodes rejected as
//! unresolvable are not helped; on the others, removing every lower-priority pod must let the
//! pod pass the filters. Choosing and evicting victims (fewest PDB violations, lowest priority,
//! `nominatedNodeName`) builds on the candidates found here.

use std::collections::BTreeMap;

use crate::framework::Status;
use crate::profile::Profile;
use crate::schedule::{Diagnosis, FitError, is_unresolvable, run_filters, run_pre_filters};
use crate::snapshot::{PodInfo, Snapshot};

/// Upstream's PostFilter plugin name.
pub const NAME: &str = "DefaultPreemption";
/// Upstream's status for nodes where evicting pods cannot help.
pub const REASON_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's status for nodes without lower-priority pods.
pub const REASON_NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// What preemption concluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The PostFilter message (`preemption: ...`), when preemption cannot help.
    pub message: Option<String>,
    /// Nodes where evicting lower-priority pods makes the pod fit.
    pub candidates: Vec<String>,
}

fn not_eligible(pod: &PodInfo, snapshot: &Snapshot, diagnosis: &Diagnosis) -> Option<&'static str> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Some("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())?;
    if is_unresolvable(diagnosis.status_of(nominated)) {
        return None;
    }
    let node = snapshot.node(nominated)?;
    let preempted = |p: &PodInfo| {
        p.terminating
            && p.pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| {
                    c.type_ == "DisruptionTarget"
                        && c.status == "True"
                        && c.reason.as_deref() == Some("PreemptionByScheduler")
                })
    };
    node.pods
        .iter()
        .any(|p| p.priority < pod.priority && preempted(p))
        .then_some("not eligible due to a terminating pod on the nominated node.")
}

/// Runs the PostFilter's eligibility check and dry run.
pub fn evaluate(pod: &PodInfo, snapshot: &Snapshot, profile: &Profile, diagnosis: &Diagnosis) -> Verdict {
    if let Some(msg) = not_eligible(pod, snapshot, diagnosis) {
        return Verdict {
            message: Some(format!("preemption: {msg}")),
            candidates: Vec::new(),
        };
    }
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    let mut candidates = Vec::new();
    let mut scratch: Option<Snapshot> = None;
    for node in snapshot.nodes() {
        if is_unresolvable(diagnosis.status_of(&node.name)) {
            statuses.insert(node.name.clone(), Status::unresolvable(NAME, REASON_NOT_HELPFUL));
            continue;
        }
        let victims: Vec<_> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if victims.is_empty() {
            statuses.insert(node.name.clone(), Status::unresolvable(NAME, REASON_NO_VICTIMS));
            continue;
        }
        let sim = scratch.get_or_insert_with(|| snapshot.clone());
        for v in &victims {
            sim.forget(&v.namespace, &v.name);
        }
        let outcome = match run_pre_filters(profile, pod, sim) {
            Err((status, _)) => Err(status),
            Ok(pre) => match sim.node(&node.name) {
                Some(n) if pre.nodes.as_ref().is_none_or(|names| names.contains(&node.name)) => {
                    run_filters(profile, &pre, pod, n)
                }
                _ => Err(Status::unresolvable(NAME, REASON_NOT_HELPFUL)),
            },
        };
        for v in victims {
            let _ = sim.assume(v, &node.name);
        }
        match outcome {
            Ok(()) => candidates.push(node.name.clone()),
            Err(status) => {
                statuses.insert(node.name.clone(), status);
            }
        }
    }
    if !candidates.is_empty() {
        return Verdict {
            message: None,
            candidates,
        };
    }
    let err = FitError {
        num_all_nodes: snapshot.len(),
        diagnosis: Diagnosis {
            node_to_status: statuses,
            ..Default::default()
        },
        preemption_candidates: Vec::new(),
    };
    Verdict {
        message: Some(format!("preemption: {err}")),
        candidates,
    }
}
