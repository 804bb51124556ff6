//! The value transformers: identity and one named key of aesgcm, aescbc or secretbox, in
//! upstream's storage format (`k8s:enc:<provider>:v1:<key name>:` then the provider's bytes), and
//! the ordered chain of them a resource is configured with.

use std::sync::Arc;

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use bytes::Bytes;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;
use rand::RngCore;

/// What every encrypted value starts with.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// AES-GCM nonce size (upstream: 12 bytes, prepended to the sealed value).
const GCM_NONCE_SIZE: usize = 12;
/// AES-CBC IV size (one block, prepended).
const CBC_IV_SIZE: usize = 16;
/// XSalsa20 nonce size (prepended).
const SECRETBOX_NONCE_SIZE: usize = 24;

/// Why a value could not be transformed.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The value is encrypted with a provider/key this resource's configuration does not have.
    #[error(
        "the value is encrypted with {0:?}, which matches no key in the encryption configuration for this resource"
    )]
    UnknownKey(String),
    /// The value is plaintext but the resource's providers do not include `identity`.
    #[error(
        "no matching prefix found: the value is not encrypted and the encryption configuration for this resource does not list the identity provider"
    )]
    NoMatchingPrefix,
    /// A key with a matching prefix could not decrypt the value (wrong key, tampered or truncated data).
    #[error("{provider} key {key:?} could not decrypt the value: {reason}")]
    Decrypt {
        /// Provider name.
        provider: &'static str,
        /// Key name.
        key: String,
        /// What failed.
        reason: &'static str,
    },
    /// Encryption failed (should not happen with a validated key).
    #[error("{provider} key {key:?} could not encrypt the value")]
    Encrypt {
        /// Provider name.
        provider: &'static str,
        /// Key name.
        key: String,
    },
}

/// The encrypting provider kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// AES-GCM, 16/24/32-byte keys, random 12-byte nonce, the storage key as authenticated data.
    AesGcm,
    /// AES-CBC with PKCS#7 padding, 16/24/32-byte keys, random IV.
    AesCbc,
    /// XSalsa20-Poly1305 (NaCl secretbox), 32-byte keys, random 24-byte nonce.
    Secretbox,
}

impl ProviderKind {
    /// The name used in the configuration and the value prefix.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::AesGcm => "aesgcm",
            ProviderKind::AesCbc => "aescbc",
            ProviderKind::Secretbox => "secretbox",
        }
    }

    /// The key sizes (bytes) the provider accepts.
    pub fn key_sizes(self) -> &'static [usize] {
        match self {
            ProviderKind::AesGcm | ProviderKind::AesCbc => &[16, 24, 32],
            ProviderKind::Secretbox => &[32],
        }
    }
}

enum Gcm {
    A128(Aes128Gcm),
    A192(AesGcm<Aes192, U12>),
    A256(Aes256Gcm),
}

enum KeyCipher {
    Gcm(Box<Gcm>),
    Cbc(Vec<u8>),
    Secretbox(Box<XSalsa20Poly1305>),
}

/// One named key of an encrypting provider.
pub struct NamedKey {
    kind: ProviderKind,
    name: String,
    prefix: Vec<u8>,
    cipher: KeyCipher,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedKey")
            .field("provider", &self.kind.name())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

impl NamedKey {
    /// A key of `kind` named `name` with the raw `secret`; `Err` names the accepted sizes.
    pub fn new(kind: ProviderKind, name: &str, secret: &[u8]) -> Result<NamedKey, String> {
        let bad_len = || {
            format!(
                "secret is not of the expected length, got {}, expected one of {:?}",
                secret.len(),
                kind.key_sizes()
            )
        };
        let cipher = match kind {
            ProviderKind::AesGcm => KeyCipher::Gcm(Box::new(match secret.len() {
                16 => Gcm::A128(Aes128Gcm::new_from_slice(secret).map_err(|_| bad_len())?),
                24 => Gcm::A192(AesGcm::new_from_slice(secret).map_err(|_| bad_len())?),
                32 => Gcm::A256(Aes256Gcm::new_from_slice(secret).map_err(|_| bad_len())?),
                _ => return Err(bad_len()),
            })),
            ProviderKind::AesCbc if kind.key_sizes().contains(&secret.len()) => {
                KeyCipher::Cbc(secret.to_vec())
            }
            ProviderKind::Secretbox if secret.len() == 32 => KeyCipher::Secretbox(Box::new(
                XSalsa20Poly1305::new_from_slice(secret).map_err(|_| bad_len())?,
            )),
            _ => return Err(bad_len()),
        };
        Ok(NamedKey {
            kind,
            name: name.to_string(),
            prefix: format!("k8s:enc:{}:v1:{name}:", kind.name()).into_bytes(),
            cipher,
        })
    }

