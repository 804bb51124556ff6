//! The scheduler and controller benchmark's load (`bench/scheduler.sh`):
//! - `create-pods`: many pending pods (100m CPU, 128Mi each) in one namespace, created
//!   concurrently before any scheduler runs;
//! - `watch-bound`: follows those pods and reports when the first and the last got a node
//!   (`spec.nodeName`), i.e. pods bound per second from the first binding to the last;
//! - `rollout`: a Deployment of N replicas, from create to N available.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::api::objects::{client, create_namespace};

/// Flags shared by the pod commands.
#[derive(clap::Args, Debug)]
pub struct PodArgs {
    /// Kubeconfig of the cluster (its current context).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Namespace of the pods (created if missing).
    #[arg(long, default_value = "sched-bench")]
    namespace: String,
    /// How many pods (or replicas).
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Concurrent creates.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

fn pod_template() -> serde_json::Value {
    json!({"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]})
}

/// Creates `count` pending pods; prints `RESULT case=create-pods ...`.
pub async fn create_pods(a: PodArgs) -> Result<()> {
    let client = client(&a.kubeconfig, Some(Duration::from_secs(30))).await?;
    create_namespace(&client, &a.namespace).await?;
    let pods: Api<Pod> = Api::namespaced(client, &a.namespace);
    let start = Instant::now();
    stream::iter(0..a.count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("pod-{i:06}"), "labels": {"app": "sched-bench"}},
                    "spec": pod_template(),
                }))?;
                pods.create(&PostParams::default(), &pod)
                    .await
                    .with_context(|| format!("creating pod-{i:06}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(a.concurrency)
        .try_collect::<()>()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "RESULT case=create-pods pods={} seconds={secs:.2} creates_per_s={:.0}",
        a.count,
        a.count as f64 / secs
    );
    Ok(())
}

/// Waits until `count` pods of the namespace are bound; prints `watching` once the watch is open
/// (start the scheduler after that line), then `RESULT case=schedule ...`.
pub async fn watch_bound(a: PodArgs) -> Result<()> {
    let client = client(&a.kubeconfig, None).await?;
    let pods: Api<Pod> = Api::namespaced(client, &a.namespace);
    let list = pods.list(&ListParams::default()).await?;
    let mut bound: HashSet<String> = list
        .items
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let mut rv = list.metadata.resource_version.unwrap_or_default();
    println!("watching ({} of {} already bound)", bound.len(), a.count);
    let deadline = Instant::now() + Duration::from_secs(a.timeout_s);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while bound.len() < a.count {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} pods bound in {} s",
                bound.len(),
                a.count,
                a.timeout_s
            );
        }
        let params = WatchParams::default().timeout(290);
        let mut events = pods.watch(&params, &rv).await?.boxed();
        while let Some(event) = events.try_next().await? {
            let pod = match event {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                WatchEvent::Bookmark(b) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Deleted(_) => continue,
                WatchEvent::Error(e) => bail!("watch error: {e:?}"),
            };
            rv = pod.metadata.resource_version.clone().unwrap_or_default();
            let has_node = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            if has_node && bound.insert(pod.metadata.name.clone().unwrap_or_default()) {
                last = Instant::now();
                first.get_or_insert(last);
            }
            if bound.len() >= a.count {
                break;
            }
        }
    }
    let first = first.unwrap_or(last);
    let secs = last.duration_since(first).as_secs_f64().max(1e-3);
    println!(
        "RESULT case=schedule pods={} first_to_last_s={secs:.2} pods_per_s={:.0}",
        a.count,
        a.count as f64 / secs
    );
    Ok(())
}

/// Creates a Deployment of `count` replicas and waits until all are available; prints
/// `RESULT case=rollout ...`.
pub async fn rollout(a: PodArgs) -> Result<()> {
    let client = client(&a.kubeconfig, None).await?;
    create_namespace(&client, &a.namespace).await?;
    let deployments: Api<Deployment> = Api::namespaced(client, &a.namespace);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "rollout-bench"},
        "spec": {"replicas": a.count, "selector": {"matchLabels": {"app": "rollout-bench"}},
            "template": {"metadata": {"labels": {"app": "rollout-bench"}}, "spec": pod_template()}},
    }))?;
    let start = Instant::now();
    let created = deployments.create(&PostParams::default(), &d).await?;
    let mut rv = created.metadata.resource_version.unwrap_or_default();
    let want = i32::try_from(a.count).context("replicas")?;
    let deadline = start + Duration::from_secs(a.timeout_s);
    'outer: loop {
        if Instant::now() > deadline {
            bail!("the Deployment was not available in {} s", a.timeout_s);
        }
        let params = WatchParams::default()
            .fields("metadata.name=rollout-bench")
            .timeout(290);
        let mut events = deployments.watch(&params, &rv).await?.boxed();
        while let Some(event) = events.try_next().await? {
            if let WatchEvent::Added(d) | WatchEvent::Modified(d) = event {
                rv = d.metadata.resource_version.clone().unwrap_or_default();
                let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
                if available >= want {
                    break 'outer;
                }
            }
        }
    }
    println!(
        "RESULT case=rollout replicas={} seconds={:.2}",
        a.count,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
