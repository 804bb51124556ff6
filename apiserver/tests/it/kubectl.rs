//! Stock kubectl against the TLS server, for every kubectl found: the 1.27 and 1.33 builds that
//! `shared/tools/get-kube-clients.sh /var/cache/keelson-kube-clients 27 33` installs, and the
//! system `kubectl`. Without any, the test says so and passes, except under `CI=true`, where it
//! fails ([`conformance::tools`]).

use std::path::Path;

use crate::kube_client::Running;

pub(crate) use conformance::Kubectl;

/// The shorthands these tests use over [`conformance::Kubectl`].
pub(crate) trait KubectlExt {
    /// Runs kubectl; (success, stdout, stderr).
    fn attempt(&self, args: &[&str]) -> (bool, String, String);
    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String;
}

impl KubectlExt for Kubectl {
    fn attempt(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.run(args, &[]);
        (out.success(), out.stdout, out.stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, &[]);
        assert!(out.success(), "kubectl 1.{}: {out}", self.minor());
        out.stdout
    }
}

/// Starts a server and runs `exercise` with every kubectl found ([`conformance::tools::kubectls`];
/// under `CI=true` a missing one fails), off the runtime's workers so the in-process server keeps
/// answering, each with its own HOME and a shared scratch dir.
pub(crate) async fn with_each_kubectl(what: &'static str, exercise: fn(&Kubectl, &Path)) {
    let bins = conformance::tools::kubectls();
    if bins.is_empty() {
        return;
    }
    let running = Running::start().await;
    let kubeconfig = running.kubeconfig();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        for bin in bins {
            let k = Kubectl::new(&bin, &kubeconfig).expect("kubectl runs");
            eprintln!("{what} with kubectl 1.{} ({})", k.minor(), k.bin().display());
            exercise(&k, &path);
        }
    })
    .await
    .unwrap();
}

fn exercise(k: &Kubectl, manifests: &Path) {
    let tag = format!("v{}", k.minor());
    let out = k.ok(&["version"]);
    assert!(
        out.contains("Server Version") || out.contains("Server Version: version.Info"),
        "{out}"
    );

    let out = k.ok(&["api-resources"]);
    for r in [
        "configmaps",
        "deployments",
        "namespaces",
        "customresourcedefinitions",
    ] {
        assert!(out.contains(r), "api-resources lacks {r}:\n{out}");
    }
    let out = k.ok(&["api-versions"]);
    assert!(out.lines().any(|l| l == "apps/v1"), "{out}");

    let out = k.ok(&["get", "ns"]);
    assert!(out.lines().next().unwrap().starts_with("NAME"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("kube-system") && l.contains("Active")),
        "{out}"
    );

    // The `kubernetes` service holds the first IP of the service range.
    let out = k.ok(&["get", "svc", "kubernetes", "-n", "default"]);
    assert!(out.lines().next().unwrap().contains("CLUSTER-IP"), "{out}");
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>"],
        "{out}"
    );

    // Generators send protobuf bodies from kubectl 1.32 on (not decoded yet): use -f there.
    let cm = format!("cm-{tag}");
    if k.minor() < 32 {
        let out = k.ok(&["create", "configmap", &cm, "--from-literal=a=b"]);
        assert_eq!(out.trim(), format!("configmap/{cm} created"));
    } else {
        let file = manifests.join(format!("{cm}.yaml"));
        std::fs::write(
            &file,
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {cm}\ndata:\n  a: b\n"),
        )
        .unwrap();
        let out = k.ok(&["create", "-f", file.to_str().unwrap()]);
        assert_eq!(out.trim(), format!("configmap/{cm} created"));
    }
    let (ok, _, err) = k.attempt(&["create", "-f", manifests.join("dup.yaml").to_str().unwrap()]);
    assert!(!ok && err.contains("AlreadyExists"), "{err}");

    let out = k.ok(&["get", "cm", &cm, "-o", "yaml"]);
    assert!(
        out.contains("a: b") && out.contains("kind: ConfigMap") && out.contains("resourceVersion:"),
        "{out}"
    );
    let out = k.ok(&["get", "cm"]);
    assert!(
        out.contains("DATA") && out.lines().any(|l| l.starts_with(&cm)),
        "{out}"
    );

    // Client-side apply: create, then a strategic merge patch.
    let deploy = format!("web-{tag}");
    let file = manifests.join(format!("{deploy}.yaml"));
    let manifest = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {deploy}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {deploy}}}\n  template:\n    metadata:\n      labels: {{app: {deploy}}}\n    spec:\n      containers:\n      - name: nginx\n        image: {image}\n"
        )
    };
    std::fs::write(&file, manifest("nginx:1.25")).unwrap();
    let f = file.to_str().unwrap();
    let out = k.ok(&["apply", "-f", f]);
    assert_eq!(out.trim(), format!("deployment.apps/{deploy} created"));
    let out = k.ok(&["apply", "-f", f]);
    assert_eq!(out.trim(), format!("deployment.apps/{deploy} unchanged"));
    std::fs::write(&file, manifest("nginx:1.26")).unwrap();
    let out = k.ok(&["apply", "-f", f]);
    assert_eq!(out.trim(), format!("deployment.apps/{deploy} configured"));
    let out = k.ok(&[
        "get",
        "deploy",
        &deploy,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}",
    ]);
    assert_eq!(out.trim(), "nginx:1.26 2");
    let out = k.ok(&["get", "deploy", "-o", "wide"]);
    assert!(out.contains("UP-TO-DATE") && out.contains("nginx:1.26"), "{out}");
    let out = k.ok(&["scale", "deploy", &deploy, "--replicas=4"]);
    assert!(out.contains("scaled"), "{out}");
    let out = k.ok(&["label", "cm", &cm, "tier=fe"]);
    assert!(out.contains("labeled"), "{out}");
    let out = k.ok(&["get", "cm", "-l", "tier=fe", "-o", "name"]);
    assert_eq!(out.trim(), format!("configmap/{cm}"));

    let out = k.ok(&["delete", "cm", &cm]);
    assert_eq!(out.trim(), format!("configmap \"{cm}\" deleted"));
    let out = k.ok(&["delete", "-f", f]);
    assert!(out.contains("deleted"), "{out}");
    let (ok, _, err) = k.attempt(&["get", "cm", &cm]);
    assert!(
        !ok && err.contains("NotFound") && err.contains(&format!("configmaps \"{cm}\" not found")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_works() {
    let bins = conformance::tools::kubectls();
    if bins.is_empty() {
        return;
    }
    let running = Running::start().await;
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("dup.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-root-dup\n",
    )
    .unwrap();
    let kubeconfig = running.kubeconfig();
    let dup = manifests.path().join("dup.yaml");
    // The duplicate create needs a first copy.
    let seed = Kubectl::new(&bins[0], &kubeconfig).expect("kubectl runs");
    let manifests_path = manifests.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        seed.ok(&["create", "-f", dup.to_str().unwrap()]);
        for bin in bins {
            let k = Kubectl::new(&bin, &kubeconfig).expect("kubectl runs");
            eprintln!("exercising kubectl 1.{} ({})", k.minor(), k.bin().display());
            exercise(&k, &manifests_path);
        }
    })
    .await
    .unwrap();
}
