//! The `--config` file: a `KubeSchedulerConfiguration` of `kubescheduler.config.k8s.io/v1`
//! (profiles with plugin enable/disable lists and score weights, `percentageOfNodesToScore`,
//! backoff, `clientConnection` and `leaderElection`), read strictly like upstream (unknown
//! fields are errors) and turned into [`Profile`]s.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::framework::{FilterPlugin, ScorePlugin};
use crate::plugins::image_locality::ImageLocality;
use crate::plugins::inter_pod_affinity::InterPodAffinity;
use crate::plugins::node_affinity::NodeAffinity;
use crate::plugins::node_name::NodeName;
use crate::plugins::node_ports::NodePorts;
use crate::plugins::node_resources::{BalancedAllocation, NodeResourcesFit};
use crate::plugins::node_unschedulable::NodeUnschedulable;
use crate::plugins::pod_topology_spread::PodTopologySpread;
use crate::plugins::taint_toleration::TaintToleration;
use crate::profile::{DEFAULT_SCHEDULER_NAME, Profile, WeightedScore};

/// The configuration's API version.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
/// Its kind.
pub const KIND: &str = "KubeSchedulerConfiguration";

/// Why a configuration file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading the file.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML of the expected shape (unknown fields included).
    #[error("decoding {path}: {message}")]
    Decode {
        /// The file.
        path: String,
        /// What the decoder said.
        message: String,
    },
    /// Decoded, but not valid.
    #[error("invalid KubeSchedulerConfiguration: {0}")]
    Invalid(String),
}

/// A plugin named in a plugin set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginRef {
    /// The plugin's name (`*` in `disabled`: all default plugins).
    pub name: String,
    /// Score weight (score and multiPoint only).
    #[serde(default)]
    pub weight: Option<i32>,
}

/// Plugins enabled and disabled at one extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginSet {
    /// Added after the defaults (a score plugin already enabled gets the new weight).
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Removed from the defaults.
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// The plugin sets per extension point (`Plugins`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Plugins {
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
    #[serde(default)]
    pub multi_point: PluginSet,
}

/// One `profiles[]` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileConfig {
    /// The `spec.schedulerName` it serves.
    #[serde(default)]
    pub scheduler_name: Option<String>,
    /// Overrides the top-level percentage.
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Plugin changes against the defaults.
    #[serde(default)]
    pub plugins: Option<Plugins>,
    /// Plugin arguments (accepted; the plugins run with upstream's default arguments).
    #[serde(default)]
    pub plugin_config: Vec<serde_json::Value>,
}

/// `clientConnection`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientConnection {
    /// A kubeconfig path.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Requests per second.
    #[serde(default)]
    pub qps: Option<f32>,
    /// Burst above the QPS.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub accept_content_types: Option<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// `leaderElection`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LeaderElection {
    #[serde(default)]
    pub leader_elect: Option<bool>,
    #[serde(default)]
    pub lease_duration: Option<String>,
    #[serde(default)]
    pub renew_deadline: Option<String>,
    #[serde(default)]
    pub retry_period: Option<String>,
    #[serde(default)]
    pub resource_lock: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub resource_namespace: Option<String>,
}

/// The file's contents.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeSchedulerConfiguration {
    /// Must be `kubescheduler.config.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// Must be `KubeSchedulerConfiguration`.
    #[serde(default)]
    pub kind: String,
    /// Accepted (scoring runs on one thread per profile here).
    #[serde(default)]
    pub parallelism: Option<i32>,
    /// The API connection.
    #[serde(default)]
    pub client_connection: ClientConnection,
    /// Leader election.
    #[serde(default)]
    pub leader_election: LeaderElection,
    /// Default for profiles without their own.
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Initial backoff, seconds (default 1).
    #[serde(default)]
    pub pod_initial_backoff_seconds: Option<i64>,
    /// Maximum backoff, seconds (default 10).
    #[serde(default)]
    pub pod_max_backoff_seconds: Option<i64>,
    /// The profiles (default: one `default-scheduler`).
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
    /// Accepted for compatibility (no extenders are called).
    #[serde(default)]
    pub extenders: Vec<serde_json::Value>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub enable_profiling: Option<bool>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub enable_contention_profiling: Option<bool>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub delay_cache_until_active: Option<bool>,
}

