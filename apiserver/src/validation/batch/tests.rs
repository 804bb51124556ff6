use serde_json::{Value, json};

use super::*;

fn errs_of(f: fn(&Value, &mut Errs), obj: &Value) -> Vec<(String, String)> {
    let mut errs = Errs::default();
    f(obj, &mut errs);
    errs.0.into_iter().map(|e| (e.field, e.message)).collect()
}

fn job_template() -> Value {
    json!({"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u"}}, "spec": {
        "restartPolicy": "Never", "dnsPolicy": "ClusterFirst",
        "containers": [{"name": "c", "image": "busybox"}]}})
}

fn job_obj() -> Value {
    json!({"metadata": {"name": "j"}, "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}, "template": job_template()}})
}

fn cron_obj() -> Value {
    let mut spec = job_obj()["spec"].clone();
    spec.as_object_mut().unwrap().remove("selector");
    json!({"metadata": {"name": "cj"}, "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Allow",
        "jobTemplate": {"spec": spec}}})
}

#[test]
fn valid_jobs_pass() {
    assert_eq!(errs_of(job, &job_obj()), []);
    assert_eq!(errs_of(cron_job, &cron_obj()), []);
    let mut cj = cron_obj();
    cj["spec"]["schedule"] = json!("@hourly");
    cj["spec"]["timeZone"] = json!("Etc/UTC");
    assert_eq!(errs_of(cron_job, &cj), []);
}

#[test]
fn job_rules() {
    let mut j = job_obj();
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    j["spec"]["parallelism"] = json!(-1);
    j["spec"]["template"]["metadata"]["labels"] = json!({"x": "y"});
    assert_eq!(
        errs_of(job, &j),
        [
            (
                "spec.parallelism".into(),
                "Invalid value: -1: must be greater than or equal to 0".into()
            ),
            (
                "spec.template.spec.restartPolicy".into(),
                "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"".into()
            ),
            (
                "spec.template.metadata.labels".into(),
                "Invalid value: {\"x\":\"y\"}: `selector` does not match template `labels`".into()
            ),
        ]
    );
}

#[test]
fn job_updates() {
    let old = job_obj();
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
    let mut errs = Errs::default();
    job_update(&new, &old, &mut errs);
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].field, "spec.template");
    assert!(errs.0[0].message.ends_with("field is immutable"));
    let mut suspended = old.clone();
    suspended["spec"]["suspend"] = json!(true);
    suspended["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
    let mut errs = Errs::default();
    job_update(&suspended, &old, &mut errs);
    assert!(errs.0.is_empty(), "{:?}", errs.0);
}

#[test]
fn cron_job_rules() {
    let mut cj = cron_obj();
    cj["spec"]["schedule"] = json!("61 * * * *");
    cj["spec"]["concurrencyPolicy"] = json!("Sometimes");
    cj["spec"]["timeZone"] = json!("Mars/Olympus");
    cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    assert_eq!(
        errs_of(cron_job, &cj),
        [
            (
                "spec.schedule".into(),
                "Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61".into()
            ),
            (
                "spec.timeZone".into(),
                "Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus".into()
            ),
            (
                "spec.concurrencyPolicy".into(),
                "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""
                    .into()
            ),
            (
                "spec.jobTemplate.spec.template.spec.restartPolicy".into(),
                "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"".into()
            ),
        ]
    );
    let mut cj = cron_obj();
    cj["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
    assert_eq!(
        errs_of(cron_job, &cj),
        [(
            "spec.schedule".into(),
            "Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into()
        )]
    );
}
