//! ServiceAccount tokens: the ES256 signing key (created once under the data dir), issuing bound
//! tokens (TokenRequest), verifying them (signature, expiry, issuer, audience, then the
//! ServiceAccount and the bound object still existing with the same uid), and the OIDC discovery
//! documents.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AuthError;
use crate::ApiServer;
use crate::error::{ApiError, ApiResult, FieldError, GroupResource};
use crate::registry::meta_str;
use crate::registry::subresource::UserInfo;

/// Prefix of ServiceAccount user names.
pub const SA_PREFIX: &str = "system:serviceaccount:";
/// Smallest `expirationSeconds` a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Default `expirationSeconds`.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// The `kubernetes.io` claim of a bound token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectClaim,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectClaim>,
    /// The node the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectClaim>,
}

/// A name and uid in the claims.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectClaim {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// The claims of a ServiceAccount token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// What the token is bound to.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// Why a token was not accepted (logged; the client only sees 401).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT we signed, expired, wrong issuer or audience.
    #[error("invalid token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The ServiceAccount or the bound object is gone or was re-created.
    #[error("{0}")]
    Stale(String),
}

/// Signs and verifies ServiceAccount tokens with one EC P-256 key.
pub struct Signer {
    issuer: String,
    key_id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    /// A signer over a PKCS#8 EC P-256 key in PEM.
    pub fn from_pem(pem: &str, issuer: &str) -> Result<Signer, AuthError> {
        let key = rcgen::KeyPair::from_pem(pem).map_err(|e| AuthError::Key(e.to_string()))?;
        if !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(AuthError::Key("the key must be an EC P-256 key".into()));
        }
        let raw = key.public_key_raw();
        if raw.len() != 65 || raw[0] != 4 {
            return Err(AuthError::Key("unexpected public key encoding".into()));
        }
        let (x, y) = (b64url(&raw[1..33]), b64url(&raw[33..65]));
        let key_id = b64url(
            ring::digest::digest(
                &ring::digest::SHA256,
                &rcgen::PublicKeyData::subject_public_key_info(&key),
            )
            .as_ref(),
        );
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| AuthError::Key(e.to_string()))?;
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| AuthError::Key(e.to_string()))?;
        Ok(Signer {
            issuer: issuer.to_string(),
            jwk: json!({"use": "sig", "kty": "EC", "kid": key_id, "crv": "P-256", "alg": "ES256", "x": x, "y": y}),
            key_id,
            encoding,
            decoding,
        })
    }

    /// A signer with a fresh key kept only in memory (servers without a data dir).
    pub fn ephemeral(issuer: &str) -> Signer {
        let pem = rcgen::KeyPair::generate()
            .map(|k| k.serialize_pem())
            .unwrap_or_default();
        Signer::from_pem(&pem, issuer).unwrap_or_else(|e| panic!("generated key unusable: {e}"))
    }

    /// Loads the key at `path`, or generates and writes it (mode 0600) when there is none.
    pub fn load_or_create(path: &Path, issuer: &str) -> Result<Signer, AuthError> {
        let io = |source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            let pem = std::fs::read_to_string(path).map_err(io)?;
            return Signer::from_pem(&pem, issuer);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let pem = rcgen::KeyPair::generate()
            .map_err(|e| AuthError::Key(e.to_string()))?
            .serialize_pem();
        std::fs::write(path, &pem).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        tracing::info!(path = %path.display(), "created the service account signing key");
        Signer::from_pem(&pem, issuer)
    }

    /// The issuer (`iss`) of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims`.
    pub fn try_sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_claims(claims)
    }

    /// Signs any claims (ES256, with this key's id).
    pub fn sign_claims<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Verifies a token signed with this key under `validation` and returns its claims.
    pub fn decode_claims<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, jsonwebtoken::errors::Error> {
        Ok(jsonwebtoken::decode::<T>(token, &self.decoding, validation)?.claims)
    }

    /// Signs `claims` (tests and tools; an unusable key yields an empty token).
    pub fn sign(&self, claims: &Claims) -> String {
        self.try_sign(claims).unwrap_or_default()
    }

    /// Checks signature, expiry, not-before, issuer and that one audience is in `audiences`.
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(audiences);
        v.validate_nbf = true;
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)?.claims)
    }

    /// The JSON Web Key Set (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }

    /// The OIDC discovery document; `external` is the host:port clients reach.
    pub fn openid_configuration(&self, external: &str) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("https://{external}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }
}

