//! The controller table: every controller the manager can run, its upstream name, the
//! ServiceAccount it runs as with `--use-service-account-credentials`, whether it is on by
//! default, and how to start it; plus upstream's `--controllers` syntax (`*`, `name`, `-name`).
//!
//! A controller is started with a [`ControllerContext`] (its own client, the shared informers,
//! the configuration and the shutdown token) and runs until the token is cancelled. A module
//! with its own `run(client, config, shutdown)` plugs in with a closure, e.g.
//!
//! ```ignore
//! ControllerDescriptor::new("garbage-collector-controller", "generic-garbage-collector", |ctx| {
//!     Box::pin(async move {
//!         let config = ctx.config.garbage_collector.clone();
//!         crate::garbage_collector::run(ctx.client, config, ctx.shutdown).await.map_err(Into::into)
//!     })
//! })
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::informer::SharedInformers;
use crate::{
    Config, bootstrap_tokens, certificates, cronjob, daemonset, deployment, disruption, endpoints,
    endpointslice, endpointslice_mirroring, garbage_collector, job, namespace, node_ipam, node_lifecycle,
    persistentvolume, pod_gc, replicaset, resource_quota, root_ca, serviceaccounts, statefulset,
    ttl_after_finished,
};

/// Any controller's failure.
pub type ControllerError = Box<dyn std::error::Error + Send + Sync>;

/// What a controller gets when it starts.
#[derive(Clone)]
pub struct ControllerContext {
    /// The controller's name (`deployment-controller`).
    pub name: &'static str,
    /// Its client: its ServiceAccount's with `--use-service-account-credentials`, else the
    /// manager's.
    pub client: kube::Client,
    /// The process's shared informers (one watch per resource type).
    pub informers: SharedInformers,
    /// The manager's own client, which the shared informers watch through; controllers that
    /// keep watches of their own read through it too (their accounts may only write).
    pub reader: kube::Client,
    /// The manager's configuration.
    pub config: Arc<Config>,
    /// This process's identity (leader-election identity or host name), for events.
    pub identity: String,
    /// Work-queue metrics, for [`crate::workqueue::WorkQueue::with_metrics`].
    pub metrics: Option<crate::metrics::QueueMetrics>,
    /// Cancelled on shutdown or lost leadership.
    pub shutdown: CancellationToken,
}

/// Starts a controller; the future runs until `ctx.shutdown` is cancelled.
pub type StartFn = fn(ControllerContext) -> BoxFuture<'static, Result<(), ControllerError>>;

/// One row of the table.
#[derive(Clone)]
pub struct ControllerDescriptor {
    /// Upstream's name, as `--controllers` takes it (`deployment-controller`).
    pub name: &'static str,
    /// Older names `--controllers` also accepts (`deployment`).
    pub aliases: &'static [&'static str],
    /// The ServiceAccount in kube-system it runs as with `--use-service-account-credentials`
    /// (upstream's `system:controller:<name>` roles are bound to it).
    pub service_account: &'static str,
    /// Off unless named explicitly (upstream's bootstrap signer, token cleaner).
    pub disabled_by_default: bool,
    /// How to start it.
    pub start: StartFn,
}

impl std::fmt::Debug for ControllerDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerDescriptor")
            .field("name", &self.name)
            .field("service_account", &self.service_account)
            .field("disabled_by_default", &self.disabled_by_default)
            .finish_non_exhaustive()
    }
}

impl ControllerDescriptor {
    /// A controller on by default.
    pub const fn new(name: &'static str, service_account: &'static str, start: StartFn) -> Self {
        ControllerDescriptor {
            name,
            aliases: &[],
            service_account,
            disabled_by_default: false,
            start,
        }
    }

    /// With older names.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
}

