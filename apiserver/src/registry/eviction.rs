//! `pods/<name>/eviction` as upstream: a pod covered by a PodDisruptionBudget is only deleted when
//! the budget allows a disruption, which the eviction takes (decrementing
//! `status.disruptionsAllowed` and recording the pod in `status.disruptedPods` until the
//! disruption controller sees it go); otherwise 429 so that clients such as `kubectl drain` retry.

use serde_json::{Value, json};

use super::{DeleteOptions, ListOptions, Registry, Reply, meta_str, now_rfc3339};
use crate::descriptor::ResourceDescriptor;
use crate::error::{ApiError, ApiResult};
use crate::objstore::UpdateAction;
use crate::registry::subresource::success_status;

/// Upstream's cap on `status.disruptedPods` before evictions are refused.
const MAX_DISRUPTED_PODS: usize = 2000;
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
const CAUSE: &str = "DisruptionBudget";

/// What a budget means for evicting one pod.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BudgetDecision {
    /// Delete without touching the budget (an unhealthy pod the policy lets go).
    Delete,
    /// Take one allowed disruption, then delete.
    Decrement,
}

/// Pods whose eviction never consults a budget: finished, pending or already being deleted.
fn ignores_budgets(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    matches!(phase, "Succeeded" | "Failed" | "Pending") || !meta_str(pod, "deletionTimestamp").is_empty()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn status_i64(pdb: &Value, field: &str) -> i64 {
    pdb.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether `pdb` lets `pod` be evicted now, as upstream's eviction REST decides.
pub(crate) fn decide(pod: &Value, pdb: &Value) -> ApiResult<BudgetDecision> {
    let name = meta_str(pdb, "name");
    if !is_ready(pod) {
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        if policy == Some("AlwaysAllow") {
            return Ok(BudgetDecision::Delete);
        }
        let desired = status_i64(pdb, "desiredHealthy");
        if desired > 0 && status_i64(pdb, "currentHealthy") >= desired {
            return Ok(BudgetDecision::Delete);
        }
    }
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status_i64(pdb, "observedGeneration") < generation {
        return Err(ApiError::too_many_requests(VIOLATION).with_cause(
            CAUSE,
            &format!("The disruption budget {name} is still being processed by the server."),
            "",
        ));
    }
    let allowed = status_i64(pdb, "disruptionsAllowed");
    let gr = crate::error::GroupResource::new("policy", "poddisruptionbudgets");
    if allowed < 0 {
        return Err(ApiError::forbidden(
            &gr,
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::forbidden(
            &gr,
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(ApiError::too_many_requests(VIOLATION).with_cause(
            CAUSE,
            &format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status_i64(pdb, "desiredHealthy"),
                status_i64(pdb, "currentHealthy")
            ),
            "",
        ));
    }
    Ok(BudgetDecision::Decrement)
}

impl Registry {
    /// POST `pods/<name>/eviction`: deletes the pod unless a disruption budget forbids it.
    pub async fn evict(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> ApiResult<Reply> {
        let options = body.get("deleteOptions");
        let opts = DeleteOptions {
            grace_period_seconds: options
                .and_then(|o| o.get("gracePeriodSeconds"))
                .and_then(Value::as_i64),
            precondition_uid: options
                .and_then(|o| o.pointer("/preconditions/uid"))
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: options
                .and_then(|o| o.pointer("/preconditions/resourceVersion"))
                .and_then(Value::as_str)
                .map(str::to_string),
            dry_run: options
                .and_then(|o| o.get("dryRun"))
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All")),
            ..Default::default()
        };
        let pod = self.get(desc, ns, name).await?;
        if !ignores_budgets(&pod) {
            self.take_disruption(ns, name, &pod, opts.dry_run).await?;
        }
        self.delete(desc, ns, name, &opts).await?;
        Ok(Reply {
            code: 201,
            body: success_status(201),
            warnings: Vec::new(),
        })
    }

    /// Checks the budget covering `pod` (at most one may) and takes one disruption from it.
    async fn take_disruption(&self, ns: &str, name: &str, pod: &Value, dry_run: bool) -> ApiResult<()> {
        let Some(pdbs) = self.table.lookup("policy", "v1", "poddisruptionbudgets") else {
            return Ok(());
        };
        let list = self.list(&pdbs, ns, &ListOptions::default()).await?;
        let covering: Vec<&Value> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pdb| selects(pdb, pod))
            .collect();
        let pdb = match covering.as_slice() {
            [] => return Ok(()),
            [one] => *one,
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        if decide(pod, pdb)? == BudgetDecision::Delete {
            return Ok(());
        }
        let pdb_name = meta_str(pdb, "name").to_string();
        let pod_name = name.to_string();
        self.write(&pdbs.key(ns, &pdb_name), dry_run, |cur| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&pdbs.group_resource(), &pdb_name))?;
            decide(pod, cur)?;
            let mut new = cur.clone();
            new["status"]["disruptionsAllowed"] = json!(status_i64(cur, "disruptionsAllowed") - 1);
            if !new["status"]["disruptedPods"].is_object() {
                new["status"]["disruptedPods"] = json!({});
            }
            new["status"]["disruptedPods"][&pod_name] = json!(now_rfc3339());
            Ok(UpdateAction::Put(new))
        })
        .await?;
        Ok(())
    }
}

/// Whether a budget's selector selects the pod (a missing or empty selector selects nothing
/// in policy/v1 for this purpose only when absent).
fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector") else {
        return false;
    };
    let Ok(sel) = serde_json::from_value(sel.clone()) else {
        return false;
    };
    api_util::labels::LabelSelector::from_label_selector(&sel).is_ok_and(|s| s.matches_object(pod))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"name": "p", "labels": {"app": "web"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn pdb(allowed: i64, current: i64, desired: i64) -> Value {
        json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 2, "disruptionsAllowed": allowed,
                "currentHealthy": current, "desiredHealthy": desired}})
    }

    #[test]
    fn a_budget_with_room_is_decremented() {
        assert_eq!(
            decide(&pod(true), &pdb(1, 3, 2)).unwrap(),
            BudgetDecision::Decrement
        );
    }

    #[test]
    fn an_exhausted_budget_answers_429_with_upstreams_cause() {
        let e = decide(&pod(true), &pdb(0, 2, 2)).unwrap_err();
        assert_eq!(e.code(), 429);
        let body = e.to_json();
        assert_eq!(body["message"], VIOLATION);
        assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(
            body["details"]["causes"][0]["message"],
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
    }

    #[test]
    fn a_budget_not_yet_observed_answers_429() {
        let mut b = pdb(1, 3, 2);
        b["metadata"]["generation"] = json!(3);
        let e = decide(&pod(true), &b).unwrap_err();
        assert_eq!(e.code(), 429);
        assert!(
            e.to_json()["details"]["causes"][0]["message"]
                .as_str()
                .unwrap()
                .contains("still being processed")
        );
    }

    #[test]
    fn unhealthy_pods_follow_the_policy() {
        // IfHealthyBudget (default): an unready pod goes when the budget is healthy.
        assert_eq!(
            decide(&pod(false), &pdb(0, 2, 2)).unwrap(),
            BudgetDecision::Delete
        );
        assert_eq!(decide(&pod(false), &pdb(0, 1, 2)).unwrap_err().code(), 429);
        let mut always = pdb(0, 1, 2);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert_eq!(decide(&pod(false), &always).unwrap(), BudgetDecision::Delete);
    }

    #[test]
    fn negative_budgets_are_forbidden() {
        assert_eq!(decide(&pod(true), &pdb(-1, 0, 0)).unwrap_err().code(), 403);
    }

    #[test]
    fn finished_pending_and_deleted_pods_skip_budgets() {
        let mut p = pod(true);
        assert!(!ignores_budgets(&p));
        for phase in ["Succeeded", "Failed", "Pending"] {
            p["status"]["phase"] = json!(phase);
            assert!(ignores_budgets(&p), "{phase}");
        }
        let mut d = pod(true);
        d["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(ignores_budgets(&d));
    }

    #[test]
    fn selectors_pick_covering_budgets() {
        assert!(selects(&pdb(1, 1, 1), &pod(true)));
        let mut other = pdb(1, 1, 1);
        other["spec"]["selector"] = json!({"matchLabels": {"app": "db"}});
        assert!(!selects(&other, &pod(true)));
        let mut none = pdb(1, 1, 1);
        none["spec"].as_object_mut().unwrap().remove("selector");
        assert!(!selects(&none, &pod(true)));
    }
}
