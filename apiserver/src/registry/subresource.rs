//! Subresources beyond status: `scale`, `pods/binding`, `pods/eviction`; and the create-only
//! virtual resources (reviews, bindings).

use serde_json::{Value, json};

use super::{Registry, Reply, WriteOptions, meta_str};
use crate::descriptor::{ResourceDescriptor, VirtualKind};
use crate::error::{ApiError, ApiResult};
use crate::objstore::{UpdateAction, Written};
use crate::patch::{self, PatchType};

/// Who is making a request (set by authentication).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (client certificate CN).
    pub name: String,
    /// Groups (client certificate O).
    pub groups: Vec<String>,
    /// A unique id of the user, when the authenticator knows one (ServiceAccount uid).
    pub uid: String,
    /// Extra attributes (`authentication.kubernetes.io/pod-name`, ...).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The `authentication.k8s.io/v1 UserInfo` object (`username`, `groups`, and `uid`, `extra`
    /// when set), as reviews and audit events carry it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// A label selector object as the string form `Scale.status.selector` uses (upstream's
/// `LabelSelectorAsSelector(..).String()`; "" when it does not convert).
fn selector_string(sel: &Value) -> String {
    api_util::labels::LabelSelector::from_json(sel)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The `autoscaling/v1 Scale` view of an object with `spec.replicas`.
pub fn scale_view(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut scale_meta = json!({});
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = meta.get(f) {
            scale_meta[f] = v.clone();
        }
    }
    let selector = obj
        .pointer("/spec/selector")
        .map(|s| {
            if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                selector_string(s)
            } else if let Some(m) = s.as_object() {
                // ReplicationController: a plain map.
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                String::new()
            }
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// The Scale view of an object of a row: custom paths (CRDs) or the built-in ones.
fn scale_of(desc: &ResourceDescriptor, obj: &Value) -> Value {
    let Some(paths) = desc.hooks.as_ref().and_then(|h| h.scale_paths()) else {
        return scale_view(obj);
    };
    let at = |path: &str| obj.pointer(&format!("/{}", path.replace('.', "/")));
    let mut view = scale_view(obj);
    view["spec"]["replicas"] = json!(at(&paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0));
    view["status"]["replicas"] = json!(at(&paths.status_replicas).and_then(Value::as_i64).unwrap_or(0));
    view["status"]["selector"] = json!(
        paths
            .label_selector
            .as_deref()
            .and_then(at)
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    view
}

/// Sets a dotted path of an object, creating objects on the way.
fn set_path(obj: &mut Value, path: &str, value: Value) {
    let mut cur = obj;
    for part in path.split('.') {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Value::Object(map) = cur else { return };
        cur = map.entry(part.to_string()).or_insert(Value::Null);
    }
    *cur = value;
}

impl Registry {
    /// GET `<resource>/<name>/scale`.
    pub async fn get_scale(&self, desc: &ResourceDescriptor, ns: &str, name: &str) -> ApiResult<Value> {
        let obj = self.get(desc, ns, name).await?;
        Ok(scale_of(desc, &obj))
    }

    /// PUT or PATCH of `<resource>/<name>/scale`: `change` turns the current Scale into the new
    /// one; its `spec.replicas` is written to the parent (with its resourceVersion as a
    /// precondition when set).
    pub async fn update_scale(
        &self,
        desc: &ResourceDescriptor,
        ns: &str,
        name: &str,
        change: ScaleChange<'_>,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let gr = desc.group_resource();
        let w = self
            .write(&desc.key(ns, name), opts.dry_run, |cur| {
                let cur = cur.ok_or_else(|| ApiError::not_found(&gr, name))?;
                let view = scale_of(desc, cur);
                let new_scale = match &change {
                    ScaleChange::Replace(s) => (*s).clone(),
                    ScaleChange::Patch(kind, p) => patch::apply(*kind, &view, p)?,
                };
                let rv = new_scale
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !rv.is_empty() && rv != meta_str(cur, "resourceVersion") {
                    return Err(ApiError::optimistic_lock(&gr, name));
                }
                // Go clients omit `replicas: 0` (a non-pointer field with omitempty).
                let replicas = match new_scale.pointer("/spec/replicas") {
                    None | Some(Value::Null) => 0,
                    Some(v) => v
                        .as_i64()
                        .ok_or_else(|| ApiError::bad_request("Scale.spec.replicas must be an integer"))?,
                };
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        "Scale.autoscaling",
                        "autoscaling",
                        name,
                        &[crate::error::FieldError::invalid(
                            "spec.replicas",
                            &json!(replicas),
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut new = cur.clone();
                let spec_path = desc
                    .hooks
                    .as_ref()
                    .and_then(|h| h.scale_paths())
                    .map_or_else(|| "spec.replicas".to_string(), |p| p.spec_replicas);
                set_path(&mut new, &spec_path, json!(replicas));
                if new == *cur {
                    return Ok(UpdateAction::Unchanged);
                }
                let generation = cur
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                new["metadata"]["generation"] = json!(generation + 1);
                crate::apply::track(
                    desc,
                    Some(cur),
                    &mut new,
                    &opts.writer(None),
                    Some(crate::descriptor::SubresourceKind::Scale),
                )?;
                Ok(UpdateAction::Put(new))
            })
            .await?;
        let obj = match w {
            Written::Put(v) | Written::Unchanged(v) | Written::Deleted(v) => v,
        };
        Ok(scale_of(desc, &obj))
    }

    /// POST `pods/<name>/binding` (or the `bindings` collection): sets `spec.nodeName`.
    pub async fn bind(&self, ns: &str, pod_name: &str, body: &Value, dry_run: bool) -> ApiResult<Reply> {
        let pods = self
            .table
            .lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    "Binding",
                    "",
                    pod_name,
                    &[crate::error::FieldError::required("target.name", "")],
                )
            })?
            .to_string();
        let gr = pods.group_resource();
        self.write(&pods.key(ns, pod_name), dry_run, |cur| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&gr, pod_name))?;
            if !meta_str(cur, "deletionTimestamp").is_empty() {
                return Err(ApiError::conflict(
                    &gr,
                    pod_name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            let existing = cur
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !existing.is_empty() {
                return Err(ApiError::conflict(
                    &gr,
                    pod_name,
                    &format!("pod {pod_name} is already assigned to node \"{existing}\""),
                ));
            }
            let mut new = cur.clone();
            new["spec"]["nodeName"] = Value::String(node.clone());
            // As upstream's binding: the binding's annotations join the pod's, and the pod is
            // marked scheduled.
            if let Some(annotations) = body.pointer("/metadata/annotations").and_then(Value::as_object) {
                for (k, v) in annotations {
                    new["metadata"]["annotations"][k] = v.clone();
                }
            }
            set_scheduled(&mut new);
            Ok(UpdateAction::Put(new))
        })
        .await?;
        Ok(Reply {
            code: 201,
            body: success_status(201),
            warnings: Vec::new(),
        })
    }

    /// Create on a virtual resource (a pod binding; reviews are answered by
    /// [`crate::auth::review`]). The body is type-checked like every write.
    pub async fn create_virtual(
        &self,
        desc: &ResourceDescriptor,
        kind: VirtualKind,
        ns: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Reply> {
        super::check_kind(desc, &mut body)?;
        let (body, warnings) = crate::typecheck::check_settled(desc, body, opts.field_validation)?;
        if kind != VirtualKind::Binding {
            // Reviews are answered by `crate::auth::review`.
            return Err(ApiError::internal(format!(
                "{kind:?} is not handled by the registry"
            )));
        }
        let pod = meta_str(&body, "name").to_string();
        let mut reply = self.bind(ns, &pod, &body, opts.dry_run).await?;
        reply.warnings.extend(warnings);
        Ok(reply)
    }
}

/// How a scale write changes the Scale.
#[derive(Debug)]
pub enum ScaleChange<'a> {
    /// PUT of a whole Scale.
    Replace(&'a Value),
    /// PATCH of the Scale.
    Patch(PatchType, &'a Value),
}

/// Sets the pod's `PodScheduled` condition to True (replacing a False one).
fn set_scheduled(pod: &mut Value) {
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": super::now_rfc3339()});
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let conditions = &mut pod["status"]["conditions"];
    match conditions.as_array_mut() {
        Some(list) => match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
            Some(c) if c["status"] == "True" => {}
            Some(c) => *c = scheduled,
            None => list.push(scheduled),
        },
        None => *conditions = json!([scheduled]),
    }
}

/// `Status{status: Success}` with a code.
pub fn success_status(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_views() {
        let d = json!({"metadata": {"name": "web", "namespace": "d", "resourceVersion": "5", "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 2}});
        let s = scale_view(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web,tier in (a,b)");
        assert_eq!(s["metadata"]["resourceVersion"], "5");
        assert!(s["metadata"].get("labels").is_none());
        let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 1, "selector": {"app": "x"}}});
        assert_eq!(scale_view(&rc)["status"]["selector"], "app=x");
    }
}
