//! The parts of a pod's status the kubelet derives from its container statuses, as upstream's
//! kubelet computes them (`getPhase`, `pkg/kubelet/status/generate.go`): the phase and the
//! kubelet-owned conditions `PodReadyToStartContainers`, `Initialized`, `ContainersReady`,
//! `Ready` and `PodScheduled`, with reasons and messages in upstream's words and transition times
//! kept while a condition's status does not change.

use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodCondition, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `Pending`.
pub const PENDING: &str = "Pending";
/// `Running`.
pub const RUNNING: &str = "Running";
/// `Succeeded`.
pub const SUCCEEDED: &str = "Succeeded";
/// `Failed`.
pub const FAILED: &str = "Failed";

/// The condition types the kubelet owns.
pub const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Whether a phase is terminal.
pub fn is_terminal(phase: &str) -> bool {
    phase == SUCCEEDED || phase == FAILED
}

/// Whether an init container is a sidecar (`restartPolicy: Always`).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn status_of<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn terminated_code(s: &ContainerStatus) -> Option<i32> {
    s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

fn waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}

fn last_terminated_code(s: &ContainerStatus) -> Option<i32> {
    s.last_state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

/// Whether a regular container has ever started (it runs, ran, or is restarting).
fn any_regular_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        status_of(statuses, &c.name)
            .is_some_and(|s| running(s) || terminated_code(s).is_some() || last_terminated_code(s).is_some())
    })
}

