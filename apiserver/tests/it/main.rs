//! Integration tests of the API server: HTTP (router `oneshot`), kube-rs over TLS, real kubectl.

mod admission;
mod apply;
mod auth;
mod cel;
mod component_status;
mod crd;
mod defaults;
mod encryption;
mod field_validation;
mod http_api;
mod kube_client;
mod kubectl;
mod kubectl_crd;
mod legacy_tokens;
mod metadata_only;
mod openapi;
mod part_subresources;
mod protobuf;
mod resource_version;
mod service_alloc;
mod support;
mod validation;
mod virtual_writes;
mod watch_cache;
