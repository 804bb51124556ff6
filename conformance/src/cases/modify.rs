//! Changing objects: apply (client- and server-side), diff, replace, edit, patch, label,
//! annotate, scale.

use serde_json::Value;

use crate::ensure;
use crate::suite::{CaseResult, Ctx, Failure, contains_all};

fn applied_manifest(c: &Ctx, labels: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n  labels: {{{labels}}}\ndata: {{{data}}}\n",
        c.name("applied")
    )
}

pub(crate) fn apply(c: &Ctx) -> CaseResult {
    let n = c.name("applied");
    let file = c.file(
        "applied.yaml",
        &applied_manifest(c, "a: \"1\", b: \"2\"", "k1: v1, k2: v2"),
    )?;
    c.ok_eq(&["apply", "-f", &file], &format!("configmap/{n} created"))?;
    c.ok_eq(&["apply", "-f", &file], &format!("configmap/{n} unchanged"))?;
    let last = c.jsonpath(
        &["configmap", &n],
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    )?;
    ensure!(
        last.contains("\"k2\":\"v2\""),
        "no last-applied-configuration: {last:?}"
    );
    // Change one value, drop a key and a label: apply prunes what left the manifest.
    c.file("applied.yaml", &applied_manifest(c, "a: \"1\"", "k1: v2"))?;
    c.ok_eq(&["apply", "-f", &file], &format!("configmap/{n} configured"))?;
    let got = c.jsonpath(&["configmap", &n], "{.data}|{.metadata.labels}")?;
    ensure!(
        got == r#"{"k1":"v2"}|{"a":"1"}"#,
        "apply did not change and prune: {got}"
    );
    // A field someone else set is kept (it was never in the manifest).
    c.ok(&[
        "patch",
        "configmap",
        &n,
        "--type=merge",
        "-p",
        r#"{"data":{"foreign":"x"}}"#,
    ])?;
    c.file("applied.yaml", &applied_manifest(c, "a: \"1\"", "k1: v3"))?;
    c.ok_eq(&["apply", "-f", &file], &format!("configmap/{n} configured"))?;
    let got = c.jsonpath(&["configmap", &n], "{.data}")?;
    ensure!(
        got == r#"{"foreign":"x","k1":"v3"}"#,
        "apply touched a foreign field: {got}"
    );
    let dry = c.ok(&[
        "apply",
        "-f",
        &c.file("applied-dry.yaml", &applied_manifest(c, "a: \"1\"", "k1: dry"))?,
        "--dry-run=server",
    ])?;
    ensure!(
        dry.trim() == format!("configmap/{n} configured (server dry run)"),
        "server dry run: {dry}"
    );
    let got = c.jsonpath(&["configmap", &n], "{.data.k1}")?;
    ensure!(got == "v3", "a dry run changed the object: {got}");
    Ok(())
}

pub(crate) fn apply_after_restart(c: &Ctx) -> CaseResult {
    let n = c.name("applied");
    let file = c.file("applied.yaml", &applied_manifest(c, "", "k1: v4"))?;
    c.ok_eq(&["apply", "-f", &file], &format!("configmap/{n} configured"))?;
    // The label `a` came from the last-applied annotation written before the restart.
    let got = c.jsonpath(&["configmap", &n], "{.data}|{.metadata.labels}")?;
    ensure!(
        got == r#"{"foreign":"x","k1":"v4"}|"#,
        "apply after the restart: {got}"
    );
    Ok(())
}

