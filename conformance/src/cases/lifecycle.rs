//! Across the hook: a snapshot of everything the first phase made, checked after it; then every
//! kind of delete and wait.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ensure;
use crate::suite::{CaseResult, Ctx, Failure, contains_all};

/// The namespaced kinds the first phase makes (and the snapshot records).
const NAMESPACED: &str = "configmaps,secrets,services,serviceaccounts,deployments.apps,jobs.batch,cronjobs.batch,\
ingresses.networking.k8s.io,poddisruptionbudgets.policy,resourcequotas,roles.rbac.authorization.k8s.io,\
rolebindings.rbac.authorization.k8s.io";

fn cluster_scoped(c: &Ctx) -> Vec<String> {
    vec![
        format!("clusterrole.rbac.authorization.k8s.io/{}", c.name("conf-reader")),
        format!(
            "clusterrole.rbac.authorization.k8s.io/{}",
            c.name("conf-aggregate")
        ),
        format!(
            "clusterrolebinding.rbac.authorization.k8s.io/{}",
            c.name("conf-reader")
        ),
        format!("priorityclass.scheduling.k8s.io/{}", c.name("gen-pc")),
        format!("namespace/{}", c.ns()),
    ]
}

/// Identity and content of each object: uid, creation time, labels, and every top-level field
/// but metadata and status (controllers may change status and annotations; nothing else may
/// change).
fn fingerprints(c: &Ctx) -> Result<BTreeMap<String, Value>, Failure> {
    let named = cluster_scoped(c);
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    let kinds = c.json(&[NAMESPACED])?;
    let cluster = c.json(&named)?;
    let mut out = BTreeMap::new();
    let items = kinds["items"].as_array().into_iter().flatten();
    for item in items.chain(cluster["items"].as_array().into_iter().flatten()) {
        let key = format!(
            "{}/{}",
            item["kind"].as_str().unwrap_or(""),
            item["metadata"]["name"].as_str().unwrap_or("")
        );
        let mut print = serde_json::Map::new();
        for field in ["uid", "creationTimestamp", "labels"] {
            print.insert(field.into(), item["metadata"][field].clone());
        }
        if let Some(obj) = item.as_object() {
            for (k, v) in obj {
                if k != "metadata" && k != "status" {
                    print.insert(k.clone(), v.clone());
                }
            }
        }
        out.insert(key, Value::Object(print));
    }
    Ok(out)
}

fn snapshot_path(c: &Ctx) -> std::path::PathBuf {
    c.dir().join(format!("{}-snapshot.json", c.tag()))
}

pub(crate) fn snapshot(c: &Ctx) -> CaseResult {
    let prints = fingerprints(c)?;
    ensure!(
        prints.len() >= 30,
        "the snapshot holds only {} objects: {:?}",
        prints.len(),
        prints.keys()
    );
    let text = serde_json::to_string_pretty(&prints).map_err(|e| Failure(e.to_string()))?;
    std::fs::write(snapshot_path(c), text).map_err(|e| Failure(format!("write the snapshot: {e}")))
}