/// Every controller this manager knows, in start order.
pub fn all() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor::new(
            "replicationcontroller-controller",
            "replication-controller",
            |ctx| Box::pin(replicaset::run_replication_controllers(ctx)),
        )
        .aliases(&["replicationcontroller"]),
        ControllerDescriptor::new("replicaset-controller", "replicaset-controller", |ctx| {
            Box::pin(replicaset::run_replica_sets(ctx))
        })
        .aliases(&["replicaset"]),
        ControllerDescriptor::new("deployment-controller", "deployment-controller", |ctx| {
            Box::pin(deployment::run(ctx))
        })
        .aliases(&["deployment"]),
        ControllerDescriptor::new("statefulset-controller", "statefulset-controller", |ctx| {
            Box::pin(statefulset::run(ctx))
        })
        .aliases(&["statefulset"]),
        ControllerDescriptor::new("daemonset-controller", "daemon-set-controller", |ctx| {
            Box::pin(daemonset::run(ctx))
        })
        .aliases(&["daemonset"]),
        ControllerDescriptor::new(
            "garbage-collector-controller",
            "generic-garbage-collector",
            |ctx| {
                Box::pin(async move {
                    let config = ctx.config.garbage_collector.clone();
                    boxed(garbage_collector::run(ctx.client, config, ctx.shutdown).await)
                })
            },
        )
        .aliases(&["garbagecollector"]),
        ControllerDescriptor::new("namespace-controller", "namespace-controller", |ctx| {
            Box::pin(async move {
                let config = ctx.config.namespace.clone();
                boxed(namespace::run(ctx.client, config, ctx.shutdown).await)
            })
        })
        .aliases(&["namespace"]),
        ControllerDescriptor::new("serviceaccount-controller", "service-account-controller", |ctx| {
            Box::pin(async move {
                let config = ctx.config.service_accounts.clone();
                boxed(serviceaccounts::run_split(ctx.client, ctx.reader, config, ctx.shutdown).await)
            })
        })
        .aliases(&["serviceaccount"]),
        // Upstream runs the legacy token controller with the manager's own credentials.
        ControllerDescriptor::new("serviceaccount-token-controller", "", |ctx| {
            Box::pin(async move {
                let Some(key) = ctx.config.service_account_key_file.clone() else {
                    tracing::warn!(
                        "no --service-account-private-key-file: not starting the token controller"
                    );
                    return Ok(());
                };
                let mut config = serviceaccounts::TokensConfig::new(key);
                config.root_ca = ctx.config.root_ca.clone();
                config.workers = ctx.config.concurrent_serviceaccount_token_syncs;
                boxed(serviceaccounts::run_tokens(ctx.client, config, ctx.shutdown).await)
            })
        })
        .aliases(&["serviceaccount-token"]),
        ControllerDescriptor::new(
            "root-ca-certificate-publisher-controller",
            "root-ca-cert-publisher",
            |ctx| {
                Box::pin(async move {
                    let Some(ca) = ctx.config.root_ca.clone() else {
                        tracing::warn!("no --root-ca-file: not publishing kube-root-ca.crt");
                        return Ok(());
                    };
                    let config = root_ca::RootCaConfig::new(ca);
                    boxed(root_ca::run_split(ctx.client, ctx.reader, config, ctx.shutdown).await)
                })
            },
        )
        .aliases(&["root-ca-cert-publisher"]),
        // Also upstream's taint-eviction-controller: one module watches the nodes for both.
        ControllerDescriptor::new("node-lifecycle-controller", "node-controller", |ctx| {
            Box::pin(async move {
                let mut config = ctx.config.node_lifecycle.clone();
                config.instance = ctx.identity.clone();
                boxed(node_lifecycle::run_split(ctx.client, ctx.reader, config, ctx.shutdown).await)
            })
        })
        .aliases(&["nodelifecycle", "taint-eviction-controller"]),
        ControllerDescriptor::new("node-ipam-controller", "node-controller", |ctx| {
            Box::pin(async move {
                let mut config = ctx.config.node_ipam.clone();
                config.instance = ctx.identity.clone();
                boxed(node_ipam::run(ctx.client, config, ctx.shutdown).await)
            })
        })
        .aliases(&["nodeipam"]),
        ControllerDescriptor::new(
            "pod-garbage-collector-controller",
            "pod-garbage-collector",
            |ctx| {
                Box::pin(async move {
                    let config = ctx.config.pod_gc.clone();
                    boxed(pod_gc::run(ctx.client, config, ctx.shutdown).await)
                })
            },
        )
        .aliases(&["podgc"]),
        ControllerDescriptor::new("resourcequota-controller", "resourcequota-controller", |ctx| {
            Box::pin(async move {
                let config = ctx.config.resource_quota.clone();
                boxed(resource_quota::run(ctx.client, config, ctx.shutdown).await)
            })
        })
        .aliases(&["resourcequota"]),
        ControllerDescriptor::new("job-controller", "job-controller", |ctx| {
            Box::pin(async move {
                let mut config = ctx.config.job.clone();
                config.identity = ctx.identity.clone();
                boxed(job::run(ctx.client, config, ctx.shutdown).await)
            })
        })
        .aliases(&["job"]),
        ControllerDescriptor::new("cronjob-controller", "cronjob-controller", |ctx| {
            Box::pin(async move {
                let mut config = ctx.config.cronjob.clone();
                config.identity = ctx.identity.clone();
                boxed(cronjob::run(ctx.client, config, ctx.shutdown).await)
            })
        })
        .aliases(&["cronjob"]),
        ControllerDescriptor::new(
            "ttl-after-finished-controller",
            "ttl-after-finished-controller",
            |ctx| {
                Box::pin(async move {
                    let config = ctx.config.ttl_after_finished.clone();
                    boxed(ttl_after_finished::run(ctx.client, config, ctx.shutdown).await)
                })
            },
        )
        .aliases(&["ttl-after-finished"]),
        ControllerDescriptor::new("endpoints-controller", "endpoint-controller", |ctx| {
            Box::pin(async move {
                let config = ctx.config.endpoints.clone();
                boxed(endpoints::run_shared(ctx.client, config, ctx.informers, ctx.shutdown).await)
            })
        })
        .aliases(&["endpoint"]),
        ControllerDescriptor::new("endpointslice-controller", "endpointslice-controller", |ctx| {
            Box::pin(async move {
                let config = ctx.config.endpoint_slices.clone();
                boxed(endpointslice::run_shared(ctx.client, config, ctx.informers, ctx.shutdown).await)
            })
        })
        .aliases(&["endpointslice"]),
        ControllerDescriptor::new(
            "endpointslice-mirroring-controller",
            "endpointslicemirroring-controller",
            |ctx| {
                Box::pin(async move {
                    let config = ctx.config.endpoint_slice_mirroring.clone();
                    let informers = ctx.informers;
                    boxed(
                        endpointslice_mirroring::run_shared(ctx.client, config, informers, ctx.shutdown)
                            .await,
                    )
                })
            },
        )
        .aliases(&["endpointslicemirroring"]),
        ControllerDescriptor::new(
            "certificatesigningrequest-signing-controller",
            "certificate-controller",
            |ctx| Box::pin(certificates::signing::run(ctx)),
        )
        .aliases(&["csrsigning"]),
        ControllerDescriptor::new(
            "certificatesigningrequest-approving-controller",
            "certificate-controller",
            |ctx| Box::pin(certificates::approving::run(ctx)),
        )
        .aliases(&["csrapproving"]),
        ControllerDescriptor::new(
            "certificatesigningrequest-cleaner-controller",
            "certificate-controller",
            |ctx| Box::pin(certificates::cleaner::run(ctx)),
        )
        .aliases(&["csrcleaner"]),
        ControllerDescriptor {
            disabled_by_default: true,
            ..ControllerDescriptor::new("bootstrap-signer-controller", "bootstrap-signer", |ctx| {
                Box::pin(bootstrap_tokens::signer::run(ctx))
            })
            .aliases(&["bootstrapsigner"])
        },
        ControllerDescriptor {
            disabled_by_default: true,
            ..ControllerDescriptor::new("token-cleaner-controller", "token-cleaner", |ctx| {
                Box::pin(bootstrap_tokens::cleaner::run(ctx))
            })
            .aliases(&["tokencleaner"])
        },
        ControllerDescriptor::new("disruption-controller", "disruption-controller", |ctx| {
            Box::pin(async move {
                let config = disruption::DisruptionConfig {
                    identity: ctx.identity.clone(),
                };
                boxed(disruption::run_shared(ctx.client, config, ctx.informers, ctx.shutdown).await)
            })
        })
        .aliases(&["disruption"]),
        ControllerDescriptor::new(
            "persistentvolume-binder-controller",
            "persistent-volume-binder",
            |ctx| Box::pin(persistentvolume::run(ctx)),
        )
        .aliases(&["persistentvolume-binder"]),
        ControllerDescriptor::new(
            "persistentvolumeclaim-protection-controller",
            "pvc-protection-controller",
            |ctx| Box::pin(persistentvolume::protection::run_pvc_protection(ctx)),
        )
        .aliases(&["pvc-protection"]),
        ControllerDescriptor::new(
            "persistentvolume-protection-controller",
            "pv-protection-controller",
            |ctx| Box::pin(persistentvolume::protection::run_pv_protection(ctx)),
        )
        .aliases(&["pv-protection"]),
    ]
}

