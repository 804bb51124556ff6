//! ServiceAccounts:
//! - the ServiceAccounts controller (upstream `serviceaccount-controller`): a `default`
//!   ServiceAccount in every active namespace, re-created when deleted;
//! - the legacy token controller (upstream `serviceaccount-token-controller`): a Secret of type
//!   `kubernetes.io/service-account-token` naming a ServiceAccount (annotation
//!   `kubernetes.io/service-account.name`) gets `token` (a `kubernetes/serviceaccount` JWT signed
//!   with the service account key), `ca.crt` and `namespace`, plus the ServiceAccount's uid
//!   annotation; a token Secret whose ServiceAccount is gone is deleted, as are the token Secrets
//!   of a deleted ServiceAccount. The API server only verifies these tokens; it does not fill
//!   the Secrets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::support::per_namespace;
use crate::support::queue::WorkQueue;

/// The Secret type of legacy tokens.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the ServiceAccount of a token Secret.
pub const SERVICE_ACCOUNT_NAME_KEY: &str = "kubernetes.io/service-account.name";
/// The annotation holding the ServiceAccount's uid.
pub const SERVICE_ACCOUNT_UID_KEY: &str = "kubernetes.io/service-account.uid";
/// The issuer of legacy tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// Settings of the ServiceAccounts controller.
#[derive(Clone, Debug)]
pub struct ServiceAccountsConfig {
    /// The ServiceAccounts every namespace gets (upstream: `default`).
    pub service_accounts: Vec<String>,
    /// Namespaces synced at once (`--concurrent-serviceaccount-syncs`... upstream runs 1).
    pub workers: u16,
}

impl Default for ServiceAccountsConfig {
    fn default() -> Self {
        ServiceAccountsConfig {
            service_accounts: vec!["default".into()],
            workers: 1,
        }
    }
}

/// Settings of the legacy token controller.
#[derive(Clone, Debug)]
pub struct TokensConfig {
    /// The private key signing tokens (`--service-account-private-key-file`), PKCS#8 PEM
    /// (EC P-256 → ES256, RSA → RS256).
    pub signing_key_file: PathBuf,
    /// The CA bundle put in `ca.crt` (`--root-ca-file`), if any.
    pub root_ca: Option<Vec<u8>>,
    /// Items synced at once (`--concurrent-serviceaccount-token-syncs`, 5).
    pub workers: usize,
}

impl TokensConfig {
    /// Tokens signed with the key at `signing_key_file`, upstream's defaults otherwise.
    pub fn new(signing_key_file: PathBuf) -> Self {
        TokensConfig {
            signing_key_file,
            root_ca: None,
            workers: 5,
        }
    }
}

/// ServiceAccount controller failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Several creates failed.
    #[error("{0}")]
    Create(String),
    /// The signing key could not be read.
    #[error("reading the service account key {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signing key is not a usable PKCS#8 EC P-256 or RSA key.
    #[error("the service account key is unusable: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

// ---------------------------------------------------------------------------------------------
// The `default` ServiceAccount.

async fn ensure_service_accounts(
    client: Client,
    reader: Client,
    wanted: Arc<Vec<String>>,
    ns: Arc<Namespace>,
) -> Result<(), Error> {
    let active = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Active")
        == "Active"
        && ns.metadata.deletion_timestamp.is_none();
    if !active {
        return Ok(());
    }
    let name = ns.name_any();
    let api: Api<ServiceAccount> = Api::namespaced(client, &name);
    let read: Api<ServiceAccount> = Api::namespaced(reader, &name);
    let mut errors = Vec::new();
    for sa in wanted.iter() {
        if read.get_opt(sa).await?.is_some() {
            continue;
        }
        let obj = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(sa.clone()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => tracing::debug!(namespace = %name, service_account = %sa, "created the service account"),
            Err(e) if is_status(&e, 409) || per_namespace::namespace_gone_or_terminating(&e) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Create(errors.join(", ")))
    }
}

/// Runs the ServiceAccounts controller until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    config: ServiceAccountsConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_split(client.clone(), client, config, shutdown).await
}