/// Upstream's in-tree plugins this scheduler does not run; naming them is not an error.
const KNOWN_ELSEWHERE: &[&str] = &[
    "PrioritySort",
    "SchedulingGates",
    "DefaultBinder",
    "VolumeZone",
    "NodeVolumeLimits",
    "EBSLimits",
    "GCEPDLimits",
    "AzureDiskLimits",
    "CinderLimits",
    "DynamicResources",
    "NodeDeclaredFeatures",
];

fn filter_plugin(name: &str) -> Option<Arc<dyn FilterPlugin>> {
    Some(match name {
        "NodeUnschedulable" => Arc::new(NodeUnschedulable),
        "NodeName" => Arc::new(NodeName),
        "TaintToleration" => Arc::new(TaintToleration),
        "NodeAffinity" => Arc::new(NodeAffinity),
        "NodePorts" => Arc::new(NodePorts),
        "NodeResourcesFit" => Arc::new(NodeResourcesFit),
        "VolumeRestrictions" => Arc::new(crate::plugins::volume_restrictions::VolumeRestrictions),
        "VolumeBinding" => Arc::new(crate::plugins::volume_binding::VolumeBinding),
        "PodTopologySpread" => Arc::new(PodTopologySpread),
        "InterPodAffinity" => Arc::new(InterPodAffinity),
        _ => return None,
    })
}

fn score_plugin(name: &str) -> Option<Arc<dyn ScorePlugin>> {
    Some(match name {
        "TaintToleration" => Arc::new(TaintToleration),
        "NodeAffinity" => Arc::new(NodeAffinity),
        "NodeResourcesFit" => Arc::new(NodeResourcesFit),
        "PodTopologySpread" => Arc::new(PodTopologySpread),
        "InterPodAffinity" => Arc::new(InterPodAffinity),
        "NodeResourcesBalancedAllocation" => Arc::new(BalancedAllocation),
        "ImageLocality" => Arc::new(ImageLocality),
        _ => return None,
    })
}

fn known(name: &str) -> bool {
    filter_plugin(name).is_some()
        || score_plugin(name).is_some()
        || name == "DefaultPreemption"
        || KNOWN_ELSEWHERE.contains(&name)
}

fn disabled<'a>(sets: &[&'a PluginSet]) -> (bool, BTreeSet<&'a str>) {
    let mut all = false;
    let mut names = BTreeSet::new();
    for set in sets {
        for p in &set.disabled {
            if p.name == "*" {
                all = true;
            } else {
                names.insert(p.name.as_str());
            }
        }
    }
    (all, names)
}

