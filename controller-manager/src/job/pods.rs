//! The pods a Job creates from its template.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use super::decide::{COMPLETION_INDEX, INDEX_FAILURE_COUNT, TRACKING_FINALIZER};

/// The environment variable holding an Indexed Job pod's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The reference making `job` its pods' controller.
pub fn controller_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.name_any(),
        uid: job.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod of `job` (for `index` in Indexed mode, whose earlier failures were `failures`).
pub fn new_pod(job: &Job, index: Option<i32>, failures: i32) -> Pod {
    let name = job.name_any();
    let spec = job.spec.clone().unwrap_or_default();
    let template = spec.template;
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut pod_spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            if spec.backoff_limit_per_index.is_some() {
                annotations.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
            }
            if pod_spec.hostname.is_none() {
                pod_spec.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                }),
            };
            for c in pod_spec
                .containers
                .iter_mut()
                .chain(pod_spec.init_containers.iter_mut().flatten())
            {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    let mut finalizers = meta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexed_pods_carry_their_index_everywhere() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "work", "namespace": "ns", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "completions": 3, "backoffLimitPerIndex": 1, "template": {
                "metadata": {"labels": {"batch.kubernetes.io/job-name": "work"}},
                "spec": {"subdomain": "svc", "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            }}
        }))
        .unwrap();
        let pod = new_pod(&job, Some(2), 1);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("work-2-"));
        assert_eq!(pod.labels()[COMPLETION_INDEX], "2");
        assert_eq!(pod.labels()["batch.kubernetes.io/job-name"], "work");
        assert_eq!(pod.annotations()[COMPLETION_INDEX], "2");
        assert_eq!(pod.annotations()[INDEX_FAILURE_COUNT], "1");
        assert_eq!(pod.finalizers(), &[TRACKING_FINALIZER.to_string()]);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("work-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("svc"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, INDEX_ENV);
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Job", "u1", Some(true))
        );

        let plain = new_pod(
            &Job {
                spec: Some(Default::default()),
                ..job
            },
            None,
            0,
        );
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("work-"));
    }
}
