//! `networking.k8s.io`: Ingress, IngressClass and NetworkPolicy (upstream
//! `pkg/apis/networking/validation`).

use std::net::IpAddr;

use serde_json::Value;

use super::field::{Errs, child, index, int, list, present, str_of, string};
use super::{metadata, names, pod};

/// A wildcard DNS name: `*.` and a DNS subdomain.
fn wildcard_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(names::max_len(253));
    }
    let ok = s
        .strip_prefix("*.")
        .is_some_and(|rest| names::dns1123_subdomain(rest).is_empty());
    if !ok {
        errs.push(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
        );
    }
    errs
}

/// A host of a rule or TLS entry: a DNS subdomain or a wildcard one.
fn host_messages(host: &str) -> Vec<String> {
    if host.contains('*') {
        wildcard_subdomain(host)
    } else {
        names::dns1123_subdomain(host)
    }
}

/// An Ingress.
pub fn ingress(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let rules = list(spec, "rules");
    let default_backend = present(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        errs.invalid(
            "spec",
            spec.get("rules").unwrap_or(&Value::Null),
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(b) = default_backend {
        backend(b, "spec.defaultBackend", errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = index("spec.rules", i);
        let host = string(rule, "host");
        if !host.is_empty() {
            if host.parse::<IpAddr>().is_ok() {
                errs.invalid_str(child(&p, "host"), host, "must be a DNS name, not an IP address");
            }
            errs.invalid_each(&child(&p, "host"), host, host_messages(host));
        }
        if let Some(http) = present(rule, "http") {
            let hp = child(&p, "http.paths");
            let paths = list(http, "paths");
            if paths.is_empty() {
                errs.required(&hp, "");
            }
            for (j, path) in paths.iter().enumerate() {
                http_path(path, &index(&hp, j), errs);
            }
        }
    }
    for (i, tls) in list(spec, "tls").iter().enumerate() {
        let p = index("spec.tls", i);
        for (j, host) in list(tls, "hosts").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            errs.invalid_each(&index(&child(&p, "hosts"), j), host, host_messages(host));
        }
        let secret = string(tls, "secretName");
        if !secret.is_empty() {
            errs.invalid_each(&child(&p, "secretName"), secret, names::dns1123_subdomain(secret));
        }
    }
    if let Some(class) = str_of(spec, "ingressClassName") {
        errs.invalid_each("spec.ingressClassName", class, names::dns1123_subdomain(class));
    }
}

/// The legacy class annotation and `spec.ingressClassName` may not both be set on create.
pub fn ingress_create(obj: &Value, errs: &mut Errs) {
    const ANNOTATION: &str = "kubernetes.io/ingress.class";
    let annotation = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Value::as_str);
    if let Some(value) = annotation
        && obj
            .pointer("/spec/ingressClassName")
            .is_some_and(|c| !c.is_null())
    {
        errs.invalid_str(
            child("annotations", ANNOTATION),
            value,
            "can not be set when the class field is also set",
        );
    }
}

const PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];

fn http_path(p: &Value, path: &str, errs: &mut Errs) {
    let pp = child(path, "path");
    let value = string(p, "path");
    // The typed round trip turns an absent `pathType` into "".
    match str_of(p, "pathType").filter(|t| !t.is_empty()) {
        None => {
            errs.required(child(path, "pathType"), "pathType must be specified");
            return;
        }
        Some("Exact" | "Prefix") => {
            if !value.starts_with('/') {
                errs.invalid_str(&pp, value, "must be an absolute path");
            }
            if !value.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(seq) {
                        errs.invalid_str(&pp, value, &format!("must not contain '{seq}'"));
                    }
                }
                for suffix in ["/..", "/."] {
                    if value.ends_with(suffix) {
                        errs.invalid_str(&pp, value, &format!("cannot end with '{suffix}'"));
                    }
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.invalid_str(&pp, value, "must be an absolute path");
            }
        }
        Some(other) => {
            errs.not_supported(child(path, "pathType"), &Value::from(other), &PATH_TYPES);
        }
    }
    backend(
        p.get("backend").unwrap_or(&Value::Null),
        &child(path, "backend"),
        errs,
    );
}

