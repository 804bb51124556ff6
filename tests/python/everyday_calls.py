"""Everyday calls of the official Kubernetes Python client against a Keelson API server.

Usage: python everyday_calls.py KUBECONFIG

Runs version and discovery calls, CRUD of a ConfigMap and a Deployment, a watch, an
informer-style list then watch from the list's resourceVersion, `utils.create_from_yaml` and the
dynamic client (built-in types and a CRD's custom resources). Prints one line per step; any
difference from what the client expects raises, so the process exits non-zero with a traceback.
"""

import os
import sys
import tempfile
import threading
import time

from kubernetes import client, config, dynamic, utils, watch
from kubernetes.client.rest import ApiException

NS = "py-client"


def step(name):
    print(f"== {name}", flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_for(what, check, timeout=30.0):
    """Polls `check` until it returns a truthy value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def version_and_discovery(api):
    step("version (/version/)")
    info = client.VersionApi(api).get_code()
    expect(info.major == "1" and info.git_version.startswith("v1."), info)

    step("discovery: /api/ and /api/v1/")
    core = client.CoreApi(api).get_api_versions()
    expect(core.versions == ["v1"], core)
    resources = client.CoreV1Api(api).get_api_resources()
    names = {r.name for r in resources.resources}
    expect({"pods", "configmaps", "pods/status", "namespaces"} <= names, names)

    step("discovery: /apis/, /apis/apps/ and /apis/apps/v1/")
    groups = client.ApisApi(api).get_api_versions()
    group_names = {g.name for g in groups.groups}
    expect({"apps", "batch", "apiextensions.k8s.io"} <= group_names, group_names)
    apps = client.AppsApi(api).get_api_group()
    expect(apps.preferred_version.group_version == "apps/v1", apps)
    apps_v1 = client.AppsV1Api(api).get_api_resources()
    expect(any(r.name == "deployments/scale" for r in apps_v1.resources), apps_v1)
    crds = client.ApiextensionsV1Api(api).get_api_resources()
    expect(any(r.name == "customresourcedefinitions" for r in crds.resources), crds)


def configmap_crud(core):
    step("ConfigMap create/read/list/patch/replace/delete")
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}),
        data={"mode": "fast"},
    )
    created = core.create_namespaced_config_map(NS, body)
    expect(created.metadata.uid and created.metadata.resource_version, created.metadata)
    got = core.read_namespaced_config_map("settings", NS)
    expect(got.data == {"mode": "fast"}, got.data)
    listed = core.list_namespaced_config_map(NS, label_selector="app=py")
    expect([c.metadata.name for c in listed.items] == ["settings"], listed.items)
    patched = core.patch_namespaced_config_map("settings", NS, {"data": {"extra": "1"}})
    expect(patched.data == {"mode": "fast", "extra": "1"}, patched.data)
    patched.data["mode"] = "slow"
    replaced = core.replace_namespaced_config_map("settings", NS, patched)
    expect(replaced.data["mode"] == "slow", replaced.data)
    # A stale resourceVersion is a 409 Conflict.
    try:
        core.replace_namespaced_config_map("settings", NS, patched)
        raise AssertionError("stale replace succeeded")
    except ApiException as e:
        expect(e.status == 409, e)
    try:
        core.create_namespaced_config_map(NS, body)
        raise AssertionError("duplicate create succeeded")
    except ApiException as e:
        expect(e.status == 409 and "already exists" in e.body, e)
    # The client returns a delete's answer as a plain dict (a Status for ConfigMaps).
    status = core.delete_namespaced_config_map("settings", NS)
    expect(status["kind"] == "Status" and status["details"]["name"] == "settings", status)
    try:
        core.read_namespaced_config_map("settings", NS)
        raise AssertionError("deleted ConfigMap still readable")
    except ApiException as e:
        expect(e.status == 404, e)


def deployment_crud(apps):
    step("Deployment create/read/scale/status/patch/delete")
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="main", image="nginx:1.27")]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(NS, body)
    expect(created.spec.strategy.type == "RollingUpdate", created.spec.strategy)
    expect(created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent", created)
    scale = apps.read_namespaced_deployment_scale("web", NS)
    expect(scale.spec.replicas == 1, scale)
    scaled = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    expect(scaled.spec.replicas == 3, scaled)
    expect(apps.read_namespaced_deployment("web", NS).spec.replicas == 3, "scale not applied")
    status = apps.read_namespaced_deployment_status("web", NS)
    expect(status.metadata.name == "web", status)
    patched = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28"}]}}}}
    )
    expect(patched.spec.template.spec.containers[0].image == "nginx:1.28", patched)
    listed = apps.list_deployment_for_all_namespaces(field_selector=f"metadata.namespace={NS}")
    expect([d.metadata.name for d in listed.items] == ["web"], listed.items)
    apps.delete_namespaced_deployment("web", NS, propagation_policy="Background")


def watch_events(core):
    step("watch: ADDED, MODIFIED, DELETED")
    w = watch.Watch()
    seen = []

    def changes():
        wait_for("the watch to start", lambda: started.is_set())
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"n": "1"})
        )
        core.patch_namespaced_config_map("watched", NS, {"data": {"n": "2"}})
        core.delete_namespaced_config_map("watched", NS)

    started = threading.Event()
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    worker = threading.Thread(target=changes)
    worker.start()
    stream = w.stream(
        core.list_namespaced_config_map,
        NS,
        resource_version=rv,
        field_selector="metadata.name=watched",
        timeout_seconds=30,
    )
    started.set()
    for event in stream:
        seen.append((event["type"], event["object"].data))
        if event["type"] == "DELETED":
            w.stop()
    worker.join()
    expect(
        [t for t, _ in seen] == ["ADDED", "MODIFIED", "DELETED"] and seen[1][1] == {"n": "2"},
        seen,
    )


def informer_list_watch(core):
    step("informer-style list, then watch from the list's resourceVersion with bookmarks")
    for i in range(3):
        core.create_namespaced_config_map(
            NS,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"inf-{i}", labels={"inf": "yes"}), data={"i": str(i)}
            ),
        )
    listed = core.list_namespaced_config_map(NS, label_selector="inf=yes", limit=2)
    names = [c.metadata.name for c in listed.items]
    expect(len(names) == 2 and listed.metadata._continue, listed.metadata)
    rest = core.list_namespaced_config_map(NS, label_selector="inf=yes", limit=2, _continue=listed.metadata._continue)
    names += [c.metadata.name for c in rest.items]
    expect(names == ["inf-0", "inf-1", "inf-2"], names)
    rv = listed.metadata.resource_version
    # The objects created before the list are not replayed; the change after it is.
    core.patch_namespaced_config_map("inf-1", NS, {"data": {"i": "changed"}})
    w = watch.Watch()
    events = []
    for event in w.stream(
        core.list_namespaced_config_map,
        NS,
        label_selector="inf=yes",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=20,
    ):
        events.append(event)
        if event["type"] == "MODIFIED":
            w.stop()
    modified = [e for e in events if e["type"] == "MODIFIED"]
    expect(
        [e["type"] for e in events if e["type"] != "BOOKMARK"] == ["MODIFIED"]
        and modified[0]["object"].metadata.name == "inf-1"
        and modified[0]["object"].data == {"i": "changed"},
        events,
    )
    # The client keeps the last resourceVersion it saw, as an informer resumes from it.
    expect(w.resource_version == modified[0]["object"].metadata.resource_version, w.resource_version)
    # Resuming from that resourceVersion sees only what happens later.
    core.delete_namespaced_config_map("inf-2", NS)
    w2 = watch.Watch()
    later = []
    for event in w2.stream(
        core.list_namespaced_config_map,
        NS,
        label_selector="inf=yes",
        resource_version=w.resource_version,
        timeout_seconds=20,
    ):
        later.append((event["type"], event["object"].metadata.name))
        w2.stop()
    expect(later == [("DELETED", "inf-2")], later)
    core.delete_collection_namespaced_config_map(NS, label_selector="inf=yes")
    expect(not core.list_namespaced_config_map(NS, label_selector="inf=yes").items, "collection deleted")


def pods(core):
    step("Pod create, field selectors, status, delete")
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="worker"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox:1.36")]),
    )
    created = core.create_namespaced_pod(NS, pod)
    expect(created.status.phase == "Pending" and created.spec.restart_policy == "Always", created.status)
    # Fields the pod does not set select as their zero values.
    for selector in ["spec.nodeName=", "spec.hostNetwork=false", "status.phase=Pending", "status.podIP="]:
        names = [p.metadata.name for p in core.list_namespaced_pod(NS, field_selector=selector).items]
        expect(names == ["worker"], (selector, names))
    expect(not core.list_namespaced_pod(NS, field_selector="spec.hostNetwork=true").items, "hostNetwork")
    core.delete_namespaced_pod("worker", NS, grace_period_seconds=0)


MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: from-yaml
  namespace: py-client
data:
  k: v
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: yaml-web
  namespace: py-client
spec:
  replicas: 2
  selector:
    matchLabels: {app: yaml-web}
  template:
    metadata:
      labels: {app: yaml-web}
    spec:
      containers:
      - name: main
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: yaml-web
  namespace: py-client
spec:
  selector: {app: yaml-web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: yaml-reader
  namespace: py-client
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list"]
"""


def create_from_yaml(api, core, apps, tmp):
    step("utils.create_from_yaml (ConfigMap, Deployment, Service, Role)")
    path = os.path.join(tmp, "manifests.yaml")
    with open(path, "w") as f:
        f.write(MANIFESTS)
    created = utils.create_from_yaml(api, path)
    kinds = [o.kind for group in created for o in group]
    expect(kinds == ["ConfigMap", "Deployment", "Service", "Role"], kinds)
    expect(core.read_namespaced_config_map("from-yaml", NS).data == {"k": "v"}, "configmap")
    expect(apps.read_namespaced_deployment("yaml-web", NS).spec.replicas == 2, "deployment")
    svc = core.read_namespaced_service("yaml-web", NS)
    expect(svc.spec.cluster_ip and svc.spec.type == "ClusterIP", svc.spec)
    # Creating the same objects again fails with the API's conflicts, one per object.
    try:
        utils.create_from_yaml(api, path)
        raise AssertionError("second create_from_yaml succeeded")
    except utils.FailToCreateError as e:
        expect(len(e.api_exceptions) == 4 and all(x.status == 409 for x in e.api_exceptions), e)


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.pyclient.example.com"},
    "spec": {
        "group": "pyclient.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}, "color": {"type": "string"}},
                            },
                            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                        },
                    }
                },
            }
        ],
    },
}


