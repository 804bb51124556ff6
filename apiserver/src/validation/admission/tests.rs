use serde_json::{Value, json};

use super::*;
use crate::validation::test_support::{pair, run};

fn hook() -> Value {
    json!({
        "name": "pod-policy.example.com",
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods", "pods/status"], "scope": "Namespaced"}],
        "clientConfig": {"service": {"namespace": "example-namespace", "name": "example-service", "path": "/validate/pods", "port": 443}, "caBundle": "Cg=="},
        "admissionReviewVersions": ["v1", "v1beta1"],
        "sideEffects": "None",
        "timeoutSeconds": 5,
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "namespaceSelector": {"matchExpressions": [{"key": "environment", "operator": "In", "values": ["prod"]}]}
    })
}

#[test]
fn valid_configurations_pass() {
    let mut url_hook = hook();
    url_hook["name"] = json!("url.hooks.example.com");
    url_hook["clientConfig"] = json!({"url": "https://my-webhook.example.com:9443/my-webhook-path"});
    url_hook["rules"] =
        json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"]}]);
    assert_eq!(run(validating, json!({"webhooks": [hook(), url_hook]})), []);
    let mut m = hook();
    m["reinvocationPolicy"] = json!("IfNeeded");
    assert_eq!(run(mutating, json!({"webhooks": [m]})), []);
}

#[test]
fn webhook_rules() {
    let mut h = hook();
    h["name"] = json!("example.com");
    h.as_object_mut().unwrap().remove("sideEffects");
    h["admissionReviewVersions"] = json!(["v2", "v2"]);
    h["timeoutSeconds"] = json!(31);
    h["reinvocationPolicy"] = json!("Always");
    h["clientConfig"] =
        json!({"url": "http://user@host/x?y=1#z", "service": {"name": "s", "namespace": "n"}});
    let errs = run(validating, json!({"webhooks": [h]}));
    assert_eq!(
        errs,
        [
            pair(
                "webhooks[0].name",
                "Invalid value: \"example.com\": should be a domain with at least three segments separated by dots"
            ),
            pair(
                "webhooks[0].sideEffects",
                "Required value: must specify one of None, NoneOnDryRun"
            ),
            pair(
                "webhooks[0].timeoutSeconds",
                "Invalid value: 31: the timeout value must be between 1 and 30 seconds"
            ),
            pair(
                "webhooks[0].clientConfig",
                "Required value: exactly one of url or service is required"
            ),
            pair(
                "webhooks[0].admissionReviewVersions[1]",
                "Invalid value: \"v2\": duplicate version"
            ),
            pair(
                "webhooks[0].admissionReviewVersions",
                "Invalid value: [\"v2\",\"v2\"]: must include at least one of v1, v1beta1"
            ),
        ]
    );
    let mut a = hook();
    a["sideEffects"] = json!("Some");
    a["admissionReviewVersions"] = json!([]);
    a["clientConfig"] = json!({"url": "http://user@host/x?y=1#z"});
    a["rules"] = json!([{"apiGroups": [], "apiVersions": ["*", "v1"], "operations": ["*", "PATCH"], "resources": ["*", "pods", "pods/*", "pods/log"]}]);
    let b = hook();
    let errs = run(mutating, json!({"webhooks": [a, b]}));
    let r = "webhooks[0].rules[0]";
    let u = "webhooks[0].clientConfig.url";
    assert_eq!(
        errs,
        [
            pair(
                &format!("{r}.operations"),
                "Invalid value: [\"*\",\"PATCH\"]: if '*' is present, must not specify other operations"
            ),
            pair(
                &format!("{r}.operations[1]"),
                "Unsupported value: \"PATCH\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\""
            ),
            pair(&format!("{r}.apiGroups"), "Required value"),
            pair(
                &format!("{r}.apiVersions"),
                "Invalid value: [\"*\",\"v1\"]: if '*' is present, must not specify other API versions"
            ),
            pair(
                &format!("{r}.resources[3]"),
                "Invalid value: \"pods/log\": if 'pods/*' is present, must not specify pods/log"
            ),
            pair(
                &format!("{r}.resources"),
                "Invalid value: [\"*\",\"pods\",\"pods/*\",\"pods/log\"]: if '*' is present, must not specify other resources without subresources"
            ),
            pair(
                "webhooks[0].sideEffects",
                "Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""
            ),
            pair(
                u,
                "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]"
            ),
            pair(
                u,
                "Invalid value: \"user\": user information is not permitted in the URL"
            ),
            pair(u, "Invalid value: \"z\": fragments are not permitted in the URL"),
            pair(
                u,
                "Invalid value: \"y=1\": query parameters are not permitted in the URL"
            ),
            pair(
                "webhooks[0].admissionReviewVersions",
                "Required value: must specify one of v1, v1beta1"
            ),
            pair("webhooks[1].name", "Duplicate value: \"pod-policy.example.com\""),
        ]
    );
    let mut s = hook();
    s["clientConfig"] = json!({"service": {"name": "", "namespace": "n", "port": 0, "path": "/a//B"}});
    let errs = run(validating, json!({"webhooks": [s]}));
    let p = "webhooks[0].clientConfig.service";
    assert_eq!(
        errs[0],
        pair(&format!("{p}.name"), "Required value: service name is required")
    );
    assert_eq!(
        errs[1],
        pair(
            &format!("{p}.port"),
            "Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive"
        )
    );
    assert_eq!(
        errs[2],
        pair(
            &format!("{p}.path"),
            "Invalid value: \"/a//B\": segment[1] may not be empty"
        )
    );
    assert!(
        errs[3]
            .1
            .starts_with("Invalid value: \"/a//B\": segment[2]: a lowercase RFC 1123 subdomain")
    );
}

#[test]
fn match_conditions_are_named_uniquely_with_expressions() {
    let mut h = hook();
    h["matchConditions"] = json!([
        {"name": "exclude-leases", "expression": "!(request.resource.group == 'coordination.k8s.io')"},
        {"name": "exclude-leases", "expression": " "},
        {"name": "bad name", "expression": "true"}
    ]);
    let errs = run(validating, json!({"webhooks": [h]}));
    let p = "webhooks[0].matchConditions";
    assert_eq!(errs[0], pair(&format!("{p}[1].expression"), "Required value"));
    assert_eq!(
        errs[1],
        pair(&format!("{p}[1].name"), "Duplicate value: \"exclude-leases\"")
    );
    assert_eq!(errs[2].0, format!("{p}[2].name"));
    assert_eq!(errs.len(), 3);
}