/// [`run`] writing through `client` and watching and reading through `reader`, as upstream's
/// controllers write with their ServiceAccount and read from the manager's informers.
pub async fn run_split(
    client: Client,
    reader: Client,
    config: ServiceAccountsConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let wanted = Arc::new(config.service_accounts);
    // Only `default` changes are watched by name: other names are re-checked on namespace
    // changes (upstream's list is `default` alone).
    let watched = wanted.first().cloned().unwrap_or_else(|| "default".into());
    let (c, r) = (client, reader.clone());
    per_namespace::run::<ServiceAccount, _, _, _>(reader, &watched, config.workers, shutdown, move |ns| {
        ensure_service_accounts(c.clone(), r.clone(), wanted.clone(), ns)
    })
    .await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Legacy tokens.

/// The claims of a legacy token (upstream's names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegacyClaims {
    /// Always [`LEGACY_ISSUER`].
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// The namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    /// The Secret holding the token.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    /// The ServiceAccount.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    /// The ServiceAccount's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
}

impl LegacyClaims {
    /// The claims of `secret`'s token for `sa`.
    pub fn new(sa: &ServiceAccount, secret: &Secret) -> Self {
        let namespace = sa.namespace().unwrap_or_default();
        let name = sa.name_any();
        LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            sub: format!("system:serviceaccount:{namespace}:{name}"),
            namespace,
            secret_name: secret.name_any(),
            service_account_name: name,
            service_account_uid: sa.uid().unwrap_or_default(),
        }
    }
}

