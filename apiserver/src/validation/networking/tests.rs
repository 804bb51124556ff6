use serde_json::{Value, json};

use super::*;
use crate::validation::test_support::{pair, run};

fn valid_ingress() -> Value {
    json!({"spec": {
        "ingressClassName": "nginx",
        "defaultBackend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static-assets"}},
        "tls": [{"hosts": ["https-example.foo.com", "*.foo.com"], "secretName": "testsecret-tls"}],
        "rules": [
            {"host": "foo.bar.com", "http": {"paths": [
                {"path": "/testpath", "pathType": "Prefix", "backend": {"service": {"name": "test", "port": {"number": 80}}}},
                {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"number": 8080}}}}
            ]}},
            {"host": "*.foo.com", "http": {"paths": [{"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": "service2", "port": {"number": 80}}}}]}}
        ]
    }})
}

#[test]
fn a_valid_ingress_passes() {
    assert_eq!(run(ingress, valid_ingress()), []);
    assert_eq!(
        run(
            ingress,
            json!({"spec": {"defaultBackend": {"service": {"name": "test", "port": {"number": 80}}}}})
        ),
        []
    );
}

#[test]
fn ingress_rules() {
    assert_eq!(
        run(ingress, json!({"spec": {}})),
        [pair(
            "spec",
            "Invalid value: null: either `defaultBackend` or `rules` must be specified"
        )]
    );
    let errs = run(
        ingress,
        json!({"spec": {"rules": [
        {"host": "1.2.3.4", "http": {"paths": [
            {"path": "/a", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
            {"path": "rel//x", "pathType": "Exact", "backend": {"service": {"name": "s", "port": {"number": 80, "name": "http"}}}},
            {"path": "/x", "pathType": "Regex", "backend": {"service": {"name": "s", "port": {}}}},
            {"path": "/y", "pathType": "Prefix", "backend": {}}
        ]}},
        {"host": "*.*.foo.com", "http": {"paths": []}}
    ], "tls": [{"hosts": ["Bad.com"]}]}}),
    );
    let p = "spec.rules[0].http.paths";
    assert_eq!(
        errs[0],
        pair(
            "spec.rules[0].host",
            "Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address"
        )
    );
    assert_eq!(
        errs[1..],
        [
            pair(
                &format!("{p}[0].pathType"),
                "Required value: pathType must be specified"
            ),
            pair(
                &format!("{p}[1].path"),
                "Invalid value: \"rel//x\": must be an absolute path"
            ),
            pair(
                &format!("{p}[1].path"),
                "Invalid value: \"rel//x\": must not contain '//'"
            ),
            pair(
                &format!("{p}[1].backend"),
                "Invalid value: \"\": cannot set both port name & port number"
            ),
            pair(
                &format!("{p}[2].pathType"),
                "Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""
            ),
            pair(
                &format!("{p}[2].backend"),
                "Required value: port name or number is required"
            ),
            pair(
                &format!("{p}[3].backend"),
                "Invalid value: \"\": resource or service backend is required"
            ),
            pair(
                "spec.rules[1].host",
                "Invalid value: \"*.*.foo.com\": a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
            pair("spec.rules[1].http.paths", "Required value"),
            pair(
                "spec.tls[0].hosts[0]",
                "Invalid value: \"Bad.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ]
    );
}

#[test]
fn ingress_classes() {
    let valid = json!({"spec": {"controller": "example.com/ingress-controller",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
    assert_eq!(run(ingress_class, valid), []);
    let errs = run(
        ingress_class,
        json!({"spec": {"controller": "nginx",
        "parameters": {"kind": "", "name": "p", "scope": "Namespace"}}}),
    );
    assert_eq!(
        errs,
        [
            pair(
                "spec.controller",
                "Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
            ),
            pair("spec.parameters.kind", "Required value: kind is required"),
            pair(
                "spec.parameters.namespace",
                "Required value: `parameters.scope` is set to 'Namespace'"
            ),
        ]
    );
    assert_eq!(
        run(ingress_class, json!({"spec": {}})),
        [pair("spec.controller", "Required value")]
    );
}

#[test]
fn network_policies() {
    let valid = json!({"spec": {
        "podSelector": {"matchLabels": {"role": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [
            {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
            {"namespaceSelector": {"matchLabels": {"project": "myproject"}}, "podSelector": {"matchLabels": {"role": "frontend"}}}
        ], "ports": [{"protocol": "TCP", "port": 6379}, {"port": 32000, "endPort": 32768}, {"port": "http"}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/64", "except": ["2001:db8::/96"]}}], "ports": [{"protocol": "UDP", "port": 53}]}]
    }});
    assert_eq!(run(network_policy, valid), []);
    let errs = run(
        network_policy,
        json!({"spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Sideways"],
            "ingress": [{"from": [
                {}, {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24", "10.0.0.0/8", "x"]}, "podSelector": {}},
                {"ipBlock": {"cidr": "10.0.0.0/33"}}
            ], "ports": [{"protocol": "ICMP", "port": 80, "endPort": 79}, {"port": "http", "endPort": 90}, {"endPort": 90}]}]
        }}),
    );
    let p = "spec.ingress[0]";
    assert_eq!(
        errs,
        [
            pair(
                &format!("{p}.ports[0].protocol"),
                "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\""
            ),
            pair(
                &format!("{p}.ports[0].endPort"),
                "Invalid value: 80: must be greater than or equal to `port`"
            ),
            pair(
                &format!("{p}.ports[1].endPort"),
                "Invalid value: 90: may not be specified when `port` is non-numeric"
            ),
            pair(
                &format!("{p}.ports[2].endPort"),
                "Invalid value: 90: may not be specified when `port` is not specified"
            ),
            pair(&format!("{p}.from[0]"), "Required value: must specify a peer"),
            pair(
                &format!("{p}.from[1].ipBlock.except[0]"),
                "Invalid value: \"10.1.0.0/24\": must be a strict subset of `cidr`"
            ),
            pair(
                &format!("{p}.from[1].ipBlock.except[1]"),
                "Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`"
            ),
            pair(
                &format!("{p}.from[1].ipBlock.except[2]"),
                "Invalid value: \"x\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            ),
            pair(
                &format!("{p}.from[1]"),
                "Forbidden: may not specify both ipBlock and another peer"
            ),
            pair(
                &format!("{p}.from[2].ipBlock.cidr"),
                "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            ),
            pair(
                "spec.policyTypes[1]",
                "Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\""
            ),
        ]
    );
}

#[test]
fn ingress_class_annotation_and_field_exclude_each_other_on_create() {
    let mut i = valid_ingress();
    assert_eq!(run(ingress_create, i.clone()), []);
    i["metadata"] = json!({"annotations": {"kubernetes.io/ingress.class": "nginx"}});
    assert_eq!(
        run(ingress_create, i),
        [pair(
            "annotations.kubernetes.io/ingress.class",
            "Invalid value: \"nginx\": can not be set when the class field is also set"
        )]
    );
}

#[test]
fn ingress_class_controllers_are_immutable() {
    let mut errs = Errs::default();
    let old = json!({"spec": {"controller": "example.com/a"}});
    ingress_class_update(&old, &old, &mut errs);
    assert!(errs.0.is_empty());
    ingress_class_update(&json!({"spec": {"controller": "example.com/b"}}), &old, &mut errs);
    assert_eq!(errs.0[0].field, "spec.controller");
    assert_eq!(
        errs.0[0].message,
        "Invalid value: \"example.com/b\": field is immutable"
    );
}
