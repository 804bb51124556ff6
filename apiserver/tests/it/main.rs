//! Integration tests of the API server: HTTP (router `oneshot`), kube-rs over TLS, real kubectl.

mod apply;
mod http_api;
mod kube_client;
mod kubectl;
mod protobuf;
mod support;
mod watch_cache;