    /// The provider.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `k8s:enc:<provider>:v1:<name>:`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn decrypt_error(&self, reason: &'static str) -> TransformError {
        TransformError::Decrypt {
            provider: self.kind.name(),
            key: self.name.clone(),
            reason,
        }
    }

    /// Encrypts `plain`: prefix, nonce/IV, ciphertext. `aad` is authenticated by aesgcm only (as
    /// upstream: CBC and secretbox have no associated data).
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let failed = || TransformError::Encrypt {
            provider: self.kind.name(),
            key: self.name.clone(),
        };
        let mut out = self.prefix.clone();
        match &self.cipher {
            KeyCipher::Gcm(gcm) => {
                let nonce = random::<GCM_NONCE_SIZE>();
                let n = aes_gcm::Nonce::<U12>::from_slice(&nonce);
                let payload = Payload { msg: plain, aad };
                let sealed = match gcm.as_ref() {
                    Gcm::A128(c) => c.encrypt(n, payload),
                    Gcm::A192(c) => c.encrypt(n, payload),
                    Gcm::A256(c) => c.encrypt(n, payload),
                }
                .map_err(|_| failed())?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
            KeyCipher::Cbc(key) => {
                let iv = random::<CBC_IV_SIZE>();
                let sealed = match key.len() {
                    16 => cbc_encrypt::<Aes128>(key, &iv, plain),
                    24 => cbc_encrypt::<Aes192>(key, &iv, plain),
                    _ => cbc_encrypt::<Aes256>(key, &iv, plain),
                }
                .ok_or_else(failed)?;
                out.extend_from_slice(&iv);
                out.extend_from_slice(&sealed);
            }
            KeyCipher::Secretbox(c) => {
                let nonce = random::<SECRETBOX_NONCE_SIZE>();
                let sealed = c
                    .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plain)
                    .map_err(|_| failed())?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        Ok(out)
    }

    /// Decrypts `body` (the stored value after this key's prefix).
    pub fn open(&self, body: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        match &self.cipher {
            KeyCipher::Gcm(gcm) => {
                if body.len() < GCM_NONCE_SIZE {
                    return Err(self.decrypt_error("the stored data is shorter than the nonce"));
                }
                let (nonce, sealed) = body.split_at(GCM_NONCE_SIZE);
                let n = aes_gcm::Nonce::<U12>::from_slice(nonce);
                let payload = Payload { msg: sealed, aad };
                match gcm.as_ref() {
                    Gcm::A128(c) => c.decrypt(n, payload),
                    Gcm::A192(c) => c.decrypt(n, payload),
                    Gcm::A256(c) => c.decrypt(n, payload),
                }
                .map_err(|_| {
                    self.decrypt_error(
                        "authentication failed (wrong key, other storage key or tampered data)",
                    )
                })
            }
            KeyCipher::Cbc(key) => {
                if body.len() < CBC_IV_SIZE {
                    return Err(self.decrypt_error("the stored data is shorter than the IV"));
                }
                let (iv, sealed) = body.split_at(CBC_IV_SIZE);
                if sealed.is_empty() || sealed.len() % CBC_IV_SIZE != 0 {
                    return Err(self.decrypt_error("the stored data is not a multiple of the block size"));
                }
                match key.len() {
                    16 => cbc_decrypt::<Aes128>(key, iv, sealed),
                    24 => cbc_decrypt::<Aes192>(key, iv, sealed),
                    _ => cbc_decrypt::<Aes256>(key, iv, sealed),
                }
                .ok_or_else(|| self.decrypt_error("invalid padding (wrong key or tampered data)"))
            }
            KeyCipher::Secretbox(c) => {
                if body.len() < SECRETBOX_NONCE_SIZE {
                    return Err(self.decrypt_error("the stored data is shorter than the nonce"));
                }
                let (nonce, sealed) = body.split_at(SECRETBOX_NONCE_SIZE);
                c.decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                    .map_err(|_| self.decrypt_error("authentication failed (wrong key or tampered data)"))
            }
        }
    }
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], plain: &[u8]) -> Option<Vec<u8>>
where
    C: cbc::cipher::BlockEncryptMut + cbc::cipher::BlockCipher + cbc::cipher::KeyInit,
{
    let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).ok()?;
    Some(enc.encrypt_padded_vec_mut::<Pkcs7>(plain))
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], sealed: &[u8]) -> Option<Vec<u8>>
where
    C: cbc::cipher::BlockDecryptMut + cbc::cipher::BlockCipher + cbc::cipher::KeyInit,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(sealed).ok()
}

