//! The cases, in the order they run. Names are unique; each case checks kubectl's output.

mod create;
mod discovery;
mod get;
mod lifecycle;
mod modify;

use crate::suite::{Case, Phase};

const fn case(
    name: &'static str,
    phase: Phase,
    run: fn(&crate::suite::Ctx) -> crate::suite::CaseResult,
) -> Case {
    Case { name, phase, run }
}

/// Every case, phase by phase, in order.
pub fn all() -> Vec<Case> {
    use Phase::{Create as C, Verify as V};
    vec![
        case("version", C, discovery::version),
        case("cluster-info", C, discovery::cluster_info),
        case("api-resources", C, discovery::api_resources),
        case("api-versions", C, discovery::api_versions),
        case("create-namespace", C, create::namespace),
        case("create-file", C, create::create_file),
        case("create-serviceaccount", C, create::serviceaccount),
        case("create-token", C, create::token),
        case("create-clusterrole", C, create::clusterrole),
        case(
            "create-clusterrole-aggregation-rule",
            C,
            create::clusterrole_aggregation,
        ),
        case("create-clusterrolebinding", C, create::clusterrolebinding),
        case("create-configmap", C, create::configmap),
        case("create-cronjob", C, create::cronjob),
        case("create-deployment", C, create::deployment),
        case("create-ingress", C, create::ingress),
        case("create-job", C, create::job),
        case("create-job-from-cronjob", C, create::job_from_cronjob),
        case("create-poddisruptionbudget", C, create::poddisruptionbudget),
        case("create-priorityclass", C, create::priorityclass),
        case("create-quota", C, create::quota),
        case("create-role", C, create::role),
        case("create-rolebinding", C, create::rolebinding),
        case("create-secret-generic", C, create::secret_generic),
        case("create-secret-docker-registry", C, create::secret_docker_registry),
        case("create-secret-tls", C, create::secret_tls),
        case("create-service-clusterip", C, create::service_clusterip),
        case("create-service-externalname", C, create::service_externalname),
        case("create-service-loadbalancer", C, create::service_loadbalancer),
        case("create-service-nodeport", C, create::service_nodeport),
        case("get-table", C, get::get_table),
        case("get-wide", C, get::get_wide),
        case("get-yaml", C, get::get_yaml),
        case("get-json", C, get::get_json),
        case("get-name", C, get::get_name),
        case("get-jsonpath", C, get::get_jsonpath),
        case("get-custom-columns", C, get::get_custom_columns),
        case("get-label-selector", C, get::get_label_selector),
        case("get-field-selector", C, get::get_field_selector),
        case("get-all-namespaces", C, get::get_all_namespaces),
        case("get-chunk-size", C, get::get_chunk_size),
        case("get-category-all", C, get::get_category_all),
        case("get-sort-and-label-columns", C, get::get_sort_and_label_columns),
        case("get-events-and-endpoints", C, get::get_events_and_endpoints),
        case("get-watch", C, get::get_watch),
        case("describe", C, get::describe),
        case("apply", C, modify::apply),
        case("apply-server-side", C, modify::apply_server_side),
        case("diff", C, modify::diff),
        case("replace", C, modify::replace),
        case("edit", C, modify::edit),
        case("patch", C, modify::patch),
        case("label", C, modify::label),
        case("annotate", C, modify::annotate),
        case("scale", C, modify::scale),
        case("explain", C, discovery::explain),
        case("get-raw", C, discovery::get_raw),
        case("snapshot", C, lifecycle::snapshot),
        case("persisted", V, lifecycle::persisted),
        case("apply-after-restart", V, modify::apply_after_restart),
        case("wait-for-jsonpath", V, lifecycle::wait_for_jsonpath),
        case("wait-for-delete", V, lifecycle::wait_for_delete),
        case("delete-by-name", V, lifecycle::delete_by_name),
        case("delete-by-label", V, lifecycle::delete_by_label),
        case("delete-all", V, lifecycle::delete_all),
        case("delete-cascade", V, lifecycle::delete_cascade),
        case("delete-wait", V, lifecycle::delete_wait),
        case("delete-namespace", V, lifecycle::delete_namespace),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_phases_ordered() {
        let cases = all();
        let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), cases.len());
        let first_verify = cases.iter().position(|c| c.phase == Phase::Verify).unwrap();
        assert!(cases[first_verify..].iter().all(|c| c.phase == Phase::Verify));
        for (known, _) in crate::suite::KNOWN_FAILURES {
            assert!(cases.iter().any(|c| c.name == *known), "{known}");
        }
    }
}
