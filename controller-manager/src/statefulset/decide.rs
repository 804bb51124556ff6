//! The StatefulSet controller's decisions, a pure function of the set's spec, its revisions and
//! the states of its pods (upstream's `updateStatefulSet`): which pods to create (and at which
//! revision), recreate (terminal), fix, delete on scale-down (highest ordinal first) and delete
//! for a rolling update (highest ordinal first, down to the partition, within
//! `maxUnavailable`), with OrderedReady waiting for each predecessor to be Running, Ready and
//! available, and Parallel acting on every pod at once.

/// What one existing pod looks like to the decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// Its ordinal.
    pub ordinal: i32,
    /// Its `controller-revision-hash` label.
    pub revision: String,
    /// `Failed` or `Succeeded`: to be recreated.
    pub terminal: Option<Terminal>,
    /// Being deleted.
    pub terminating: bool,
    /// Phase `Pending`: its claims are (re)ensured.
    pub pending: bool,
    /// Phase `Running` and `Ready=True`.
    pub running_ready: bool,
    /// Running and ready for `minReadySeconds`.
    pub available: bool,
    /// Its identity labels are right.
    pub identity_ok: bool,
}

impl PodState {
    /// Available and not being deleted (upstream's `isHealthy`).
    pub fn healthy(&self) -> bool {
        self.available && self.running_ready && !self.terminating
    }
}

/// A terminal phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// `Failed`.
    Failed,
    /// `Succeeded`.
    Succeeded,
}

/// The update strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Pods change only when users delete them.
    OnDelete,
    /// Pods at or above the partition are replaced, highest ordinal first.
    RollingUpdate {
        /// `rollingUpdate.partition` (`None` without a `rollingUpdate` block).
        partition: Option<i32>,
        /// `rollingUpdate.maxUnavailable`, resolved against the replicas (`None` when unset:
        /// one pod at a time, waiting for each, as upstream without the feature).
        max_unavailable: Option<i32>,
    },
}

/// The spec as the decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    /// The first ordinal.
    pub start: i32,
    /// The desired number of pods.
    pub replicas: i32,
    /// OrderedReady (one pod at a time, in order) rather than Parallel.
    pub ordered: bool,
    /// The update strategy.
    pub strategy: Strategy,
    /// The current revision's name.
    pub current_revision: String,
    /// The update revision's name.
    pub update_revision: String,
    /// `status.currentReplicas` (where pods without a partition go back to the current revision).
    pub current_replicas: i32,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the pod of this ordinal (and its claims) at `revision`.
    Create {
        /// The ordinal.
        ordinal: i32,
        /// The revision's name.
        revision: String,
    },
    /// Delete a terminal pod so it is created again.
    Recreate {
        /// The ordinal.
        ordinal: i32,
        /// `Failed` rather than `Succeeded`.
        failed: bool,
    },
    /// Create the claims a pending pod lacks.
    EnsureClaims {
        /// The ordinal.
        ordinal: i32,
    },
    /// Put the identity labels back.
    FixIdentity {
        /// The ordinal.
        ordinal: i32,
    },
    /// Delete a pod beyond the replicas.
    ScaleDown {
        /// The ordinal.
        ordinal: i32,
    },
    /// Delete a pod at an old revision so it comes back at the update revision.
    Update {
        /// The ordinal.
        ordinal: i32,
    },
}

/// The revision a new pod of `ordinal` gets (upstream's `newVersionedStatefulSetPod`).
pub fn revision_for(spec: &SetSpec, ordinal: i32) -> &str {
    let below = |n: i32| ordinal < spec.start + n;
    match spec.strategy {
        Strategy::RollingUpdate { partition: None, .. } if below(spec.current_replicas) => {
            &spec.current_revision
        }
        Strategy::RollingUpdate {
            partition: Some(p), ..
        } if below(p) => &spec.current_revision,
        _ => &spec.update_revision,
    }
}

