use serde_json::{Value, json};

use super::*;

fn errs_of(f: fn(&Value, &mut Errs), obj: &Value) -> Vec<(String, String)> {
    let mut errs = Errs::default();
    f(obj, &mut errs);
    errs.0.into_iter().map(|e| (e.field, e.message)).collect()
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        "containers": [{"name": "web", "image": "nginx"}]}})
}

fn deployment_obj() -> Value {
    json!({"metadata": {"name": "d"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template(),
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}})
}

#[test]
fn valid_workloads_pass() {
    assert_eq!(errs_of(deployment, &deployment_obj()), []);
    let mut rs = deployment_obj();
    rs["spec"].as_object_mut().unwrap().remove("strategy");
    assert_eq!(errs_of(replica_set, &rs), []);
    let ss = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(),
        "podManagementPolicy": "OrderedReady", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}});
    assert_eq!(errs_of(stateful_set, &ss), []);
    let ds = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(),
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}});
    assert_eq!(errs_of(daemon_set, &ds), []);
    let rc = json!({"spec": {"replicas": 1, "template": template()}});
    assert_eq!(errs_of(replication_controller, &rc), []);
}

#[test]
fn selector_rules() {
    let mut d = deployment_obj();
    d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    assert_eq!(
        errs_of(deployment, &d),
        [(
            "spec.template.metadata.labels".into(),
            "Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`".into()
        )]
    );
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        errs_of(deployment, &d),
        [("spec.selector".into(), "Required value".into())]
    );
    d["spec"]["selector"] = json!({});
    assert_eq!(
        errs_of(deployment, &d),
        [(
            "spec.selector".into(),
            "Invalid value: {}: empty selector is invalid for deployment".into()
        )]
    );
}

#[test]
fn template_and_strategy_rules() {
    let mut d = deployment_obj();
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
    assert_eq!(
        errs_of(deployment, &d),
        [
            (
                "spec.replicas".into(),
                "Invalid value: -1: must be greater than or equal to 0".into()
            ),
            (
                "spec.template.spec.containers[0].image".into(),
                "Required value".into()
            ),
            (
                "spec.template.spec.restartPolicy".into(),
                "Unsupported value: \"Never\": supported values: \"Always\"".into()
            ),
            (
                "spec.strategy.rollingUpdate".into(),
                "Forbidden: may not be specified when strategy `type` is 'Recreate'".into()
            ),
        ]
    );
    let mut d = deployment_obj();
    d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": "0%"});
    assert_eq!(
        errs_of(deployment, &d),
        [(
            "spec.strategy.rollingUpdate.maxUnavailable".into(),
            "Invalid value: 0: may not be 0 when `maxSurge` is 0".into()
        )]
    );
    d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": "150%", "maxSurge": 1});
    assert_eq!(
        errs_of(deployment, &d),
        [(
            "spec.strategy.rollingUpdate.maxUnavailable".into(),
            "Invalid value: \"150%\": must not be greater than 100%".into()
        )]
    );
}

#[test]
fn updates() {
    let old = deployment_obj();
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
    let mut errs = Errs::default();
    selector_immutable(&new, &old, &mut errs);
    assert_eq!(errs.0[0].field, "spec.selector");
    assert!(errs.0[0].message.ends_with(": field is immutable"));
    let old = json!({"spec": {"serviceName": "a", "replicas": 1}});
    let mut errs = Errs::default();
    stateful_set_update(
        &json!({"spec": {"serviceName": "a", "replicas": 3}}),
        &old,
        &mut errs,
    );
    assert!(errs.0.is_empty());
    stateful_set_update(
        &json!({"spec": {"serviceName": "b", "replicas": 1}}),
        &old,
        &mut errs,
    );
    assert_eq!(errs.0[0].field, "spec");
}

#[test]
fn status_counts() {
    let obj = json!({"status": {"replicas": 1, "readyReplicas": 2, "availableReplicas": -1}});
    let errs = errs_of(status, &obj);
    assert!(errs.contains(&(
        "status.readyReplicas".into(),
        "Invalid value: 2: cannot be greater than status.replicas".into()
    )));
    assert!(errs.contains(&(
        "status.availableReplicas".into(),
        "Invalid value: -1: must be greater than or equal to 0".into()
    )));
}

#[test]
fn stateful_set_containers_may_mount_their_claim_templates() {
    let mut tmpl = template();
    tmpl["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "www", "mountPath": "/usr/share/nginx/html"}]);
    let mut ss = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": tmpl,
        "podManagementPolicy": "OrderedReady", "updateStrategy": {"type": "RollingUpdate"},
        "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
    assert_eq!(errs_of(stateful_set, &ss), []);
    ss["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] = json!("data");
    assert_eq!(
        errs_of(stateful_set, &ss),
        [(
            "spec.template.spec.containers[0].volumeMounts[0].name".to_string(),
            "Not found: \"www\"".to_string()
        )]
    );
}