/// One provider entry of a resource's chain.
#[derive(Debug)]
pub enum Transformer {
    /// Plaintext; refuses values that carry the encrypted prefix.
    Identity,
    /// One named key.
    Key(NamedKey),
}

/// The ordered transformers of a resource: writes use the first, reads the first whose prefix
/// matches and that succeeds.
#[derive(Debug, Default)]
pub struct Chain {
    entries: Vec<Arc<Transformer>>,
}

impl Chain {
    /// A chain of `entries` (in configuration order, each provider's keys in order).
    pub fn new(entries: Vec<Transformer>) -> Chain {
        Chain {
            entries: entries.into_iter().map(Arc::new).collect(),
        }
    }

    /// The identity-only chain of resources the configuration does not name.
    pub fn identity() -> Chain {
        Chain::new(vec![Transformer::Identity])
    }

    /// Adds the entries of `other` after this chain's (a resource named in several entries).
    pub fn extend(&mut self, other: &[Arc<Transformer>]) {
        self.entries.extend(other.iter().cloned());
    }

    /// True when writes store plaintext.
    pub fn writes_plaintext(&self) -> bool {
        matches!(
            self.entries.first().map(Arc::as_ref),
            None | Some(Transformer::Identity)
        )
    }

    /// The stored form of `plain` for the storage key `aad`.
    pub fn to_storage(&self, plain: &[u8], aad: &[u8]) -> Result<Bytes, TransformError> {
        match self.entries.first().map(Arc::as_ref) {
            None | Some(Transformer::Identity) => Ok(Bytes::copy_from_slice(plain)),
            Some(Transformer::Key(k)) => k.seal(plain, aad).map(Bytes::from),
        }
    }

    /// The plaintext of a stored value, and whether it is stale (not written by the first
    /// transformer, so a write should re-encrypt it even when the object is unchanged).
    pub fn from_storage(&self, stored: &[u8], aad: &[u8]) -> Result<(Bytes, bool), TransformError> {
        let encrypted = stored.starts_with(ENCRYPTED_PREFIX);
        let mut failure = None;
        for (i, entry) in self.entries.iter().enumerate() {
            match entry.as_ref() {
                Transformer::Identity if !encrypted => {
                    return Ok((Bytes::copy_from_slice(stored), i != 0));
                }
                Transformer::Identity => {}
                Transformer::Key(k) => {
                    if let Some(body) = stored.strip_prefix(k.prefix()) {
                        match k.open(body, aad) {
                            Ok(plain) => return Ok((Bytes::from(plain), i != 0)),
                            // Another key may share the prefix: keep trying, as upstream.
                            Err(e) => failure = failure.or(Some(e)),
                        }
                    }
                }
            }
        }
        Err(failure.unwrap_or_else(|| {
            if encrypted {
                TransformError::UnknownKey(describe_prefix(stored))
            } else {
                TransformError::NoMatchingPrefix
            }
        }))
    }
}

