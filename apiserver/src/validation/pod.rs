//! Pods and the pod template several workloads embed (upstream `ValidatePodSpec`,
//! `ValidatePodTemplateSpec`, `ValidatePodUpdate`).

use std::collections::HashSet;

use serde_json::Value;

use super::field::{Errs, NEGATIVE, child, index, int, key, list, object, str_of, string};
use super::quantity::{self, Quantity};
use super::{metadata, names};

mod scheduling;
mod security;

pub use scheduling::node_selector;

/// Volume sources in upstream's order; exactly one per volume (defaulting gives a volume
/// without any an `emptyDir`).
pub const VOLUME_SOURCES: [&str; 30] = [
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// Protocols of container and service ports.
pub const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// `must be between 1 and 65535, inclusive` when `port` is not a port number.
pub fn port_number(port: i64, path: &str, errs: &mut Errs) {
    if !(1..=65535).contains(&port) {
        errs.invalid(path, &Value::from(port), "must be between 1 and 65535, inclusive");
    }
}

/// A pod template (`spec.template` of workloads): its labels, annotations and pod spec.
pub fn template(tmpl: &Value, path: &str, errs: &mut Errs) {
    template_with_claims(tmpl, path, &[], errs);
}

/// A pod template whose containers may also mount `claims` (a StatefulSet's
/// `volumeClaimTemplates`, which become volumes of its pods).
pub fn template_with_claims(tmpl: &Value, path: &str, claims: &[&str], errs: &mut Errs) {
    if let Some(meta) = tmpl.get("metadata") {
        let p = child(path, "metadata");
        metadata::labels(
            meta.get("labels").and_then(Value::as_object),
            &child(&p, "labels"),
            errs,
        );
        metadata::annotations(
            meta.get("annotations").and_then(Value::as_object),
            &child(&p, "annotations"),
            errs,
        );
    }
    spec_with_claims(
        tmpl.get("spec").unwrap_or(&Value::Null),
        &child(path, "spec"),
        claims,
        errs,
    );
}

/// The template's `restartPolicy` must be one of `allowed` (workloads: `Always`; jobs:
/// `OnFailure`/`Never`).
pub fn template_restart_policy(tmpl: &Value, path: &str, allowed: &[&str], errs: &mut Errs) {
    let policy = tmpl
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !allowed.contains(&policy) {
        errs.not_supported(child(path, "spec.restartPolicy"), &Value::from(policy), allowed);
    }
}

/// A pod spec.
pub fn spec(spec: &Value, path: &str, errs: &mut Errs) {
    spec_with_claims(spec, path, &[], errs);
}

fn spec_with_claims(spec: &Value, path: &str, claims: &[&str], errs: &mut Errs) {
    let mut volumes = volumes(list(spec, "volumes"), &child(path, "volumes"), errs);
    volumes.extend(claims.iter().map(|c| c.to_string()));
    let containers = list(spec, "containers");
    if containers.is_empty() {
        errs.required(child(path, "containers"), "");
    }
    let mut seen = HashSet::new();
    let host_users = spec.get("hostUsers").and_then(Value::as_bool) != Some(false);
    let ctx = ContainerContext {
        volumes: &volumes,
        host_users,
        init: false,
        ephemeral: false,
    };
    let init_ctx = ContainerContext { init: true, ..ctx };
    let ephemeral_ctx = ContainerContext {
        ephemeral: true,
        ..ctx
    };
    for (i, c) in containers.iter().enumerate() {
        container(c, &index(&child(path, "containers"), i), &ctx, &mut seen, errs);
    }
    host_ports(containers, &child(path, "containers"), errs);
    for (i, c) in list(spec, "initContainers").iter().enumerate() {
        container(
            c,
            &index(&child(path, "initContainers"), i),
            &init_ctx,
            &mut seen,
            errs,
        );
    }
    // Ephemeral containers: names unique across every kind of container, a target among the
    // regular and init containers.
    let targets = seen.clone();
    for (i, c) in list(spec, "ephemeralContainers").iter().enumerate() {
        let at = index(&child(path, "ephemeralContainers"), i);
        container(c, &at, &ephemeral_ctx, &mut seen, errs);
        let target = string(c, "targetContainerName");
        if !target.is_empty() && !targets.contains(target) {
            errs.not_found(child(&at, "targetContainerName"), &Value::from(target));
        }
    }
    match string(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.required(child(path, "restartPolicy"), ""),
        other => errs.not_supported(
            child(path, "restartPolicy"),
            &Value::from(other),
            &["Always", "OnFailure", "Never"],
        ),
    }
    match string(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" => {}
        "None" if spec.get("dnsConfig").is_none_or(Value::is_null) => errs.required(
            child(path, "dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ),
        "None" => {}
        "" => errs.required(child(path, "dnsPolicy"), ""),
        other => errs.not_supported(
            child(path, "dnsPolicy"),
            &Value::from(other),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ),
    }
    errs.nonnegative(spec, path, "terminationGracePeriodSeconds");
    if let Some(n) = int(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&n)
    {
        errs.invalid(
            child(path, "activeDeadlineSeconds"),
            &Value::from(n),
            "must be between 1 and 2147483647, inclusive",
        );
    }
    metadata::labels(object(spec, "nodeSelector"), &child(path, "nodeSelector"), errs);
    let sa = string(spec, "serviceAccountName");
    if !sa.is_empty() {
        errs.invalid_each(
            &child(path, "serviceAccountName"),
            sa,
            names::dns1123_subdomain(sa),
        );
    }
    for field in ["hostname", "subdomain"] {
        let v = string(spec, field);
        if !v.is_empty() {
            errs.invalid_each(&child(path, field), v, names::dns1123_label(v));
        }
    }
    for (i, t) in list(spec, "tolerations").iter().enumerate() {
        toleration(t, &index(&child(path, "tolerations"), i), errs);
    }
    if let Some(os) = spec.get("os").filter(|o| !o.is_null()) {
        match string(os, "name") {
            "" => errs.required(child(path, "os.name"), "cannot be empty"),
            "linux" | "windows" => {}
            other => errs.not_supported(child(path, "os"), &Value::from(other), &["linux", "windows"]),
        }
    }
    security::pod_context(spec, &child(path, "securityContext"), errs);
    scheduling::affinity(spec, &child(path, "affinity"), errs);
    scheduling::topology_spread(spec, &child(path, "topologySpreadConstraints"), errs);
}

/// What every container of a pod is checked against.
struct ContainerContext<'a> {
    /// The pod's volume names.
    volumes: &'a HashSet<String>,
    /// The pod's `hostUsers` (absent: true).
    host_users: bool,
    /// Whether the containers checked are init containers.
    init: bool,
    /// Whether the containers checked are ephemeral containers.
    ephemeral: bool,
}

/// Fields an ephemeral container may not set (upstream's allow list, inverted): it must not be
/// relied on for the pod's own service.
const NOT_FOR_EPHEMERAL: [&str; 9] = [
    "ports",
    "resources",
    "resizePolicy",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "restartPolicy",
    "restartPolicyRules",
];

/// Whether a field holds something other than its Go zero value.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Object(m) => m.values().any(is_set),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn ephemeral_fields(c: &Value, path: &str, errs: &mut Errs) {
    const WHY: &str = "cannot be set for an Ephemeral Container";
    for field in NOT_FOR_EPHEMERAL {
        if c.get(field).is_some_and(is_set) {
            errs.forbidden(child(path, field), WHY);
        }
    }
    for (i, m) in list(c, "volumeMounts").iter().enumerate() {
        for field in ["subPath", "subPathExpr"] {
            if !string(m, field).is_empty() {
                errs.forbidden(child(&index(&child(path, "volumeMounts"), i), field), WHY);
            }
        }
    }
}

/// A host port may be used once per protocol and host IP across the pod's containers.
fn host_ports(containers: &[Value], path: &str, errs: &mut Errs) {
    let mut used = HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, p) in list(c, "ports").iter().enumerate() {
            let port = int(p, "hostPort").unwrap_or(0);
            if port == 0 {
                continue;
            }
            let entry = format!("{}/{}/{port}", string(p, "protocol"), string(p, "hostIP"));
            if !used.insert(entry.clone()) {
                let pp = index(&child(&index(path, ci), "ports"), pi);
                errs.duplicate(child(&pp, "hostPort"), &Value::from(entry));
            }
        }
    }
}

