use serde_json::json;

use super::*;
use crate::validation::test_support::{pair, run};

#[test]
fn storage_classes() {
    let valid = json!({"provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2"},
        "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true,
        "allowedTopologies": [{"matchLabelExpressions": [{"key": "topology.kubernetes.io/zone", "values": ["us-central-1a"]}]}]});
    assert_eq!(run(storage_class, valid), []);
    assert_eq!(
        run(storage_class, json!({"provisioner": "rancher.io/local-path"})),
        []
    );
    let errs = run(
        storage_class,
        json!({"reclaimPolicy": "Recycle", "volumeBindingMode": "Later",
        "allowedTopologies": [{"matchLabelExpressions": [{"key": "zone"}]}, {},
            {"matchLabelExpressions": [{"key": "z", "values": ["a", "a"]}, {"key": "z", "values": ["b"]}]}, {}]}),
    );
    assert_eq!(
        errs,
        [
            pair("provisioner", "Required value"),
            pair(
                "reclaimPolicy",
                "Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\""
            ),
            pair(
                "volumeBindingMode",
                "Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\""
            ),
            pair(
                "allowedTopologies[0].matchLabelExpressions[0].values",
                "Required value: must specify as least one value"
            ),
            pair(
                "allowedTopologies[2].matchLabelExpressions[0].values[1]",
                "Duplicate value: \"a\""
            ),
            pair(
                "allowedTopologies[2].matchLabelExpressions[1].key",
                "Duplicate value: \"z\""
            ),
            pair(
                "allowedTopologies[3].matchLabelExpressions",
                "Duplicate value: \"\""
            ),
        ]
    );
    let errs = run(storage_class, json!({"provisioner": "a/b/c"}));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "provisioner");
}

#[test]
fn storage_class_updates() {
    let old = json!({"provisioner": "p.io/x", "parameters": {"a": "1"}});
    let mut errs = Errs::default();
    storage_class_update(
        &json!({"provisioner": "p.io/x", "parameters": {"a": "1"}, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
        &old,
        &mut errs,
    );
    assert!(errs.0.is_empty());
    let new = json!({"provisioner": "p.io/y", "parameters": {"a": "2"}, "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"});
    storage_class_update(&new, &old, &mut errs);
    let got: Vec<(String, String)> = errs.0.into_iter().map(|e| (e.field, e.message)).collect();
    assert_eq!(
        got,
        [
            pair("parameters", "Forbidden: updates to parameters are forbidden."),
            pair("provisioner", "Forbidden: updates to provisioner are forbidden."),
            pair(
                "reclaimPolicy",
                "Forbidden: updates to reclaimPolicy are forbidden."
            ),
            pair(
                "volumeBindingMode",
                "Invalid value: \"WaitForFirstConsumer\": field is immutable"
            ),
        ]
    );
}

#[test]
fn persistent_volumes() {
    let valid = json!({"spec": {"capacity": {"storage": "5Gi"}, "volumeMode": "Filesystem", "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Recycle", "storageClassName": "slow", "nfs": {"path": "/tmp", "server": "172.17.0.2"}}});
    assert_eq!(run(persistent_volume, valid), []);
    let local = json!({"spec": {"capacity": {"storage": "100Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/mnt/disks/ssd1"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["example-node"]}]}]}}}});
    assert_eq!(run(persistent_volume, local), []);
    let errs = run(
        persistent_volume,
        json!({"spec": {"capacity": {"storage": "0", "cpu": "1"}, "accessModes": ["ReadWriteOncePod", "ReadOnce"],
        "persistentVolumeReclaimPolicy": "Keep", "local": {"path": ""}, "hostPath": {"path": "/"}}}),
    );
    assert_eq!(
        errs,
        [
            pair(
                "spec.accessModes",
                "Unsupported value: \"ReadOnce\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""
            ),
            pair(
                "spec.accessModes",
                "Forbidden: may not use ReadWriteOncePod with other access modes"
            ),
            pair(
                "spec.capacity",
                "Unsupported value: {\"cpu\":\"1\",\"storage\":\"0\"}: supported values: \"storage\""
            ),
            pair(
                "spec.capacity[storage]",
                "Invalid value: \"0\": must be greater than zero"
            ),
            pair(
                "spec.persistentVolumeReclaimPolicy",
                "Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\""
            ),
            pair("spec.local", "Forbidden: may not specify more than 1 volume type"),
        ]
    );
    let errs = run(
        persistent_volume,
        json!({"spec": {"accessModes": ["ReadWriteOnce"], "nodeAffinity": {}}}),
    );
    assert_eq!(
        errs,
        [
            pair("spec.capacity", "Required value"),
            pair(
                "spec.capacity",
                "Unsupported value: null: supported values: \"storage\""
            ),
            pair(
                "spec.nodeAffinity.required",
                "Required value: must specify required node constraints"
            ),
            pair("spec", "Required value: must specify a volume type"),
        ]
    );
    let errs = run(
        persistent_volume,
        json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/x"}}}),
    );
    assert_eq!(
        errs,
        [pair(
            "spec.nodeAffinity",
            "Required value: Local volume requires node affinity"
        )]
    );
}

#[test]
fn persistent_volume_updates() {
    let old = json!({"spec": {"capacity": {"storage": "1Gi"}, "volumeMode": "Filesystem", "hostPath": {"path": "/a"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}});
    let mut same = old.clone();
    same["spec"]["capacity"]["storage"] = json!("2Gi");
    same["spec"]["claimRef"] = json!({"name": "c", "namespace": "default"});
    let mut errs = Errs::default();
    persistent_volume_update(&same, &old, &mut errs);
    assert!(errs.0.is_empty());
    let new =
        json!({"spec": {"capacity": {"storage": "1Gi"}, "volumeMode": "Block", "hostPath": {"path": "/b"}}});
    persistent_volume_update(&new, &old, &mut errs);
    let got: Vec<(String, String)> = errs.0.into_iter().map(|e| (e.field, e.message)).collect();
    assert_eq!(
        got,
        [
            pair(
                "spec.persistentvolumesource",
                "Forbidden: spec.persistentvolumesource is immutable after creation"
            ),
            pair("volumeMode", "Invalid value: \"Block\": field is immutable"),
            pair(
                "nodeAffinity",
                "Invalid value: null: field is immutable, except for updating from beta label to GA"
            ),
        ]
    );
}

#[test]
fn persistent_volume_node_affinity_may_move_to_ga_labels() {
    let affinity = |key: &str| {
        json!({"spec": {"capacity": {"storage": "1Gi"}, "local": {"path": "/x"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": ["a"]}]}]}}}})
    };
    let mut errs = Errs::default();
    persistent_volume_update(
        &affinity("topology.kubernetes.io/zone"),
        &affinity("failure-domain.beta.kubernetes.io/zone"),
        &mut errs,
    );
    assert!(errs.0.is_empty());
    persistent_volume_update(
        &affinity("failure-domain.beta.kubernetes.io/zone"),
        &affinity("topology.kubernetes.io/zone"),
        &mut errs,
    );
    assert_eq!(errs.0.len(), 1);
}