/// Signs legacy tokens with the service account key; the key id is upstream's (base64url of the
/// SHA-256 of the public key's DER SubjectPublicKeyInfo).
pub struct TokenSigner {
    key: jsonwebtoken::EncodingKey,
    algorithm: jsonwebtoken::Algorithm,
    key_id: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer over a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| Error::Key(e.to_string()))?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&pair);
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        let key_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        let (key, algorithm) = if pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            (
                jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|e| Error::Key(e.to_string()))?,
                jsonwebtoken::Algorithm::ES256,
            )
        } else if pair.is_compatible(&rcgen::PKCS_RSA_SHA256) {
            (
                jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| Error::Key(e.to_string()))?,
                jsonwebtoken::Algorithm::RS256,
            )
        } else {
            return Err(Error::Key("only EC P-256 and RSA keys are supported".into()));
        };
        Ok(TokenSigner {
            key,
            algorithm,
            key_id,
        })
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &LegacyClaims) -> Result<String, Error> {
        let mut header = jsonwebtoken::Header::new(self.algorithm);
        header.kid = Some(self.key_id.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// What a token Secret lacks: (`ca.crt`, `token`, `namespace`).
pub fn secret_update_needed(secret: &Secret, root_ca: Option<&[u8]>) -> (bool, bool, bool) {
    let data = secret.data.clone().unwrap_or_default();
    let get = |k: &str| data.get(k).map(|b| b.0.clone()).unwrap_or_default();
    let needs_ca = root_ca.is_some_and(|ca| !ca.is_empty() && get("ca.crt") != ca);
    let needs_token = get("token").is_empty();
    let needs_namespace = get("namespace").is_empty();
    (needs_ca, needs_token, needs_namespace)
}

/// A queued item of the token controller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TokenKey {
    Secret {
        namespace: String,
        name: String,
    },
    ServiceAccount {
        namespace: String,
        name: String,
        uid: String,
    },
}

struct Tokens {
    client: Client,
    signer: TokenSigner,
    root_ca: Option<Vec<u8>>,
    secrets: Store<Secret>,
    service_accounts: Store<ServiceAccount>,
}

fn is_token_secret(s: &Secret) -> bool {
    s.type_.as_deref() == Some(TOKEN_SECRET_TYPE)
}

impl Tokens {
    /// The ServiceAccount `name` (with `uid` when given), from the cache, else live.
    async fn service_account(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<Option<ServiceAccount>, Error> {
        let matches = |sa: &ServiceAccount| uid.is_empty() || sa.uid().as_deref() == Some(uid);
        if let Some(sa) = self.service_accounts.get(&ObjectRef::new(name).within(namespace)) {
            return Ok(matches(&sa).then(|| (*sa).clone()));
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?.filter(matches))
    }

    async fn sync(&self, key: &TokenKey) -> Result<(), Error> {
        match key {
            TokenKey::Secret { namespace, name } => self.sync_secret(namespace, name).await,
            TokenKey::ServiceAccount { namespace, name, uid } => {
                self.sync_service_account(namespace, name, uid).await
            }
        }
    }

    async fn sync_secret(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let Some(secret) = self.secrets.get(&ObjectRef::new(name).within(namespace)) else {
            return Ok(());
        };
        if !is_token_secret(&secret) {
            return Ok(());
        }
        let annotations = secret.annotations();
        let sa_name = annotations
            .get(SERVICE_ACCOUNT_NAME_KEY)
            .cloned()
            .unwrap_or_default();
        let sa_uid = annotations
            .get(SERVICE_ACCOUNT_UID_KEY)
            .cloned()
            .unwrap_or_default();
        match self.service_account(namespace, &sa_name, &sa_uid).await? {
            None => {
                tracing::info!(namespace, secret = name, service_account = %sa_name, "deleting the token secret: its service account is gone");
                self.delete_secret(&secret).await
            }
            Some(sa) => self.generate_if_needed(&sa, &secret).await,
        }
    }

    async fn delete_secret(&self, secret: &Secret) -> Result<(), Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &secret.namespace().unwrap_or_default());
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&secret.name_any(), &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn generate_if_needed(&self, sa: &ServiceAccount, cached: &Secret) -> Result<(), Error> {
        let root_ca = self.root_ca.as_deref();
        if secret_update_needed(cached, root_ca) == (false, false, false) {
            return Ok(());
        }
        let ns = cached.namespace().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let Some(mut live) = api.get_opt(&cached.name_any()).await? else {
            return Ok(());
        };
        if live.resource_version() != cached.resource_version() {
            // The cache lags: the update event brings it back.
            return Ok(());
        }
        let (needs_ca, needs_token, needs_namespace) = secret_update_needed(&live, root_ca);
        if !(needs_ca || needs_token || needs_namespace) {
            return Ok(());
        }
        let data: &mut BTreeMap<String, ByteString> = live.data.get_or_insert_with(BTreeMap::new);
        if needs_ca && let Some(ca) = root_ca {
            data.insert("ca.crt".into(), ByteString(ca.to_vec()));
        }
        if needs_namespace {
            data.insert("namespace".into(), ByteString(ns.clone().into_bytes()));
        }
        if needs_token {
            let token = self.signer.sign(&LegacyClaims::new(sa, &live))?;
            live.data
                .get_or_insert_with(BTreeMap::new)
                .insert("token".into(), ByteString(token.into_bytes()));
        }
        let annotations = live.annotations_mut();
        annotations.insert(SERVICE_ACCOUNT_NAME_KEY.into(), sa.name_any());
        annotations.insert(SERVICE_ACCOUNT_UID_KEY.into(), sa.uid().unwrap_or_default());
        api.replace(&live.name_any(), &PostParams::default(), &live)
            .await?;
        tracing::debug!(namespace = %ns, secret = %live.name_any(), "populated the service account token secret");
        Ok(())
    }

    /// A ServiceAccount changed or went: when gone, its token Secrets go too.
    async fn sync_service_account(&self, namespace: &str, name: &str, uid: &str) -> Result<(), Error> {
        if self.service_account(namespace, name, uid).await?.is_some() {
            return Ok(());
        }
        let doomed: Vec<Arc<Secret>> = self
            .secrets
            .state()
            .into_iter()
            .filter(|s| is_token_secret(s) && s.namespace().as_deref() == Some(namespace))
            .filter(|s| {
                let a = s.annotations();
                a.get(SERVICE_ACCOUNT_NAME_KEY).map(String::as_str) == Some(name)
                    && a.get(SERVICE_ACCOUNT_UID_KEY)
                        .is_none_or(|u| u.is_empty() || u == uid)
            })
            .collect();
        for s in doomed {
            tracing::info!(namespace, secret = %s.name_any(), service_account = name, "deleting the token secret of a deleted service account");
            self.delete_secret(&s).await?;
        }
        Ok(())
    }
}

/// Runs the legacy token controller until `shutdown` is cancelled.
pub async fn run_tokens(
    client: Client,
    config: TokensConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let pem = std::fs::read_to_string(&config.signing_key_file).map_err(|source| Error::KeyFile {
        path: config.signing_key_file.clone(),
        source,
    })?;
    let signer = TokenSigner::from_pem(&pem)?;
    let (secrets, secrets_writer) = reflector::store();
    let (service_accounts, sa_writer) = reflector::store();
    let tokens = Arc::new(Tokens {
        client: client.clone(),
        signer,
        root_ca: config.root_ca,
        secrets,
        service_accounts,
    });
    let queue: WorkQueue<TokenKey> = WorkQueue::default();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..config.workers.max(1) {
        let (q, t) = (queue.clone(), tokens.clone());
        tasks.spawn(async move {
            while let Some(key) = q.get().await {
                match t.sync(&key).await {
                    Ok(()) => q.forget(&key),
                    Err(e) => {
                        tracing::warn!(item = ?key, error = %e, "token controller: sync failed, retrying");
                        q.add_rate_limited(key.clone());
                    }
                }
                q.done(&key);
            }
        });
    }
    let secret_stream = reflector::reflector(
        secrets_writer,
        watcher::watcher(Api::<Secret>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff();
    let sa_stream = reflector::reflector(
        sa_writer,
        watcher::watcher(Api::<ServiceAccount>::all(client), watcher::Config::default()),
    )
    .default_backoff();
    futures::pin_mut!(secret_stream, sa_stream);
    let secret_key = |s: &Secret| TokenKey::Secret {
        namespace: s.namespace().unwrap_or_default(),
        name: s.name_any(),
    };
    let sa_key = |sa: &ServiceAccount| TokenKey::ServiceAccount {
        namespace: sa.namespace().unwrap_or_default(),
        name: sa.name_any(),
        uid: sa.uid().unwrap_or_default(),
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = secret_stream.next() => match ev {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %e, "token controller: secret watch failed, retrying"),
                Some(Ok(Event::Apply(s) | Event::InitApply(s))) if is_token_secret(&s) => queue.add(secret_key(&s)),
                Some(Ok(_)) => {}
            },
            ev = sa_stream.next() => match ev {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %e, "token controller: service account watch failed, retrying"),
                Some(Ok(Event::Delete(sa))) => queue.add_after(sa_key(&sa), Duration::ZERO),
                Some(Ok(Event::Apply(sa) | Event::InitApply(sa))) => {
                    // Token Secrets naming it may have waited for it.
                    for s in tokens.secrets.state() {
                        if is_token_secret(&s)
                            && s.namespace() == sa.namespace()
                            && s.annotations().get(SERVICE_ACCOUNT_NAME_KEY) == Some(&sa.name_any())
                        {
                            queue.add(secret_key(&s));
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
    queue.shut_down();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_secret_needs_what_it_lacks() {
        let mut s = Secret::default();
        assert_eq!(secret_update_needed(&s, None), (false, true, true));
        assert_eq!(secret_update_needed(&s, Some(b"CA")), (true, true, true));
        s.data = Some(
            [
                ("token".to_string(), ByteString(b"t".to_vec())),
                ("namespace".to_string(), ByteString(b"ns".to_vec())),
                ("ca.crt".to_string(), ByteString(b"CA".to_vec())),
            ]
            .into(),
        );
        assert_eq!(secret_update_needed(&s, Some(b"CA")), (false, false, false));
        assert_eq!(secret_update_needed(&s, Some(b"NEW")), (true, false, false));
    }

    #[test]
    fn tokens_carry_upstreams_legacy_claims_and_key_id() {
        let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let signer = TokenSigner::from_pem(&pem).unwrap();
        let mut sa = ServiceAccount::default();
        sa.metadata.name = Some("bot".into());
        sa.metadata.namespace = Some("ns".into());
        sa.metadata.uid = Some("uid-1".into());
        let mut secret = Secret::default();
        secret.metadata.name = Some("bot-token".into());
        let token = signer.sign(&LegacyClaims::new(&sa, &secret)).unwrap();
        let part = |i: usize| -> serde_json::Value {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(i).unwrap())
                .unwrap();
            serde_json::from_slice(&raw).unwrap()
        };
        let (header, claims) = (part(0), part(1));
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"].as_str().unwrap().len(), 43);
        assert_eq!(claims["iss"], "kubernetes/serviceaccount");
        assert_eq!(claims["sub"], "system:serviceaccount:ns:bot");
        assert_eq!(claims["kubernetes.io/serviceaccount/secret.name"], "bot-token");
        assert_eq!(
            claims["kubernetes.io/serviceaccount/service-account.uid"],
            "uid-1"
        );
        assert!(TokenSigner::from_pem("not a key").is_err());
    }
}