fn managers(c: &Ctx, n: &str) -> Result<Vec<String>, Failure> {
    let v = c.json(&["configmap", n, "--show-managed-fields"])?;
    Ok(v["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    format!(
                        "{}:{}",
                        m["manager"].as_str().unwrap_or(""),
                        m["operation"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

pub(crate) fn apply_server_side(c: &Ctx) -> CaseResult {
    let n = c.name("ssa");
    let manifest = |k1: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  k1: {k1}\n  k2: mine\n")
    };
    let file = c.file("ssa.yaml", &manifest("v1"))?;
    c.ok_eq(
        &["apply", "--server-side", "-f", &file],
        &format!("configmap/{n} serverside-applied"),
    )?;
    ensure!(
        managers(c, &n)? == ["kubectl:Apply"],
        "managers after the first apply: {:?}",
        managers(c, &n)?
    );
    // Another manager wants k1 with another value: a conflict naming the owner and the field.
    let theirs = c.file(
        "ssa-other.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  k1: theirs\n"),
    )?;
    let out = c.fails(&["apply", "--server-side", "--field-manager=other", "-f", &theirs])?;
    contains_all(
        &out.stderr,
        &[
            "Apply failed with 1 conflict",
            "conflict with \"kubectl\"",
            ".data.k1",
            "--force-conflicts",
        ],
        "a server-side apply conflict",
    )?;
    ensure!(
        c.jsonpath(&["configmap", &n], "{.data.k1}")? == "v1",
        "a conflicting apply changed the object"
    );
    c.ok_eq(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &theirs,
        ],
        &format!("configmap/{n} serverside-applied"),
    )?;
    let got = c.jsonpath(&["configmap", &n], "{.data}")?;
    ensure!(
        got == r#"{"k1":"theirs","k2":"mine"}"#,
        "after --force-conflicts: {got}"
    );
    let mut m = managers(c, &n)?;
    m.sort();
    ensure!(
        m == ["kubectl:Apply", "other:Apply"],
        "managers after the forced apply: {m:?}"
    );
    // The first manager drops k2 from its manifest: it is removed (it owned it alone).
    c.file(
        "ssa.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata: {{}}\n"),
    )?;
    c.ok_eq(
        &["apply", "--server-side", "-f", &file],
        &format!("configmap/{n} serverside-applied"),
    )?;
    let got = c.jsonpath(&["configmap", &n], "{.data}")?;
    ensure!(
        got == r#"{"k1":"theirs"}"#,
        "server-side apply did not remove the dropped field: {got}"
    );
    Ok(())
}

pub(crate) fn diff(c: &Ctx) -> CaseResult {
    let n = c.name("applied");
    let same = c.file(
        "diff-same.yaml",
        &applied_manifest(c, "a: \"1\"", "k1: v3, foreign: x"),
    )?;
    let out = c.run(&["diff", "-f", &same]);
    ensure!(
        out.code == Some(0) && out.stdout.is_empty(),
        "diff without changes must exit 0 quietly:\n{out}"
    );
    let changed = c.file(
        "diff-changed.yaml",
        &applied_manifest(c, "a: \"1\"", "k1: v9, foreign: x"),
    )?;
    let out = c.run(&["diff", "-f", &changed]);
    ensure!(out.code == Some(1), "diff with changes must exit 1:\n{out}");
    ensure!(
        out.stdout.lines().any(|l| l == "-  k1: v3") && out.stdout.lines().any(|l| l == "+  k1: v9"),
        "diff output:\n{out}"
    );
    ensure!(
        out.stdout.contains(&format!("v1.ConfigMap.{}.{n}", c.ns())),
        "diff names the object:\n{out}"
    );
    let v = c.jsonpath(&["configmap", &n], "{.data.k1}")?;
    ensure!(v == "v3", "diff changed the object: {v}");
    let new = c.file(
        "diff-new.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\ndata: {{x: \"z\"}}\n",
            c.name("diff-new")
        ),
    )?;
    let out = c.run(&["diff", "-f", &new]);
    ensure!(
        out.code == Some(1)
            && out
                .stdout
                .lines()
                .any(|l| l == format!("+  name: {}", c.name("diff-new"))),
        "diff of a new object:\n{out}"
    );
    let gone = c.run(&["get", "configmap", &c.name("diff-new")]);
    ensure!(!gone.success(), "diff created the object:\n{gone}");
    Ok(())
}