/// The pod phase from its container statuses (init and regular together), as upstream's
/// `getPhase`. `pod_is_terminal` means the pod is being stopped for good (deleted, deadline), so
/// its containers will not restart.
pub fn phase(spec: &PodSpec, statuses: &[ContainerStatus], pod_is_terminal: bool) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in spec.init_containers.iter().flatten().filter(|c| !is_sidecar(c)) {
        let Some(s) = status_of(statuses, &c.name) else {
            pending_init += 1;
            continue;
        };
        if running(s) {
            pending_init += 1;
        } else if let Some(code) = terminated_code(s) {
            failed_init += usize::from(code != 0);
        } else if waiting(s) {
            match last_terminated_code(s) {
                Some(code) => failed_init += usize::from(code != 0),
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running_n, mut waiting_n, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec.init_containers.iter().flatten().filter(|c| is_sidecar(c)) {
        let Some(s) = status_of(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        if running(s) {
            if s.started != Some(true) {
                pending_init += 1;
            }
            running_n += 1;
        } else if terminated_code(s).is_some() {
        } else if waiting(s) {
            if last_terminated_code(s).is_none() {
                pending_init += 1;
                waiting_n += 1;
            }
        } else {
            pending_init += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = status_of(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        if running(s) {
            running_n += 1;
        } else if let Some(code) = terminated_code(s) {
            stopped += 1;
            succeeded += usize::from(code == 0);
        } else if waiting(s) {
            if last_terminated_code(s).is_some() {
                stopped += 1;
            } else {
                waiting_n += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_init > 0 && policy == "Never" {
        return FAILED;
    }
    if (pending_init > 0 && !any_regular_started(spec, statuses)) || waiting_n > 0 {
        return PENDING;
    }
    if running_n > 0 && unknown == 0 {
        return RUNNING;
    }
    if running_n == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded { SUCCEEDED } else { FAILED };
        }
        if policy == "Always" {
            return RUNNING;
        }
        if stopped == succeeded {
            return SUCCEEDED;
        }
        if policy == "Never" {
            return FAILED;
        }
        return RUNNING;
    }
    PENDING
}

pub use api_util::resources::qos_class;

/// Go's `%s` of a string slice: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// A condition without times; [`with_times`] fills them in.
fn cond(kind: &str, status: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        message,
        ..PodCondition::default()
    }
}

fn containers_ready(spec: &PodSpec, statuses: &[ContainerStatus], phase: &str) -> PodCondition {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec.init_containers.iter().flatten().filter(|c| is_sidecar(c));
    for c in sidecars.chain(&spec.containers) {
        match status_of(statuses, &c.name) {
            Some(s) if !s.ready => unready.push(c.name.as_str()),
            Some(_) => {}
            None => unknown.push(c.name.as_str()),
        }
    }
    if phase == SUCCEEDED && unknown.is_empty() {
        return cond("ContainersReady", false, Some("PodCompleted"), None);
    }
    if phase == FAILED {
        return cond("ContainersReady", false, Some("PodFailed"), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!("containers with unknown status: {}", go_list(&unknown)));
    }
    if !unready.is_empty() {
        messages.push(format!("containers with unready status: {}", go_list(&unready)));
    }
    if messages.is_empty() {
        cond("ContainersReady", true, None, None)
    } else {
        cond(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(messages.join(", ")),
        )
    }
}

fn ready(spec: &PodSpec, others: &[PodCondition], containers: &PodCondition) -> PodCondition {
    if containers.status != "True" {
        return PodCondition {
            type_: "Ready".into(),
            ..containers.clone()
        };
    }
    let mut messages = Vec::new();
    for gate in spec.readiness_gates.iter().flatten() {
        match others.iter().find(|c| c.type_ == gate.condition_type) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate {:?} is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        cond("Ready", true, None, None)
    } else {
        cond(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(messages.join(", ")),
        )
    }
}

fn initialized(spec: &PodSpec, statuses: &[ContainerStatus], phase: &str) -> PodCondition {
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = status_of(statuses, &c.name) else {
            unknown.push(c.name.as_str());
            continue;
        };
        let done = if is_sidecar(c) {
            s.started == Some(true)
        } else {
            s.ready
        };
        if !done {
            incomplete.push(c.name.as_str());
        }
    }
    if phase == SUCCEEDED && unknown.is_empty() {
        return cond("Initialized", true, Some("PodCompleted"), None);
    }
    if any_regular_started(spec, statuses) {
        return cond("Initialized", true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!("containers with unknown status: {}", go_list(&unknown)));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        cond("Initialized", true, None, None)
    } else {
        cond(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(messages.join(", ")),
        )
    }
}

/// What the conditions are computed from.
#[derive(Debug, Clone, Copy)]
pub struct ConditionInputs<'a> {
    /// The pod's spec.
    pub spec: &'a PodSpec,
    /// Init and regular container statuses together.
    pub statuses: &'a [ContainerStatus],
    /// The phase from [`phase`].
    pub phase: &'a str,
    /// Whether the pod's sandbox (network) is up.
    pub sandbox_ready: bool,
    /// The pod's `metadata.generation`, echoed as `observedGeneration`.
    pub generation: Option<i64>,
    /// The conditions the pod has now (others' conditions for readiness gates, and the previous
    /// kubelet conditions whose transition times are kept).
    pub current: &'a [PodCondition],
    /// The time of a transition happening now.
    pub now: &'a Time,
}

/// The kubelet-owned conditions, in upstream's order.
pub fn kubelet_conditions(input: ConditionInputs<'_>) -> Vec<PodCondition> {
    let others: Vec<PodCondition> = input
        .current
        .iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let containers = containers_ready(input.spec, input.statuses, input.phase);
    let mut ready_cond = ready(input.spec, &others, &containers);
    if is_terminal(input.phase) && ready_cond.status == "True" {
        ready_cond = cond("Ready", false, None, None);
    }
    let scheduled = input
        .current
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .map(|mut c| {
            c.status = "True".into();
            c.reason = None;
            c.message = None;
            c
        })
        .unwrap_or_else(|| cond("PodScheduled", true, None, None));
    let list = vec![
        cond("PodReadyToStartContainers", input.sandbox_ready, None, None),
        initialized(input.spec, input.statuses, input.phase),
        ready_cond,
        containers,
        scheduled,
    ];
    list.into_iter()
        .map(|c| with_times(c, input.current, input.generation, input.now))
        .collect()
}

/// Keeps the previous transition time while the status is unchanged, else `now`.
fn with_times(
    mut c: PodCondition,
    current: &[PodCondition],
    generation: Option<i64>,
    now: &Time,
) -> PodCondition {
    let previous = current.iter().find(|p| p.type_ == c.type_);
    c.last_transition_time = match previous {
        Some(p) if p.status == c.status && p.last_transition_time.is_some() => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    if c.type_ == "PodScheduled" {
        // The scheduler's condition: keep its times and generation.
        if let Some(p) = previous {
            c.last_probe_time = p.last_probe_time.clone();
            c.observed_generation = p.observed_generation;
            return c;
        }
    }
    c.observed_generation = generation;
    c
}

#[cfg(test)]
mod tests;