/// The steps to take now, in order; the caller stops at the first failure.
pub fn plan(spec: &SetSpec, pods: &[PodState]) -> Vec<Action> {
    let mut actions = Vec::new();
    let end = spec.start + spec.replicas;
    let mut replicas: Vec<PodState> = Vec::with_capacity(spec.replicas as usize);
    let mut condemned: Vec<&PodState> = Vec::new();
    for p in pods {
        if p.ordinal < spec.start || p.ordinal >= end {
            condemned.push(p);
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(p.ordinal));
    let monotonic = spec.ordered;
    let mut exit = false;
    for ordinal in spec.start..end {
        let Some(pod) = pods.iter().find(|p| p.ordinal == ordinal) else {
            let revision = revision_for(spec, ordinal).to_string();
            actions.push(Action::Create {
                ordinal,
                revision: revision.clone(),
            });
            if monotonic {
                return actions;
            }
            replicas.push(PodState {
                ordinal,
                revision,
                terminal: None,
                terminating: false,
                pending: true,
                running_ready: false,
                available: false,
                identity_ok: true,
            });
            continue;
        };
        replicas.push(pod.clone());
        if let Some(t) = pod.terminal {
            if !pod.terminating {
                actions.push(Action::Recreate {
                    ordinal,
                    failed: t == Terminal::Failed,
                });
            }
            // The pod comes back on a later sync, once the deletion is observed.
            if monotonic {
                return actions;
            }
            exit = true;
            continue;
        }
        if pod.pending {
            actions.push(Action::EnsureClaims { ordinal });
        }
        if monotonic && (pod.terminating || !pod.running_ready || !pod.available) {
            return actions;
        }
        if !pod.identity_ok && !pod.terminating {
            actions.push(Action::FixIdentity { ordinal });
        }
    }
    if exit {
        return actions;
    }
    let first_unhealthy = replicas
        .iter()
        .chain(condemned.iter().rev().copied())
        .find(|p| !p.running_ready || p.terminating)
        .map(|p| p.ordinal);
    for pod in &condemned {
        if pod.terminating {
            if monotonic {
                return actions;
            }
            continue;
        }
        if monotonic && (!pod.running_ready || !pod.available) && Some(pod.ordinal) != first_unhealthy {
            return actions;
        }
        actions.push(Action::ScaleDown { ordinal: pod.ordinal });
        if monotonic {
            return actions;
        }
    }
    let Strategy::RollingUpdate {
        partition,
        max_unavailable,
    } = spec.strategy
    else {
        return actions;
    };
    let min = partition.unwrap_or(0).max(0) as usize;
    let outdated = |p: &PodState| p.revision != spec.update_revision && !p.terminating;
    match max_unavailable {
        None => {
            for pod in replicas.iter().skip(min).rev() {
                if outdated(pod) {
                    actions.push(Action::Update { ordinal: pod.ordinal });
                    break;
                }
                if !pod.healthy() {
                    break;
                }
            }
        }
        Some(max) => {
            let unavailable = replicas.iter().filter(|p| !p.healthy()).count() as i32;
            let mut budget = max.max(1) - unavailable;
            for pod in replicas.iter().skip(min).rev() {
                if budget <= 0 {
                    break;
                }
                if outdated(pod) {
                    actions.push(Action::Update { ordinal: pod.ordinal });
                    budget -= 1;
                }
            }
        }
    }
    actions
}

/// The counts of the status (upstream's `computeReplicaStatus`): every pod, its readiness
/// and availability, and how many (not being deleted) are at the current and update revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Pods.
    pub replicas: i32,
    /// Running and ready.
    pub ready: i32,
    /// Available.
    pub available: i32,
    /// At the current revision.
    pub current: i32,
    /// At the update revision.
    pub updated: i32,
}