/// Applies a profile's plugin sets to upstream's defaults.
fn build_profile(pc: &ProfileConfig, default_pct: Option<i32>) -> Result<Profile, ConfigError> {
    let name = pc
        .scheduler_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ConfigError::Invalid("profiles[].schedulerName: Required value".into()))?;
    let mut profile = Profile::default_profile();
    profile.scheduler_name = name.clone();
    profile.percentage_of_nodes_to_score = pc.percentage_of_nodes_to_score.or(default_pct);
    let Some(plugins) = &pc.plugins else {
        return Ok(profile);
    };
    let every_set = [
        &plugins.pre_enqueue,
        &plugins.queue_sort,
        &plugins.pre_filter,
        &plugins.filter,
        &plugins.post_filter,
        &plugins.pre_score,
        &plugins.score,
        &plugins.reserve,
        &plugins.permit,
        &plugins.pre_bind,
        &plugins.bind,
        &plugins.post_bind,
        &plugins.multi_point,
    ];
    for set in every_set {
        for p in set.enabled.iter().chain(&set.disabled) {
            if p.name != "*" && !known(&p.name) {
                return Err(ConfigError::Invalid(format!(
                    "profile {name:?}: plugin {:?} does not exist",
                    p.name
                )));
            }
        }
    }
    let (all_f, off_f) = disabled(&[&plugins.multi_point, &plugins.filter, &plugins.pre_filter]);
    profile.filters.retain(|f| !all_f && !off_f.contains(f.name()));
    let (all_s, off_s) = disabled(&[&plugins.multi_point, &plugins.score, &plugins.pre_score]);
    profile
        .scores
        .retain(|s| !all_s && !off_s.contains(s.plugin.name()));
    let (all_p, off_p) = disabled(&[&plugins.multi_point, &plugins.post_filter]);
    profile.preemption = !all_p && !off_p.contains("DefaultPreemption");

    let enable_filter = |profile: &mut Profile, name: &str| {
        if let Some(f) = filter_plugin(name)
            && !profile.filters.iter().any(|x| x.name() == name)
        {
            profile.filters.push(f);
        }
    };
    let enable_score = |profile: &mut Profile, p: &PluginRef| {
        let weight = i64::from(p.weight.filter(|w| *w != 0).unwrap_or(1));
        match profile.scores.iter_mut().find(|s| s.plugin.name() == p.name) {
            Some(s) => {
                if p.weight.is_some() {
                    s.weight = weight;
                }
            }
            None => {
                if let Some(plugin) = score_plugin(&p.name) {
                    profile.scores.push(WeightedScore { plugin, weight });
                }
            }
        }
    };
    for p in &plugins.multi_point.enabled {
        enable_filter(&mut profile, &p.name);
        enable_score(&mut profile, p);
        if p.name == "DefaultPreemption" {
            profile.preemption = true;
        }
    }
    for p in plugins.filter.enabled.iter().chain(&plugins.pre_filter.enabled) {
        if filter_plugin(&p.name).is_none() && !KNOWN_ELSEWHERE.contains(&p.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "profile {name:?}: plugin {:?} does not extend filter",
                p.name
            )));
        }
        enable_filter(&mut profile, &p.name);
    }
    for p in &plugins.score.enabled {
        if score_plugin(&p.name).is_none() && !KNOWN_ELSEWHERE.contains(&p.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "profile {name:?}: plugin {:?} does not extend score",
                p.name
            )));
        }
        if let Some(w) = p.weight
            && !(0..=100).contains(&w)
        {
            return Err(ConfigError::Invalid(format!(
                "profile {name:?}: score plugin {:?} weight {w}: must be between 0 and 100",
                p.name
            )));
        }
        enable_score(&mut profile, p);
    }
    for p in &plugins.post_filter.enabled {
        if p.name == "DefaultPreemption" {
            profile.preemption = true;
        }
    }
    Ok(profile)
}

/// What a configuration file decides.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The profiles, one per scheduler name.
    pub profiles: Vec<Profile>,
    /// Backoff after the first failure.
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// The file as read (for the client and leader election settings).
    pub raw: KubeSchedulerConfiguration,
}