/// Reads a looked-up object's uid, or says it is gone.
async fn current_uid(api: &ApiServer, resource: &str, ns: &str, name: &str) -> Option<String> {
    let desc = api.table.lookup("", "v1", resource)?;
    let obj = api.registry.get(&desc, ns, name).await.ok()?;
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return None;
    }
    Some(meta_str(&obj, "uid").to_string())
}

/// Authenticates a ServiceAccount token: verifies it, then requires the ServiceAccount and the
/// bound pod or secret to exist with the uids the token names.
pub async fn authenticate(api: &ApiServer, token: &str) -> Result<UserInfo, TokenError> {
    let signer = api.auth.signer();
    let audiences = vec![signer.issuer().to_string()];
    let claims = signer.verify(token, &audiences)?;
    user_of_claims(api, &claims).await
}

/// The user of verified claims, after the liveness checks of the bound objects.
pub async fn user_of_claims(api: &ApiServer, claims: &Claims) -> Result<UserInfo, TokenError> {
    let k = &claims.kubernetes;
    let sa = &k.serviceaccount;
    if claims.sub != format!("{SA_PREFIX}{}:{}", k.namespace, sa.name) {
        return Err(TokenError::Stale(
            "the subject does not match the service account".into(),
        ));
    }
    let stale =
        |what: &str, name: &str| TokenError::Stale(format!("{what} {}/{name} has been deleted", k.namespace));
    match current_uid(api, "serviceaccounts", &k.namespace, &sa.name).await {
        Some(uid) if uid == sa.uid => {}
        _ => return Err(stale("service account", &sa.name)),
    }
    let mut extra = BTreeMap::new();
    for (resource, what, bound) in [("pods", "pod", &k.pod), ("secrets", "secret", &k.secret)] {
        if let Some(obj) = bound {
            match current_uid(api, resource, &k.namespace, &obj.name).await {
                Some(uid) if uid == obj.uid => {}
                _ => return Err(stale(what, &obj.name)),
            }
        }
    }
    if let Some(pod) = &k.pod {
        extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![pod.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![pod.uid.clone()],
        );
    }
    if let Some(node) = &k.node {
        extra.insert(
            "authentication.kubernetes.io/node-name".into(),
            vec![node.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/node-uid".into(),
            vec![node.uid.clone()],
        );
    }
    if !claims.jti.is_empty() {
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={}", claims.jti)],
        );
    }
    Ok(UserInfo {
        name: claims.sub.clone(),
        uid: sa.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", k.namespace),
        ],
        extra,
    })
}

fn invalid(field: &str, value: &Value, detail: &str) -> ApiError {
    ApiError::invalid(
        "TokenRequest.authentication.k8s.io",
        "authentication.k8s.io",
        "",
        &[FieldError::invalid(field, value, detail)],
    )
}

