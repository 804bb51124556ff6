//! The CRD controller inside the API server: it watches CRD objects in storage and, for each
//! change, checks names for conflicts, installs (or replaces, or removes) the CRD's rows in the
//! resource table, writes `NamesAccepted` / `Established` conditions and `storedVersions`, and
//! runs the cleanup finalizer of deleted CRDs (deletes their objects, then releases the CRD).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use storage::{WatchItem, WatchRequest, prefix_end};
use tokio_util::sync::CancellationToken;

use super::validation::set_condition;
use super::{CLEANUP_FINALIZER, CrdState, GROUP, RESOURCE, condition, rows};
use crate::ApiServer;
use crate::descriptor::{ResourceDescriptor, SubresourceKind};
use crate::error::ApiResult;
use crate::registry::{DeleteOptions, ListOptions, WriteOptions};

/// How often CRDs waiting for their objects' finalizers are looked at again.
const REQUEUE: Duration = Duration::from_millis(200);

/// Starts the controller; it stops when `token` is cancelled.
pub fn spawn(api: &Arc<ApiServer>, token: CancellationToken) -> tokio::task::JoinHandle<()> {
    let controller = Controller {
        api: api.clone(),
        installed: BTreeMap::new(),
    };
    tokio::spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            () = controller.run() => {}
        }
    })
}

/// What the controller installed for one CRD.
struct Installed {
    state: Arc<CrdState>,
    rows: BTreeSet<(String, String, String)>,
}

struct Controller {
    api: Arc<ApiServer>,
    installed: BTreeMap<String, Installed>,
}

impl Controller {
    fn crd_row(&self) -> Option<Arc<ResourceDescriptor>> {
        self.api.table.lookup(GROUP, "v1", RESOURCE)
    }

    async fn run(mut self) {
        loop {
            if let Err(e) = self.watch_loop().await {
                tracing::warn!(error = %e.message(), "CRD controller restarting");
            }
            tokio::time::sleep(REQUEUE).await;
        }
    }

