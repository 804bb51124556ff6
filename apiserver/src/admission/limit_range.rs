//! The LimitRanger admission plugin (upstream `plugin/pkg/admission/limitranger`, on by
//! default): the LimitRanges of a namespace give containers of new pods their missing requests
//! and limits (`defaultRequest`, `default`), and bound containers, pods and PVCs (`min`, `max`,
//! `maxLimitRequestRatio`); a violation is a 403.
//!
//! LimitRange objects themselves get upstream's defaults for `Container` items when written
//! ([`default_item`], a rule of `defaults`).

use serde_json::{Value, json};

use super::amount::{self, Amount, Resources};

/// The pod annotation naming what the plugin set.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn items(limit_range: &Value) -> impl Iterator<Item = &Value> {
    limit_range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn of_type<'a>(limit_range: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    items(limit_range).filter(move |i| i.get("type").and_then(Value::as_str) == Some(kind))
}

/// Upstream's `SetDefaults_LimitRangeItem`: for a `Container` item, `default` from `max`, then
/// `defaultRequest` from `default` and from `min` (entries already set are kept).
pub fn default_item(item: &mut serde_json::Map<String, Value>) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let fill = |map: &mut serde_json::Map<String, Value>, to: &str, from: &str| {
        let source = map
            .get(from)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if source.is_empty() {
            return;
        }
        let target = map.entry(to).or_insert_with(|| json!({}));
        if let Some(target) = target.as_object_mut() {
            for (k, v) in source {
                target.entry(k).or_insert(v);
            }
        }
    };
    fill(item, "default", "max");
    fill(item, "defaultRequest", "default");
    fill(item, "defaultRequest", "min");
}

/// The container defaults of one LimitRange: (requests, limits).
fn container_defaults(limit_range: &Value) -> (Resources, Resources) {
    let mut requests = Resources::new();
    let mut limits = Resources::new();
    for item in of_type(limit_range, "Container") {
        requests.extend(amount::resources(item.get("defaultRequest")));
        limits.extend(amount::resources(item.get("default")));
    }
    (requests, limits)
}

/// Gives the containers of `pod` the defaults of `limit_range` they lack, recording what was
/// set in the `kubernetes.io/limit-ranger` annotation.
pub fn default_pod(limit_range: &Value, pod: &mut Value) {
    let (requests, limits) = container_defaults(limit_range);
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (field, label) in [("containers", "container"), ("initContainers", "init container")] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let Some(c) = c.as_object_mut() else { continue };
            let res = c.entry("resources").or_insert_with(|| json!({}));
            let set_limits = fill_missing(res, "limits", &limits);
            let set_requests = fill_missing(res, "requests", &requests);
            if !set_requests.is_empty() {
                notes.push(format!("{} request for {label} {name}", set_requests.join(", ")));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {label} {name}", set_limits.join(", ")));
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        annotations[ANNOTATION] = Value::String(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// Adds the entries of `defaults` missing from `resources[field]`; the names added, sorted.
fn fill_missing(resources: &mut Value, field: &str, defaults: &Resources) -> Vec<String> {
    if defaults.is_empty() || !resources.is_object() {
        return Vec::new();
    }
    let list = resources
        .as_object_mut()
        .map(|r| r.entry(field).or_insert_with(|| json!({})));
    let Some(list) = list.and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    let mut added = Vec::new();
    for (k, v) in defaults {
        if !list.contains_key(k) {
            list.insert(k.clone(), v.to_json());
            added.push(k.clone());
        }
    }
    added
}

/// The value of a quantity as written, for messages (upstream prints the parsed quantity).
fn shown(a: &Amount) -> String {
    a.to_string()
}

/// `min`: a request is required and neither request nor limit may be below.
fn min_constraint(
    kind: &str,
    name: &str,
    min: Amount,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let Some(req) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {}.  No request is specified",
            shown(&min)
        ));
    };
    if *req < min {
        return Some(format!(
            "minimum {name} usage per {kind} is {}, but request is {}",
            shown(&min),
            shown(req)
        ));
    }
    match limits.get(name) {
        Some(lim) if *lim < min => Some(format!(
            "minimum {name} usage per {kind} is {}, but limit is {}",
            shown(&min),
            shown(lim)
        )),
        _ => None,
    }
}