pub(crate) fn persisted(c: &Ctx) -> CaseResult {
    let text = std::fs::read_to_string(snapshot_path(c))
        .map_err(|e| Failure(format!("no snapshot from the first phase ({e}): did it run?")))?;
    let before: BTreeMap<String, Value> = serde_json::from_str(&text).map_err(|e| Failure(e.to_string()))?;
    let after = fingerprints(c)?;
    let mut problems = Vec::new();
    for (key, was) in &before {
        match after.get(key) {
            None => problems.push(format!("{key} is gone")),
            Some(now) if now != was => {
                problems.push(format!("{key} changed:\n  before: {was}\n  after:  {now}"))
            }
            Some(_) => {}
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    // Tables and server-side state still answer as before.
    let out = c.ok(&[
        "get",
        "deployment",
        &c.name("gen-deploy"),
        "-o",
        "jsonpath={.spec.replicas}",
    ])?;
    ensure!(out == "4", "gen-deploy replicas after the hook: {out}");
    Ok(())
}

fn deleted_line(kind: &str, name: &str, out: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with(&format!("{kind} \"{name}\" deleted")))
}

fn gone(c: &Ctx, what: &str) -> CaseResult {
    let out = c.run(&["get", what]);
    ensure!(
        !out.success() && out.stderr.contains("NotFound"),
        "{what} still exists:\n{out}"
    );
    Ok(())
}

pub(crate) fn delete_by_name(c: &Ctx) -> CaseResult {
    let cm = c.name("applied");
    let out = c.ok(&["delete", "configmap", &cm])?;
    ensure!(deleted_line("configmap", &cm, &out), "delete by name: {out}");
    gone(c, &format!("configmap/{cm}"))?;
    let out = c.fails(&["delete", "configmap", &cm])?;
    contains_all(
        &out.stderr,
        &["NotFound", &format!("configmaps \"{cm}\" not found")],
        "a second delete",
    )?;
    let out = c.ok(&["delete", "configmap", &cm, "--ignore-not-found"])?;
    ensure!(out.is_empty(), "--ignore-not-found printed {out}");
    // Several cluster-scoped objects by resource/name.
    let targets = cluster_scoped(c);
    let out = c.ok(&["delete", &targets[0], &targets[1], &targets[2], &targets[3]])?;
    ensure!(
        out.lines().filter(|l| l.contains(" deleted")).count() == 4,
        "delete of four objects: {out}"
    );
    for t in &targets[..4] {
        gone(c, t)?;
    }
    Ok(())
}

pub(crate) fn delete_by_label(c: &Ctx) -> CaseResult {
    let sel = format!("chunk={}", c.tag());
    let out = c.ok(&["delete", "configmaps", "-l", &sel])?;
    ensure!(
        out.lines().filter(|l| l.contains(" deleted")).count() == 5,
        "delete -l: {out}"
    );
    let left = c.run(&["get", "configmaps", "-l", &sel]);
    ensure!(
        left.stdout.is_empty() && left.stderr.contains("No resources found"),
        "delete -l left:\n{left}"
    );
    Ok(())
}

pub(crate) fn delete_all(c: &Ctx) -> CaseResult {
    let before = c.ok(&["get", "secrets", "-o", "name"])?;
    ensure!(
        before.lines().count() >= 3,
        "expected the generated secrets: {before}"
    );
    let out = c.ok(&["delete", "secrets", "--all"])?;
    ensure!(
        out.lines().filter(|l| l.contains(" deleted")).count() == before.lines().count(),
        "delete --all:\n{out}\nof\n{before}"
    );
    let left = c.run(&["get", "secrets"]);
    ensure!(
        left.stdout.is_empty()
            && left
                .stderr
                .contains(&format!("No resources found in {} namespace.", c.ns())),
        "delete --all left:\n{left}"
    );
    Ok(())
}

/// Finalizers and deletion timestamp of an object, or `None` once it is gone.
fn deletion_state(c: &Ctx, what: &str) -> Result<Option<(String, bool)>, Failure> {
    let out = c.run(&[
        "get",
        what,
        "-o",
        "jsonpath={.metadata.finalizers}|{.metadata.deletionTimestamp}",
    ]);
    if !out.success() {
        ensure!(out.stderr.contains("NotFound"), "get {what}:\n{out}");
        return Ok(None);
    }
    let (fin, ts) = out.stdout.split_once('|').unwrap_or_default();
    Ok(Some((fin.to_string(), !ts.is_empty())))
}

/// Removes every finalizer (what the garbage collector would do), then waits for the delete.
fn release(c: &Ctx, what: &str) -> CaseResult {
    if deletion_state(c, what)?.is_some() {
        let out = c.run(&[
            "patch",
            what,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
        ensure!(
            out.success() || out.stderr.contains("NotFound"),
            "removing finalizers:\n{out}"
        );
    }
    c.ok(&["wait", "--for=delete", what, "--timeout=30s"])?;
    gone(c, what)
}

pub(crate) fn delete_cascade(c: &Ctx) -> CaseResult {
    // background: the owner goes at once (dependents are the garbage collector's).
    let job = c.name("gen-job");
    let out = c.ok(&["delete", "job", &job, "--cascade=background"])?;
    ensure!(
        deleted_line("job.batch", &job, &out),
        "--cascade=background: {out}"
    );
    gone(c, &format!("job/{job}"))?;

    // orphan: the server holds the object with the `orphan` finalizer until the garbage
    // collector orphans the dependents (without one, it stays: so --wait=false).
    let job = c.name("gen-job-from");
    let out = c.ok(&["delete", "job", &job, "--cascade=orphan", "--wait=false"])?;
    ensure!(deleted_line("job.batch", &job, &out), "--cascade=orphan: {out}");
    if let Some((fin, terminating)) = deletion_state(c, &format!("job/{job}"))? {
        ensure!(
            fin.contains("\"orphan\"") && terminating,
            "orphan delete: finalizers {fin}, deleting {terminating}"
        );
    }
    release(c, &format!("job/{job}"))?;

    // foreground: the `foregroundDeletion` finalizer until the dependents are gone.
    let d = c.name("gen-deploy");
    let out = c.ok(&["delete", "deployment", &d, "--cascade=foreground", "--wait=false"])?;
    ensure!(
        deleted_line("deployment.apps", &d, &out),
        "--cascade=foreground: {out}"
    );
    if let Some((fin, terminating)) = deletion_state(c, &format!("deployment/{d}"))? {
        ensure!(
            fin.contains("\"foregroundDeletion\"") && terminating,
            "foreground delete: finalizers {fin}, deleting {terminating}"
        );
    }
    release(c, &format!("deployment/{d}"))
}

fn held_configmap(c: &Ctx, n: &str) -> CaseResult {
    let file = c.file(
        &format!("{n}.yaml"),
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  finalizers: [conformance.keelson.dev/hold]\ndata: {{state: held}}\n"),
    )?;
    c.ok_eq(&["create", "-f", &file], &format!("configmap/{n} created"))
}

fn wait_child(child: &mut Child, timeout: Duration) -> Result<bool, Failure> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.success()),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure(format!("kubectl did not finish within {timeout:?}")));
            }
            Err(e) => return Err(Failure(format!("waiting for kubectl: {e}"))),
        }
    }
}