pub(crate) fn replace(c: &Ctx) -> CaseResult {
    let n = c.name("replaced");
    let body = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  labels: {{r: \"{v}\"}}\ndata: {{v: \"{v}\"}}\n"
        )
    };
    let file = c.file("replaced.yaml", &body("1"))?;
    let out = c.fails(&["replace", "-f", &file])?;
    contains_all(
        &out.stderr,
        &["NotFound", &format!("configmaps \"{n}\" not found")],
        "replace of a missing object",
    )?;
    c.ok_eq(&["create", "-f", &file], &format!("configmap/{n} created"))?;
    let uid = c.jsonpath(&["configmap", &n], "{.metadata.uid}")?;
    c.file("replaced.yaml", &body("2"))?;
    c.ok_eq(&["replace", "-f", &file], &format!("configmap/{n} replaced"))?;
    let got = c.jsonpath(
        &["configmap", &n],
        "{.data.v} {.metadata.labels.r} {.metadata.uid}",
    )?;
    ensure!(got == format!("2 2 {uid}"), "after replace: {got}");
    // A stale resourceVersion is a conflict.
    let stale = c.file(
        "replaced-stale.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  resourceVersion: \"1\"\ndata: {{v: \"3\"}}\n"),
    )?;
    let out = c.fails(&["replace", "-f", &stale])?;
    contains_all(
        &out.stderr,
        &[
            "Operation cannot be fulfilled on configmaps",
            "the object has been modified; please apply your changes to the latest version and try again",
        ],
        "replace with a stale resourceVersion",
    )?;
    // --force deletes and re-creates: a new uid.
    c.file("replaced.yaml", &body("4"))?;
    let out = c.ok(&["replace", "--force", "-f", &file])?;
    contains_all(
        &out,
        &[
            &format!("configmap \"{n}\" deleted"),
            &format!("configmap/{n} replaced"),
        ],
        "replace --force",
    )?;
    let got = c.jsonpath(&["configmap", &n], "{.data.v} {.metadata.uid}")?;
    ensure!(
        got.starts_with("4 ") && !got.ends_with(&uid),
        "replace --force kept the uid: {got}"
    );
    Ok(())
}

pub(crate) fn edit(c: &Ctx) -> CaseResult {
    let n = c.name("replaced");
    let script = c.file(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/^  v: \"4\"$/  v: edited/; s/^  v: \"4\"$/  v: edited/' \"$1\"\n",
    )?;
    let editor = format!("sh {script}");
    let out = c.run_env(
        &["edit", "configmap", &n],
        &[("EDITOR", &editor), ("KUBE_EDITOR", &editor)],
    );
    ensure!(
        out.success() && out.stdout.trim() == format!("configmap/{n} edited"),
        "edit:\n{out}"
    );
    let got = c.jsonpath(&["configmap", &n], "{.data.v}")?;
    ensure!(got == "edited", "the edit did not land: {got}");
    // An editor that changes nothing.
    let out = c.run_env(
        &["edit", "configmap", &n],
        &[("EDITOR", "true"), ("KUBE_EDITOR", "true")],
    );
    ensure!(
        out.success() && format!("{}{}", out.stdout, out.stderr).contains("Edit cancelled, no changes made."),
        "a no-op edit:\n{out}"
    );
    // An edit the server refuses is reported, and the object stays.
    let bad = c.file(
        "editor-bad.sh",
        "#!/bin/sh\nsed -i 's/^  name: .*$/  name: Not_Valid/' \"$1\"\n",
    )?;
    let editor = format!("sh {bad}");
    let out = c.run_env(
        &["edit", "configmap", &n],
        &[("EDITOR", &editor), ("KUBE_EDITOR", &editor)],
    );
    ensure!(!out.success(), "an edit renaming the object must fail:\n{out}");
    ensure!(
        c.jsonpath(&["configmap", &n], "{.data.v}")? == "edited",
        "a failed edit changed the object"
    );
    Ok(())
}

