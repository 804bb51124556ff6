//! Keelson's scheduler: upstream kube-scheduler's framework (PreFilter / Filter / PreScore /
//! Score / NormalizeScore) and its default plugins as a pure function over a cluster
//! [`Snapshot`] ([`schedule_one`]), and the component around it: informers feeding a
//! [`cache::Cache`], the [`queue::SchedulingQueue`], binding, unschedulable reporting,
//! preemption, profiles from a KubeSchedulerConfiguration ([`config`]) and the command
//! ([`cli`]). [`run`] is the entry point for a ready client.

pub mod cache;
pub mod cli;
pub mod cluster_event;
pub mod config;
pub mod framework;
pub mod informer;
pub mod metrics;
pub mod nominator;
pub mod plugins;
pub mod preemption;
pub mod profile;
pub mod queue;
pub mod resource;
pub mod runtime;
pub mod schedule;
pub mod selector;
pub mod snapshot;
pub mod volumes;
pub mod writes;

pub use framework::{Code, CycleState, FilterPlugin, PreFilterResult, PreScore, ScorePlugin, Status};
pub use profile::Profile;
pub use runtime::{Config, Error, run};
pub use schedule::{
    FitError, Nominated, ScheduleError, ScheduleResult, SchedulingState, schedule_one,
    schedule_one_with_nominated,
};
pub use snapshot::{NodeInfo, PodInfo, Snapshot};
