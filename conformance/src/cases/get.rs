//! `kubectl get` in every output format, selectors, all namespaces, chunked lists, watches, and
//! `kubectl describe`.

use std::time::Duration;

use serde_json::Value;

use crate::ensure;
use crate::suite::{CaseResult, Ctx, Failure, contains_all, table, table_has};

pub(crate) fn get_table(c: &Ctx) -> CaseResult {
    let d = c.name("file-web");
    let out = c.ok(&["get", "deployments"])?;
    table_has(
        &out,
        &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        &[&d, "*/2", "*", "*"],
    )?;
    let out = c.ok(&["get", "configmap", &c.name("file-cm")])?;
    table_has(&out, &["NAME", "DATA", "AGE"], &[&c.name("file-cm"), "1"])?;
    // Several types at once: one table per type, each with its own header.
    let out = c
        .ok(&[
            "get",
            "configmap,service",
            &c.name("file-cm"),
            &c.name("file-svc"),
        ])
        .or_else(|_| {
            c.ok(&[
                "get",
                &format!("configmap/{}", c.name("file-cm")),
                &format!("service/{}", c.name("file-svc")),
            ])
        })?;
    contains_all(
        &out,
        &[
            &format!("configmap/{}", c.name("file-cm")),
            &format!("service/{}", c.name("file-svc")),
            "DATA",
            "CLUSTER-IP",
        ],
        "a two-type get",
    )?;
    let missing = c.fails(&["get", "configmap", "no-such-cm"])?;
    contains_all(
        &missing.stderr,
        &["NotFound", "configmaps \"no-such-cm\" not found"],
        "get of a missing object",
    )
}