pub(crate) fn patch(c: &Ctx) -> CaseResult {
    let d = c.name("file-web");
    // Strategic merge: containers merge by name, the sidecar stays.
    let out = c.ok(&[
        "patch",
        "deployment",
        &d,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}"#,
    ])?;
    ensure!(
        out.trim() == format!("deployment.apps/{d} patched"),
        "strategic patch: {out}"
    );
    let got = c.jsonpath(
        &["deployment", &d],
        "{.spec.template.spec.containers[*].image} {.metadata.generation}",
    )?;
    ensure!(
        got == "nginx:1.26 busybox:1.36 2",
        "after the strategic patch: {got}"
    );
    let out = c.ok(&[
        "patch",
        "deployment",
        &d,
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}"#,
    ])?;
    ensure!(
        out.trim() == format!("deployment.apps/{d} patched (no change)"),
        "a no-op patch: {out}"
    );
    // Merge patch: a list is replaced whole, null removes a key.
    let cm = c.name("file-cm");
    c.ok_eq(
        &[
            "patch",
            "configmap",
            &cm,
            "--type=merge",
            "-p",
            r#"{"data":{"merged":"yes","greeting":null}}"#,
        ],
        &format!("configmap/{cm} patched"),
    )?;
    ensure!(
        c.jsonpath(&["configmap", &cm], "{.data}")? == r#"{"merged":"yes"}"#,
        "after the merge patch"
    );
    // JSON patch, including a failing `test`.
    c.ok_eq(
        &["patch", "configmap", &cm, "--type=json", "-p", r#"[{"op":"test","path":"/data/merged","value":"yes"},{"op":"add","path":"/data/json","value":"1"},{"op":"remove","path":"/data/merged"}]"#],
        &format!("configmap/{cm} patched"),
    )?;
    ensure!(
        c.jsonpath(&["configmap", &cm], "{.data}")? == r#"{"json":"1"}"#,
        "after the json patch"
    );
    let out = c.fails(&[
        "patch",
        "configmap",
        &cm,
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/data/json","value":"2"}]"#,
    ])?;
    ensure!(
        !out.stderr.is_empty(),
        "a failed test op gives no message:\n{out}"
    );
    ensure!(
        c.jsonpath(&["configmap", &cm], "{.data}")? == r#"{"json":"1"}"#,
        "a failed json patch changed the object"
    );
    // The $patch: delete directive of strategic merge.
    c.ok(&[
        "patch",
        "deployment",
        &d,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    ])?;
    let got = c.jsonpath(&["deployment", &d], "{.spec.template.spec.containers[*].name}")?;
    ensure!(got == "web", "$patch: delete left {got}");
    // Patching the scale subresource.
    let out = c.ok(&[
        "patch",
        "deployment",
        &d,
        "--subresource=scale",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    if let Ok(out) = out {
        ensure!(
            out.trim() == format!("scale.autoscaling/{d} patched"),
            "scale patch: {out}"
        );
        ensure!(
            c.jsonpath(&["deployment", &d], "{.spec.replicas}")? == "3",
            "scale subresource patch"
        );
    }
    let bad = c.fails(&["patch", "configmap", &cm, "--type=merge", "-p", "{not json"])?;
    ensure!(!bad.stderr.is_empty(), "a malformed patch gives no message");
    Ok(())
}

pub(crate) fn label(c: &Ctx) -> CaseResult {
    let cm = c.name("file-cm");
    c.ok_eq(
        &["label", "configmap", &cm, "tier=web"],
        &format!("configmap/{cm} labeled"),
    )?;
    let out = c.fails(&["label", "configmap", &cm, "tier=db"])?;
    contains_all(
        &out.stderr,
        &["'tier' already has a value (web), and --overwrite is false"],
        "label without --overwrite",
    )?;
    c.ok_eq(
        &["label", "configmap", &cm, "tier=db", "--overwrite"],
        &format!("configmap/{cm} labeled"),
    )?;
    let out = c.ok(&["get", "configmaps", "-l", "tier=db", "-o", "name"])?;
    ensure!(
        out.trim() == format!("configmap/{cm}"),
        "get -l after label: {out}"
    );
    c.ok_eq(
        &["label", "configmap", &cm, "tier-"],
        &format!("configmap/{cm} unlabeled"),
    )?;
    let labels = c.jsonpath(&["configmap", &cm], "{.metadata.labels}")?;
    ensure!(!labels.contains("tier"), "label removal left {labels}");
    // Many objects at once by selector.
    let out = c.ok(&[
        "label",
        "configmaps",
        "-l",
        &format!("chunk={}", c.tag()),
        "batch=yes",
    ])?;
    ensure!(
        out.lines().filter(|l| l.ends_with(" labeled")).count() == 5,
        "label -l:\n{out}"
    );
    let bad = c.fails(&["label", "configmap", &cm, "inv@lid=1"])?;
    contains_all(
        &bad.stderr,
        &[
            "Invalid value: \"inv@lid\"",
            "name part must consist of alphanumeric characters",
        ],
        "an invalid label key",
    )?;
    Ok(())
}

pub(crate) fn annotate(c: &Ctx) -> CaseResult {
    let cm = c.name("file-cm");
    // kubectl before 1.28 printed "annotate" here.
    let done = if c.minor() < 28 { "annotate" } else { "annotated" };
    c.ok_eq(
        &["annotate", "configmap", &cm, "note=first"],
        &format!("configmap/{cm} {done}"),
    )?;
    let out = c.fails(&["annotate", "configmap", &cm, "note=second"])?;
    contains_all(
        &out.stderr,
        &[
            "--overwrite is false but found the following declared annotation(s): 'note' already has a value (first)",
        ],
        "annotate without --overwrite",
    )?;
    c.ok_eq(
        &["annotate", "configmap", &cm, "note=second", "--overwrite"],
        &format!("configmap/{cm} {done}"),
    )?;
    ensure!(
        c.jsonpath(&["configmap", &cm], "{.metadata.annotations.note}")? == "second",
        "annotate --overwrite"
    );
    c.ok_eq(
        &["annotate", "configmap", &cm, "note-"],
        &format!("configmap/{cm} {done}"),
    )?;
    let ann = c.jsonpath(&["configmap", &cm], "{.metadata.annotations}")?;
    ensure!(!ann.contains("note"), "annotation removal left {ann}");
    let rv = c.jsonpath(&["configmap", &cm], "{.metadata.resourceVersion}")?;
    let out = c.fails(&["annotate", "configmap", &cm, "x=1", "--resource-version=1"])?;
    contains_all(
        &out.stderr,
        &["the object has been modified"],
        "annotate with a stale resourceVersion",
    )?;
    c.ok_eq(
        &[
            "annotate",
            "configmap",
            &cm,
            "x=1",
            &format!("--resource-version={rv}"),
        ],
        &format!("configmap/{cm} {done}"),
    )
}

pub(crate) fn scale(c: &Ctx) -> CaseResult {
    let d = c.name("gen-deploy");
    c.ok_eq(
        &["scale", "deployment", &d, "--replicas=3"],
        &format!("deployment.apps/{d} scaled"),
    )?;
    ensure!(
        c.jsonpath(&["deployment", &d], "{.spec.replicas}")? == "3",
        "scale to 3"
    );
    let out = c.fails(&["scale", "deployment", &d, "--current-replicas=5", "--replicas=4"])?;
    contains_all(
        &out.stderr,
        &["Expected replicas to be 5, was 3"],
        "scale with a wrong --current-replicas",
    )?;
    ensure!(
        c.jsonpath(&["deployment", &d], "{.spec.replicas}")? == "3",
        "a refused scale changed replicas"
    );
    c.ok_eq(
        &["scale", "deployment", &d, "--current-replicas=3", "--replicas=4"],
        &format!("deployment.apps/{d} scaled"),
    )?;
    let scale: Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        &format!("/apis/apps/v1/namespaces/{}/deployments/{d}/scale", c.ns()),
    ])?)
    .map_err(|e| Failure(format!("scale subresource: {e}")))?;
    ensure!(
        scale["kind"] == "Scale"
            && scale["apiVersion"] == "autoscaling/v1"
            && scale["spec"]["replicas"] == 4
            && scale["status"]["selector"] == format!("app={d}"),
        "the scale subresource: {scale}"
    );
    let out = c.fails(&["scale", "deployment", &d, "--replicas=-1"])?;
    ensure!(!out.stderr.is_empty(), "a negative scale gives no message");
    Ok(())
}
