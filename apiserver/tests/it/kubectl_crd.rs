//! Stock kubectl (1.27 and 1.33 when installed) on CRDs and custom resources: create a CRD from
//! YAML, wait for Established, create and get CRs with printer columns and short names, scale,
//! a schema violation, and deleting the CRD with its objects.

use std::path::Path;

use crate::kubectl::{Kubectl, KubectlExt, with_each_kubectl};

fn crd_yaml(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            properties:
              color: {{type: string, enum: [red, blue]}}
              replicas: {{type: integer, default: 1}}
          status:
            type: object
            properties:
              replicas: {{type: integer}}
    subresources:
      status: {{}}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"#
    )
}

fn exercise(k: &Kubectl, dir: &Path) {
    let group = format!("v{}.example.com", k.minor());
    let write = |name: &str, body: &str| {
        let p = dir.join(format!("{}-{name}", k.minor()));
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let crd = write("crd.yaml", &crd_yaml(&group));
    let out = k.ok(&["create", "--validate=false", "-f", &crd]);
    assert_eq!(
        out.trim(),
        format!("customresourcedefinition.apiextensions.k8s.io/widgets.{group} created")
    );
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=20s",
        &format!("crd/widgets.{group}"),
    ]);

    let cr = |name: &str, color: &str| {
        write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  color: {color}\n"
            ),
        )
    };
    let out = k.ok(&["create", "--validate=false", "-f", &cr("w1", "red")]);
    assert_eq!(out.trim(), format!("widget.{group}/w1 created"));
    let resource = format!("widgets.{group}");
    let out = k.ok(&["get", &resource]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "COLOR", "REPLICAS", "AGE"], "{out}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["w1", "red", "1"], "{out}");
    let out = k.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(out, "1");

    let out = k.ok(&["scale", &resource, "w1", "--replicas=3"]);
    assert_eq!(out.trim(), format!("widget.{group}/w1 scaled"));
    let out = k.ok(&["get", &resource, "w1", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(out, "3");

    // Client-side apply: create, then a change as a merge patch.
    let out = k.ok(&["apply", "--validate=false", "-f", &cr("w3", "red")]);
    assert_eq!(out.trim(), format!("widget.{group}/w3 created"));
    let out = k.ok(&["apply", "--validate=false", "-f", &cr("w3", "blue")]);
    assert_eq!(out.trim(), format!("widget.{group}/w3 configured"));
    let out = k.ok(&["get", "wd", "w3", "-o", "jsonpath={.spec.color}"]);
    assert_eq!(out, "blue");

    let (ok, _, err) = k.attempt(&["create", "--validate=false", "-f", &cr("w2", "green")]);
    assert!(!ok);
    assert!(
        err.contains("spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\""),
        "{err}"
    );

    let out = k.ok(&["delete", "crd", &format!("widgets.{group}")]);
    assert_eq!(
        out.trim(),
        format!("customresourcedefinition.apiextensions.k8s.io \"widgets.{group}\" deleted")
    );
    let (ok, _, err) = k.attempt(&["get", &resource]);
    assert!(!ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_on_crds() {
    with_each_kubectl("CRDs", exercise).await;
}
