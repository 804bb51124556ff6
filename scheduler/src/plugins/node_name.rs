//! NodeName: a pod naming a node in `spec.nodeName` fits only that node.

use crate::framework::{CycleState, FilterPlugin, Status};
use crate::snapshot::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodeName";
/// Upstream's reason.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// The NodeName plugin.
#[derive(Debug, Default)]
pub struct NodeName;

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _state: &CycleState) -> Result<(), Status> {
        match &pod.node_name {
            Some(name) if *name != node.name => Err(Status::unresolvable(NAME, REASON)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, run_filter};
    use serde_json::json;

    #[test]
    fn matches_only_the_named_node() {
        let n = node("foo", json!({}));
        assert_eq!(run_filter(&NodeName, &pod("p", json!({})), &n), Ok(()));
        assert_eq!(
            run_filter(&NodeName, &pod("p", json!({"spec": {"nodeName": "foo"}})), &n),
            Ok(())
        );
        assert_eq!(
            run_filter(&NodeName, &pod("p", json!({"spec": {"nodeName": "bar"}})), &n),
            Err(Status::unresolvable(NAME, REASON))
        );
    }
}
