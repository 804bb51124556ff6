//! `create -f` and every `kubectl create <generator>`, each read back field by field.

use base64::Engine;

use crate::ensure;
use crate::suite::{CaseResult, Ctx, Failure, contains_all, table_has};

pub(crate) fn namespace(c: &Ctx) -> CaseResult {
    let ns = c.ns();
    c.ok_eq(&["create", "namespace", &ns], &format!("namespace/{ns} created"))?;
    let out = c.ok(&["get", "namespace", &ns])?;
    table_has(&out, &["NAME", "STATUS", "AGE"], &[&ns, "Active"])?;
    let labels = c.jsonpath(
        &["namespace", &ns],
        "{.metadata.labels.kubernetes\\.io/metadata\\.name}",
    )?;
    ensure!(
        labels == ns,
        "the namespace lacks its kubernetes.io/metadata.name label: {labels:?}"
    );
    Ok(())
}

pub(crate) fn create_file(c: &Ctx) -> CaseResult {
    let (cm, deploy, svc) = (c.name("file-cm"), c.name("file-web"), c.name("file-svc"));
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {cm}\n  labels: {{suite: conformance, from: file}}\ndata:\n  greeting: hello\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {deploy}\n  labels: {{app: {deploy}}}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {deploy}}}\n  template:\n    metadata:\n      labels: {{app: {deploy}}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n        ports:\n        - containerPort: 80\n      - name: sidecar\n        image: busybox:1.36\n---\n\
apiVersion: v1\nkind: Service\nmetadata:\n  name: {svc}\nspec:\n  selector: {{app: {deploy}}}\n  ports:\n  - port: 80\n    targetPort: 80\n"
    );
    let file = c.file("create-file.yaml", &manifest)?;
    let out = c.ok(&["create", "-f", &file])?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines
            == [
                format!("configmap/{cm} created"),
                format!("deployment.apps/{deploy} created"),
                format!("service/{svc} created"),
            ],
        "create -f output:\n{out}"
    );
    let again = c.fails(&["create", "-f", &file])?;
    contains_all(
        &again.stderr,
        &["AlreadyExists", &format!("configmaps \"{cm}\" already exists")],
        "a second create -f",
    )?;
    // The server filled in defaults and identity.
    let d = c.json(&["deployment", &deploy])?;
    ensure!(
        d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36)
            && d["metadata"]["generation"] == 1
            && d["spec"]["strategy"]["type"] == "RollingUpdate"
            && d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
            && d["spec"]["template"]["spec"]["restartPolicy"] == "Always",
        "deployment defaults:\n{d:#}"
    );
    let ip = c.jsonpath(&["service", &svc], "{.spec.type} {.spec.clusterIP}")?;
    ensure!(
        ip.starts_with("ClusterIP ") && ip.split('.').count() == 4,
        "service type and cluster IP: {ip:?}"
    );
    Ok(())
}

/// `create <generator...>` must print `<resource>/<name> created`.
fn generate(c: &Ctx, args: &[&str], printed: &str) -> CaseResult {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    c.ok_eq(&all, &format!("{printed} created"))
}

pub(crate) fn clusterrole(c: &Ctx) -> CaseResult {
    let n = c.name("conf-reader");
    generate(
        c,
        &[
            "clusterrole",
            &n,
            "--verb=get,list,watch",
            "--resource=pods,deployments.apps",
            "--resource-name=x",
        ],
        &format!("clusterrole.rbac.authorization.k8s.io/{n}"),
    )?;
    let rules = c.jsonpath(
        &["clusterrole", &n],
        "{range .rules[*]}{.apiGroups}{.resources}{.verbs}{.resourceNames};{end}",
    )?;
    ensure!(
        rules
            == r#"[""]["pods"]["get","list","watch"]["x"];["apps"]["deployments"]["get","list","watch"]["x"];"#,
        "clusterrole rules: {rules}"
    );
    let out = c.ok(&["get", "clusterrole", &n])?;
    table_has(&out, &["NAME", "CREATED", "AT"], &[&n])
}

