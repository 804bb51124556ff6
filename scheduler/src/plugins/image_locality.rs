//! ImageLocality: prefers nodes that already have the pod's images, weighted by image size and
//! by how widely the image is spread (an image on every node does not sway the choice).

use crate::framework::{CycleState, MAX_NODE_SCORE, ScorePlugin};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// The plugin's name.
pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
/// Below this sum of image sizes a node scores 0.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container: above this sum a node scores 100.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Upstream's `normalizedImageName`: an image without a tag gets `:latest`.
pub fn normalized_image_name(name: &str) -> String {
    if name
        .rfind(':')
        .is_none_or(|c| name.rfind('/').is_some_and(|s| c < s))
    {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// The ImageLocality plugin.
#[derive(Debug, Default)]
pub struct ImageLocality;

impl ScorePlugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo, snapshot: &Snapshot, _state: &CycleState) -> i64 {
        let Some(spec) = pod.pod.spec.as_ref() else {
            return 0;
        };
        let total_nodes = snapshot.len().max(1) as f64;
        let containers: Vec<_> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .collect();
        let mut sum = 0i64;
        for c in &containers {
            let name = normalized_image_name(c.image.as_deref().unwrap_or(""));
            if let Some(&size) = node.images.get(&name) {
                let spread = snapshot.image_spread(&name).num_nodes as f64 / total_nodes;
                sum += (size as f64 * spread) as i64;
            }
        }
        let max_threshold = MAX_CONTAINER_THRESHOLD * containers.len() as i64;
        let clamped = sum.clamp(MIN_THRESHOLD, max_threshold.max(MIN_THRESHOLD));
        if max_threshold <= MIN_THRESHOLD {
            return 0;
        }
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node_obj, pod, score_all};
    use serde_json::json;

    #[test]
    fn image_names_get_latest() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.25"), "nginx:1.25");
        assert_eq!(
            normalized_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalized_image_name("localhost:5000/app:v1"),
            "localhost:5000/app:v1"
        );
    }

    #[test]
    fn scores_as_upstream() {
        // Upstream's table shape: node1 has gcr.io/40 (40MB) and gcr.io/250 (250MB), node2 has
        // gcr.io/300 (300MB); the pod runs 40 and 300 → node1: 40MB*1/2 = 20MB < 23MB → 0;
        // node2: 300MB*1/2 = 150MB → 100*(150-23)/(2000-23) = 6.
        let images = |list: serde_json::Value| json!({"status": {"images": list}});
        let s = crate::Snapshot::new(
            [
                node_obj(
                    "n1",
                    images(json!([
                        {"names": ["gcr.io/40:latest"], "sizeBytes": 40 * MB},
                        {"names": ["gcr.io/250:latest"], "sizeBytes": 250 * MB}
                    ])),
                ),
                node_obj(
                    "n2",
                    images(json!([{"names": ["gcr.io/300:latest"], "sizeBytes": 300 * MB}])),
                ),
            ],
            [],
            [],
        );
        let p = pod(
            "p",
            json!({"spec": {"containers": [{"name": "a", "image": "gcr.io/40"}, {"name": "b", "image": "gcr.io/300"}]}}),
        );
        assert_eq!(score_all(&ImageLocality, &p, &s), Some(vec![0, 6]));
    }
}
