//! Per-controller clients for `--use-service-account-credentials` (upstream's
//! `SAControllerClientBuilder`): each controller talks as ServiceAccount
//! `kube-system/<name>`, which the manager creates with its own identity when missing, using
//! tokens from the TokenRequest API (`serviceaccounts/token`) refreshed well before they expire.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use kube::client::{Body, ClientBuilder};
use kube::config::AuthInfo;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use component_base::ratelimit::RateLimitLayer;

/// The namespace of the controllers' ServiceAccounts.
pub const NAMESPACE: &str = "kube-system";

/// Requested token lifetime (upstream: one hour).
pub const TOKEN_SECONDS: i64 = 3600;

/// Failures getting a controller's client.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuilderError {
    /// Creating or reading the ServiceAccount, or requesting a token, failed.
    #[error("service account {NAMESPACE}/{name}: {source}")]
    Api {
        /// The ServiceAccount.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The TokenRequest came back without a token.
    #[error("service account {NAMESPACE}/{0}: the token request returned no token")]
    NoToken(String),
    /// The client could not be built.
    #[error("building the client of {name}: {source}")]
    Build {
        /// The ServiceAccount.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Builds clients that act as the controllers' ServiceAccounts.
#[derive(Clone)]
pub struct ServiceAccountClients {
    root: kube::Client,
    base: kube::Config,
    qps: f32,
    burst: u32,
    shutdown: CancellationToken,
}

impl ServiceAccountClients {
    /// `root` (the manager's own client) creates ServiceAccounts and requests tokens; clients
    /// are built from `rest` without its credentials, each with its own `qps`/`burst` limit;
    /// token refreshes stop at `shutdown`.
    pub fn new(
        root: kube::Client,
        mut rest: kube::Config,
        qps: f32,
        burst: u32,
        shutdown: CancellationToken,
    ) -> Self {
        rest.auth_info = AuthInfo::default();
        ServiceAccountClients {
            root,
            base: rest,
            qps,
            burst,
            shutdown,
        }
    }

    /// The client of ServiceAccount `kube-system/<name>`.
    pub async fn client(&self, name: &str) -> Result<kube::Client, ClientBuilderError> {
        ensure_service_account(&self.root, name).await?;
        let (token, expires) = request_token(&self.root, name).await?;
        let header = Arc::new(RwLock::new(bearer(&token)));
        tokio::spawn(refresh(
            self.root.clone(),
            name.to_string(),
            header.clone(),
            expires,
            self.shutdown.clone(),
        ));
        let mut config = self.base.clone();
        suffix_user_agent(&mut config, name);
        let auth = tower::util::MapRequestLayer::new(move |mut req: http::Request<Body>| {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, header.read().clone());
            req
        });
        let builder = ClientBuilder::try_from(config).map_err(|source| ClientBuilderError::Build {
            name: name.to_string(),
            source,
        })?;
        Ok(builder
            .with_layer(&auth)
            .with_layer(&RateLimitLayer::new(self.qps, self.burst))
            .build())
    }
}

/// Appends `/<name>` to the configuration's user agent (upstream's per-controller agents).
pub fn suffix_user_agent(config: &mut kube::Config, name: &str) {
    for (k, v) in config.headers.iter_mut() {
        if *k == http::header::USER_AGENT
            && let Ok(s) = v.to_str()
            && let Ok(agent) = HeaderValue::from_str(&format!("{s}/{name}"))
        {
            *v = agent;
        }
    }
}

fn bearer(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or(HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

/// Creates `kube-system/<name>` unless it exists.
pub async fn ensure_service_account(root: &kube::Client, name: &str) -> Result<(), ClientBuilderError> {
    let api: Api<ServiceAccount> = Api::namespaced(root.clone(), NAMESPACE);
    let err = |source| ClientBuilderError::Api {
        name: name.to_string(),
        source,
    };
    if api.get_opt(name).await.map_err(err)?.is_some() {
        return Ok(());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// A fresh token for `kube-system/<name>` and when it expires.
async fn request_token(root: &kube::Client, name: &str) -> Result<(String, Timestamp), ClientBuilderError> {
    let api: Api<ServiceAccount> = Api::namespaced(root.clone(), NAMESPACE);
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let resp = api
        .create_token_request(name, &PostParams::default(), &req)
        .await
        .map_err(|source| ClientBuilderError::Api {
            name: name.to_string(),
            source,
        })?;
    let status = resp
        .status
        .ok_or_else(|| ClientBuilderError::NoToken(name.to_string()))?;
    match (status.token, status.expiration_timestamp) {
        (Some(token), Some(expires)) if !token.is_empty() => Ok((token, expires.0)),
        _ => Err(ClientBuilderError::NoToken(name.to_string())),
    }
}

/// When to refresh a token that expires at `expires`: after 80 % of its remaining life.
pub fn refresh_delay(now: Timestamp, expires: Timestamp) -> Duration {
    let left = expires.duration_since(now).as_secs_f64().max(0.0);
    Duration::from_secs_f64(left * 0.8)
}

async fn refresh(
    root: kube::Client,
    name: String,
    header: Arc<RwLock<HeaderValue>>,
    mut expires: Timestamp,
    shutdown: CancellationToken,
) {
    let mut retry = Duration::from_secs(1);
    let mut wait = refresh_delay(Timestamp::now(), expires);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        match request_token(&root, &name).await {
            Ok((token, at)) => {
                *header.write() = bearer(&token);
                expires = at;
                retry = Duration::from_secs(1);
                wait = refresh_delay(Timestamp::now(), expires);
                tracing::debug!(service_account = %name, "refreshed token");
            }
            Err(e) => {
                tracing::warn!(service_account = %name, error = %e, "refreshing token; retrying");
                wait = retry;
                retry = (retry * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_at_four_fifths_of_their_life() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let expires = Timestamp::from_second(1_800_003_600).unwrap();
        assert_eq!(refresh_delay(now, expires), Duration::from_secs(2880));
        assert_eq!(refresh_delay(expires, now), Duration::ZERO);
    }
}