/// `max` for containers and pods: a limit is required and neither limit nor request may be above.
fn max_constraint(
    kind: &str,
    name: &str,
    max: Amount,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let Some(lim) = limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {}.  No limit is specified",
            shown(&max)
        ));
    };
    if *lim > max {
        return Some(format!(
            "maximum {name} usage per {kind} is {}, but limit is {}",
            shown(&max),
            shown(lim)
        ));
    }
    match requests.get(name) {
        Some(req) if *req > max => Some(format!(
            "maximum {name} usage per {kind} is {}, but request is {}",
            shown(&max),
            shown(req)
        )),
        _ => None,
    }
}

/// `max` for PVCs: the request is bounded (PVC limits are not user input).
fn max_request_constraint(kind: &str, name: &str, max: Amount, requests: &Resources) -> Option<String> {
    match requests.get(name) {
        None => Some(format!(
            "maximum {name} usage per {kind} is {}.  No request is specified",
            shown(&max)
        )),
        Some(req) if *req > max => Some(format!(
            "maximum {name} usage per {kind} is {}, but request is {}",
            shown(&max),
            shown(req)
        )),
        Some(_) => None,
    }
}

/// `maxLimitRequestRatio`: limit / request may not exceed it.
fn ratio_constraint(
    kind: &str,
    name: &str,
    max: Amount,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let req = requests.get(name).filter(|r| !r.is_zero());
    let lim = limits.get(name).filter(|l| !l.is_zero());
    match (req, lim) {
        (None, _) => Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
            shown(&max)
        )),
        (_, None) => Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but no limit is specified or limit is 0",
            shown(&max)
        )),
        (Some(req), Some(lim)) if lim.ratio_exceeds(*req, max) => Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but provided ratio is {:.6}",
            shown(&max),
            lim.ratio(*req)
        )),
        _ => None,
    }
}

/// Every bound of `item` checked against requests and limits (`min`, `max`, ratio).
fn check_item(kind: &str, item: &Value, requests: &Resources, limits: &Resources, errs: &mut Vec<String>) {
    for (name, min) in amount::resources(item.get("min")) {
        errs.extend(min_constraint(kind, &name, min, requests, limits));
    }
    for (name, max) in amount::resources(item.get("max")) {
        errs.extend(max_constraint(kind, &name, max, requests, limits));
    }
    for (name, max) in amount::resources(item.get("maxLimitRequestRatio")) {
        errs.extend(ratio_constraint(kind, &name, max, requests, limits));
    }
}

fn container_resources(c: &Value) -> (Resources, Resources) {
    (
        amount::resources(c.pointer("/resources/requests")),
        amount::resources(c.pointer("/resources/limits")),
    )
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> + 'a {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The violations of `limit_range` by a pod (`Container` items per container, `Pod` items for
/// the whole pod), in upstream's words.
pub fn check_pod(limit_range: &Value, pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for item in items(limit_range) {
        match item.get("type").and_then(Value::as_str) {
            Some("Container") => {
                for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
                    let (req, lim) = container_resources(c);
                    check_item("Container", item, &req, &lim, &mut errs);
                }
            }
            Some("Pod") => {
                let (req, lim) = api_util::resources::pod_requests_and_limits_json(pod).unwrap_or_default();
                check_item("Pod", item, &req, &lim, &mut errs);
            }
            _ => {}
        }
    }
    errs
}