/// Counts `pods` against the spec's revisions.
pub fn counts(spec: &SetSpec, pods: &[PodState]) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        c.replicas += 1;
        if p.running_ready {
            c.ready += 1;
        }
        if p.running_ready && p.available {
            c.available += 1;
        }
        if !p.terminating {
            if p.revision == spec.current_revision {
                c.current += 1;
            }
            if p.revision == spec.update_revision {
                c.updated += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(replicas: i32, ordered: bool, strategy: Strategy) -> SetSpec {
        SetSpec {
            start: 0,
            replicas,
            ordered,
            strategy,
            current_revision: "old".into(),
            update_revision: "new".into(),
            current_replicas: 0,
        }
    }

    const ROLLING: Strategy = Strategy::RollingUpdate {
        partition: Some(0),
        max_unavailable: None,
    };

    fn ready(ordinal: i32, revision: &str) -> PodState {
        PodState {
            ordinal,
            revision: revision.into(),
            terminal: None,
            terminating: false,
            pending: false,
            running_ready: true,
            available: true,
            identity_ok: true,
        }
    }

    fn starting(ordinal: i32, revision: &str) -> PodState {
        PodState {
            running_ready: false,
            available: false,
            pending: true,
            ..ready(ordinal, revision)
        }
    }

    /// Running but not ready (its claims were ensured while it was pending).
    fn unready(ordinal: i32, revision: &str) -> PodState {
        PodState {
            pending: false,
            ..starting(ordinal, revision)
        }
    }

    fn create(ordinal: i32, revision: &str) -> Action {
        Action::Create {
            ordinal,
            revision: revision.into(),
        }
    }

    #[test]
    fn ordered_ready_creates_one_pod_after_its_predecessor_is_ready() {
        let s = spec(3, true, ROLLING);
        assert_eq!(plan(&s, &[]), [create(0, "new")]);
        assert_eq!(
            plan(&s, &[starting(0, "new")]),
            [Action::EnsureClaims { ordinal: 0 }],
            "web-1 waits for web-0"
        );
        assert_eq!(plan(&s, &[ready(0, "new")]), [create(1, "new")]);
        let mut unavailable = ready(0, "new");
        unavailable.available = false;
        assert!(plan(&s, &[unavailable]).is_empty(), "minReadySeconds holds it");
    }

    #[test]
    fn parallel_creates_every_missing_pod_at_once() {
        let s = spec(3, false, ROLLING);
        assert_eq!(
            plan(&s, &[starting(1, "new")]),
            [
                create(0, "new"),
                Action::EnsureClaims { ordinal: 1 },
                create(2, "new")
            ]
        );
    }

    #[test]
    fn start_ordinal_shifts_names_and_condemns_the_rest() {
        let mut s = spec(2, true, ROLLING);
        s.start = 5;
        assert_eq!(plan(&s, &[]), [create(5, "new")]);
        assert_eq!(
            plan(&s, &[ready(0, "new"), ready(5, "new"), ready(6, "new")]),
            [Action::ScaleDown { ordinal: 0 }]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first_and_waits_in_order() {
        let s = spec(1, true, ROLLING);
        let pods = [ready(0, "new"), ready(1, "new"), ready(2, "new")];
        assert_eq!(plan(&s, &pods), [Action::ScaleDown { ordinal: 2 }]);
        let mut terminating = ready(2, "new");
        terminating.terminating = true;
        assert!(
            plan(&s, &[ready(0, "new"), ready(1, "new"), terminating]).is_empty(),
            "waits for web-2 to go"
        );
        // An unhealthy condemned pod that is the first unhealthy one may go; another waits.
        let pods = [ready(0, "new"), starting(1, "new"), ready(2, "new")];
        assert_eq!(plan(&s, &pods), [Action::ScaleDown { ordinal: 2 }]);
        let pods = [ready(0, "new"), ready(1, "new"), starting(2, "new")];
        assert_eq!(plan(&s, &pods), [Action::ScaleDown { ordinal: 2 }]);
        let pods = [ready(0, "new"), starting(1, "new"), starting(2, "new")];
        assert!(plan(&s, &pods).is_empty(), "web-2 is not the first unhealthy");
        let p = spec(1, false, ROLLING);
        let pods = [ready(0, "new"), starting(1, "new"), ready(2, "new")];
        assert_eq!(
            plan(&p, &pods),
            [Action::ScaleDown { ordinal: 2 }, Action::ScaleDown { ordinal: 1 }],
            "parallel deletes all at once"
        );
    }

    #[test]
    fn terminal_pods_are_recreated() {
        let s = spec(2, true, ROLLING);
        let mut failed = ready(0, "new");
        failed.terminal = Some(Terminal::Failed);
        failed.running_ready = false;
        assert_eq!(
            plan(&s, &[failed.clone(), ready(1, "new")]),
            [Action::Recreate {
                ordinal: 0,
                failed: true
            }]
        );
        failed.terminating = true;
        assert!(plan(&s, &[failed, ready(1, "new")]).is_empty());
    }

    #[test]
    fn rolling_update_goes_in_reverse_ordinal_order_one_at_a_time() {
        let s = spec(3, true, ROLLING);
        let all_old = [ready(0, "old"), ready(1, "old"), ready(2, "old")];
        assert_eq!(plan(&s, &all_old), [Action::Update { ordinal: 2 }]);
        // web-2 came back at the new revision but is not ready yet: wait.
        let pods = [ready(0, "old"), ready(1, "old"), unready(2, "new")];
        assert!(plan(&s, &pods).is_empty());
        let pods = [ready(0, "old"), ready(1, "old"), ready(2, "new")];
        assert_eq!(plan(&s, &pods), [Action::Update { ordinal: 1 }]);
        let on_delete = spec(3, true, Strategy::OnDelete);
        assert!(plan(&on_delete, &all_old).is_empty());
    }

    #[test]
    fn the_partition_holds_lower_ordinals() {
        let s = spec(
            3,
            true,
            Strategy::RollingUpdate {
                partition: Some(2),
                max_unavailable: None,
            },
        );
        let pods = [ready(0, "old"), ready(1, "old"), ready(2, "new")];
        assert!(plan(&s, &pods).is_empty());
        assert_eq!(
            revision_for(&s, 1),
            "old",
            "recreated below the partition: current"
        );
        assert_eq!(revision_for(&s, 2), "new");
        assert_eq!(plan(&s, &[ready(0, "old"), ready(2, "new")]), [create(1, "old")]);
        let mut no_block = spec(
            3,
            true,
            Strategy::RollingUpdate {
                partition: None,
                max_unavailable: None,
            },
        );
        no_block.current_replicas = 2;
        assert_eq!(revision_for(&no_block, 1), "old");
        assert_eq!(revision_for(&no_block, 2), "new");
        assert_eq!(revision_for(&spec(3, true, Strategy::OnDelete), 0), "new");
    }

    #[test]
    fn max_unavailable_deletes_several_at_once_within_the_budget() {
        let s = spec(
            4,
            false,
            Strategy::RollingUpdate {
                partition: Some(0),
                max_unavailable: Some(2),
            },
        );
        let all_old = [ready(0, "old"), ready(1, "old"), ready(2, "old"), ready(3, "old")];
        assert_eq!(
            plan(&s, &all_old),
            [Action::Update { ordinal: 3 }, Action::Update { ordinal: 2 }]
        );
        let pods = [
            ready(0, "old"),
            ready(1, "old"),
            ready(2, "old"),
            unready(3, "new"),
        ];
        assert_eq!(plan(&s, &pods), [Action::Update { ordinal: 2 }]);
        let pods = [
            ready(0, "old"),
            ready(1, "old"),
            unready(2, "new"),
            unready(3, "new"),
        ];
        assert!(plan(&s, &pods).is_empty());
    }

    #[test]
    fn identity_is_repaired_and_status_counted() {
        let s = spec(2, false, ROLLING);
        let mut wrong = ready(0, "old");
        wrong.identity_ok = false;
        let pods = [wrong, starting(1, "new")];
        assert_eq!(
            plan(&s, &pods)[..2],
            [
                Action::FixIdentity { ordinal: 0 },
                Action::EnsureClaims { ordinal: 1 }
            ]
        );
        assert_eq!(
            counts(&s, &pods),
            Counts {
                replicas: 2,
                ready: 1,
                available: 1,
                current: 1,
                updated: 1
            }
        );
    }
}
