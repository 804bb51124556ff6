//! The scheduler's Prometheus metrics, with upstream's names.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::queue::Pending;

/// The collectors.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `scheduler_schedule_attempts_total{result,profile}`: scheduled, unschedulable, error.
    pub schedule_attempts: IntCounterVec,
    /// `scheduler_scheduling_attempt_duration_seconds{result,profile}`.
    pub attempt_duration: HistogramVec,
    /// `scheduler_pending_pods{queue}`: active, backoff, unschedulable, gated.
    pub pending_pods: IntGaugeVec,
    /// `scheduler_preemption_attempts_total`.
    pub preemption_attempts: IntCounter,
    /// `scheduler_preemption_victims`.
    pub preemption_victims: prometheus::Histogram,
    /// `scheduler_queue_incoming_pods_total{queue,event}`.
    pub incoming_pods: IntCounterVec,
}

impl Metrics {
    /// Creates the collectors and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            schedule_attempts: IntCounterVec::new(
                Opts::new(
                    "scheduler_schedule_attempts_total",
                    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
                ),
                &["result", "profile"],
            )?,
            attempt_duration: HistogramVec::new(
                HistogramOpts::new(
                    "scheduler_scheduling_attempt_duration_seconds",
                    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
                &["result", "profile"],
            )?,
            pending_pods: IntGaugeVec::new(
                Opts::new(
                    "scheduler_pending_pods",
                    "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
                ),
                &["queue"],
            )?,
            preemption_attempts: IntCounter::new(
                "scheduler_preemption_attempts_total",
                "Total preemption attempts in the cluster till now",
            )?,
            preemption_victims: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "scheduler_preemption_victims",
                    "Number of selected preemption victims",
                )
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 7)?),
            )?,
            incoming_pods: IntCounterVec::new(
                Opts::new(
                    "scheduler_queue_incoming_pods_total",
                    "Number of pods added to scheduling queues by event and queue type.",
                ),
                &["queue", "event"],
            )?,
        };
        registry.register(Box::new(m.schedule_attempts.clone()))?;
        registry.register(Box::new(m.attempt_duration.clone()))?;
        registry.register(Box::new(m.pending_pods.clone()))?;
        registry.register(Box::new(m.preemption_attempts.clone()))?;
        registry.register(Box::new(m.preemption_victims.clone()))?;
        registry.register(Box::new(m.incoming_pods.clone()))?;
        Ok(m)
    }

    /// Sets the pending-pods gauges.
    pub fn set_pending(&self, p: Pending) {
        for (queue, n) in [
            ("active", p.active),
            ("backoff", p.backoff),
            ("unschedulable", p.unschedulable),
            ("gated", p.gated),
        ] {
            self.pending_pods.with_label_values(&[queue]).set(n as i64);
        }
    }
}