/// `envFrom`: a valid prefix and exactly one named ConfigMap or Secret source.
fn env_from(sources: &[Value], path: &str, errs: &mut Errs) {
    for (i, e) in sources.iter().enumerate() {
        let p = index(path, i);
        let prefix = string(e, "prefix");
        if !prefix.is_empty() {
            errs.invalid_each(&child(&p, "prefix"), prefix, names::env_var_name(prefix));
        }
        let mut count = 0;
        for field in ["configMapRef", "secretRef"] {
            let Some(r) = e.get(field).filter(|r| !r.is_null()) else {
                continue;
            };
            count += 1;
            let np = child(&child(&p, field), "name");
            match string(r, "name") {
                "" => errs.required(np, ""),
                name => errs.invalid_each(&np, name, names::dns1123_subdomain(name)),
            }
        }
        match count {
            0 => errs.invalid_str(path, "", "must specify one of: `configMapRef` or `secretRef`"),
            1 => {}
            _ => errs.invalid_str(path, "", "may not have more than one field specified at a time"),
        }
    }
}

fn toleration(t: &Value, path: &str, errs: &mut Errs) {
    let key = string(t, "key");
    if !key.is_empty() {
        errs.invalid_each(&child(path, "key"), key, names::qualified_name(key));
    }
    let value = string(t, "value");
    match string(t, "operator") {
        "" | "Equal" => {
            if key.is_empty() {
                errs.invalid_str(
                    child(path, "operator"),
                    string(t, "operator"),
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                );
            }
            errs.invalid_each(&child(path, "value"), value, names::label_value(value));
        }
        "Exists" if !value.is_empty() => errs.invalid_str(
            child(path, "operator"),
            value,
            "value must be empty when `operator` is 'Exists'",
        ),
        "Exists" => {}
        other => errs.not_supported(child(path, "operator"), &Value::from(other), &["Equal", "Exists"]),
    }
    let effect = string(t, "effect");
    if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        errs.not_supported(
            child(path, "effect"),
            &Value::from(effect),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        );
    }
    if t.get("tolerationSeconds").is_some_and(|v| !v.is_null()) && effect != "NoExecute" {
        errs.invalid_str(
            child(path, "effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
}

/// Checks the volumes; returns their names.
fn volumes(vols: &[Value], path: &str, errs: &mut Errs) -> HashSet<String> {
    let mut names_seen = HashSet::new();
    for (i, v) in vols.iter().enumerate() {
        let p = index(path, i);
        let name = string(v, "name");
        if name.is_empty() {
            errs.required(child(&p, "name"), "");
        } else {
            let msgs = names::dns1123_label(name);
            let valid = msgs.is_empty();
            errs.invalid_each(&child(&p, "name"), name, msgs);
            if valid && !names_seen.insert(name.to_string()) {
                errs.duplicate(child(&p, "name"), &Value::from(name));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| v.get(*s).is_some_and(|x| !x.is_null()))
            .collect();
        match sources.as_slice() {
            [] => errs.required(&p, "must specify a volume type"),
            [one] => volume_source(one, &v[*one], &child(&p, one), errs),
            [_, rest @ ..] => {
                for s in rest {
                    errs.forbidden(child(&p, s), "may not specify more than 1 volume type");
                }
            }
        }
    }
    names_seen
}

fn volume_source(kind: &str, src: &Value, path: &str, errs: &mut Errs) {
    let required = match kind {
        "configMap" => "name",
        "secret" => "secretName",
        "persistentVolumeClaim" => "claimName",
        "hostPath" | "nfs" => "path",
        _ => return,
    };
    if string(src, required).is_empty() {
        errs.required(child(path, required), "");
    }
}

fn container(c: &Value, path: &str, ctx: &ContainerContext<'_>, seen: &mut HashSet<String>, errs: &mut Errs) {
    let volumes = ctx.volumes;
    let name = string(c, "name");
    if name.is_empty() {
        errs.required(child(path, "name"), "");
    } else {
        errs.invalid_each(&child(path, "name"), name, names::dns1123_label(name));
        if !seen.insert(name.to_string()) {
            errs.duplicate(child(path, "name"), &Value::from(name));
        }
    }
    if string(c, "image").is_empty() {
        errs.required(child(path, "image"), "");
    }
    let pull = string(c, "imagePullPolicy");
    if !pull.is_empty() && !["Always", "IfNotPresent", "Never"].contains(&pull) {
        errs.not_supported(
            child(path, "imagePullPolicy"),
            &Value::from(pull),
            &["Always", "IfNotPresent", "Never"],
        );
    }
    ports(list(c, "ports"), &child(path, "ports"), errs);
    env(list(c, "env"), &child(path, "env"), errs);
    env_from(list(c, "envFrom"), &child(path, "envFrom"), errs);
    security::container_context(c, path, ctx.host_users, errs);
    if let Some(r) = c.get("resources") {
        resources(r, &child(path, "resources"), errs);
    }
    if ctx.ephemeral {
        ephemeral_fields(c, path, errs);
    }
    let sidecar = str_of(c, "restartPolicy") == Some("Always");
    match str_of(c, "restartPolicy") {
        _ if ctx.ephemeral => {}
        Some(p) if ctx.init && p != "Always" => {
            errs.not_supported(child(path, "restartPolicy"), &Value::from(p), &["Always"]);
        }
        Some(_) if !ctx.init => errs.forbidden(
            child(path, "restartPolicy"),
            "may not be set for non-init containers",
        ),
        _ => {}
    }
    if ctx.ephemeral {
        // Probes and hooks are forbidden above.
    } else if ctx.init && !sidecar {
        for field in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
            if c.get(field).is_some_and(|v| !v.is_null()) {
                errs.forbidden(
                    child(path, field),
                    "may not be set for init containers without restartPolicy=Always",
                );
            }
        }
    } else {
        probes_and_hooks(c, path, errs);
    }
    let mut mount_paths = HashSet::new();
    for (i, m) in list(c, "volumeMounts").iter().enumerate() {
        let p = index(&child(path, "volumeMounts"), i);
        let vol = string(m, "name");
        if vol.is_empty() {
            errs.required(child(&p, "name"), "");
        }
        if !volumes.contains(vol) {
            errs.not_found(child(&p, "name"), &Value::from(vol));
        }
        let mount = string(m, "mountPath");
        if mount.is_empty() {
            errs.required(child(&p, "mountPath"), "");
        } else if !mount_paths.insert(mount) {
            errs.invalid_str(child(&p, "mountPath"), mount, "must be unique");
        }
    }
}

/// Probes and lifecycle hooks of a container that runs alongside the others.
fn probes_and_hooks(c: &Value, path: &str, errs: &mut Errs) {
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(probe).filter(|p| !p.is_null()) {
            let pp = child(path, probe);
            handler(p, &pp, &["exec", "httpGet", "tcpSocket", "grpc"], errs);
            for field in [
                "initialDelaySeconds",
                "timeoutSeconds",
                "periodSeconds",
                "successThreshold",
                "failureThreshold",
            ] {
                errs.nonnegative(p, &pp, field);
            }
            if probe != "readinessProbe"
                && let Some(n) = int(p, "successThreshold")
                && n != 1
            {
                errs.invalid(child(&pp, "successThreshold"), &Value::from(n), "must be 1");
            }
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(h) = c.pointer(&format!("/lifecycle/{hook}")).filter(|h| !h.is_null()) {
            handler(
                h,
                &child(path, &format!("lifecycle.{hook}")),
                &["exec", "httpGet", "tcpSocket", "sleep"],
                errs,
            );
        }
    }
}

/// A probe or lifecycle handler: exactly one of `kinds`, each well formed.
fn handler(h: &Value, path: &str, kinds: &[&str], errs: &mut Errs) {
    let mut found = 0;
    for kind in kinds {
        let Some(action) = h.get(*kind).filter(|a| !a.is_null()) else {
            continue;
        };
        let p = child(path, kind);
        found += 1;
        if found > 1 {
            errs.forbidden(p, "may not specify more than 1 handler type");
            continue;
        }
        match *kind {
            "exec" if list(action, "command").is_empty() => errs.required(child(&p, "command"), ""),
            "httpGet" | "tcpSocket" => {
                port_num_or_name(action.get("port"), &child(&p, "port"), errs);
                let scheme = string(action, "scheme");
                if *kind == "httpGet" && !scheme.is_empty() && scheme != "HTTP" && scheme != "HTTPS" {
                    errs.not_supported(child(&p, "scheme"), &Value::from(scheme), &["HTTP", "HTTPS"]);
                }
            }
            "grpc" => port_number(int(action, "port").unwrap_or(0), &child(&p, "port"), errs),
            _ => {}
        }
    }
    if found == 0 {
        errs.required(path, "must specify a handler type");
    }
}

/// An int-or-string port: a port number or an IANA service name.
pub fn port_num_or_name(port: Option<&Value>, path: &str, errs: &mut Errs) {
    match port {
        Some(Value::Number(n)) => port_number(n.as_i64().unwrap_or(0), path, errs),
        Some(Value::String(s)) if !s.is_empty() => errs.invalid_each(path, s, names::port_name(s)),
        _ => errs.required(path, ""),
    }
}

fn ports(ports: &[Value], path: &str, errs: &mut Errs) {
    let mut port_names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = index(path, i);
        let name = string(p, "name");
        if !name.is_empty() {
            let msgs = names::port_name(name);
            if msgs.is_empty() {
                if !port_names.insert(name) {
                    errs.duplicate(child(&pp, "name"), &Value::from(name));
                }
            } else {
                errs.invalid_each(&child(&pp, "name"), name, msgs);
            }
        }
        match int(p, "containerPort") {
            None | Some(0) => errs.required(child(&pp, "containerPort"), ""),
            Some(n) => port_number(n, &child(&pp, "containerPort"), errs),
        }
        if let Some(n) = int(p, "hostPort")
            && n != 0
        {
            port_number(n, &child(&pp, "hostPort"), errs);
        }
        protocol(p, &pp, errs);
    }
}

/// `protocol` of a container or service port: required, TCP/UDP/SCTP.
pub fn protocol(port: &Value, path: &str, errs: &mut Errs) {
    match string(port, "protocol") {
        "" => errs.required(child(path, "protocol"), ""),
        p if PROTOCOLS.contains(&p) => {}
        p => errs.not_supported(child(path, "protocol"), &Value::from(p), &PROTOCOLS),
    }
}

fn env(vars: &[Value], path: &str, errs: &mut Errs) {
    for (i, e) in vars.iter().enumerate() {
        let p = index(path, i);
        let name = string(e, "name");
        if name.is_empty() {
            errs.required(child(&p, "name"), "");
        } else {
            errs.invalid_each(&child(&p, "name"), name, names::env_var_name(name));
        }
        let Some(from) = e.get("valueFrom").filter(|v| !v.is_null()) else {
            continue;
        };
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
            "fileKeyRef",
        ]
        .iter()
        .filter(|s| from.get(**s).is_some_and(|v| !v.is_null()))
        .count();
        let vf = child(&p, "valueFrom");
        if sources == 0 {
            errs.invalid_str(
                vf,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            );
        } else if !string(e, "value").is_empty() {
            errs.invalid_str(vf, "", "may not be specified when `value` is not empty");
        } else if sources > 1 {
            errs.invalid_str(vf, "", "may not have more than one field specified at a time");
        }
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// Native resources (no domain, or a `kubernetes.io/` domain) other than huge pages may be
/// overcommitted (request below limit); extended resources may not.
fn overcommit_allowed(name: &str) -> bool {
    (!name.contains('/') || name.contains("kubernetes.io/")) && !name.starts_with("hugepages-")
}

/// Container `resources`: names, quantities, requests not above limits.
pub fn resources(r: &Value, path: &str, errs: &mut Errs) {
    let mut parsed = |field: &str| -> Vec<(String, Quantity, String)> {
        let mut out = Vec::new();
        let p = child(path, field);
        for (name, v) in object(r, field).into_iter().flatten() {
            let rp = key(&p, name);
            if name.contains('/') {
                errs.invalid_each(&rp, name, names::qualified_name(name));
            } else if !is_standard_container_resource(name) {
                errs.invalid_str(&rp, name, "must be a standard resource for containers");
            }
            let shown = quantity::display(v);
            match Quantity::from_json(v) {
                None => errs.invalid_str(&rp, &shown, quantity::FORMAT_ERROR),
                Some(q) if q.is_negative() => errs.invalid_str(&rp, &shown, NEGATIVE),
                Some(q)
                    if !overcommit_allowed(name) && !name.starts_with("hugepages-") && !q.is_integer() =>
                {
                    errs.invalid_str(&rp, &shown, "must be an integer");
                }
                Some(q) => out.push((name.clone(), q, shown)),
            }
        }
        out
    };
    let limits = parsed("limits");
    let requests = parsed("requests");
    let req_path = child(path, "requests");
    let limit_names = object(r, "limits");
    for (name, q, shown) in &requests {
        let Some((_, limit, limit_shown)) = limits.iter().find(|(n, _, _)| n == name) else {
            if !overcommit_allowed(name) && !limit_names.is_some_and(|l| l.contains_key(name)) {
                errs.required(
                    child(path, "limits"),
                    "Limit must be set for non overcommitable resources",
                );
            }
            continue;
        };
        if q.cmp_to(*limit).is_ne() && !overcommit_allowed(name) {
            errs.invalid_str(
                &req_path,
                shown,
                &format!("must be equal to {name} limit of {limit_shown}"),
            );
        } else if q.cmp_to(*limit).is_gt() {
            errs.invalid_str(
                &req_path,
                shown,
                &format!("must be less than or equal to {name} limit of {limit_shown}"),
            );
        }
    }
    let names: Vec<&String> = ["limits", "requests"]
        .iter()
        .flat_map(|f| object(r, f).into_iter().flat_map(|m| m.keys()))
        .collect();
    let huge_pages = names.iter().any(|n| n.starts_with("hugepages-"));
    if huge_pages && !names.iter().any(|n| *n == "cpu" || *n == "memory") {
        errs.forbidden(path, "HugePages require cpu or memory");
    }
}

/// What a new pod may not have: ephemeral containers (added through their subresource only), a
/// node together with scheduling gates, profile fields that contradict the legacy annotations.
pub fn create(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if !list(spec, "ephemeralContainers").is_empty() {
        errs.forbidden("spec.ephemeralContainers", "cannot be set on create");
    }
    if !string(spec, "nodeName").is_empty() && !list(spec, "schedulingGates").is_empty() {
        errs.forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        );
    }
    security::annotations_match_fields(obj, errs);
}

/// The only fields of a pod spec an update may change: container and init container images,
/// `activeDeadlineSeconds`, additions to `tolerations` and removals of `schedulingGates`.
pub fn update(new: &Value, old: &Value, errs: &mut Errs) {
    let (Some(new_spec), Some(old_spec)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    if list(new_spec, "containers").len() != list(old_spec, "containers").len() {
        errs.forbidden("spec.containers", "pod updates may not add or remove containers");
        return;
    }
    if list(new_spec, "initContainers").len() != list(old_spec, "initContainers").len() {
        errs.forbidden(
            "spec.initContainers",
            "pod updates may not add or remove containers",
        );
        return;
    }
    match (
        int(new_spec, "activeDeadlineSeconds"),
        int(old_spec, "activeDeadlineSeconds"),
    ) {
        (Some(n), Some(o)) if n > o => errs.invalid(
            "spec.activeDeadlineSeconds",
            &Value::from(n),
            "must be less than or equal to previous value",
        ),
        (None, Some(_)) => errs.invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        ),
        _ => {}
    }
    let old_tolerations = list(old_spec, "tolerations");
    for (i, t) in old_tolerations.iter().enumerate() {
        let kept = list(new_spec, "tolerations").iter().any(|n| {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("tolerationSeconds");
                }
                v
            };
            strip(n) == strip(t)
        });
        if !kept {
            errs.forbidden(
                index("spec.tolerations", i),
                "existing toleration can not be modified except its tolerationSeconds",
            );
        }
    }
    let mut munged = new_spec.clone();
    for field in ["containers", "initContainers"] {
        if let Some(cs) = munged.get_mut(field).and_then(Value::as_array_mut) {
            for (c, o) in cs.iter_mut().zip(list(old_spec, field)) {
                c["image"] = o.get("image").cloned().unwrap_or(Value::Null);
            }
        }
    }
    for field in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
        if let Some(m) = munged.as_object_mut() {
            match old_spec.get(field) {
                Some(v) => m.insert(field.to_string(), v.clone()),
                None => m.remove(field),
            };
        }
    }
    if munged != *old_spec {
        errs.forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        );
    }
}

