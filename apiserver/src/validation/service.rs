//! Services (upstream `ValidateService` / `ValidateServiceUpdate`).

use std::collections::HashSet;

use serde_json::Value;

use super::field::{Errs, child, index, int, list, object, string};
use super::{metadata, names, pod};

const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// A Service.
pub fn service(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let kind = string(spec, "type");
    let headless = string(spec, "clusterIP") == "None";
    let ports = list(spec, "ports");
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errs.required("spec.ports", "");
    }
    match kind {
        "ExternalName" => {
            let name = string(spec, "externalName");
            if name.is_empty() {
                errs.required("spec.externalName", "");
            } else {
                let trimmed = name.strip_suffix('.').unwrap_or(name);
                let msgs = names::dns1123_subdomain(trimmed);
                if !msgs.is_empty() {
                    errs.invalid_str("spec.externalName", trimmed, &msgs.join(","));
                } else if !trimmed.contains('.') {
                    errs.invalid_str(
                        "spec.externalName",
                        trimmed,
                        "should be a domain with at least two segments separated by dots",
                    );
                }
            }
        }
        t if TYPES.contains(&t) => {}
        "" => errs.required("spec.type", ""),
        other => errs.not_supported("spec.type", &Value::from(other), &TYPES),
    }
    let mut port_names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        port(
            p,
            &index("spec.ports", i),
            ports.len() > 1,
            kind,
            &mut port_names,
            errs,
        );
    }
    metadata::labels(object(spec, "selector"), "spec.selector", errs);
    match string(spec, "sessionAffinity") {
        "None" => {
            if let Some(cfg) = spec.get("sessionAffinityConfig").filter(|v| !v.is_null()) {
                errs.invalid(
                    "spec.sessionAffinityConfig",
                    cfg,
                    "must not be set when session affinity is None",
                );
            }
        }
        "ClientIP" => {
            if let Some(t) = spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .and_then(Value::as_i64)
                && !(1..=86400).contains(&t)
            {
                errs.invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    &Value::from(t),
                    "must be greater than 0 and less than 86400",
                );
            }
        }
        "" => errs.required("spec.sessionAffinity", ""),
        other => errs.not_supported("spec.sessionAffinity", &Value::from(other), &["ClientIP", "None"]),
    }
    let policy = string(spec, "externalTrafficPolicy");
    if !policy.is_empty() && policy != "Cluster" && policy != "Local" {
        errs.not_supported(
            "spec.externalTrafficPolicy",
            &Value::from(policy),
            &["Cluster", "Local"],
        );
    }
    let internal = string(spec, "internalTrafficPolicy");
    if !internal.is_empty() && internal != "Cluster" && internal != "Local" {
        errs.not_supported(
            "spec.internalTrafficPolicy",
            &Value::from(internal),
            &["Cluster", "Local"],
        );
    }
}

fn port(p: &Value, path: &str, require_name: bool, kind: &str, seen: &mut HashSet<String>, errs: &mut Errs) {
    let name = string(p, "name");
    if name.is_empty() {
        if require_name {
            errs.required(child(path, "name"), "");
        }
    } else {
        errs.invalid_each(&child(path, "name"), name, names::dns1123_label(name));
        if !seen.insert(name.to_string()) {
            errs.duplicate(child(path, "name"), &Value::from(name));
        }
    }
    pod::port_number(int(p, "port").unwrap_or(0), &child(path, "port"), errs);
    pod::protocol(p, path, errs);
    match p.get("targetPort") {
        Some(Value::Number(n)) => {
            if let Some(n) = n.as_i64() {
                pod::port_number(n, &child(path, "targetPort"), errs);
            }
        }
        Some(Value::String(s)) if s.is_empty() => errs.required(child(path, "targetPort"), ""),
        Some(Value::String(s)) => errs.invalid_each(&child(path, "targetPort"), s, names::port_name(s)),
        _ => {}
    }
    if let Some(n) = int(p, "nodePort")
        && n != 0
    {
        if kind == "ClusterIP" || kind == "ExternalName" {
            errs.forbidden(
                child(path, "nodePort"),
                &format!("may not be used when `type` is '{kind}'"),
            );
        } else {
            pod::port_number(n, &child(path, "nodePort"), errs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(spec: Value) -> Vec<(String, String)> {
        let mut errs = Errs::default();
        service(&json!({"metadata": {"name": "s"}, "spec": spec}), &mut errs);
        errs.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    fn base() -> Value {
        json!({"type": "ClusterIP", "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]})
    }

    #[test]
    fn valid_services_pass() {
        assert_eq!(check(base()), []);
        assert_eq!(
            check(json!({"type": "ClusterIP", "clusterIP": "None", "sessionAffinity": "None"})),
            []
        );
        assert_eq!(
            check(
                json!({"type": "ExternalName", "externalName": "db.example.com.", "sessionAffinity": "None"})
            ),
            []
        );
    }

    #[test]
    fn port_rules() {
        let mut spec = base();
        spec["ports"] = json!([
            {"port": 70000, "protocol": "TCP", "targetPort": "http"},
            {"name": "http", "port": 81, "protocol": "ICMP", "targetPort": 0, "nodePort": 30001}
        ]);
        assert_eq!(
            check(spec),
            [
                ("spec.ports[0].name".into(), "Required value".into()),
                (
                    "spec.ports[0].port".into(),
                    "Invalid value: 70000: must be between 1 and 65535, inclusive".into()
                ),
                (
                    "spec.ports[1].protocol".into(),
                    "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into()
                ),
                (
                    "spec.ports[1].targetPort".into(),
                    "Invalid value: 0: must be between 1 and 65535, inclusive".into()
                ),
                (
                    "spec.ports[1].nodePort".into(),
                    "Forbidden: may not be used when `type` is 'ClusterIP'".into()
                ),
            ]
        );
    }

    #[test]
    fn type_rules() {
        assert_eq!(
            check(json!({"type": "ClusterIP", "sessionAffinity": "None"})),
            [("spec.ports".into(), "Required value".into())]
        );
        assert_eq!(
            check(json!({"type": "ExternalName", "sessionAffinity": "Sticky"})),
            [
                ("spec.externalName".into(), "Required value".into()),
                (
                    "spec.sessionAffinity".into(),
                    "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"".into()
                )
            ]
        );
        let mut spec = base();
        spec["type"] = json!("Internal");
        assert_eq!(check(spec)[0].0, "spec.type");
    }
}