/// `k8s:enc:<provider>:v1:<key>` of an encrypted value (for error messages; never the payload).
pub fn describe_prefix(stored: &[u8]) -> String {
    let mut end = 0;
    let mut colons = 0;
    for (i, &b) in stored.iter().enumerate().take(256) {
        if b == b':' {
            colons += 1;
            if colons == 5 {
                break;
            }
        } else if !b.is_ascii_graphic() {
            break;
        }
        end = i + 1;
    }
    String::from_utf8_lossy(&stored[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: &[u8] = b"/registry/secrets/default/s1";

    fn key(kind: ProviderKind, name: &str, fill: u8, len: usize) -> NamedKey {
        NamedKey::new(kind, name, &vec![fill; len]).unwrap()
    }

    fn all_keys() -> Vec<NamedKey> {
        let mut out = Vec::new();
        for len in [16, 24, 32] {
            out.push(key(ProviderKind::AesGcm, "k1", 1, len));
            out.push(key(ProviderKind::AesCbc, "k1", 1, len));
        }
        out.push(key(ProviderKind::Secretbox, "k1", 1, 32));
        out
    }

    #[test]
    fn every_provider_round_trips_with_its_prefix_and_fresh_nonces() {
        for k in all_keys() {
            for plain in [
                &b""[..],
                b"x",
                b"{\"data\":{\"password\":\"aHVudGVyMg==\"}}",
                &[7u8; 1000],
            ] {
                let sealed = k.seal(plain, AAD).unwrap();
                let prefix = format!("k8s:enc:{}:v1:k1:", k.kind().name());
                assert!(sealed.starts_with(prefix.as_bytes()), "{k:?}");
                if plain.len() > 8 {
                    assert!(!sealed.windows(plain.len()).any(|w| w == plain), "{k:?}");
                }
                let body = &sealed[prefix.len()..];
                assert_eq!(k.open(body, AAD).unwrap(), plain, "{k:?}");
                // A second encryption of the same value differs (random nonce / IV).
                assert_ne!(k.seal(plain, AAD).unwrap(), sealed, "{k:?}");
            }
        }
    }

    #[test]
    fn wrong_key_and_tampering_are_errors() {
        for k in all_keys() {
            let other = NamedKey::new(
                k.kind(),
                "k1",
                &vec![
                    2u8;
                    if k.kind() == ProviderKind::Secretbox {
                        32
                    } else {
                        16
                    }
                ],
            )
            .unwrap();
            let sealed = k.seal(b"some secret bytes here", AAD).unwrap();
            let body = &sealed[k.prefix().len()..];
            // CBC has no authentication: a wrong key shows up as bad padding or garbage, never
            // as the plaintext.
            match other.open(body, AAD) {
                Err(e) => assert!(e.to_string().contains("could not decrypt"), "{e}"),
                Ok(p) => {
                    assert_eq!(k.kind(), ProviderKind::AesCbc);
                    assert_ne!(p, b"some secret bytes here");
                }
            }
            let mut tampered = body.to_vec();
            let last = tampered.len() - 1;
            tampered[last] ^= 0x55;
            if k.kind() != ProviderKind::AesCbc {
                assert!(k.open(&tampered, AAD).is_err(), "{k:?}");
            } else {
                assert!(
                    k.open(&tampered, AAD)
                        .map_or(true, |p| p != b"some secret bytes here"),
                    "{k:?}"
                );
            }
            for cut in [0, 5, body.len() - 1] {
                // Truncated: shorter than the nonce/IV, not whole blocks, or failing the tag.
                assert!(k.open(&body[..cut], AAD).is_err(), "{k:?} {cut}");
            }
        }
    }

    #[test]
    fn aesgcm_binds_the_storage_key() {
        let k = key(ProviderKind::AesGcm, "k", 9, 32);
        let sealed = k.seal(b"v", AAD).unwrap();
        let body = &sealed[k.prefix().len()..];
        assert!(k.open(body, b"/registry/secrets/default/other").is_err());
        // CBC and secretbox ignore it, as upstream.
        let s = key(ProviderKind::Secretbox, "k", 9, 32);
        let sealed = s.seal(b"v", AAD).unwrap();
        assert_eq!(s.open(&sealed[s.prefix().len()..], b"elsewhere").unwrap(), b"v");
    }

    #[test]
    fn key_sizes_are_checked() {
        assert!(NamedKey::new(ProviderKind::AesGcm, "k", &[0; 20]).is_err());
        assert!(NamedKey::new(ProviderKind::AesCbc, "k", &[0; 33]).is_err());
        let e = NamedKey::new(ProviderKind::Secretbox, "k", &[0; 16]).unwrap_err();
        assert_eq!(
            e,
            "secret is not of the expected length, got 16, expected one of [32]"
        );
    }

    #[test]
    fn chains_pick_by_prefix_and_report_staleness() {
        let new = key(ProviderKind::AesCbc, "new", 1, 32);
        let old = key(ProviderKind::AesCbc, "old", 2, 32);
        let gcm = key(ProviderKind::AesGcm, "g", 3, 16);
        let old_value = old.seal(b"old", AAD).unwrap();
        let gcm_value = gcm.seal(b"gcm", AAD).unwrap();
        let chain = Chain::new(vec![
            Transformer::Key(new),
            Transformer::Key(old),
            Transformer::Key(gcm),
            Transformer::Identity,
        ]);
        let fresh = chain.to_storage(b"v", AAD).unwrap();
        assert!(fresh.starts_with(b"k8s:enc:aescbc:v1:new:"));
        assert_eq!(
            chain.from_storage(&fresh, AAD).unwrap(),
            (Bytes::from_static(b"v"), false)
        );
        assert_eq!(
            chain.from_storage(&old_value, AAD).unwrap(),
            (Bytes::from_static(b"old"), true)
        );
        assert_eq!(
            chain.from_storage(&gcm_value, AAD).unwrap(),
            (Bytes::from_static(b"gcm"), true)
        );
        assert_eq!(
            chain.from_storage(b"{}", AAD).unwrap(),
            (Bytes::from_static(b"{}"), true)
        );

        // Without identity, plaintext is refused; an unknown key is named.
        let strict = Chain::new(vec![Transformer::Key(key(ProviderKind::AesCbc, "new", 1, 32))]);
        assert!(matches!(
            strict.from_storage(b"{}", AAD),
            Err(TransformError::NoMatchingPrefix)
        ));
        let e = strict.from_storage(&gcm_value, AAD).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value is encrypted with \"k8s:enc:aesgcm:v1:g\", which matches no key in the encryption configuration for this resource"
        );
        // Identity never passes encrypted bytes through.
        assert!(matches!(
            Chain::identity().from_storage(&fresh, AAD),
            Err(TransformError::UnknownKey(_))
        ));
        // Identity first: writes plaintext, still reads encrypted values (marked stale).
        let migrate = Chain::new(vec![
            Transformer::Identity,
            Transformer::Key(key(ProviderKind::AesCbc, "new", 1, 32)),
        ]);
        assert!(migrate.writes_plaintext());
        assert_eq!(migrate.to_storage(b"p", AAD).unwrap(), Bytes::from_static(b"p"));
        assert_eq!(
            migrate.from_storage(&fresh, AAD).unwrap(),
            (Bytes::from_static(b"v"), true)
        );
        assert_eq!(
            migrate.from_storage(b"p", AAD).unwrap(),
            (Bytes::from_static(b"p"), false)
        );
    }

    #[test]
    fn keys_sharing_a_prefix_are_all_tried() {
        // Two providers of one kind, and a key name that is a prefix of another's.
        let a = key(ProviderKind::Secretbox, "a", 1, 32);
        let ab = key(ProviderKind::Secretbox, "a:b", 2, 32);
        let value = ab.seal(b"x", AAD).unwrap();
        let chain = Chain::new(vec![Transformer::Key(a), Transformer::Key(ab)]);
        assert_eq!(
            chain.from_storage(&value, AAD).unwrap(),
            (Bytes::from_static(b"x"), true)
        );
    }

    #[test]
    fn prefix_description_stops_before_the_payload() {
        assert_eq!(
            describe_prefix(b"k8s:enc:aescbc:v1:key1:\x00\x01secret"),
            "k8s:enc:aescbc:v1:key1"
        );
        assert_eq!(describe_prefix(b"k8s:enc:kms:v2"), "k8s:enc:kms:v2");
        assert_eq!(
            describe_prefix(b"k8s:enc:aesgcm:v1:k\x00\x01:x"),
            "k8s:enc:aesgcm:v1:k"
        );
    }
}