    /// Lists every CRD, reconciles each, then follows changes.
    async fn watch_loop(&mut self) -> ApiResult<()> {
        let Some(desc) = self.crd_row() else {
            return Ok(());
        };
        let list = self.api.registry.list(&desc, "", &ListOptions::default()).await?;
        let revision: u64 = list
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let mut pending: BTreeSet<String> = BTreeSet::new();
        let names: BTreeSet<String> = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        i.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for gone in self
            .installed
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect::<Vec<_>>()
        {
            self.forget(&gone);
        }
        for name in names {
            if self.reconcile(&desc, &name).await? {
                pending.insert(name);
            }
        }
        let prefix = desc.storage_prefix.clone();
        let mut watcher = self
            .api
            .registry
            .store
            .kv()
            .watch(WatchRequest {
                key: prefix.clone().into_bytes().into(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision: revision + 1,
                ..Default::default()
            })
            .await
            .map_err(crate::error::ApiError::from)?;
        let mut tick = tokio::time::interval(REQUEUE);
        loop {
            tokio::select! {
                item = watcher.stream.next() => {
                    let Some(item) = item else { return Ok(()) };
                    let item = item.map_err(crate::error::ApiError::from)?;
                    let WatchItem::Events { events, .. } = item else { continue };
                    for ev in events {
                        let key = String::from_utf8_lossy(&ev.kv.key).to_string();
                        if let Some(name) = key.strip_prefix(&prefix) {
                            pending.insert(name.to_string());
                        }
                    }
                }
                _ = tick.tick() => {}
            }
            let names: Vec<String> = std::mem::take(&mut pending).into_iter().collect();
            for name in names {
                match self.reconcile(&desc, &name).await {
                    Ok(true) => {
                        pending.insert(name);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(crd = %name, error = %e.message(), "CRD reconcile failed; retrying");
                        pending.insert(name);
                    }
                }
            }
        }
    }

    /// Removes every row of a CRD.
    fn forget(&mut self, name: &str) {
        if let Some(inst) = self.installed.remove(name) {
            for (g, v, r) in inst.rows {
                if let Some(row) = self.api.table.lookup(&g, &v, &r) {
                    self.api.registry.caches.remove(&row.storage_prefix);
                }
                self.api.table.remove(&g, &v, &r);
            }
            tracing::info!(crd = name, "removed custom resource rows");
        }
    }

    /// Brings one CRD's rows and status up to date. Returns true to look again later.
    async fn reconcile(&mut self, desc: &ResourceDescriptor, name: &str) -> ApiResult<bool> {
        let crd = match self.api.registry.get(desc, "", name).await {
            Ok(c) => c,
            Err(e) if e.code() == 404 => {
                self.forget(name);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            return self.finalize(desc, name, crd).await;
        }
        let state = self
            .installed
            .get(name)
            .map_or_else(|| Arc::new(CrdState::default()), |i| i.state.clone());
        let conflict = self.name_conflict(name, &crd);
        let mut status_obj = crd.clone();
        let mut changed = false;
        match &conflict {
            Some((reason, message)) => {
                changed |= set_condition(
                    &mut status_obj,
                    condition("NamesAccepted", false, reason, message),
                );
                changed |= set_condition(
                    &mut status_obj,
                    condition("Established", false, "NotAccepted", "not all names are accepted"),
                );
                self.forget(name);
            }
            None => {
                let new_rows = rows(&crd, &state);
                let keys: BTreeSet<_> = new_rows
                    .iter()
                    .map(|r| (r.group.clone(), r.version.clone(), r.resource.clone()))
                    .collect();
                if let Some(old) = self.installed.get(name) {
                    for (g, v, r) in old.rows.difference(&keys) {
                        self.api.table.remove(g, v, r);
                    }
                }
                for row in new_rows {
                    self.api.table.install(row);
                }
                self.installed
                    .insert(name.to_string(), Installed { state, rows: keys });
                let accepted = crd["spec"]["names"].clone();
                if status_obj["status"]["acceptedNames"] != accepted {
                    status_obj["status"]["acceptedNames"] = accepted;
                    changed = true;
                }
                changed |= set_condition(
                    &mut status_obj,
                    condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
                );
                changed |= set_condition(
                    &mut status_obj,
                    condition(
                        "Established",
                        true,
                        "InitialNamesAccepted",
                        "the initial names have been accepted",
                    ),
                );
                let storage = crd["spec"]["versions"]
                    .as_array()
                    .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
                    .and_then(|v| v["name"].as_str())
                    .unwrap_or("")
                    .to_string();
                let stored = &mut status_obj["status"]["storedVersions"];
                if !stored.is_array() {
                    *stored = json!([]);
                }
                if let Some(list) = stored.as_array_mut()
                    && !storage.is_empty()
                    && !list.iter().any(|v| v == storage.as_str())
                {
                    list.push(json!(storage));
                    changed = true;
                }
            }
        }
        if changed {
            self.write_status(desc, name, status_obj).await?;
        }
        Ok(false)
    }

    /// A name conflict with another CRD of the same group, or with a built-in resource.
    fn name_conflict(&self, name: &str, crd: &Value) -> Option<(String, String)> {
        let group = crd["spec"]["group"].as_str().unwrap_or("");
        let names = &crd["spec"]["names"];
        let plural = names["plural"].as_str().unwrap_or("");
        let kind = names["kind"].as_str().unwrap_or("");
        let shorts: Vec<&str> = names["shortNames"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ours = self.installed.get(name).map(|i| &i.rows);
        for row in self.api.table.all() {
            if ours
                .is_some_and(|o| o.contains(&(row.group.clone(), row.version.clone(), row.resource.clone())))
            {
                continue;
            }
            if row.group == group && row.resource == plural {
                return Some(("PluralConflict".into(), format!("\"{plural}\" is already in use")));
            }
            if row.group == group && row.kind == kind {
                return Some(("KindConflict".into(), format!("\"{kind}\" is already in use")));
            }
            if let Some(s) = shorts
                .iter()
                .find(|s| row.group == group && row.short_names.iter().any(|r| r == *s))
            {
                return Some(("ShortNamesConflict".into(), format!("\"{s}\" is already in use")));
            }
        }
        None
    }

    async fn write_status(&self, desc: &ResourceDescriptor, name: &str, obj: Value) -> ApiResult<()> {
        self.api
            .registry
            .update(
                desc,
                "",
                name,
                obj,
                &WriteOptions::default(),
                Some(SubresourceKind::Status),
            )
            .await
            .map(|_| ())
    }

    /// A CRD being deleted: refuse new objects, delete the existing ones, and release the
    /// CRD once none is left. Returns true while objects remain.
    async fn finalize(&mut self, desc: &ResourceDescriptor, name: &str, crd: Value) -> ApiResult<bool> {
        if let Some(inst) = self.installed.get(name) {
            inst.state.terminating.store(true, Ordering::SeqCst);
        }
        let fins: Vec<String> = crd["metadata"]["finalizers"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if !fins.iter().any(|f| f == CLEANUP_FINALIZER) {
            return Ok(false);
        }
        let row = self
            .installed
            .get(name)
            .and_then(|inst| {
                inst.rows
                    .iter()
                    .find_map(|(g, v, r)| self.api.table.lookup(g, v, r))
            })
            .or_else(|| {
                let state = Arc::new(CrdState::default());
                state.terminating.store(true, Ordering::SeqCst);
                rows(&crd, &state).into_iter().next().map(Arc::new)
            });
        if let Some(row) = row {
            let remaining = self
                .api
                .registry
                .delete_collection(&row, "", &ListOptions::default(), &DeleteOptions::default())
                .await?;
            let left = self.api.registry.list(&row, "", &ListOptions::default()).await?;
            let count = left["items"].as_array().map_or(0, Vec::len);
            if count > 0 {
                let mut status_obj = crd.clone();
                let message = format!("could not confirm zero CustomResources remaining: {count} remaining");
                if set_condition(
                    &mut status_obj,
                    condition("Terminating", true, "InstanceDeletionCheck", &message),
                ) {
                    self.write_status(desc, name, status_obj).await?;
                }
                tracing::debug!(crd = name, deleted = ?remaining["items"].as_array().map(Vec::len), count, "waiting for custom resources to go");
                return Ok(true);
            }
        }
        let mut released = crd;
        released["metadata"]["finalizers"] = json!(
            fins.iter()
                .filter(|f| *f != CLEANUP_FINALIZER)
                .collect::<Vec<_>>()
        );
        self.api
            .registry
            .update(desc, "", name, released, &WriteOptions::default(), None)
            .await?;
        Ok(false)
    }
}