/// The violations of `limit_range` by a PVC's storage request.
pub fn check_pvc(limit_range: &Value, pvc: &Value) -> Vec<String> {
    let requests = amount::resources(pvc.pointer("/spec/resources/requests"));
    let mut errs = Vec::new();
    for item in of_type(limit_range, "PersistentVolumeClaim") {
        for (name, min) in amount::resources(item.get("min")) {
            errs.extend(min_constraint(
                "PersistentVolumeClaim",
                &name,
                min,
                &requests,
                &Resources::new(),
            ));
        }
        for (name, max) in amount::resources(item.get("max")) {
            errs.extend(max_request_constraint(
                "PersistentVolumeClaim",
                &name,
                max,
                &requests,
            ));
        }
    }
    errs
}

/// Upstream's aggregate of several errors: one as it is, more as `[a, b]`.
pub fn aggregate(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(items: Value) -> Value {
        let mut lr = json!({"metadata": {"name": "lr"}, "spec": {"limits": items}});
        for item in lr["spec"]["limits"].as_array_mut().unwrap() {
            default_item(item.as_object_mut().unwrap());
        }
        lr
    }

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}})
    }

    #[test]
    fn limit_range_items_get_upstreams_defaults() {
        let lr = range(
            json!([{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
                              {"type": "Pod", "max": {"cpu": "4"}}]),
        );
        let c = &lr["spec"]["limits"][0];
        assert_eq!(c["default"], json!({"cpu": "2"}));
        assert_eq!(c["defaultRequest"], json!({"cpu": "2", "memory": "64Mi"}));
        assert!(lr["spec"]["limits"][1].get("default").is_none());
    }

    #[test]
    fn defaults_fill_missing_requests_and_limits_and_annotate() {
        let lr = range(
            json!([{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                               "defaultRequest": {"cpu": "100m"}}]),
        );
        let mut p = pod(json!({"limits": {"memory": "1Gi"}}));
        default_pod(&lr, &mut p);
        let res = &p["spec"]["containers"][0]["resources"];
        assert_eq!(res["limits"], json!({"cpu": "500m", "memory": "1Gi"}));
        assert_eq!(res["requests"], json!({"cpu": "100m", "memory": "256Mi"}));
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container c; cpu limit for container c"
        );
        let mut untouched =
            pod(json!({"requests": {"cpu": "1", "memory": "1"}, "limits": {"cpu": "1", "memory": "1"}}));
        default_pod(&lr, &mut untouched);
        assert!(untouched["metadata"].get("annotations").is_none());
    }

    #[test]
    fn container_and_pod_bounds_use_upstreams_messages() {
        let lr = range(
            json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"},
                               "maxLimitRequestRatio": {"cpu": "2"}}]),
        );
        let p = pod(
            json!({"requests": {"cpu": "50m", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}),
        );
        assert_eq!(
            check_pod(&lr, &p),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum memory usage per Container is 1Gi, but limit is 2Gi",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 20.000000",
            ]
        );
        let ok = pod(
            json!({"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"cpu": "400m", "memory": "1Gi"}}),
        );
        assert!(check_pod(&lr, &ok).is_empty());
        let no_limit = range(json!([{"type": "Pod", "max": {"cpu": "1"}}]));
        assert_eq!(
            check_pod(&no_limit, &pod(json!({}))),
            ["maximum cpu usage per Pod is 1.  No limit is specified"]
        );
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "600m"}}},
            {"name": "b", "resources": {"limits": {"cpu": "600m"}}}]}});
        assert_eq!(
            check_pod(&no_limit, &two),
            ["maximum cpu usage per Pod is 1, but limit is 1200m"]
        );
    }

    #[test]
    fn pvc_storage_is_bounded_by_request() {
        let lr = range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
        );
        let pvc = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert!(check_pvc(&lr, &pvc("5Gi")).is_empty());
        assert_eq!(
            check_pvc(&lr, &pvc("20Gi")),
            ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
        );
        assert_eq!(
            check_pvc(&lr, &pvc("500Mi")),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }
}
