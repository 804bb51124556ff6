use super::*;
use k8s_openapi::api::core::v1::{PodStatus, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::pod::status::{self, FAILED, PENDING, RUNNING, SUCCEEDED};

/// A clock at `secs` after a fixed start.
struct Clocks {
    base: Instant,
    wall: Timestamp,
}

impl Clocks {
    fn new() -> Self {
        Clocks {
            base: Instant::now(),
            wall: Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    fn at(&self, secs: f64) -> Clock {
        let d = Duration::from_secs_f64(secs);
        Clock {
            now: self.base + d,
            wall: self.wall + SignedDuration::try_from(d).unwrap(),
        }
    }
}

fn c(name: &str, script: Option<&str>) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox:1.36".into()),
        command: script.map(|s| vec!["sh".into(), "-c".into(), s.into()]),
        ..Container::default()
    }
}

fn pod(init: Vec<Container>, containers: Vec<Container>, policy: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            init_containers: (!init.is_empty()).then_some(init),
            containers,
            restart_policy: Some(policy.into()),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Advances to `secs` and returns (phase, init statuses, statuses, next wake-up in seconds).
fn at(
    sim: &mut SimPod,
    p: &Pod,
    clocks: &Clocks,
    secs: f64,
) -> (String, Vec<ContainerStatus>, Vec<ContainerStatus>, Option<f64>) {
    let clock = clocks.at(secs);
    let next = sim.advance(&clock);
    let (init, regular) = sim.statuses(p, &clock);
    let all: Vec<_> = init.iter().chain(&regular).cloned().collect();
    let phase = status::phase(p.spec.as_ref().unwrap(), &all, sim.stopped.is_some());
    let next = next.map(|n| (n - clocks.base).as_secs_f64());
    (phase.to_string(), init, regular, next)
}

fn terminated(s: &ContainerStatus) -> &ContainerStateTerminated {
    s.state.as_ref().unwrap().terminated.as_ref().unwrap()
}

#[test]
fn a_server_runs_and_is_ready_at_once() {
    let clocks = Clocks::new();
    let p = pod(vec![], vec![c("web", None)], "Always");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (phase, _, s, next) = at(&mut sim, &p, &clocks, 0.0);
    assert_eq!(phase, RUNNING);
    assert_eq!(next, None, "nothing more happens");
    let s = &s[0];
    assert!(s.ready && s.started == Some(true));
    assert_eq!(s.restart_count, 0);
    assert!(s.container_id.as_deref().unwrap().starts_with("sim://"));
    assert_eq!(s.container_id.as_ref().unwrap().len(), "sim://".len() + 64);
    assert!(s.image_id.starts_with("busybox@sha256:"));
    let running = s.state.as_ref().unwrap().running.as_ref().unwrap();
    assert_eq!(
        running.started_at,
        Some(clocks.at(0.0).time_at(clocks.at(0.0).now))
    );
}

#[test]
fn exit_codes_and_restart_policy_never() {
    let clocks = Clocks::new();
    let p = pod(vec![], vec![c("job", Some("exit 3"))], "Never");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (phase, _, s, _) = at(&mut sim, &p, &clocks, 0.0);
    assert_eq!(phase, FAILED);
    let t = terminated(&s[0]);
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert!(sim.is_done());
}

#[test]
fn sleep_completes_after_its_time() {
    let clocks = Clocks::new();
    let p = pod(vec![], vec![c("job", Some("sleep 1"))], "OnFailure");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (phase, _, _, next) = at(&mut sim, &p, &clocks, 0.0);
    assert_eq!((phase.as_str(), next), (RUNNING, Some(1.0)));
    let (phase, _, s, next) = at(&mut sim, &p, &clocks, 1.5);
    assert_eq!((phase.as_str(), next), (SUCCEEDED, None));
    let t = terminated(&s[0]);
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(
        t.finished_at,
        Some(clocks.at(1.0).time_at(clocks.at(1.0).now)),
        "finished when the sleep ended"
    );
}

#[test]
fn init_containers_run_in_order_then_the_containers_start() {
    let clocks = Clocks::new();
    let p = pod(
        vec![c("fetch", Some("sleep 2")), c("migrate", None)],
        vec![c("app", None)],
        "Always",
    );
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (phase, init, s, next) = at(&mut sim, &p, &clocks, 0.0);
    assert_eq!((phase.as_str(), next), (PENDING, Some(2.0)));
    assert!(init[0].state.as_ref().unwrap().running.is_some());
    assert_eq!(
        init[1]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(
        s[0].state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("PodInitializing")
    );
    // `migrate` is an unknown program: as an init container it would hold the pod forever, as
    // upstream would; here it runs forever too.
    let (phase, init, s, _) = at(&mut sim, &p, &clocks, 5.0);
    assert_eq!(phase, PENDING);
    assert!(init[0].ready, "a completed init container is ready");
    assert!(init[1].state.as_ref().unwrap().running.is_some());
    assert!(s[0].state.as_ref().unwrap().waiting.is_some());

    let p = pod(
        vec![c("fetch", Some("sleep 2")), c("check", Some("true"))],
        vec![c("app", None)],
        "Always",
    );
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (phase, init, s, _) = at(&mut sim, &p, &clocks, 3.0);
    assert_eq!(phase, RUNNING);
    assert_eq!(
        terminated(&init[1]).finished_at,
        Some(clocks.at(2.0).time_at(clocks.at(2.0).now))
    );
    let started = s[0]
        .state
        .as_ref()
        .unwrap()
        .running
        .as_ref()
        .unwrap()
        .started_at
        .clone();
    assert_eq!(
        started,
        Some(clocks.at(2.0).time_at(clocks.at(2.0).now)),
        "started when the last init ended"
    );
}

#[test]
fn readiness_waits_for_the_probes_initial_delay() {
    let clocks = Clocks::new();
    let mut web = c("web", None);
    web.readiness_probe = Some(Probe {
        initial_delay_seconds: Some(5),
        ..Probe::default()
    });
    let p = pod(vec![], vec![web], "Always");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (_, _, s, next) = at(&mut sim, &p, &clocks, 0.0);
    assert!(!s[0].ready && s[0].started == Some(true));
    assert_eq!(next, Some(5.0));
    let (_, _, s, next) = at(&mut sim, &p, &clocks, 5.0);
    assert!(s[0].ready);
    assert_eq!(next, None);
}

#[test]
fn crash_loops_back_off_as_upstream() {
    let clocks = Clocks::new();
    let p = pod(vec![], vec![c("bad", Some("false"))], "Always");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    // Exits at once, restarts at once, exits again: 10 s back-off.
    let (phase, _, s, next) = at(&mut sim, &p, &clocks, 0.0);
    assert_eq!(phase, RUNNING);
    assert_eq!(s[0].restart_count, 1);
    assert_eq!(next, Some(10.0));
    let waiting = s[0].state.as_ref().unwrap().waiting.clone().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 10s restarting failed container=bad pod=p_ns(uid-1)")
    );
    let last = s[0].last_state.as_ref().unwrap().terminated.clone().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    // Restart at 10 s, back-off 20 s; at 30 s, 40 s; ...
    let (_, _, s, next) = at(&mut sim, &p, &clocks, 10.0);
    assert_eq!((s[0].restart_count, next), (2, Some(30.0)));
    let (_, _, s, next) = at(&mut sim, &p, &clocks, 30.0);
    assert_eq!((s[0].restart_count, next), (3, Some(70.0)));
    let (_, _, s, _) = at(&mut sim, &p, &clocks, 1000.0);
    assert!(s[0].restart_count > 5);
    let msg = s[0]
        .state
        .as_ref()
        .unwrap()
        .waiting
        .clone()
        .unwrap()
        .message
        .unwrap();
    assert!(msg.starts_with("back-off 5m0s"), "{msg}");
}

#[test]
fn on_failure_restarts_failures_only() {
    let clocks = Clocks::new();
    let p = pod(
        vec![],
        vec![c("a", Some("sleep 1; exit 2")), c("b", Some("sleep 1"))],
        "OnFailure",
    );
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (phase, _, s, _) = at(&mut sim, &p, &clocks, 1.0);
    assert_eq!(phase, RUNNING);
    assert_eq!(s[0].restart_count, 1, "failed: restarted");
    assert_eq!(terminated(&s[1]).exit_code, 0, "succeeded: stays terminated");
}

#[test]
fn deletion_stops_containers_cleanly() {
    let clocks = Clocks::new();
    let p = pod(vec![c("init", Some("true"))], vec![c("web", None)], "Always");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    at(&mut sim, &p, &clocks, 0.0);
    sim.stop_at(clocks.at(1.0).now, StopCause::Deleted);
    let (phase, _, _, next) = at(&mut sim, &p, &clocks, 0.5);
    assert_eq!((phase.as_str(), next), (RUNNING, Some(1.0)));
    let (phase, init, s, _) = at(&mut sim, &p, &clocks, 1.0);
    assert_eq!(phase, SUCCEEDED, "every container stopped cleanly");
    assert!(sim.is_done());
    let t = terminated(&s[0]);
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(
        terminated(&init[0]).exit_code,
        0,
        "the init container's own exit stays"
    );
}

#[test]
fn containers_that_never_ran_are_unknown_when_the_pod_stops() {
    let clocks = Clocks::new();
    let p = pod(vec![c("wait", None)], vec![c("app", None)], "Always");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    sim.stop_at(clocks.at(0.0).now, StopCause::Deleted);
    let (phase, _, s, _) = at(&mut sim, &p, &clocks, 0.0);
    let t = terminated(&s[0]);
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (137, Some("ContainerStatusUnknown"))
    );
    assert_eq!(phase, FAILED);
}

#[test]
fn sidecars_run_beside_the_job_and_stop_with_it() {
    let clocks = Clocks::new();
    let mut proxy = c("proxy", None);
    proxy.restart_policy = Some("Always".into());
    proxy.startup_probe = Some(Probe {
        initial_delay_seconds: Some(2),
        ..Probe::default()
    });
    let p = pod(vec![proxy], vec![c("job", Some("sleep 1"))], "Never");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (phase, init, s, next) = at(&mut sim, &p, &clocks, 0.0);
    assert_eq!(
        (phase.as_str(), next),
        (PENDING, Some(2.0)),
        "the sidecar has not started yet"
    );
    assert_eq!(init[0].started, Some(false));
    assert!(s[0].state.as_ref().unwrap().waiting.is_some());
    let (phase, init, _, _) = at(&mut sim, &p, &clocks, 2.5);
    assert_eq!(phase, RUNNING);
    assert!(init[0].ready && init[0].started == Some(true));
    let (phase, init, s, next) = at(&mut sim, &p, &clocks, 3.0);
    assert_eq!((phase.as_str(), next), (SUCCEEDED, None));
    assert_eq!(terminated(&s[0]).exit_code, 0);
    assert!(
        init[0].state.as_ref().unwrap().terminated.is_some(),
        "the sidecar stopped with the pod"
    );
}

#[test]
fn the_deadline_kills_the_pod() {
    let clocks = Clocks::new();
    let mut p = pod(vec![], vec![c("job", Some("sleep 100"))], "Never");
    p.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    let (_, _, _, next) = at(&mut sim, &p, &clocks, 0.0);
    assert_eq!(next, Some(5.0));
    at(&mut sim, &p, &clocks, 6.0);
    assert_eq!(sim.stopped, Some(StopCause::DeadlineExceeded));
}

#[test]
fn a_pod_shown_running_is_adopted_without_a_restart() {
    let clocks = Clocks::new();
    let p = pod(vec![], vec![c("job", Some("sleep 10"))], "Never");
    let mut first = SimPod::new(&p, &clocks.at(0.0));
    let (_, init, regular, _) = at(&mut first, &p, &clocks, 4.0);
    let mut shown = p.clone();
    shown.status = Some(PodStatus {
        start_time: Some(first.start_time.clone()),
        init_container_statuses: Some(init),
        container_statuses: Some(regular.clone()),
        ..PodStatus::default()
    });
    // A new simulator at 4 s takes over: same container, ends at 10 s.
    let mut again = SimPod::new(&shown, &clocks.at(4.0));
    let (phase, _, s, next) = at(&mut again, &shown, &clocks, 4.0);
    assert_eq!(phase, RUNNING);
    assert_eq!(s[0].container_id, regular[0].container_id);
    assert_eq!(s[0].restart_count, 0);
    assert!((next.unwrap() - 10.0).abs() < 1.0, "{next:?}");
}

#[test]
fn an_image_update_restarts_the_container() {
    let clocks = Clocks::new();
    let p = pod(vec![], vec![c("web", None)], "Always");
    let mut sim = SimPod::new(&p, &clocks.at(0.0));
    at(&mut sim, &p, &clocks, 0.0);
    let mut updated = p.clone();
    updated.spec.as_mut().unwrap().containers[0].image = Some("busybox:1.37".into());
    assert!(!sim.matches_spec(updated.spec.as_ref().unwrap()));
    sim.update_images(updated.spec.as_ref().unwrap(), &clocks.at(3.0));
    let (_, _, s, _) = at(&mut sim, &updated, &clocks, 3.0);
    assert_eq!((s[0].restart_count, s[0].image.as_str()), (1, "busybox:1.37"));
}

#[test]
fn image_ids_look_like_a_runtimes() {
    let id = image_id("registry.k8s.io/pause:3.10");
    assert!(id.starts_with("registry.k8s.io/pause@sha256:"), "{id}");
    assert_eq!(id.len(), "registry.k8s.io/pause@sha256:".len() + 64);
    assert!(image_id("localhost:5000/app").starts_with("localhost:5000/app@sha256:"));
}
