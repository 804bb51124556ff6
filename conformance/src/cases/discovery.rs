//! Discovery and read-only endpoints: version, cluster-info, api-resources, api-versions,
//! explain, get --raw.

use serde_json::Value;

use crate::ensure;
use crate::suite::{CaseResult, Ctx, Failure, contains_all, table};

pub(crate) fn version(c: &Ctx) -> CaseResult {
    let out = c.ok(&["version", "-o", "json"])?;
    let v: Value =
        serde_json::from_str(&out).map_err(|e| Failure(format!("version -o json: {e}:\n{out}")))?;
    let server = &v["serverVersion"];
    ensure!(server["major"] == "1", "serverVersion.major is not \"1\":\n{out}");
    let minor: u32 = server["minor"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches('+')
        .parse()
        .map_err(|_| Failure(format!("serverVersion.minor is not a number:\n{out}")))?;
    let git = server["gitVersion"].as_str().unwrap_or("");
    ensure!(
        git.starts_with(&format!("v1.{minor}.")),
        "gitVersion {git:?} does not match minor {minor}"
    );
    ensure!(
        v["clientVersion"]["minor"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('+')
            == c.minor().to_string(),
        "clientVersion.minor is not {}:\n{out}",
        c.minor()
    );
    let text = c.ok(&["version"])?;
    contains_all(
        &text,
        &["Client Version:", "Server Version:", git],
        "kubectl version",
    )
}

pub(crate) fn cluster_info(c: &Ctx) -> CaseResult {
    let out = c.ok(&["cluster-info"])?;
    // Colour codes around the words when kubectl thinks it has a terminal: strip them.
    let plain: String = strip_ansi(&out);
    ensure!(
        plain
            .lines()
            .any(|l| l.starts_with("Kubernetes control plane is running at https://")),
        "no control plane line:\n{plain}"
    );
    let server = c.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])?;
    contains_all(&plain, &[server.trim()], "cluster-info")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

pub(crate) fn api_resources(c: &Ctx) -> CaseResult {
    let out = c.ok(&["api-resources"])?;
    let rows = table(&out);
    ensure!(
        rows.first()
            .is_some_and(|h| h == &["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]),
        "header:\n{out}"
    );
    for want in [
        vec!["deployments", "deploy", "apps/v1", "true", "Deployment"],
        vec!["namespaces", "ns", "v1", "false", "Namespace"],
        vec!["configmaps", "cm", "v1", "true", "ConfigMap"],
        vec!["cronjobs", "cj", "batch/v1", "true", "CronJob"],
        vec![
            "clusterroles",
            "rbac.authorization.k8s.io/v1",
            "false",
            "ClusterRole",
        ],
        vec![
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition",
        ],
    ] {
        ensure!(rows.iter().any(|r| *r == want), "no row {want:?}:\n{out}");
    }
    let apps = c.ok(&["api-resources", "--api-group=apps", "-o", "name"])?;
    for r in [
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "daemonsets.apps",
    ] {
        ensure!(apps.lines().any(|l| l == r), "apps lacks {r}:\n{apps}");
    }
    ensure!(
        !apps.lines().any(|l| l == "pods"),
        "--api-group=apps lists pods:\n{apps}"
    );
    let cluster = c.ok(&["api-resources", "--namespaced=false", "-o", "name"])?;
    ensure!(
        cluster.lines().any(|l| l == "namespaces") && !cluster.lines().any(|l| l == "pods"),
        "--namespaced=false:\n{cluster}"
    );
    let wide = c.ok(&["api-resources", "-o", "wide", "--api-group=batch"])?;
    let rows = table(&wide);
    ensure!(
        rows.first()
            .is_some_and(|h| h.ends_with(&["VERBS".to_string(), "CATEGORIES".to_string()])),
        "wide header:\n{wide}"
    );
    ensure!(
        rows.iter().any(|r| r.first().is_some_and(|n| n == "jobs")
            && r.iter()
                .any(|x| x.contains("deletecollection") && x.contains("watch"))
            && r.last().is_some_and(|x| x == "all")),
        "jobs row has no verbs or category all:\n{wide}"
    );
    Ok(())
}

pub(crate) fn api_versions(c: &Ctx) -> CaseResult {
    let out = c.ok(&["api-versions"])?;
    let lines: Vec<&str> = out.lines().collect();
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "rbac.authorization.k8s.io/v1",
        "networking.k8s.io/v1",
        "policy/v1",
        "apiextensions.k8s.io/v1",
        "coordination.k8s.io/v1",
    ] {
        ensure!(lines.contains(&gv), "api-versions lacks {gv}:\n{out}");
    }
    let mut sorted = lines.clone();
    sorted.sort();
    ensure!(sorted == lines, "api-versions is not sorted:\n{out}");
    Ok(())
}

pub(crate) fn explain(c: &Ctx) -> CaseResult {
    let out = c.ok(&["explain", "deployment.spec.template.spec.containers.image"])?;
    contains_all(
        &out,
        &[
            "KIND:",
            "Deployment",
            "VERSION:",
            "v1",
            "DESCRIPTION:",
            "image",
            "<string>",
        ],
        "explain",
    )?;
    ensure!(
        out.lines()
            .any(|l| l.contains("FIELD:") && l.contains("image") && l.contains("<string>")),
        "no FIELD line for image:\n{out}"
    );
    let out = c.ok(&["explain", "pods.spec.containers"])?;
    contains_all(
        &out,
        &[
            "RESOURCE:",
            "containers",
            "<[]Container>",
            "FIELDS:",
            "image",
            "livenessProbe",
        ],
        "explain",
    )
    .or_else(|_| {
        contains_all(
            &out,
            &[
                "FIELD:",
                "containers",
                "<[]Container>",
                "FIELDS:",
                "image",
                "livenessProbe",
            ],
            "explain",
        )
    })?;
    let out = c.ok(&["explain", "cronjobs.spec.jobTemplate.spec.backoffLimit"])?;
    contains_all(
        &out,
        &["CronJob", "batch", "backoffLimit", "<integer>"],
        "explain",
    )?;
    let out = c.fails(&["explain", "deployment.spec.nosuchfield"])?;
    contains_all(&out.stderr, &["nosuchfield"], "explain of a missing field")
}

pub(crate) fn get_raw(c: &Ctx) -> CaseResult {
    let out = c.ok(&["get", "--raw", "/version"])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| Failure(format!("/version: {e}:\n{out}")))?;
    ensure!(
        v["major"] == "1" && v["gitVersion"].is_string(),
        "/version:\n{out}"
    );

    let out = c.ok(&["get", "--raw", "/api/v1/namespaces/default"])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| Failure(format!("namespace: {e}:\n{out}")))?;
    ensure!(
        v["kind"] == "Namespace" && v["metadata"]["name"] == "default" && v["status"]["phase"] == "Active",
        "/api/v1/namespaces/default:\n{out}"
    );

    let out = c.ok(&["get", "--raw", "/healthz?verbose"])?;
    ensure!(
        out.lines().any(|l| l == "[+]ping ok") && out.lines().any(|l| l == "[+]etcd ok"),
        "/healthz?verbose has no per-check lines:\n{out}"
    );
    ensure!(
        out.trim_end().ends_with("healthz check passed"),
        "/healthz?verbose:\n{out}"
    );
    let out = c.ok(&["get", "--raw", "/readyz"])?;
    ensure!(out == "ok", "/readyz: {out:?}");

    let out = c.ok(&["get", "--raw", "/metrics"])?;
    contains_all(
        &out,
        &[
            "# TYPE apiserver_request_total counter",
            "apiserver_request_total{",
        ],
        "/metrics",
    )?;

    let out = c.fails(&["get", "--raw", "/api/v1/namespaces/default/nosuchresource"])?;
    contains_all(&out.stderr, &["NotFound"], "a raw get of a missing path")
}