/// `POST .../serviceaccounts/<name>/token`: issues a bound token for the ServiceAccount.
pub async fn token_request(api: &ApiServer, ns: &str, name: &str, body: &Value) -> ApiResult<Value> {
    let sa_desc = api
        .table
        .lookup("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
    let sa = api.registry.get(&sa_desc, ns, name).await?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| invalid("spec.expirationSeconds", v, "must be an integer"))?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > i64::from(u32::MAX) {
        return Err(invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let max = i64::try_from(api.config.auth.service_account_max_token_expiration).unwrap_or(i64::MAX);
    let expiration = if max > 0 { expiration.min(max) } else { expiration };
    let signer = api.auth.signer();
    let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![signer.issuer().to_string()],
    };
    let mut k = KubernetesClaims {
        namespace: ns.to_string(),
        serviceaccount: ObjectClaim {
            name: name.to_string(),
            uid: meta_str(&sa, "uid").to_string(),
        },
        ..Default::default()
    };
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        let kind = bound.get("kind").and_then(Value::as_str).unwrap_or("");
        let obj_name = bound.get("name").and_then(Value::as_str).unwrap_or("");
        let resource = match kind {
            "Pod" => "pods",
            "Secret" => "secrets",
            _ => {
                return Err(invalid(
                    "spec.boundObjectRef.kind",
                    &json!(kind),
                    "supported values: \"Pod\", \"Secret\"",
                ));
            }
        };
        let desc = api
            .table
            .lookup("", "v1", resource)
            .ok_or_else(|| ApiError::internal("bound resource not served"))?;
        let obj = api.registry.get(&desc, ns, obj_name).await?;
        let uid = meta_str(&obj, "uid").to_string();
        if let Some(want) = bound.get("uid").and_then(Value::as_str)
            && !want.is_empty()
            && want != uid
        {
            return Err(ApiError::conflict(
                &GroupResource::new("", resource),
                obj_name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        let claim = Some(ObjectClaim {
            name: obj_name.to_string(),
            uid,
        });
        if kind == "Pod" {
            k.pod = claim;
        } else {
            k.secret = claim;
        }
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        iss: signer.issuer().to_string(),
        sub: format!("{SA_PREFIX}{ns}:{name}"),
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: k,
    };
    let token = signer
        .try_sign(&claims)
        .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut out_spec = spec;
    out_spec["audiences"] = json!(audiences);
    out_spec["expirationSeconds"] = json!(expiration);
    out_spec["boundObjectRef"] = out_spec.get("boundObjectRef").cloned().unwrap_or(Value::Null);
    if out_spec["boundObjectRef"].is_null()
        && let Some(m) = out_spec.as_object_mut()
    {
        m.remove("boundObjectRef");
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": crate::registry::now_rfc3339()},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(signer: &Signer, exp_offset: i64) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        Claims {
            iss: signer.issuer().into(),
            sub: "system:serviceaccount:default:bot".into(),
            aud: vec![signer.issuer().into()],
            exp: now + exp_offset,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: KubernetesClaims::default(),
        }
    }

    #[test]
    fn sign_verify_and_rejections() {
        let s = Signer::ephemeral("https://issuer.test");
        let aud = vec!["https://issuer.test".to_string()];
        let c = claims(&s, 600);
        assert_eq!(s.verify(&s.sign(&c), &aud).unwrap(), c);
        // Expired.
        assert!(s.verify(&s.sign(&claims(&s, -10)), &aud).is_err());
        // Another audience.
        assert!(s.verify(&s.sign(&c), &["other".to_string()]).is_err());
        // Another key.
        let other = Signer::ephemeral("https://issuer.test");
        assert!(s.verify(&other.sign(&c), &aud).is_err());
        // Another issuer with the same key material is refused too.
        let pem_signer = Signer::ephemeral("https://else.test");
        assert!(
            s.verify(&pem_signer.sign(&claims(&pem_signer, 600)), &aud)
                .is_err()
        );
        // Malformed.
        for bad in ["", "a.b.c", "not a token", "e30.e30.", &s.sign(&c)[..20]] {
            assert!(s.verify(bad, &aud).is_err(), "{bad}");
        }
        // A tampered payload fails the signature.
        let t = s.sign(&c);
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut tampered = c;
        tampered.sub = "system:serviceaccount:kube-system:admin".into();
        let payload = b64url(&serde_json::to_vec(&tampered).unwrap());
        parts[1] = &payload;
        assert!(s.verify(&parts.join("."), &aud).is_err());
    }

    #[test]
    fn key_is_created_once_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pki/sa.key");
        let a = Signer::load_or_create(&path, "https://i").unwrap();
        let b = Signer::load_or_create(&path, "https://i").unwrap();
        assert_eq!(a.key_id, b.key_id);
        let c = claims(&a, 600);
        b.verify(&a.sign(&c), &["https://i".into()]).unwrap();
        let jwks = a.jwks();
        assert_eq!(jwks["keys"][0]["kid"], a.key_id);
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        let doc = a.openid_configuration("10.0.0.1:6443");
        assert_eq!(doc["jwks_uri"], "https://10.0.0.1:6443/openid/v1/jwks");
        std::fs::write(&path, "garbage").unwrap();
        assert!(Signer::load_or_create(&path, "https://i").is_err());
    }
}
