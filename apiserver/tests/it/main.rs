//! Integration tests of the API server: HTTP (router `oneshot`), kube-rs over TLS, real kubectl.

mod admission;
mod apply;
mod auth;
mod cel;
mod crd;
mod defaults;
mod encryption;
mod field_selectors;
mod http_api;
mod kube_client;
mod kubectl;
mod kubectl_crd;
mod legacy_tokens;
mod openapi;
mod paths;
mod protobuf;
mod python_client;
mod resource_version;
mod service_alloc;
mod support;
mod validation;
mod watch_cache;
