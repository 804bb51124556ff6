//! Encryption at rest, as kube-apiserver's `--encryption-provider-config`.
//!
//! An upstream `EncryptionConfiguration` (apiserver.config.k8s.io/v1) names resources (`secrets`,
//! `deployments.apps`, `*.apps`, `*.`, `*.*`) and their providers (aesgcm, aescbc, secretbox,
//! identity). Values are stored in upstream's format, `k8s:enc:<provider>:v1:<key>:` then the
//! nonce/IV and ciphertext (aesgcm authenticates the storage key too). Writes use the first
//! provider's first key; reads use whichever listed key's prefix matches, and plaintext only when
//! `identity` is listed.
//!
//! The transformation happens in one place, [`EncryptedStorage`]: a [`storage::Storage`] wrapper
//! the API server puts between its registry (object store, watch cache, allocators) and the
//! store, so gets, lists, watches, compare-and-swap updates and deletes all see plaintext and
//! the store only ever sees ciphertext.

mod config;
mod provider;
mod wrapper;

use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

use bytes::Bytes;

pub use config::{ConfigError, ParseError, parse_group_resource};
pub use provider::{
    Chain, ENCRYPTED_PREFIX, NamedKey, ProviderKind, TransformError, Transformer, describe_prefix,
};
pub use wrapper::EncryptedStorage;

/// Built-in API groups without a dot (`apps`, `batch`, ...): how a storage key's first segment
/// is told apart from a core resource (`/registry/apps/deployments/...` vs `/registry/pods/...`).
static DOTLESS_GROUPS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    crate::builtin::rows()
        .into_iter()
        .map(|r| r.group)
        .filter(|g| !g.is_empty() && !g.contains('.'))
        .collect()
});

/// The group and resource a storage key belongs to (`/registry/secrets/ns/x` → ("", secrets),
/// `/registry/apps/deployments/ns/x` → (apps, deployments)); `None` outside `/registry/`.
pub fn group_resource_of_key(key: &[u8]) -> Option<(String, String)> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key.strip_prefix("/registry/")?;
    let mut parts = rest.split('/');
    let first = parts.next().filter(|s| !s.is_empty())?;
    if first.contains('.') || DOTLESS_GROUPS.contains(first) {
        let resource = parts.next().filter(|s| !s.is_empty())?;
        // Upstream stores events.k8s.io Events as core events; configurations name them `events`.
        if first == "events.k8s.io" && resource == "events" {
            return Some((String::new(), resource.to_string()));
        }
        Some((first.to_string(), resource.to_string()))
    } else {
        Some((String::new(), first.to_string()))
    }
}

/// A loaded encryption configuration: the chain of transformers of every configured resource.
#[derive(Debug)]
pub struct Encryption {
    chains: config::Chains,
    unconfigured: Chain,
}

impl Encryption {
    /// Reads and validates an `EncryptionConfiguration` file.
    pub fn load(path: &Path) -> Result<Encryption, ConfigError> {
        Ok(Encryption::from_chains(config::load(path)?))
    }

    /// Parses a configuration from text (YAML or JSON).
    pub fn parse(text: &str) -> Result<Encryption, ParseError> {
        Ok(Encryption::from_chains(config::parse(text)?))
    }

    fn from_chains(chains: config::Chains) -> Encryption {
        Encryption {
            chains,
            unconfigured: Chain::identity(),
        }
    }

    /// The chain for a storage key: the exact resource, else `*.<group>`, else `*.*`, else
    /// identity (which still refuses encrypted values rather than passing them on).
    pub fn chain_for(&self, key: &[u8]) -> &Chain {
        let Some((group, resource)) = group_resource_of_key(key) else {
            return &self.unconfigured;
        };
        let star = "*".to_string();
        self.chains
            .get(&(group.clone(), resource))
            .or_else(|| self.chains.get(&(group, star.clone())))
            .or_else(|| self.chains.get(&(star.clone(), star)))
            .unwrap_or(&self.unconfigured)
    }

    /// The stored form of the value of `key`.
    pub fn encrypt(&self, key: &[u8], plain: &[u8]) -> Result<Bytes, TransformError> {
        self.chain_for(key).to_storage(plain, key)
    }

    /// The plaintext of the stored value of `key`, and whether it is stale (written with
    /// another provider or key than the one writes use now).
    pub fn decrypt(&self, key: &[u8], stored: &[u8]) -> Result<(Bytes, bool), TransformError> {
        self.chain_for(key).from_storage(stored, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_map_to_group_resources() {
        let gr = |k: &str| group_resource_of_key(k.as_bytes());
        let pair = |g: &str, r: &str| Some((g.to_string(), r.to_string()));
        assert_eq!(gr("/registry/secrets/default/s"), pair("", "secrets"));
        assert_eq!(gr("/registry/namespaces/default"), pair("", "namespaces"));
        assert_eq!(gr("/registry/apps/deployments/ns/d"), pair("apps", "deployments"));
        assert_eq!(gr("/registry/batch/jobs/ns/j"), pair("batch", "jobs"));
        assert_eq!(
            gr("/registry/example.com/widgets/ns/w"),
            pair("example.com", "widgets")
        );
        assert_eq!(
            gr("/registry/rbac.authorization.k8s.io/roles/ns/r"),
            pair("rbac.authorization.k8s.io", "roles")
        );
        assert_eq!(gr("/registry/events.k8s.io/events/ns/e"), pair("", "events"));
        assert_eq!(gr("/other/x"), None);
        assert_eq!(gr("/registry/"), None);
    }

    #[test]
    fn wildcards_resolve_in_upstream_order() {
        let k = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let enc = Encryption::parse(&format!(
            r#"apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers: [{{aesgcm: {{keys: [{{name: s, secret: {k}}}]}}}}]
  - resources: ["*.apps"]
    providers: [{{secretbox: {{keys: [{{name: a, secret: {k}}}]}}}}]
  - resources: ["*."]
    providers: [{{identity: {{}}}}]
  - resources: ["*.*"]
    providers: [{{aescbc: {{keys: [{{name: all, secret: {k}}}]}}}}]
"#
        ))
        .unwrap();
        let stored = |key: &str| enc.encrypt(key.as_bytes(), b"{}").unwrap();
        assert!(stored("/registry/secrets/ns/x").starts_with(b"k8s:enc:aesgcm:v1:s:"));
        assert!(stored("/registry/apps/deployments/ns/x").starts_with(b"k8s:enc:secretbox:v1:a:"));
        assert_eq!(stored("/registry/configmaps/ns/x"), Bytes::from_static(b"{}"));
        assert!(stored("/registry/example.com/widgets/ns/x").starts_with(b"k8s:enc:aescbc:v1:all:"));
        assert_eq!(stored("/somewhere/else"), Bytes::from_static(b"{}"));
        let v = stored("/registry/secrets/ns/x");
        assert_eq!(
            enc.decrypt(b"/registry/secrets/ns/x", &v).unwrap(),
            (Bytes::from_static(b"{}"), false)
        );
        // The storage key is authenticated: a value moved to another key does not decrypt.
        assert!(enc.decrypt(b"/registry/secrets/ns/y", &v).is_err());
    }
}