def dynamic_client(api, tmp):
    step("dynamic client: built-in ConfigMaps")
    cache = os.path.join(tmp, "discovery-cache.json")
    dyn = dynamic.DynamicClient(api, cache_file=cache)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(
        namespace=NS,
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"}, "data": {"a": "1"}},
    )
    got = cms.get(name="dyn", namespace=NS)
    expect(got.data.a == "1", got)
    cms.patch(
        name="dyn",
        namespace=NS,
        body={"data": {"b": "2"}},
        content_type="application/merge-patch+json",
    )
    expect(dict(cms.get(name="dyn", namespace=NS).data) == {"a": "1", "b": "2"}, "patched")
    names = [i.metadata.name for i in cms.get(namespace=NS).items]
    expect("dyn" in names, names)
    cms.delete(name="dyn", namespace=NS)
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    expect(deploys.namespaced and "scale" in deploys.subresources, deploys)

    step("dynamic client: a CRD and its custom resources")
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body=WIDGET_CRD)

    def established():
        crd = crds.get(name=WIDGET_CRD["metadata"]["name"])
        conds = (crd.status or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for("the CRD to be established", established)
    # A new client discovers the new group (the cache file was written before it existed).
    dyn = dynamic.DynamicClient(api, cache_file=os.path.join(tmp, "discovery-cache-2.json"))
    widgets = dyn.resources.get(api_version="pyclient.example.com/v1", kind="Widget")
    expect(widgets.namespaced and widgets.short_names == ["wg"], widgets)
    body = {
        "apiVersion": "pyclient.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "labels": {"tier": "gold"}},
        "spec": {"size": 3, "color": "red"},
    }
    created = widgets.create(namespace=NS, body=body)
    expect(created.spec.size == 3 and created.metadata.uid, created)
    listed = widgets.get(namespace=NS, label_selector="tier=gold")
    expect([i.metadata.name for i in listed.items] == ["w1"], listed)
    widgets.patch(
        name="w1", namespace=NS, body={"spec": {"size": 5}}, content_type="application/merge-patch+json"
    )
    expect(widgets.get(name="w1", namespace=NS).spec.size == 5, "patched widget")
    status = widgets.status.patch(
        name="w1", namespace=NS, body={"status": {"ready": True}}, content_type="application/merge-patch+json"
    )
    expect(status.status.ready is True and status.spec.size == 5, status)
    current = widgets.get(name="w1", namespace=NS)
    current.spec.color = "blue"
    replaced = widgets.replace(namespace=NS, body=current.to_dict())
    expect(replaced.spec.color == "blue", replaced)
    step("CustomObjectsApi on the same custom resources")
    custom = client.CustomObjectsApi(api)
    got = custom.get_namespaced_custom_object("pyclient.example.com", "v1", NS, "widgets", "w1")
    expect(got["spec"] == {"size": 5, "color": "blue"} and got["status"] == {"ready": True}, got)
    custom.create_namespaced_custom_object(
        "pyclient.example.com",
        "v1",
        NS,
        "widgets",
        {"apiVersion": "pyclient.example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 1}},
    )
    listed = custom.list_namespaced_custom_object("pyclient.example.com", "v1", NS, "widgets")
    expect([i["metadata"]["name"] for i in listed["items"]] == ["w1", "w2"], listed)
    every = custom.list_cluster_custom_object("pyclient.example.com", "v1", "widgets")
    expect(len(every["items"]) == 2, every)
    custom.patch_namespaced_custom_object("pyclient.example.com", "v1", NS, "widgets", "w2", {"spec": {"size": 2}})
    expect(custom.get_namespaced_custom_object("pyclient.example.com", "v1", NS, "widgets", "w2")["spec"]["size"] == 2, "w2")
    custom.delete_namespaced_custom_object("pyclient.example.com", "v1", NS, "widgets", "w2")

    seen = []
    for event in widgets.watch(namespace=NS, resource_version=0, timeout=10):
        seen.append((event["type"], event["object"].metadata.name))
        break
    expect(seen == [("ADDED", "w1")], seen)
    widgets.delete(name="w1", namespace=NS)
    wait_for("the widget to go", lambda: not widgets.get(namespace=NS).items)
    crds.delete(name=WIDGET_CRD["metadata"]["name"])


def main():
    kubeconfig = sys.argv[1]
    config.load_kube_config(config_file=kubeconfig)
    api = client.ApiClient()
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    version_and_discovery(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    configmap_crud(core)
    deployment_crud(apps)
    watch_events(core)
    informer_list_watch(core)
    pods(core)
    with tempfile.TemporaryDirectory() as tmp:
        create_from_yaml(api, core, apps, tmp)
        dynamic_client(api, tmp)
    core.delete_namespace(NS)
    print("all python client calls passed", flush=True)


if __name__ == "__main__":
    main()