/// A write through `pods/ephemeralcontainers`: ephemeral containers may only be added (existing
/// ones stay as they are), and static (mirror) pods take none.
pub fn ephemeral_containers_update(new: &Value, old: &Value, errs: &mut Errs) {
    if old
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        errs.forbidden("", "static pods do not support ephemeral containers");
        return;
    }
    let path = "spec.ephemeralContainers";
    let spec = |v: &Value| v.get("spec").cloned().unwrap_or(Value::Null);
    let (new_spec, old_spec) = (spec(new), spec(old));
    let added = list(&new_spec, "ephemeralContainers");
    for o in list(&old_spec, "ephemeralContainers") {
        let name = string(o, "name");
        match added.iter().find(|n| string(n, "name") == name) {
            None => errs.forbidden(
                path,
                &format!("existing ephemeral containers {name:?} may not be removed"),
            ),
            Some(n) if n != o => errs.forbidden(
                key(path, name),
                &format!("existing ephemeral containers {name:?} may not be changed"),
            ),
            Some(_) => {}
        }
    }
}

/// Status of a pod: `nodeName` is set by binding only (the spec is not part of a status write,
/// so only the status itself is checked here).
pub fn status(new: &Value, errs: &mut Errs) {
    let Some(status) = new.get("status") else {
        return;
    };
    let nominated = string(status, "nominatedNodeName");
    if !nominated.is_empty() {
        errs.invalid_each(
            "status.nominatedNodeName",
            nominated,
            names::dns1123_subdomain(nominated),
        );
    }
}

#[cfg(test)]
mod tests;