/// A backend: a Service (by name, with a port name or number) or a typed resource.
fn backend(b: &Value, path: &str, errs: &mut Errs) {
    match (present(b, "resource"), present(b, "service")) {
        (Some(_), Some(_)) => errs.invalid_str(path, "", "cannot set both resource and service backends"),
        (Some(r), None) => typed_reference(r, &child(path, "resource"), errs),
        (None, Some(svc)) => {
            let np = child(path, "service.name");
            match string(svc, "name") {
                "" => errs.required(np, ""),
                name => errs.invalid_each(&np, name, names::dns1035_label(name)),
            }
            let port = svc.get("port").unwrap_or(&Value::Null);
            let name = string(port, "name");
            let number = int(port, "number").unwrap_or(0);
            match (name.is_empty(), number == 0) {
                (false, false) => errs.invalid_str(path, "", "cannot set both port name & port number"),
                (false, true) => {
                    errs.invalid_each(&child(path, "service.port.name"), name, names::port_name(name));
                }
                (true, false) => pod::port_number(number, &child(path, "service.port.number"), errs),
                (true, true) => errs.required(path, "port name or number is required"),
            }
        }
        (None, None) => errs.invalid_str(path, "", "resource or service backend is required"),
    }
}

/// A `TypedLocalObjectReference` of a resource backend.
fn typed_reference(r: &Value, path: &str, errs: &mut Errs) {
    let group = string(r, "apiGroup");
    if !group.is_empty() {
        errs.invalid_each(&child(path, "apiGroup"), group, names::dns1123_subdomain(group));
    }
    for field in ["kind", "name"] {
        let v = string(r, field);
        if v.is_empty() {
            errs.required(child(path, field), &format!("{field} is required"));
        } else {
            errs.invalid_each(&child(path, field), v, names::path_segment(v));
        }
    }
}

/// An IngressClass.
pub fn ingress_class(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let controller = string(spec, "controller");
    if controller.len() > 250 {
        errs.too_long("spec.controller", 250);
    }
    domain_prefixed_path(controller, "spec.controller", errs);
    let Some(params) = present(spec, "parameters") else {
        return;
    };
    let p = "spec.parameters";
    typed_reference(params, p, errs);
    let namespace = str_of(params, "namespace");
    match str_of(params, "scope") {
        Some("Namespace") => match namespace {
            None | Some("") => {
                errs.required(child(p, "namespace"), "`parameters.scope` is set to 'Namespace'")
            }
            Some(ns) => errs.invalid_each(&child(p, "namespace"), ns, names::dns1123_label(ns)),
        },
        None | Some("Cluster") => {
            if namespace.is_some() {
                errs.forbidden(child(p, "namespace"), "`parameters.scope` is set to 'Cluster'");
            }
        }
        Some(other) => errs.not_supported(child(p, "scope"), &Value::from(other), &["Cluster", "Namespace"]),
    }
}

/// An IngressClass's controller may not change.
pub fn ingress_class_update(new: &Value, old: &Value, errs: &mut Errs) {
    errs.immutable(
        "spec.controller",
        new.pointer("/spec/controller"),
        old.pointer("/spec/controller"),
    );
}

/// `example.com/path` (IngressClass controllers).
pub fn domain_prefixed_path(value: &str, path: &str, errs: &mut Errs) {
    if value.is_empty() {
        errs.required(path, "");
        return;
    }
    let Some((host, rest)) = value
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        errs.invalid_str(
            path,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        );
        return;
    };
    errs.invalid_each(path, host, names::dns1123_subdomain(host));
    let path_ok = rest
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c));
    if !path_ok {
        errs.invalid_str(
            path,
            rest,
            "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        );
    }
}

