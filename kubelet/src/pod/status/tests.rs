use super::*;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, PodReadinessGate,
};
use k8s_openapi::jiff::Timestamp;

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        ..Container::default()
    }
}

fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(name)
    }
}

fn spec(init: Vec<Container>, regular: &[&str], policy: &str) -> PodSpec {
    PodSpec {
        init_containers: (!init.is_empty()).then_some(init),
        containers: regular.iter().map(|n| container(n)).collect(),
        restart_policy: Some(policy.into()),
        ..PodSpec::default()
    }
}

fn running(name: &str, ready: bool) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        ready,
        started: Some(true),
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn exited(name: &str, code: i32) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        ready: code == 0,
        started: Some(false),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn waiting(name: &str, after_exit: Option<i32>) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        started: Some(false),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting::default()),
            ..ContainerState::default()
        }),
        last_state: after_exit.map(|code| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

#[test]
fn phases_as_upstreams_get_phase() {
    let s = spec(vec![], &["a"], "Always");
    assert_eq!(phase(&s, &[running("a", true)], false), RUNNING);
    assert_eq!(phase(&s, &[waiting("a", None)], false), PENDING);
    assert_eq!(phase(&s, &[], false), PENDING, "unknown containers");
    assert_eq!(
        phase(&s, &[waiting("a", Some(1))], false),
        RUNNING,
        "crash looping"
    );
    assert_eq!(phase(&s, &[exited("a", 1)], false), RUNNING, "Always restarts");
    assert_eq!(
        phase(&s, &[exited("a", 0)], true),
        SUCCEEDED,
        "deleted, all stopped cleanly"
    );
    assert_eq!(phase(&s, &[exited("a", 137)], true), FAILED);

    let s = spec(vec![], &["a", "b"], "Never");
    assert_eq!(phase(&s, &[exited("a", 0), running("b", true)], false), RUNNING);
    assert_eq!(phase(&s, &[exited("a", 0), exited("b", 0)], false), SUCCEEDED);
    assert_eq!(phase(&s, &[exited("a", 0), exited("b", 3)], false), FAILED);

    let s = spec(vec![], &["a"], "OnFailure");
    assert_eq!(phase(&s, &[exited("a", 2)], false), RUNNING, "OnFailure restarts");
    assert_eq!(phase(&s, &[exited("a", 0)], false), SUCCEEDED);
}

#[test]
fn init_containers_hold_the_pod_pending() {
    let s = spec(vec![container("i")], &["a"], "Never");
    let pending = [running("i", false), waiting("a", None)];
    assert_eq!(phase(&s, &pending, false), PENDING);
    assert_eq!(phase(&s, &[exited("i", 1), waiting("a", None)], false), FAILED);
    let s = spec(vec![container("i")], &["a"], "Always");
    assert_eq!(
        phase(&s, &[waiting("i", Some(1)), waiting("a", None)], false),
        PENDING
    );
    assert_eq!(phase(&s, &[exited("i", 0), running("a", true)], false), RUNNING);
}

#[test]
fn sidecars_must_start_and_do_not_count_once_terminated() {
    let s = spec(vec![sidecar("s")], &["a"], "Never");
    let mut not_started = running("s", false);
    not_started.started = Some(false);
    assert_eq!(phase(&s, &[not_started, waiting("a", None)], false), PENDING);
    assert_eq!(
        phase(&s, &[running("s", true), running("a", true)], false),
        RUNNING
    );
    assert_eq!(phase(&s, &[exited("s", 0), exited("a", 0)], false), SUCCEEDED);
    assert_eq!(phase(&s, &[running("s", true), exited("a", 0)], false), RUNNING);
}

fn at(s: i64) -> Time {
    Time(Timestamp::from_second(1_700_000_000 + s).unwrap())
}

fn conditions_for(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    current: &[PodCondition],
    now: &Time,
) -> Vec<PodCondition> {
    let phase = phase(spec, statuses, false);
    kubelet_conditions(ConditionInputs {
        spec,
        statuses,
        phase,
        sandbox_ready: !is_terminal(phase),
        generation: Some(1),
        current,
        now,
    })
}

fn find<'a>(list: &'a [PodCondition], kind: &str) -> &'a PodCondition {
    list.iter().find(|c| c.type_ == kind).unwrap()
}

#[test]
fn conditions_in_upstreams_words() {
    let s = spec(vec![container("init")], &["a", "b"], "Always");
    let statuses = [running("init", false), waiting("a", None), waiting("b", None)];
    let c = conditions_for(&s, &statuses, &[], &at(0));
    let types: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    let init = find(&c, "Initialized");
    assert_eq!(
        (init.status.as_str(), init.reason.as_deref()),
        ("False", Some("ContainersNotInitialized"))
    );
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [init]")
    );
    let ready = find(&c, "Ready");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [a b]")
    );
    assert_eq!(find(&c, "PodScheduled").status, "True");
    assert_eq!(find(&c, "Ready").observed_generation, Some(1));

    let statuses = [exited("init", 0), running("a", true), running("b", true)];
    let later = conditions_for(&s, &statuses, &c, &at(10));
    for kind in ["Initialized", "Ready", "ContainersReady"] {
        let cond = find(&later, kind);
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_deref()),
            ("True", None),
            "{kind}"
        );
        assert_eq!(cond.last_transition_time, Some(at(10)), "{kind} changed");
    }
    assert_eq!(
        find(&later, "PodReadyToStartContainers").last_transition_time,
        Some(at(0)),
        "unchanged"
    );
}

#[test]
fn terminal_pods_and_readiness_gates() {
    let s = spec(vec![container("i")], &["a"], "Never");
    let statuses = [exited("i", 0), exited("a", 0)];
    let c = conditions_for(&s, &statuses, &[], &at(0));
    assert_eq!(find(&c, "Ready").reason.as_deref(), Some("PodCompleted"));
    assert_eq!(find(&c, "ContainersReady").status, "False");
    assert_eq!(find(&c, "Initialized").reason.as_deref(), Some("PodCompleted"));
    assert_eq!(find(&c, "PodReadyToStartContainers").status, "False");
    let failed = conditions_for(&s, &[exited("i", 0), exited("a", 1)], &[], &at(0));
    assert_eq!(find(&failed, "Ready").reason.as_deref(), Some("PodFailed"));

    let mut gated = spec(vec![], &["a"], "Always");
    gated.readiness_gates = Some(vec![PodReadinessGate {
        condition_type: "example.com/lb".into(),
    }]);
    let c = conditions_for(&gated, &[running("a", true)], &[], &at(0));
    let ready = find(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ReadinessGatesNotReady"))
    );
    assert_eq!(
        ready.message.as_deref(),
        Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
    );
    assert_eq!(find(&c, "ContainersReady").status, "True");
    let gate = PodCondition {
        type_: "example.com/lb".into(),
        status: "True".into(),
        ..PodCondition::default()
    };
    let c = conditions_for(&gated, &[running("a", true)], &[gate], &at(1));
    assert_eq!(find(&c, "Ready").status, "True");
}

#[test]
fn the_schedulers_condition_is_kept() {
    let s = spec(vec![], &["a"], "Always");
    let scheduled = PodCondition {
        type_: "PodScheduled".into(),
        status: "True".into(),
        last_transition_time: Some(at(-5)),
        observed_generation: Some(1),
        ..PodCondition::default()
    };
    let c = conditions_for(
        &s,
        &[running("a", true)],
        std::slice::from_ref(&scheduled),
        &at(0),
    );
    assert_eq!(find(&c, "PodScheduled"), &scheduled);
}
