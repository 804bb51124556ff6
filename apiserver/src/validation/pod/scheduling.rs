//! Where a pod may run: `affinity` (node selector terms and their operators, preferred
//! weights, pod (anti-)affinity terms) and `topologySpreadConstraints` (upstream
//! `validateAffinity`, `ValidateNodeSelector`, `validateTopologySpreadConstraints`).

use serde_json::Value;

use super::super::field::{Errs, child, index, int, list, present, str_of, string};
use super::super::{metadata, names};

/// `key` of a requirement or a topology key: a qualified name.
fn label_name(name: &str, path: &str, errs: &mut Errs) {
    errs.invalid_each(path, name, names::qualified_name(name));
}

/// `spec.affinity`.
pub fn affinity(spec: &Value, path: &str, errs: &mut Errs) {
    let Some(aff) = present(spec, "affinity") else {
        return;
    };
    if let Some(na) = present(aff, "nodeAffinity") {
        let p = child(path, "nodeAffinity");
        if let Some(req) = present(na, "requiredDuringSchedulingIgnoredDuringExecution") {
            node_selector(
                req,
                &child(&p, "requiredDuringSchedulingIgnoredDuringExecution"),
                errs,
            );
        }
        let pp = child(&p, "preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in list(na, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            weight(term, &index(&pp, i), errs);
            node_selector_term(
                term.get("preference").unwrap_or(&Value::Null),
                &child(&index(&pp, i), "preference"),
                errs,
            );
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = present(aff, kind) else {
            continue;
        };
        let p = child(path, kind);
        let rp = child(&p, "requiredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in list(pa, "requiredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            pod_affinity_term(term, &index(&rp, i), errs);
        }
        let pp = child(&p, "preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in list(pa, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            weight(term, &index(&pp, i), errs);
            pod_affinity_term(
                term.get("podAffinityTerm").unwrap_or(&Value::Null),
                &child(&index(&pp, i), "podAffinityTerm"),
                errs,
            );
        }
    }
}

fn weight(term: &Value, path: &str, errs: &mut Errs) {
    let w = int(term, "weight").unwrap_or(0);
    if !(1..=100).contains(&w) {
        errs.invalid(
            child(path, "weight"),
            &Value::from(w),
            "must be in the range 1-100",
        );
    }
}

/// A `NodeSelector` (required node affinity of pods, node affinity of persistent volumes).
pub fn node_selector(sel: &Value, path: &str, errs: &mut Errs) {
    let tp = child(path, "nodeSelectorTerms");
    let terms = list(sel, "nodeSelectorTerms");
    if terms.is_empty() {
        errs.required(&tp, "must have at least one node selector term");
    }
    for (i, term) in terms.iter().enumerate() {
        node_selector_term(term, &index(&tp, i), errs);
    }
}

fn node_selector_term(term: &Value, path: &str, errs: &mut Errs) {
    for (j, req) in list(term, "matchExpressions").iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), j);
        let values = list(req, "values");
        let op = string(req, "operator");
        if !metadata::set_operator_values(op, values.len(), &p, errs) {
            match op {
                "Gt" | "Lt" if values.len() != 1 => errs.required(
                    child(&p, "values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ),
                "Gt" | "Lt" => {}
                op => errs.invalid_str(child(&p, "operator"), op, "not a valid selector operator"),
            }
        }
        label_name(string(req, "key"), &child(&p, "key"), errs);
    }
    for (j, req) in list(term, "matchFields").iter().enumerate() {
        let p = index(&child(path, "matchFields"), j);
        let values = list(req, "values");
        match string(req, "operator") {
            "In" | "NotIn" if values.len() != 1 => errs.required(
                child(&p, "values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            ),
            "In" | "NotIn" => {}
            op => errs.not_supported(child(&p, "operator"), &Value::from(op), &["In", "NotIn"]),
        }
        let key = string(req, "key");
        if key == "metadata.name" {
            for (k, v) in values.iter().enumerate() {
                let v = v.as_str().unwrap_or("");
                errs.invalid_each(&index(&child(&p, "values"), k), v, names::dns1123_subdomain(v));
            }
        } else {
            errs.invalid_str(child(&p, "key"), key, "not a valid field selector key");
        }
    }
}

fn pod_affinity_term(term: &Value, path: &str, errs: &mut Errs) {
    for field in ["labelSelector", "namespaceSelector"] {
        if let Some(sel) = present(term, field) {
            metadata::label_selector(sel, &child(path, field), errs);
        }
    }
    label_keys(term, path, errs);
    for ns in list(term, "namespaces") {
        let ns = ns.as_str().unwrap_or("");
        errs.invalid_each(&child(path, "namespace"), ns, names::dns1123_label(ns));
    }
    topology_key(string(term, "topologyKey"), &child(path, "topologyKey"), errs);
}

fn topology_key(key: &str, path: &str, errs: &mut Errs) {
    if key.is_empty() {
        errs.required(path, "can not be empty");
    } else {
        label_name(key, path, errs);
    }
}

/// `spec.topologySpreadConstraints`.
pub fn topology_spread(spec: &Value, path: &str, errs: &mut Errs) {
    let constraints = list(spec, "topologySpreadConstraints");
    for (i, c) in constraints.iter().enumerate() {
        let p = index(path, i);
        let skew = int(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.invalid(
                child(&p, "maxSkew"),
                &Value::from(skew),
                "must be greater than zero",
            );
        }
        let key = string(c, "topologyKey");
        topology_key(key, &child(&p, "topologyKey"), errs);
        let action = string(c, "whenUnsatisfiable");
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&action) {
            errs.not_supported(
                child(&p, "whenUnsatisfiable"),
                &Value::from(action),
                &["DoNotSchedule", "ScheduleAnyway"],
            );
        }
        let repeated = constraints[i + 1..]
            .iter()
            .any(|o| string(o, "topologyKey") == key && string(o, "whenUnsatisfiable") == action);
        if repeated {
            errs.duplicate(
                child(&p, "{topologyKey, whenUnsatisfiable}"),
                &Value::from(format!("{{{key}, {action}}}")),
            );
        }
        if let Some(min) = int(c, "minDomains") {
            let mp = child(&p, "minDomains");
            if min <= 0 {
                errs.invalid(&mp, &Value::from(min), "must be greater than zero");
            }
            if action != "DoNotSchedule" {
                errs.invalid(
                    &mp,
                    &Value::from(min),
                    &format!("can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"),
                );
            }
        }
        for field in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(policy) = str_of(c, field)
                && !["Honor", "Ignore"].contains(&policy)
            {
                errs.not_supported(child(&p, field), &Value::from(policy), &["Honor", "Ignore"]);
            }
        }
        spread_label_keys(c, &child(&p, "matchLabelKeys"), errs);
        if let Some(sel) = present(c, "labelSelector") {
            metadata::label_selector(sel, &child(&p, "labelSelector"), errs);
        }
    }
}

