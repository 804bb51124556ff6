//! Keelson as a library.
//!
//! The `keelson` binary (`keelson server`, `keelson store`, `keelson kv`) is this package's main
//! product. The library part exists for operator authors: with the `testing` feature,
//! [`testing`] starts a complete Keelson API server inside a test process (in-memory store,
//! random loopback port, TLS, admin identity) and hands back a ready `kube::Client`.
//!
//! ```toml
//! [dev-dependencies]
//! keelson = { version = "0.1", default-features = false, features = ["testing"] }
//! ```

#[cfg(feature = "testing")]
pub use apiserver::testing;
