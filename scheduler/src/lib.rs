//! Keelson's scheduler core: upstream kube-scheduler's framework (PreFilter / Filter / PreScore /
//! Score / NormalizeScore) and its default plugins, as a pure function over a cluster
//! [`Snapshot`]: [`schedule_one`] picks a node for a pod or explains, in upstream's words, why
//! none fits. The informers, the scheduling queue and binding build on it.

pub mod framework;
pub mod plugins;
pub mod preemption;
pub mod profile;
pub mod resource;
pub mod schedule;
pub mod selector;
pub mod snapshot;

pub use framework::{Code, CycleState, FilterPlugin, PreFilterResult, PreScore, ScorePlugin, Status};
pub use profile::Profile;
pub use schedule::{FitError, ScheduleError, ScheduleResult, SchedulingState, schedule_one};
pub use snapshot::{NodeInfo, PodInfo, Snapshot};
