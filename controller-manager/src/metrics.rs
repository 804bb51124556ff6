//! Upstream's work-queue metrics (`workqueue_depth`, `workqueue_adds_total`,
//! `workqueue_retries_total`, `workqueue_work_duration_seconds`), labelled by queue name and
//! served on `/metrics`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The collectors, shared by every queue of the process.
#[derive(Clone)]
pub struct QueueMetrics {
    /// Items ready in the queue.
    pub depth: IntGaugeVec,
    /// Items added.
    pub adds: IntCounterVec,
    /// Rate-limited re-adds.
    pub retries: IntCounterVec,
    /// Seconds one sync took.
    pub work_duration: HistogramVec,
}

impl QueueMetrics {
    /// Collectors registered in `registry` (registration failures, e.g. a second manager in
    /// the same registry, are logged and the collectors still count).
    pub fn new(registry: Option<&Registry>) -> Result<Self, prometheus::Error> {
        let m = QueueMetrics {
            depth: IntGaugeVec::new(
                Opts::new("workqueue_depth", "Current depth of workqueue"),
                &["name"],
            )?,
            adds: IntCounterVec::new(
                Opts::new(
                    "workqueue_adds_total",
                    "Total number of adds handled by workqueue",
                ),
                &["name"],
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    "workqueue_retries_total",
                    "Total number of retries handled by workqueue",
                ),
                &["name"],
            )?,
            work_duration: HistogramVec::new(
                HistogramOpts::new(
                    "workqueue_work_duration_seconds",
                    "How long in seconds processing an item from workqueue takes.",
                )
                .buckets(prometheus::exponential_buckets(1e-8, 10.0, 10)?),
                &["name"],
            )?,
        };
        if let Some(r) = registry {
            for c in [
                Box::new(m.depth.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(m.adds.clone()),
                Box::new(m.retries.clone()),
                Box::new(m.work_duration.clone()),
            ] {
                if let Err(e) = r.register(c) {
                    tracing::warn!(error = %e, "registering work-queue metrics");
                }
            }
        }
        Ok(m)
    }
}
