//! Helpers shared by Keelson's API server and its components (scheduler, controllers, kubelet,
//! proxy): Kubernetes' quantities, label and field selectors, Go durations, cron schedules, pod
//! resource totals, quota usage and kubeconfig files, each as upstream defines it. Depends on
//! k8s-openapi, kube's config types and small crates only; never on the API server or storage.

pub mod cron;
pub mod duration;
pub mod fields;
pub mod kubeconfig;
pub mod labels;
pub mod quantity;
pub mod quota;
pub mod resources;
pub mod volumes;