/// A NetworkPolicy.
pub fn network_policy(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    metadata::label_selector(
        spec.get("podSelector").unwrap_or(&Value::Null),
        "spec.podSelector",
        errs,
    );
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in list(spec, direction).iter().enumerate() {
            let p = index(&child("spec", direction), i);
            for (j, port) in list(rule, "ports").iter().enumerate() {
                policy_port(port, &index(&child(&p, "ports"), j), errs);
            }
            for (j, peer) in list(rule, peers).iter().enumerate() {
                policy_peer(peer, &index(&child(&p, peers), j), errs);
            }
        }
    }
    let types = list(spec, "policyTypes");
    if types.len() > 2 {
        errs.invalid(
            "spec.policyTypes",
            &Value::from(types.to_vec()),
            "may not specify more than two policyTypes",
        );
        return;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or("");
        if t != "Ingress" && t != "Egress" {
            errs.not_supported(
                index("spec.policyTypes", i),
                &Value::from(t),
                &["Ingress", "Egress"],
            );
        }
    }
}

fn policy_port(port: &Value, path: &str, errs: &mut Errs) {
    if let Some(proto) = str_of(port, "protocol")
        && !["TCP", "UDP", "SCTP"].contains(&proto)
    {
        errs.not_supported(
            child(path, "protocol"),
            &Value::from(proto),
            &["TCP", "UDP", "SCTP"],
        );
    }
    let end = int(port, "endPort");
    let ep = child(path, "endPort");
    match present(port, "port") {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            pod::port_number(n, &child(path, "port"), errs);
            if let Some(end) = end {
                if end < n {
                    errs.invalid(&ep, &Value::from(n), "must be greater than or equal to `port`");
                }
                pod::port_number(end, &ep, errs);
            }
        }
        Some(Value::String(name)) => {
            if let Some(end) = end {
                errs.invalid(
                    &ep,
                    &Value::from(end),
                    "may not be specified when `port` is non-numeric",
                );
            }
            errs.invalid_each(&child(path, "port"), name, names::port_name(name));
        }
        _ => {
            if let Some(end) = end {
                errs.invalid(
                    &ep,
                    &Value::from(end),
                    "may not be specified when `port` is not specified",
                );
            }
        }
    }
}

fn policy_peer(peer: &Value, path: &str, errs: &mut Errs) {
    let mut count = 0;
    for field in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = present(peer, field) {
            count += 1;
            metadata::label_selector(sel, &child(path, field), errs);
        }
    }
    let ip_block = present(peer, "ipBlock");
    if let Some(block) = ip_block {
        count += 1;
        self::ip_block(block, &child(path, "ipBlock"), errs);
    }
    if count == 0 {
        errs.required(path, "must specify a peer");
    } else if count > 1 && ip_block.is_some() {
        errs.forbidden(path, "may not specify both ipBlock and another peer");
    }
}

/// A CIDR: address and prefix length.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|_| len.bytes().all(|c| c.is_ascii_digit()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// True when `inner` lies within `outer` with a longer prefix.
fn strict_subset(outer: (IpAddr, u8), inner: (IpAddr, u8)) -> bool {
    if outer.0.is_ipv4() != inner.0.is_ipv4() || inner.1 <= outer.1 {
        return false;
    }
    let shift = if outer.0.is_ipv4() { 32 } else { 128 } - u32::from(outer.1);
    let width = if outer.0.is_ipv4() { 96 } else { 0 } + shift;
    let mask = |b: u128| b.checked_shr(width).unwrap_or(0);
    mask(bits(outer.0)) == mask(bits(inner.0))
}

const CIDR_ERROR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn ip_block(block: &Value, path: &str, errs: &mut Errs) {
    let cidr = string(block, "cidr");
    if cidr.is_empty() {
        errs.required(child(path, "cidr"), "");
        return;
    }
    let Some(outer) = parse_cidr(cidr) else {
        errs.invalid_str(child(path, "cidr"), cidr, CIDR_ERROR);
        return;
    };
    for (i, except) in list(block, "except").iter().enumerate() {
        let ep = index(&child(path, "except"), i);
        let except = except.as_str().unwrap_or("");
        match parse_cidr(except) {
            None => errs.invalid_str(ep, except, CIDR_ERROR),
            Some(inner) if !strict_subset(outer, inner) => {
                errs.invalid_str(ep, except, "must be a strict subset of `cidr`");
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