pub(crate) fn delete_wait(c: &Ctx) -> CaseResult {
    // --wait (the default) returns once the object is gone.
    let d = c.name("file-web");
    let out = c.ok(&["delete", "deployment", &d, "--wait=true"])?;
    ensure!(deleted_line("deployment.apps", &d, &out), "delete --wait: {out}");
    gone(c, &format!("deployment/{d}"))?;
    // With a finalizer it waits until --timeout and says so; the object is terminating.
    let n = c.name("held");
    held_configmap(c, &n)?;
    let out = c.fails(&["delete", "configmap", &n, "--timeout=1s"])?;
    contains_all(
        &out.stderr,
        &["timed out waiting for the condition"],
        "delete --wait with a finalizer",
    )?;
    let state = deletion_state(c, &format!("configmap/{n}"))?;
    ensure!(
        state
            .as_ref()
            .is_some_and(|(f, t)| f.contains("conformance.keelson.dev/hold") && *t),
        "the held configmap: {state:?}"
    );
    // Updates that only remove finalizers are still allowed; then it goes.
    release(c, &format!("configmap/{n}"))
}

pub(crate) fn wait_for_delete(c: &Ctx) -> CaseResult {
    let n = c.name("waited");
    held_configmap(c, &n)?;
    c.ok(&["delete", "configmap", &n, "--wait=false"])?;
    let log = c.dir().join(format!("{}-wait-delete.log", c.tag()));
    let mut child = c.spawn(
        &["wait", "--for=delete", &format!("configmap/{n}"), "--timeout=60s"],
        &log,
    )?;
    let result = c
        .ok(&[
            "patch",
            "configmap",
            &n,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
        .and_then(|_| wait_child(&mut child, Duration::from_secs(60)));
    let _ = child.kill();
    let ok = result?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(ok, "wait --for=delete failed:\n{text}");
    ensure!(
        text.trim().is_empty() || text.trim() == format!("configmap/{n} condition met"),
        "wait --for=delete printed:\n{text}"
    );
    gone(c, &format!("configmap/{n}"))?;
    // An object that is already gone satisfies it at once.
    c.ok(&["wait", "--for=delete", &format!("configmap/{n}"), "--timeout=5s"])?;
    Ok(())
}

pub(crate) fn wait_for_jsonpath(c: &Ctx) -> CaseResult {
    let cm = c.name("replaced");
    let out = c.ok(&[
        "wait",
        "--for=jsonpath={.data.v}=edited",
        &format!("configmap/{cm}"),
        "--timeout=10s",
    ])?;
    ensure!(
        out.trim() == format!("configmap/{cm} condition met"),
        "wait on a met condition: {out}"
    );
    let log = c.dir().join(format!("{}-wait-jsonpath.log", c.tag()));
    let mut child = c.spawn(
        &[
            "wait",
            "--for=jsonpath={.data.v}=later",
            &format!("configmap/{cm}"),
            "--timeout=60s",
        ],
        &log,
    )?;
    let result = c
        .ok(&[
            "patch",
            "configmap",
            &cm,
            "--type=merge",
            "-p",
            r#"{"data":{"v":"later"}}"#,
        ])
        .and_then(|_| wait_child(&mut child, Duration::from_secs(60)));
    let _ = child.kill();
    let ok = result?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(
        ok && text.trim() == format!("configmap/{cm} condition met"),
        "wait --for=jsonpath:\n{text}"
    );
    let out = c.fails(&[
        "wait",
        "--for=jsonpath={.data.v}=never",
        &format!("configmap/{cm}"),
        "--timeout=1s",
    ])?;
    contains_all(
        &out.stderr,
        &["timed out waiting for the condition"],
        "wait that times out",
    )
}

pub(crate) fn delete_namespace(c: &Ctx) -> CaseResult {
    let ns = c.ns();
    let out = c.ok(&["delete", "namespace", &ns, "--wait=false"])?;
    ensure!(deleted_line("namespace", &ns, &out), "delete namespace: {out}");
    let phase = c.run(&["get", "namespace", &ns, "-o", "jsonpath={.status.phase}"]);
    if phase.success() {
        // Its content is the namespace controller's to remove; until then it is Terminating
        // and nothing new can be made in it.
        ensure!(
            phase.stdout == "Terminating",
            "the namespace is {:?}",
            phase.stdout
        );
        let out = c.fails(&["create", "configmap", &c.name("too-late")])?;
        contains_all(
            &out.stderr,
            &["is forbidden", "because it is being terminated"],
            "create in a terminating namespace",
        )?;
    }
    Ok(())
}