/// A module's own error as a [`ControllerError`].
fn boxed<E: std::error::Error + Send + Sync + 'static>(r: Result<(), E>) -> Result<(), ControllerError> {
    r.map_err(Into::into)
}

/// `--controllers` names no controller of the table.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not in the list of known controllers")]
pub struct UnknownController(pub String);

/// The canonical name of `name` (an alias resolves to its controller), if known.
fn canonical<'a>(table: &'a [ControllerDescriptor], name: &str) -> Option<&'a str> {
    table
        .iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
        .map(|d| d.name)
}

/// The controllers `--controllers` enables, in table order: a controller is on when named,
/// off when named with `-`, else on with `*` unless disabled by default.
pub fn enabled(
    table: &[ControllerDescriptor],
    flags: &[String],
) -> Result<Vec<ControllerDescriptor>, UnknownController> {
    let mut on = BTreeSet::new();
    let mut off = BTreeSet::new();
    let mut star = false;
    for flag in flags.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        if flag == "*" {
            star = true;
            continue;
        }
        let (negated, name) = match flag.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, flag),
        };
        let name = canonical(table, name).ok_or_else(|| UnknownController(flag.to_string()))?;
        // The first mention wins, as upstream's loop returns on the first match.
        if !on.contains(name) && !off.contains(name) {
            if negated {
                off.insert(name);
            } else {
                on.insert(name);
            }
        }
    }
    Ok(table
        .iter()
        .filter(|d| on.contains(d.name) || (star && !off.contains(d.name) && !d.disabled_by_default))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(flags: &[&str]) -> Vec<&'static str> {
        let table = all();
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        enabled(&table, &flags).unwrap().iter().map(|d| d.name).collect()
    }

    #[test]
    fn star_enables_the_defaults_and_minus_disables() {
        let every: Vec<&str> = all()
            .iter()
            .filter(|d| !d.disabled_by_default)
            .map(|d| d.name)
            .collect();
        assert!(
            !every.contains(&"bootstrap-signer-controller") && !every.contains(&"token-cleaner-controller")
        );
        assert_eq!(
            names(&["*"]),
            every,
            "`*` is the whole table but the off-by-default rows"
        );
        assert!(every.contains(&"deployment-controller") && every.contains(&"garbage-collector-controller"));
        let without_rs_with_signer: Vec<&str> = all()
            .iter()
            .filter(|d| {
                (d.name != "replicaset-controller" && !d.disabled_by_default)
                    || d.name == "bootstrap-signer-controller"
            })
            .map(|d| d.name)
            .collect();
        assert_eq!(
            names(&["*", "-replicaset-controller", "bootstrap-signer-controller"]),
            without_rs_with_signer
        );
        assert_eq!(names(&["deployment"]), ["deployment-controller"]);
        assert_eq!(
            names(&["replicaset"]),
            ["replicaset-controller"],
            "aliases resolve"
        );
        assert!(names(&[]).is_empty());
        assert_eq!(
            names(&["-replicaset-controller", "*"]),
            names(&["*", "-replicaset-controller"])
        );
    }

    #[test]
    fn every_controller_has_a_unique_name_and_an_upstream_account() {
        let table = all();
        let mut names: Vec<&str> = table.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), table.len());
        // The accounts are those upstream's system:controller:<account> roles are bound to.
        for d in &table {
            assert!(
                d.service_account.is_empty() || !d.service_account.contains(':'),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        let err = enabled(&all(), &["*".into(), "-nope".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"-nope\" is not in the list of known controllers"
        );
    }
}