pub(crate) fn clusterrole_aggregation(c: &Ctx) -> CaseResult {
    let n = c.name("conf-aggregate");
    generate(
        c,
        &[
            "clusterrole",
            &n,
            &format!("--aggregation-rule=conf-aggregate-to={}", c.tag()),
        ],
        &format!("clusterrole.rbac.authorization.k8s.io/{n}"),
    )?;
    let sel = c.jsonpath(
        &["clusterrole", &n],
        "{.aggregationRule.clusterRoleSelectors[0].matchLabels}",
    )?;
    ensure!(
        sel == format!(r#"{{"conf-aggregate-to":"{}"}}"#, c.tag()),
        "aggregation rule: {sel}"
    );
    Ok(())
}

pub(crate) fn clusterrolebinding(c: &Ctx) -> CaseResult {
    let n = c.name("conf-reader");
    let sa = format!("{}:{}", c.ns(), c.name("robot"));
    generate(
        c,
        &[
            "clusterrolebinding",
            &n,
            &format!("--clusterrole={n}"),
            "--user=alice",
            "--group=devs",
            &format!("--serviceaccount={sa}"),
        ],
        &format!("clusterrolebinding.rbac.authorization.k8s.io/{n}"),
    )?;
    let got = c.jsonpath(
        &["clusterrolebinding", &n],
        "{.roleRef.kind}/{.roleRef.name} {range .subjects[*]}{.kind}:{.name};{end}",
    )?;
    ensure!(
        got == format!(
            "ClusterRole/{n} User:alice;Group:devs;ServiceAccount:{};",
            c.name("robot")
        ),
        "clusterrolebinding: {got}"
    );
    let out = c.ok(&["get", "clusterrolebinding", &n, "-o", "wide"])?;
    table_has(
        &out,
        &["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        &[&n, &format!("ClusterRole/{n}")],
    )
}

pub(crate) fn configmap(c: &Ctx) -> CaseResult {
    let n = c.name("gen-cm");
    let file = c.file("gen-cm.properties", "color=blue\n")?;
    generate(
        c,
        &[
            "configmap",
            &n,
            "--from-literal=a=1",
            "--from-literal=b=two",
            &format!("--from-file=props={file}"),
        ],
        &format!("configmap/{n}"),
    )?;
    let data = c.jsonpath(&["configmap", &n], "{.data}")?;
    ensure!(
        data == r#"{"a":"1","b":"two","props":"color=blue\n"}"#,
        "configmap data: {data}"
    );
    let out = c.ok(&["get", "configmap", &n])?;
    table_has(&out, &["NAME", "DATA", "AGE"], &[&n, "3"])
}

pub(crate) fn cronjob(c: &Ctx) -> CaseResult {
    let n = c.name("gen-cj");
    generate(
        c,
        &[
            "cronjob",
            &n,
            "--image=busybox:1.36",
            "--schedule=*/5 * * * *",
            "--restart=OnFailure",
            "--",
            "date",
        ],
        &format!("cronjob.batch/{n}"),
    )?;
    let got = c.jsonpath(
        &["cronjob", &n],
        "{.spec.schedule}|{.spec.jobTemplate.spec.template.spec.containers[0].image}|{.spec.jobTemplate.spec.template.spec.containers[0].command}|{.spec.concurrencyPolicy}|{.spec.suspend}",
    )?;
    ensure!(
        got == r#"*/5 * * * *|busybox:1.36|["date"]|Allow|false"#,
        "cronjob: {got}"
    );
    let out = c.ok(&["get", "cronjob", &n])?;
    table_has(
        &out,
        &[
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE",
        ],
        &[&n, "*/5", "*", "*", "*", "*", "<none>", "False", "0", "<none>"],
    )
}

pub(crate) fn deployment(c: &Ctx) -> CaseResult {
    let n = c.name("gen-deploy");
    generate(
        c,
        &[
            "deployment",
            &n,
            "--image=nginx:1.25",
            "--replicas=2",
            "--port=80",
        ],
        &format!("deployment.apps/{n}"),
    )?;
    let got = c.jsonpath(
        &["deployment", &n],
        "{.spec.replicas}|{.spec.selector.matchLabels.app}|{.spec.template.spec.containers[0].name}|{.spec.template.spec.containers[0].ports[0].containerPort}|{.spec.strategy.type}",
    )?;
    ensure!(
        got == "2|".to_string() + &n + "|nginx|80|RollingUpdate",
        "deployment: {got}"
    );
    let out = c.ok(&["get", "deployment", &n])?;
    table_has(
        &out,
        &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        &[&n, "*/2", "*", "*"],
    )
}

pub(crate) fn ingress(c: &Ctx) -> CaseResult {
    let n = c.name("gen-ing");
    let host = format!("{}.example.com", c.tag());
    generate(
        c,
        &[
            "ingress",
            &n,
            "--class=nginx",
            &format!("--rule={host}/api*=api-svc:8080"),
        ],
        &format!("ingress.networking.k8s.io/{n}"),
    )?;
    let got = c.jsonpath(
        &["ingress", &n],
        "{.spec.ingressClassName}|{.spec.rules[0].host}|{.spec.rules[0].http.paths[0].path}|{.spec.rules[0].http.paths[0].pathType}|{.spec.rules[0].http.paths[0].backend.service.name}:{.spec.rules[0].http.paths[0].backend.service.port.number}",
    )?;
    ensure!(
        got == format!("nginx|{host}|/api|Prefix|api-svc:8080"),
        "ingress: {got}"
    );
    let out = c.ok(&["get", "ingress", &n])?;
    table_has(
        &out,
        &["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        &[&n, "nginx", &host, "80"],
    )
}

pub(crate) fn job(c: &Ctx) -> CaseResult {
    let n = c.name("gen-job");
    generate(
        c,
        &["job", &n, "--image=busybox:1.36", "--", "echo", "hi"],
        &format!("job.batch/{n}"),
    )?;
    let got = c.jsonpath(
        &["job", &n],
        "{.spec.template.spec.restartPolicy}|{.spec.template.spec.containers[0].command}|{.spec.backoffLimit}|{.spec.completions}|{.spec.parallelism}",
    )?;
    ensure!(got == r#"Never|["echo","hi"]|6|1|1"#, "job: {got}");
    let labels = c.jsonpath(&["job", &n], "{.spec.selector.matchLabels}")?;
    ensure!(
        labels.contains("controller-uid"),
        "the job selector is not generated: {labels}"
    );
    let out = c.ok(&["get", "job", &n])?;
    let rows = crate::suite::table(&out);
    ensure!(
        rows.first()
            .is_some_and(|h| h.starts_with(&["NAME".to_string()]) && h.contains(&"COMPLETIONS".to_string())),
        "job table header:\n{out}"
    );
    ensure!(
        rows.iter()
            .any(|r| r.first() == Some(&n) && r.contains(&"0/1".to_string())),
        "job row:\n{out}"
    );
    Ok(())
}

pub(crate) fn job_from_cronjob(c: &Ctx) -> CaseResult {
    let (n, cj) = (c.name("gen-job-from"), c.name("gen-cj"));
    generate(
        c,
        &["job", &n, &format!("--from=cronjob/{cj}")],
        &format!("job.batch/{n}"),
    )?;
    let got = c.jsonpath(
        &["job", &n],
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}|{.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}|{.spec.template.spec.containers[0].image}",
    )?;
    ensure!(
        got == format!("CronJob/{cj}|manual|busybox:1.36"),
        "job from cronjob: {got}"
    );
    Ok(())
}

pub(crate) fn poddisruptionbudget(c: &Ctx) -> CaseResult {
    let n = c.name("gen-pdb");
    generate(
        c,
        &[
            "poddisruptionbudget",
            &n,
            "--selector=app=web",
            "--min-available=50%",
        ],
        &format!("poddisruptionbudget.policy/{n}"),
    )?;
    let got = c.jsonpath(
        &["pdb", &n],
        "{.spec.minAvailable}|{.spec.selector.matchLabels.app}",
    )?;
    ensure!(got == "50%|web", "pdb: {got}");
    let out = c.ok(&["get", "pdb", &n])?;
    table_has(
        &out,
        &[
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE",
        ],
        &[&n, "50%", "N/A"],
    )
}

pub(crate) fn priorityclass(c: &Ctx) -> CaseResult {
    let n = c.name("gen-pc");
    generate(
        c,
        &[
            "priorityclass",
            &n,
            "--value=1000",
            "--description=conformance",
            "--preemption-policy=Never",
        ],
        &format!("priorityclass.scheduling.k8s.io/{n}"),
    )?;
    let got = c.jsonpath(
        &["priorityclass", &n],
        "{.value}|{.description}|{.preemptionPolicy}|{.globalDefault}",
    )?;
    // globalDefault is false, which Go's omitempty leaves out.
    ensure!(got == "1000|conformance|Never|", "priorityclass: {got}");
    let out = c.ok(&["get", "priorityclass", &n])?;
    table_has(
        &out,
        &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE"],
        &[&n, "1000", "false"],
    )?;
    let out = c.ok(&["get", "priorityclass", &n, "-o", "wide"])?;
    table_has(
        &out,
        &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        &[&n, "1000", "false"],
    )?;
    let rows = crate::suite::table(&out);
    ensure!(
        rows.get(1).and_then(|r| r.last()).is_some_and(|p| p == "Never"),
        "preemption policy column:\n{out}"
    );
    Ok(())
}

pub(crate) fn quota(c: &Ctx) -> CaseResult {
    let n = c.name("gen-quota");
    generate(
        c,
        &[
            "quota",
            &n,
            "--hard=pods=10,requests.cpu=2",
            "--scopes=NotBestEffort",
        ],
        &format!("resourcequota/{n}"),
    )?;
    let got = c.jsonpath(
        &["quota", &n],
        "{.spec.hard.pods}|{.spec.hard.requests\\.cpu}|{.spec.scopes}",
    )?;
    ensure!(got == r#"10|2|["NotBestEffort"]"#, "quota: {got}");
    let out = c.ok(&["get", "quota", &n])?;
    let rows = crate::suite::table(&out);
    ensure!(
        rows.first()
            .is_some_and(|h| h == &["NAME", "AGE", "REQUEST", "LIMIT"]),
        "quota table header:\n{out}"
    );
    Ok(())
}

pub(crate) fn role(c: &Ctx) -> CaseResult {
    let n = c.name("gen-role");
    generate(
        c,
        &[
            "role",
            &n,
            "--verb=get",
            "--verb=list",
            "--resource=configmaps",
            "--resource=deployments.apps/scale",
        ],
        &format!("role.rbac.authorization.k8s.io/{n}"),
    )?;
    let got = c.jsonpath(
        &["role", &n],
        "{range .rules[*]}{.apiGroups}{.resources}{.verbs};{end}",
    )?;
    ensure!(
        got == r#"[""]["configmaps"]["get","list"];["apps"]["deployments/scale"]["get","list"];"#,
        "role rules: {got}"
    );
    let out = c.ok(&["get", "role", &n])?;
    table_has(&out, &["NAME", "CREATED", "AT"], &[&n])
}

pub(crate) fn rolebinding(c: &Ctx) -> CaseResult {
    let (n, role) = (c.name("gen-rb"), c.name("gen-role"));
    generate(
        c,
        &[
            "rolebinding",
            &n,
            &format!("--role={role}"),
            "--user=bob",
            &format!("--serviceaccount={}:{}", c.ns(), c.name("robot")),
        ],
        &format!("rolebinding.rbac.authorization.k8s.io/{n}"),
    )?;
    let got = c.jsonpath(
        &["rolebinding", &n],
        "{.roleRef.kind}/{.roleRef.name}|{.subjects[0].kind}:{.subjects[0].name}|{.subjects[1].namespace}",
    )?;
    ensure!(
        got == format!("Role/{role}|User:bob|{}", c.ns()),
        "rolebinding: {got}"
    );
    let out = c.ok(&["get", "rolebinding", &n, "-o", "wide"])?;
    table_has(
        &out,
        &["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        &[&n, &format!("Role/{role}")],
    )
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub(crate) fn secret_generic(c: &Ctx) -> CaseResult {
    let n = c.name("gen-secret");
    generate(
        c,
        &[
            "secret",
            "generic",
            &n,
            "--from-literal=user=admin",
            "--from-literal=password=s3cr3t",
            "--type=Opaque",
        ],
        &format!("secret/{n}"),
    )?;
    let got = c.jsonpath(&["secret", &n], "{.type}|{.data.user}|{.data.password}")?;
    ensure!(
        got == format!("Opaque|{}|{}", b64("admin"), b64("s3cr3t")),
        "secret: {got}"
    );
    let out = c.ok(&["get", "secret", &n])?;
    table_has(&out, &["NAME", "TYPE", "DATA", "AGE"], &[&n, "Opaque", "2"])
}

pub(crate) fn secret_docker_registry(c: &Ctx) -> CaseResult {
    let n = c.name("gen-regcred");
    generate(
        c,
        &[
            "secret",
            "docker-registry",
            &n,
            "--docker-server=registry.example.com",
            "--docker-username=u",
            "--docker-password=p",
            "--docker-email=u@example.com",
        ],
        &format!("secret/{n}"),
    )?;
    let got = c.jsonpath(&["secret", &n], "{.type}|{.data.\\.dockerconfigjson}")?;
    let (ty, data) = got.split_once('|').unwrap_or_default();
    ensure!(ty == "kubernetes.io/dockerconfigjson", "secret type: {got}");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| Failure(format!("dockerconfigjson is not base64: {e}: {data}")))?;
    let v: serde_json::Value = serde_json::from_slice(&decoded)
        .map_err(|e| Failure(format!("dockerconfigjson is not JSON: {e}")))?;
    let entry = &v["auths"]["registry.example.com"];
    ensure!(
        entry["username"] == "u" && entry["password"] == "p" && entry["auth"] == b64("u:p"),
        "dockerconfigjson: {v}"
    );
    Ok(())
}

pub(crate) fn secret_tls(c: &Ctx) -> CaseResult {
    let n = c.name("gen-tls");
    let key = rcgen::KeyPair::generate().map_err(|e| Failure(format!("key: {e}")))?;
    let cert = rcgen::CertificateParams::new(vec![format!("{}.example.com", c.tag())])
        .and_then(|p| p.self_signed(&key))
        .map_err(|e| Failure(format!("certificate: {e}")))?;
    let cert_pem = cert.pem();
    let cert_file = c.file("tls.crt", &cert_pem)?;
    let key_file = c.file("tls.key", &key.serialize_pem())?;
    generate(
        c,
        &[
            "secret",
            "tls",
            &n,
            &format!("--cert={cert_file}"),
            &format!("--key={key_file}"),
        ],
        &format!("secret/{n}"),
    )?;
    let got = c.jsonpath(&["secret", &n], "{.type}|{.data.tls\\.crt}")?;
    ensure!(
        got == format!("kubernetes.io/tls|{}", b64(&cert_pem)),
        "tls secret: {got}"
    );
    let out = c.ok(&["get", "secret", &n])?;
    table_has(
        &out,
        &["NAME", "TYPE", "DATA", "AGE"],
        &[&n, "kubernetes.io/tls", "2"],
    )
}

fn service_row(c: &Ctx, n: &str, ty: &str, external: &str, ports_pattern: &str) -> CaseResult {
    let out = c.ok(&["get", "service", n, "-o", "wide"])?;
    let rows = crate::suite::table(&out);
    ensure!(
        rows.first().is_some_and(|h| h
            == &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR"
            ]),
        "service table header:\n{out}"
    );
    let row = rows.get(1).cloned().unwrap_or_default();
    ensure!(
        row.len() == 7 && row[0] == n && row[1] == ty && row[3] == external,
        "service row:\n{out}"
    );
    ensure!(
        regex_like(&row[4], ports_pattern),
        "service ports {:?} do not look like {ports_pattern}:\n{out}",
        row[4]
    );
    ensure!(row[6] == format!("app={n}"), "service selector:\n{out}");
    Ok(())
}

/// A tiny matcher: `#` matches one or more digits, everything else itself.
fn regex_like(text: &str, pattern: &str) -> bool {
    let (mut t, mut p) = (text.as_bytes(), pattern.as_bytes());
    while let Some((&pc, prest)) = p.split_first() {
        if pc == b'#' {
            let digits = t.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            t = &t[digits..];
        } else {
            match t.split_first() {
                Some((&tc, trest)) if tc == pc => t = trest,
                _ => return false,
            }
        }
        p = prest;
    }
    t.is_empty()
}

pub(crate) fn service_clusterip(c: &Ctx) -> CaseResult {
    let n = c.name("gen-svc-cip");
    generate(
        c,
        &["service", "clusterip", &n, "--tcp=80:8080", "--tcp=443:8443"],
        &format!("service/{n}"),
    )?;
    let got = c.jsonpath(
        &["service", &n],
        "{.spec.ports[0].targetPort}|{.spec.ports[1].name}|{.spec.clusterIP}",
    )?;
    ensure!(got.starts_with("8080|443-8443|10."), "clusterip service: {got}");
    service_row(c, &n, "ClusterIP", "<none>", "80/TCP,443/TCP")?;
    let headless = c.name("gen-svc-headless");
    generate(
        c,
        &["service", "clusterip", &headless, "--clusterip=None"],
        &format!("service/{headless}"),
    )?;
    let ip = c.jsonpath(&["service", &headless], "{.spec.clusterIP}")?;
    ensure!(ip == "None", "headless service cluster IP: {ip}");
    Ok(())
}

pub(crate) fn service_externalname(c: &Ctx) -> CaseResult {
    let n = c.name("gen-svc-ext");
    generate(
        c,
        &["service", "externalname", &n, "--external-name=db.example.com"],
        &format!("service/{n}"),
    )?;
    let got = c.jsonpath(
        &["service", &n],
        "{.spec.type}|{.spec.externalName}|{.spec.clusterIP}",
    )?;
    ensure!(
        got == "ExternalName|db.example.com|",
        "externalname service: {got}"
    );
    service_row(c, &n, "ExternalName", "db.example.com", "<none>")
}

pub(crate) fn service_loadbalancer(c: &Ctx) -> CaseResult {
    let n = c.name("gen-svc-lb");
    generate(
        c,
        &["service", "loadbalancer", &n, "--tcp=80:8080"],
        &format!("service/{n}"),
    )?;
    let port = c.jsonpath(&["service", &n], "{.spec.ports[0].nodePort}")?;
    let port: u32 = port
        .parse()
        .map_err(|_| Failure(format!("no node port: {port:?}")))?;
    ensure!(
        (30000..=32767).contains(&port),
        "node port {port} outside the default range"
    );
    service_row(c, &n, "LoadBalancer", "<pending>", "80:#/TCP")
}

pub(crate) fn service_nodeport(c: &Ctx) -> CaseResult {
    let n = c.name("gen-svc-np");
    generate(
        c,
        &["service", "nodeport", &n, "--tcp=80:8080", "--node-port=30080"],
        &format!("service/{n}"),
    )
    .or_else(|_| {
        generate(
            c,
            &["service", "nodeport", &n, "--tcp=80:8080"],
            &format!("service/{n}"),
        )
    })?;
    service_row(c, &n, "NodePort", "<none>", "80:#/TCP")?;
    // A taken node port is refused with the upstream message.
    let port = c.jsonpath(&["service", &n], "{.spec.ports[0].nodePort}")?;
    let dup = c.name("gen-svc-np2");
    let out = c.fails(&[
        "create",
        "service",
        "nodeport",
        &dup,
        "--tcp=81:8080",
        &format!("--node-port={port}"),
    ])?;
    contains_all(
        &out.stderr,
        &["Invalid", "provided port is already allocated"],
        "a duplicate node port",
    )
}

pub(crate) fn serviceaccount(c: &Ctx) -> CaseResult {
    let n = c.name("robot");
    generate(c, &["serviceaccount", &n], &format!("serviceaccount/{n}"))?;
    let out = c.ok(&["get", "serviceaccount", &n])?;
    table_has(&out, &["NAME", "SECRETS", "AGE"], &[&n, "0"])
}

pub(crate) fn token(c: &Ctx) -> CaseResult {
    let n = c.name("robot");
    let out = c.ok(&["create", "token", &n, "--duration=10m", "--audience=conformance"])?;
    let jwt = out.trim();
    let parts: Vec<&str> = jwt.split('.').collect();
    ensure!(parts.len() == 3, "not a JWT: {jwt}");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .map_err(|e| Failure(format!("JWT payload is not base64url: {e}")))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&claims).map_err(|e| Failure(format!("JWT payload is not JSON: {e}")))?;
    ensure!(
        claims["sub"] == format!("system:serviceaccount:{}:{n}", c.ns()),
        "token subject: {claims}"
    );
    let aud = &claims["aud"];
    ensure!(
        aud == "conformance" || *aud == serde_json::json!(["conformance"]),
        "token audience: {claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    ensure!(exp - iat == 600, "token lifetime is not 10m: {claims}");
    Ok(())
}