impl KubeSchedulerConfiguration {
    /// Parses YAML (or JSON) strictly.
    pub fn from_yaml(text: &str, path: &str) -> Result<KubeSchedulerConfiguration, ConfigError> {
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Decode {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<KubeSchedulerConfiguration, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Validates and applies defaults.
    pub fn load(self) -> Result<Loaded, ConfigError> {
        if self.api_version != API_VERSION || self.kind != KIND {
            return Err(ConfigError::Invalid(format!(
                "apiVersion {:?} kind {:?}: expected {API_VERSION:?} {KIND:?}",
                self.api_version, self.kind
            )));
        }
        let pct_ok = |p: Option<i32>| p.is_none_or(|p| (0..=100).contains(&p));
        if !pct_ok(self.percentage_of_nodes_to_score)
            || !self
                .profiles
                .iter()
                .all(|p| pct_ok(p.percentage_of_nodes_to_score))
        {
            return Err(ConfigError::Invalid(
                "percentageOfNodesToScore: must be in the range [0, 100]".into(),
            ));
        }
        let initial = self.pod_initial_backoff_seconds.unwrap_or(1);
        let max = self.pod_max_backoff_seconds.unwrap_or(10);
        if initial <= 0 || max <= 0 {
            return Err(ConfigError::Invalid(
                "podInitialBackoffSeconds and podMaxBackoffSeconds: must be greater than 0".into(),
            ));
        }
        if max < initial {
            return Err(ConfigError::Invalid(
                "podMaxBackoffSeconds: must be greater than or equal to PodInitialBackoffSeconds".into(),
            ));
        }
        let mut profiles = Vec::new();
        if self.profiles.is_empty() {
            let mut p = Profile::default_profile();
            p.percentage_of_nodes_to_score = self.percentage_of_nodes_to_score;
            profiles.push(p);
        }
        let mut names = BTreeSet::new();
        for pc in &self.profiles {
            let pc = ProfileConfig {
                scheduler_name: Some(
                    pc.scheduler_name
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.into()),
                ),
                ..pc.clone()
            };
            let profile = build_profile(&pc, self.percentage_of_nodes_to_score)?;
            if !names.insert(profile.scheduler_name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "profiles[].schedulerName: Duplicate value: {:?}",
                    profile.scheduler_name
                )));
            }
            profiles.push(profile);
        }
        Ok(Loaded {
            profiles,
            initial_backoff: Duration::from_secs(initial as u64),
            max_backoff: Duration::from_secs(max as u64),
            raw: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<Loaded, ConfigError> {
        KubeSchedulerConfiguration::from_yaml(yaml, "test.yaml")?.load()
    }

    const HEAD: &str = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";

    #[test]
    fn an_empty_configuration_is_the_default_profile() {
        let l = load(HEAD).unwrap();
        assert_eq!(l.profiles.len(), 1);
        assert_eq!(l.profiles[0].scheduler_name, "default-scheduler");
        assert_eq!(l.profiles[0].filters.len(), 10);
        assert!(l.profiles[0].preemption);
        assert_eq!((l.initial_backoff.as_secs(), l.max_backoff.as_secs()), (1, 10));
    }

    #[test]
    fn profiles_enable_disable_and_weigh_plugins() {
        let l = load(&format!(
            "{HEAD}percentageOfNodesToScore: 30
clientConnection: {{qps: 500, burst: 1000}}
leaderElection: {{leaderElect: false}}
profiles:
- schedulerName: default-scheduler
- schedulerName: no-scores
  percentageOfNodesToScore: 70
  plugins:
    score:
      disabled: [{{name: '*'}}]
      enabled: [{{name: NodeResourcesBalancedAllocation, weight: 5}}]
    filter:
      disabled: [{{name: TaintToleration}}]
    postFilter:
      disabled: [{{name: DefaultPreemption}}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {{scoringStrategy: {{type: MostAllocated}}}}
"
        ))
        .unwrap();
        assert_eq!(l.raw.client_connection.qps, Some(500.0));
        assert_eq!(l.raw.leader_election.leader_elect, Some(false));
        let [a, b] = &l.profiles[..] else {
            panic!("two profiles expected")
        };
        assert_eq!(a.percentage_of_nodes_to_score, Some(30));
        assert_eq!(b.percentage_of_nodes_to_score, Some(70));
        assert_eq!(b.scheduler_name, "no-scores");
        assert!(!b.filters.iter().any(|f| f.name() == "TaintToleration"));
        assert_eq!(b.filters.len(), 9);
        assert_eq!(b.scores.len(), 1);
        assert_eq!(
            (b.scores[0].plugin.name(), b.scores[0].weight),
            ("NodeResourcesBalancedAllocation", 5)
        );
        assert!(!b.preemption);
        assert!(a.preemption);
        // Re-weighting an enabled default keeps one entry.
        let l = load(&format!(
            "{HEAD}profiles:\n- plugins:\n    score:\n      enabled: [{{name: ImageLocality, weight: 9}}]\n"
        ))
        .unwrap();
        let img: Vec<_> = l.profiles[0]
            .scores
            .iter()
            .filter(|s| s.plugin.name() == "ImageLocality")
            .map(|s| s.weight)
            .collect();
        assert_eq!(img, [9]);
    }

    #[test]
    fn bad_configurations_are_refused_clearly() {
        let err = |y: &str| load(y).unwrap_err().to_string();
        assert!(err("apiVersion: v1\nkind: Pod\n").contains("expected \"kubescheduler.config.k8s.io/v1\""));
        assert!(err(&format!("{HEAD}bogus: 1\n")).contains("unknown field `bogus`"));
        assert!(
            err(&format!(
                "{HEAD}profiles:\n- schedulerName: a\n- schedulerName: a\n"
            ))
            .contains("Duplicate value: \"a\"")
        );
        assert!(
            err(&format!(
                "{HEAD}profiles:\n- plugins:\n    filter:\n      enabled: [{{name: Nope}}]\n"
            ))
            .contains("plugin \"Nope\" does not exist")
        );
        assert!(
            err(&format!(
                "{HEAD}profiles:\n- plugins:\n    score:\n      enabled: [{{name: NodeName}}]\n"
            ))
            .contains("does not extend score")
        );
        assert!(err(&format!("{HEAD}percentageOfNodesToScore: 120\n")).contains("[0, 100]"));
        assert!(err(&format!("{HEAD}podInitialBackoffSeconds: 20\n")).contains("podMaxBackoffSeconds"));
    }
}