fn strings<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    list(v, field).iter().map(|s| s.as_str().unwrap_or("")).collect()
}

/// The keys a label selector uses.
fn selector_keys(sel: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    keys.extend(list(sel, "matchExpressions").iter().map(|e| string(e, "key")));
    keys
}

/// `matchLabelKeys`/`mismatchLabelKeys` of a pod (anti-)affinity term: label names, only with a
/// label selector, and no key in both lists.
fn label_keys(term: &Value, path: &str, errs: &mut Errs) {
    let selector = present(term, "labelSelector");
    for field in ["matchLabelKeys", "mismatchLabelKeys"] {
        let keys = strings(term, field);
        let fp = child(path, field);
        if keys.is_empty() {
            continue;
        }
        if selector.is_none() {
            errs.forbidden(fp, "must not be specified when labelSelector is not set");
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            label_name(k, &index(&fp, i), errs);
        }
    }
    let mismatch = strings(term, "mismatchLabelKeys");
    for (i, k) in strings(term, "matchLabelKeys").iter().enumerate() {
        if mismatch.contains(k) {
            errs.invalid_str(
                index(&child(path, "matchLabelKeys"), i),
                k,
                "exists in both matchLabelKeys and mismatchLabelKeys",
            );
        }
    }
}

/// `matchLabelKeys` of a topology spread constraint: label names not used by its selector,
/// only with a selector.
fn spread_label_keys(c: &Value, path: &str, errs: &mut Errs) {
    let keys = strings(c, "matchLabelKeys");
    if keys.is_empty() {
        return;
    }
    let selector = present(c, "labelSelector");
    let used = selector.map(selector_keys).unwrap_or_default();
    if selector.is_none() {
        errs.forbidden(path, "must not be specified when labelSelector is not set");
    }
    for (i, k) in keys.iter().enumerate() {
        let p = index(path, i);
        label_name(k, &p, errs);
        if used.contains(k) {
            errs.invalid_str(p, k, "exists in both matchLabelKeys and labelSelector");
        }
    }
}