pub(crate) fn get_wide(c: &Ctx) -> CaseResult {
    let d = c.name("file-web");
    let out = c.ok(&["get", "deployment", &d, "-o", "wide"])?;
    table_has(
        &out,
        &[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        &[&d, "*/2", "*", "*"],
    )?;
    let row = table(&out).get(1).cloned().unwrap_or_default();
    ensure!(
        row.get(5..8)
            .is_some_and(|r| r == ["web,sidecar", "nginx:1.25,busybox:1.36", &format!("app={d}")]),
        "wide columns:\n{out}"
    );
    Ok(())
}

pub(crate) fn get_yaml(c: &Ctx) -> CaseResult {
    let cm = c.name("file-cm");
    let out = c.ok(&["get", "configmap", &cm, "-o", "yaml"])?;
    let ns = c.ns();
    for line in [
        "apiVersion: v1".to_string(),
        "kind: ConfigMap".into(),
        "data:".into(),
        "  greeting: hello".into(),
        format!("  name: {cm}"),
        format!("  namespace: {ns}"),
    ] {
        ensure!(
            out.lines().any(|l| l == line),
            "yaml lacks the line {line:?}:\n{out}"
        );
    }
    contains_all(
        &out,
        &["  resourceVersion: \"", "  uid: ", "  creationTimestamp: \""],
        "yaml",
    )?;
    // A list is a v1 List.
    let out = c.ok(&["get", "configmaps", "-l", "from=file", "-o", "yaml"])?;
    ensure!(
        out.starts_with("apiVersion: v1\nitems:\n") && out.contains("kind: List"),
        "a list in yaml:\n{out}"
    );
    Ok(())
}

pub(crate) fn get_json(c: &Ctx) -> CaseResult {
    let d = c.name("file-web");
    let v = c.json(&["deployment", &d])?;
    ensure!(
        v["apiVersion"] == "apps/v1"
            && v["kind"] == "Deployment"
            && v["metadata"]["name"] == d.as_str()
            && v["spec"]["replicas"] == 2
            && v["spec"]["template"]["spec"]["containers"][1]["name"] == "sidecar",
        "deployment json:\n{v:#}"
    );
    let list = c.json(&["deployments"])?;
    ensure!(
        list["kind"] == "List"
            && list["items"].as_array().is_some_and(|items| items
                .iter()
                .any(|i| i["metadata"]["name"] == d.as_str() && i["kind"] == "Deployment")),
        "a list in json:\n{list:#}"
    );
    Ok(())
}

pub(crate) fn get_name(c: &Ctx) -> CaseResult {
    let out = c.ok(&[
        "get",
        "configmap,deployment,service",
        "-l",
        "from=file",
        "-o",
        "name",
    ])?;
    ensure!(
        out.trim() == format!("configmap/{}", c.name("file-cm")),
        "-o name with a selector:\n{out}"
    );
    let out = c.ok(&["get", "deployment", "-o", "name"])?;
    contains_all(
        &out,
        &[&format!("deployment.apps/{}\n", c.name("file-web"))],
        "-o name",
    )
}

pub(crate) fn get_jsonpath(c: &Ctx) -> CaseResult {
    let d = c.name("file-web");
    let out = c.jsonpath(
        &["deployment", &d],
        "{.metadata.name} {.spec.template.spec.containers[*].image}",
    )?;
    ensure!(out == format!("{d} nginx:1.25 busybox:1.36"), "jsonpath: {out:?}");
    let out = c.jsonpath(
        &["deployments"],
        "{range .items[*]}{.metadata.name}={.spec.replicas}{\"\\n\"}{end}",
    )?;
    ensure!(
        out.lines().any(|l| l == format!("{d}=2")),
        "jsonpath range: {out:?}"
    );
    let out = c.jsonpath(
        &["deployment", &d],
        "{.spec.template.spec.containers[?(@.name==\"sidecar\")].image}",
    )?;
    ensure!(out == "busybox:1.36", "jsonpath filter: {out:?}");
    Ok(())
}

pub(crate) fn get_custom_columns(c: &Ctx) -> CaseResult {
    let d = c.name("file-web");
    let out = c.ok(&[
        "get",
        "deployment",
        &d,
        "-o",
        "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas,IMAGES:.spec.template.spec.containers[*].image,MISSING:.spec.nothing",
    ])?;
    let rows = table(&out);
    ensure!(
        rows == [
            vec!["NAME", "REPLICAS", "IMAGES", "MISSING"],
            vec![d.as_str(), "2", "nginx:1.25,busybox:1.36", "<none>"],
        ],
        "custom-columns:\n{out}"
    );
    Ok(())
}

pub(crate) fn get_label_selector(c: &Ctx) -> CaseResult {
    let cm = c.name("file-cm");
    for selector in [
        "from=file",
        "suite in (conformance,other)",
        "from,suite!=x",
        "!nolabel",
    ] {
        let out = c.ok(&["get", "configmaps", "-l", selector, "-o", "name"])?;
        ensure!(
            out.lines().any(|l| l == format!("configmap/{cm}")),
            "-l {selector:?} misses {cm}:\n{out}"
        );
    }
    let out = c.ok(&["get", "configmaps", "-l", "from=nowhere"])?;
    let none = c.run(&["get", "configmaps", "-l", "from=nowhere"]);
    ensure!(
        out.is_empty()
            && none
                .stderr
                .contains(&format!("No resources found in {} namespace.", c.ns())),
        "an empty selection:\n{none}"
    );
    let bad = c.fails(&["get", "configmaps", "-l", "a==="])?;
    ensure!(
        !bad.stderr.is_empty(),
        "a malformed selector gives no message:\n{bad}"
    );
    Ok(())
}

pub(crate) fn get_field_selector(c: &Ctx) -> CaseResult {
    let cm = c.name("file-cm");
    let out = c.ok(&[
        "get",
        "configmaps",
        "--field-selector",
        &format!("metadata.name={cm}"),
        "-o",
        "name",
    ])?;
    ensure!(out.trim() == format!("configmap/{cm}"), "metadata.name=:\n{out}");
    let out = c.ok(&[
        "get",
        "configmaps",
        "--field-selector",
        &format!("metadata.name!={cm}"),
        "-o",
        "name",
    ])?;
    ensure!(
        !out.contains(&format!("configmap/{cm}\n")),
        "metadata.name!=:\n{out}"
    );
    let out = c.ok(&[
        "get",
        "secrets",
        "--field-selector",
        "type=kubernetes.io/tls",
        "-o",
        "name",
    ])?;
    ensure!(
        out.trim() == format!("secret/{}", c.name("gen-tls")),
        "secrets by type:\n{out}"
    );
    let out = c
        .ok(&[
            "get",
            "namespaces",
            "--field-selector",
            "status.phase=Active,metadata.name=kube-system",
            "-o",
            "name",
        ])
        .or_else(|_| {
            c.ok(&[
                "get",
                "namespaces",
                "--field-selector",
                "metadata.name=kube-system",
                "-o",
                "name",
            ])
        })?;
    ensure!(
        out.trim() == "namespace/kube-system",
        "namespaces by name:\n{out}"
    );
    let bad = c.fails(&["get", "configmaps", "--field-selector", "spec.nothing=1"])?;
    contains_all(
        &bad.stderr,
        &[r#""spec.nothing" is not a known field selector: only "metadata.name", "metadata.namespace""#],
        "an unknown field label",
    )
}

pub(crate) fn get_all_namespaces(c: &Ctx) -> CaseResult {
    let out = c.ok(&["get", "deployments", "-A"])?;
    table_has(
        &out,
        &["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        &[&c.ns(), &c.name("file-web"), "*/2"],
    )?;
    let out = c.ok(&["get", "services", "--all-namespaces", "-o", "name"])?;
    contains_all(
        &out,
        &[
            "service/kubernetes\n",
            &format!("service/{}\n", c.name("file-svc")),
        ],
        "services -A",
    )?;
    // A field selector across all namespaces.
    let out = c.jsonpath(
        &[
            "configmaps",
            "-A",
            "--field-selector",
            &format!("metadata.name={}", c.name("file-cm")),
        ],
        "{.items[*].metadata.namespace}",
    )?;
    ensure!(out == c.ns(), "configmaps -A by name: {out:?}");
    Ok(())
}

pub(crate) fn get_chunk_size(c: &Ctx) -> CaseResult {
    let label = format!("chunk={}", c.tag());
    let mut manifest = String::new();
    for i in 0..5 {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n  labels: {{chunk: {}}}\ndata: {{i: \"{i}\"}}\n",
            c.name(&format!("chunk-{i}")),
            c.tag()
        ));
    }
    let file = c.file("chunks.yaml", &manifest)?;
    let out = c.ok(&["create", "-f", &file])?;
    ensure!(out.lines().count() == 5, "create of five configmaps:\n{out}");
    let out = c.run(&["get", "configmaps", "-l", &label, "--chunk-size=2", "-v=6"]);
    ensure!(out.success(), "chunked get:\n{out}");
    let rows = table(&out.stdout);
    ensure!(
        rows.len() == 6
            && rows[0] == ["NAME", "DATA", "AGE"]
            && rows.iter().filter(|r| r[0] == "NAME").count() == 1,
        "a chunked table has one header and five rows:\n{out}"
    );
    for i in 0..5 {
        ensure!(
            rows[i + 1][0] == c.name(&format!("chunk-{i}")),
            "rows out of order:\n{out}"
        );
    }
    let pages = out
        .stderr
        .lines()
        .filter(|l| l.contains("limit=2") && l.contains("200 OK"))
        .count();
    let continued = out.stderr.lines().filter(|l| l.contains("continue=")).count();
    ensure!(
        pages == 3 && continued == 2,
        "expected 3 pages of 2 (2 with continue):\n{}",
        out.stderr
    );
    let out = c.ok(&["get", "configmaps", "-l", &label, "--chunk-size=1", "-o", "name"])?;
    ensure!(out.lines().count() == 5, "chunked -o name:\n{out}");
    Ok(())
}

pub(crate) fn get_watch(c: &Ctx) -> CaseResult {
    let label = format!("watch={}", c.tag());
    let (seed, w) = (c.name("watch-seed"), c.name("watch-a"));
    c.ok(&["create", "configmap", &seed])?;
    c.ok(&["label", "configmap", &seed, &label])?;
    let log = c.dir().join(format!("{}-watch.log", c.tag()));
    let mut child = c.spawn(
        &["get", "configmaps", "-l", &label, "-w", "--output-watch-events"],
        &log,
    )?;
    let result = (|| {
        // The first list is printed as ADDED events: the watch is running from here on.
        c.wait_for_output(&log, Duration::from_secs(30), |t| t.contains(&seed))?;
        c.ok(&["create", "configmap", &w, "--from-literal=k=v"])?; // not selected yet
        c.ok(&["label", "configmap", &w, &label])?; // enters the selection: ADDED
        c.ok(&["annotate", "configmap", &w, "touched=yes"])?; // MODIFIED
        c.ok(&["delete", "configmap", &w])?; // DELETED
        c.wait_for_output(&log, Duration::from_secs(30), |t| {
            t.lines().any(|l| l.starts_with("DELETED"))
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    let text = result?;
    let rows = table(&text);
    let events: Vec<(String, String)> = rows
        .iter()
        .skip(1)
        .map(|r| (r[0].clone(), r.get(1).cloned().unwrap_or_default()))
        .collect();
    ensure!(
        rows.first()
            .is_some_and(|h| h == &["EVENT", "NAME", "DATA", "AGE"]),
        "watch header:\n{text}"
    );
    let want = [("ADDED", &seed), ("ADDED", &w), ("MODIFIED", &w), ("DELETED", &w)];
    ensure!(
        events.len() == want.len()
            && events
                .iter()
                .zip(want)
                .all(|((e, n), (we, wn))| e == we && n == wn),
        "expected the events {want:?}:\n{text}"
    );

    // The same as JSON watch events.
    let log = c.dir().join(format!("{}-watch-json.log", c.tag()));
    let mut child = c.spawn(
        &[
            "get",
            "configmap",
            &seed,
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ],
        &log,
    )?;
    let result = (|| {
        c.wait_for_output(&log, Duration::from_secs(30), |t| t.contains("\"ADDED\""))?;
        c.ok(&["label", "configmap", &seed, "step=2"])?;
        c.wait_for_output(&log, Duration::from_secs(30), |t| t.contains("\"MODIFIED\""))
    })();
    let _ = child.kill();
    let _ = child.wait();
    let text = result?;
    let events: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| Failure(format!("watch -o json is not a JSON stream: {e}:\n{text}")))?;
    ensure!(
        events.len() == 2
            && events[0]["type"] == "ADDED"
            && events[1]["type"] == "MODIFIED"
            && events[1]["object"]["metadata"]["labels"]["step"] == "2"
            && events[1]["object"]["kind"] == "ConfigMap",
        "json watch events:\n{text}"
    );
    Ok(())
}

pub(crate) fn describe(c: &Ctx) -> CaseResult {
    let d = c.name("file-web");
    let out = c.ok(&["describe", "deployment", &d])?;
    let ns = c.ns();
    for (key, value) in [
        ("Name:", d.as_str()),
        ("Namespace:", ns.as_str()),
        ("Selector:", &format!("app={d}")),
        ("StrategyType:", "RollingUpdate"),
        ("RollingUpdateStrategy:", "25% max unavailable, 25% max surge"),
        ("Image:", "nginx:1.25"),
        ("Image:", "busybox:1.36"),
    ] {
        ensure!(
            out.lines().any(|l| l
                .trim_start()
                .strip_prefix(key)
                .is_some_and(|v| v.trim() == value)),
            "describe deployment lacks {key} {value}:\n{out}"
        );
    }
    // The counts after `desired` depend on whether controllers and nodes run.
    ensure!(
        out.lines().any(|l| l
            .trim_start()
            .strip_prefix("Replicas:")
            .is_some_and(|v| v.trim().starts_with("2 desired | "))),
        "describe deployment lacks Replicas: 2 desired | ...:\n{out}"
    );
    let out = c.ok(&["describe", "configmap", &c.name("file-cm")])?;
    contains_all(
        &out,
        &[
            "Labels:",
            "from=file",
            "suite=conformance",
            "Data\n====",
            "greeting:",
            "hello",
        ],
        "describe configmap",
    )?;
    let out = c.ok(&["describe", "service", &c.name("file-svc")])?;
    contains_all(
        &out,
        &[
            "Type:",
            "ClusterIP",
            "IP:",
            "Port:",
            "80/TCP",
            "TargetPort:",
            &format!("app={d}"),
        ],
        "describe service",
    )?;
    let out = c.ok(&["describe", "namespace", &ns])?;
    contains_all(&out, &[&ns, "Status:", "Active"], "describe namespace")?;
    let all = c.ok(&["describe", "configmaps", "-l", "from=file"])?;
    contains_all(&all, &[&c.name("file-cm")], "describe by label")
}

pub(crate) fn get_category_all(c: &Ctx) -> CaseResult {
    let out = c.ok(&["get", "all", "-o", "name"])?;
    for want in [
        format!("deployment.apps/{}", c.name("file-web")),
        format!("service/{}", c.name("file-svc")),
        format!("cronjob.batch/{}", c.name("gen-cj")),
        format!("job.batch/{}", c.name("gen-job")),
    ] {
        ensure!(out.lines().any(|l| l == want), "get all lacks {want}:\n{out}");
    }
    ensure!(
        !out.contains("configmap/"),
        "configmaps are not in the category all:\n{out}"
    );
    Ok(())
}

pub(crate) fn get_sort_and_label_columns(c: &Ctx) -> CaseResult {
    let out = c.ok(&["get", "configmaps", "-l", "suite", "-L", "from", "--show-labels"])?;
    table_has(
        &out,
        &["NAME", "DATA", "AGE", "FROM", "LABELS"],
        &[&c.name("file-cm"), "1"],
    )?;
    let row = table(&out)
        .into_iter()
        .find(|r| r[0] == c.name("file-cm"))
        .unwrap_or_default();
    ensure!(
        row.get(3..5)
            .is_some_and(|r| r == ["file", "from=file,suite=conformance"]),
        "label columns:\n{out}"
    );
    let out = c.ok(&["get", "configmaps", "--sort-by=.metadata.name", "-o", "name"])?;
    let names: Vec<&str> = out.lines().collect();
    let mut sorted = names.clone();
    sorted.sort();
    ensure!(
        names.len() > 3 && names == sorted,
        "--sort-by=.metadata.name:\n{out}"
    );
    let out = c.ok(&[
        "get",
        "services",
        "--sort-by=.spec.ports[0].port",
        "-o",
        "custom-columns=P:.spec.ports[0].port",
        "--no-headers",
    ])?;
    let ports: Vec<i64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let mut sorted = ports.clone();
    sorted.sort();
    ensure!(
        ports.len() > 3 && ports == sorted,
        "--sort-by on a number:\n{out}"
    );
    Ok(())
}

pub(crate) fn get_events_and_endpoints(c: &Ctx) -> CaseResult {
    let (ev, ep) = (c.name("event"), c.name("endpoints"));
    let manifest = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: {ev}\ninvolvedObject:\n  kind: Pod\n  name: p1\n  namespace: {ns}\n\
reason: Scheduled\nmessage: assigned p1 to node-a\ntype: Normal\nsource:\n  component: default-scheduler\ncount: 3\n\
firstTimestamp: \"2020-01-01T00:00:00Z\"\nlastTimestamp: \"2020-01-01T00:00:00Z\"\n---\n\
apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: {ep}\nsubsets:\n- addresses: [{{ip: 10.0.0.1}}, {{ip: 10.0.0.2}}]\n  ports: [{{port: 80}}]\n",
        ns = c.ns()
    );
    let file = c.file("events.yaml", &manifest)?;
    c.ok(&["create", "-f", &file])?;
    let out = c.ok(&["get", "events", "--field-selector", "reason=Scheduled"])?;
    // LAST SEEN is the age of lastTimestamp; the rest is fixed.
    let rows = table(&out);
    ensure!(
        rows.first()
            .is_some_and(|h| h == &["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"])
            && rows.get(1).is_some_and(|r| {
                r.len() == 8 && r[1..] == ["Normal", "Scheduled", "pod/p1", "assigned", "p1", "to", "node-a"]
            }),
        "events table:\n{out}"
    );
    let out = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Scheduled",
        "-o",
        "wide",
    ])?;
    let row = table(&out).get(1).cloned().unwrap_or_default();
    ensure!(
        row.ends_with(&["3".to_string(), ev]) && row.contains(&"default-scheduler".to_string()),
        "events -o wide:\n{out}"
    );
    let out = c.ok(&["get", "endpoints", &ep])?;
    table_has(
        &out,
        &["NAME", "ENDPOINTS", "AGE"],
        &[&ep, "10.0.0.1:80,10.0.0.2:80"],
    )
}
