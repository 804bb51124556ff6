//! Byte layouts of the MVCC data in rocksdb.
//!
//! `kv` column family: key = `escape(user_key) ++ 0x00 0x01 ++ be_u64(mod_revision)`, where
//! `escape` doubles every `0x00` byte of the user key as `0x00 0xff`. The escaping keeps byte
//! order equal to (user key, revision) order for *any* user key (a key that is a prefix of another
//! sorts first, and an embedded `0x00` cannot be confused with the terminator), so a range of user
//! keys is a contiguous range of rocksdb keys and the versions of one key are in revision order.
//! Value = [`encode_version`]: a put (create revision, version, lease, value) or a tombstone.
//!
//! `events` column family: key = `be_u64(revision)`, value = the keys the revision changed, in
//! order, each with its kind ([`encode_event_keys`]). The versions themselves live in `kv`.

use bytes::Bytes;
use storage::{EventKind, KeyValue, LeaseId, Revision};

/// Marks the end of an escaped user key.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// An escaped `0x00` byte of a user key.
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xff];

const TAG_TOMBSTONE: u8 = 0;
const TAG_PUT: u8 = 1;

/// Appends the escaped form of `user_key` plus the terminator to `out`.
pub fn encode_key_prefix(user_key: &[u8], out: &mut Vec<u8>) {
    out.reserve(user_key.len() + 10);
    let mut rest = user_key;
    while let Some(pos) = rest.iter().position(|b| *b == 0) {
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(&ESCAPED_ZERO);
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&TERMINATOR);
}

/// The `kv` key of one version.
pub fn encode_version_key(user_key: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 10);
    encode_key_prefix(user_key, &mut out);
    out.extend_from_slice(&revision.to_be_bytes());
    out
}

/// The first `kv` key at or after every version of `user_key` (the lower bound of a range that
/// starts at `user_key`).
pub fn range_start(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 2);
    encode_key_prefix(user_key, &mut out);
    out
}

/// Splits a `kv` key into the user key and the revision. `None` for a malformed key.
pub fn decode_version_key(raw: &[u8]) -> Option<(Vec<u8>, Revision)> {
    if raw.len() < 10 {
        return None;
    }
    let (escaped, rev) = raw.split_at(raw.len() - 8);
    let revision = u64::from_be_bytes(rev.try_into().ok()?);
    let escaped = escaped.strip_suffix(&TERMINATOR)?;
    let mut key = Vec::with_capacity(escaped.len());
    let mut i = 0;
    while i < escaped.len() {
        if escaped[i] == 0 {
            if escaped.get(i + 1) != Some(&0xff) {
                return None;
            }
            key.push(0);
            i += 2;
        } else {
            key.push(escaped[i]);
            i += 1;
        }
    }
    Some((key, revision))
}

/// The revision of an encoded version key (its last 8 bytes), without decoding the user key.
pub fn revision_of(raw: &[u8]) -> Option<Revision> {
    let start = raw.len().checked_sub(8)?;
    Some(u64::from_be_bytes(raw[start..].try_into().ok()?))
}

/// The escaped-key part of a `kv` key (everything but the revision), for grouping versions.
pub fn key_part(raw: &[u8]) -> &[u8] {
    &raw[..raw.len().saturating_sub(8)]
}

/// The stored form of one version: `Some(kv)` for a put, `None` for a deletion.
pub fn encode_version(kv: Option<&KeyValue>) -> Vec<u8> {
    match kv {
        None => vec![TAG_TOMBSTONE],
        Some(kv) => {
            let mut out = Vec::with_capacity(25 + kv.value.len());
            out.push(TAG_PUT);
            out.extend_from_slice(&kv.create_revision.to_be_bytes());
            out.extend_from_slice(&kv.version.to_be_bytes());
            out.extend_from_slice(&kv.lease.to_be_bytes());
            out.extend_from_slice(&kv.value);
            out
        }
    }
}

/// A stored version decoded: `Ok(None)` is a tombstone.
pub fn decode_version(
    key: &[u8],
    mod_revision: Revision,
    raw: &[u8],
) -> Result<Option<KeyValue>, CodecError> {
    match raw.first() {
        Some(&TAG_TOMBSTONE) => Ok(None),
        Some(&TAG_PUT) if raw.len() >= 25 => {
            let u = |i: usize| u64::from_be_bytes(raw[i..i + 8].try_into().unwrap_or_default());
            Ok(Some(KeyValue {
                key: Bytes::copy_from_slice(key),
                value: Bytes::copy_from_slice(&raw[25..]),
                create_revision: u(1),
                mod_revision,
                version: u(9) as i64,
                lease: u(17) as LeaseId,
            }))
        }
        _ => Err(CodecError("malformed version record")),
    }
}

/// True when the stored version is a tombstone.
pub fn is_tombstone(raw: &[u8]) -> bool {
    raw.first() == Some(&TAG_TOMBSTONE)
}

/// The `events` value of one revision: `count u32`, then per key `kind u8, len u32, key`.
pub fn encode_event_keys<'a>(events: impl ExactSizeIterator<Item = (EventKind, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + events.len() * 24);
    out.extend_from_slice(&(events.len() as u32).to_be_bytes());
    for (kind, key) in events {
        out.push(match kind {
            EventKind::Put => TAG_PUT,
            EventKind::Delete => TAG_TOMBSTONE,
        });
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// Decodes an `events` value.
pub fn decode_event_keys(raw: &[u8]) -> Result<Vec<(EventKind, Vec<u8>)>, CodecError> {
    let bad = || CodecError("malformed event index record");
    let count = u32::from_be_bytes(raw.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let mut out = Vec::with_capacity(count.min(4096));
    let mut pos = 4;
    for _ in 0..count {
        let kind = match raw.get(pos).ok_or_else(bad)? {
            &TAG_PUT => EventKind::Put,
            _ => EventKind::Delete,
        };
        let len = u32::from_be_bytes(
            raw.get(pos + 1..pos + 5)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        pos += 5;
        out.push((kind, raw.get(pos..pos + len).ok_or_else(bad)?.to_vec()));
        pos += len;
    }
    Ok(out)
}

/// A stored record could not be decoded (corruption or a bug).
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_by_user_key_then_revision() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\x01",
            b"a",
            b"a\x00",
            b"a\x00b",
            b"a\x01",
            b"ab",
            b"b",
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let mut encoded = Vec::new();
        for k in &keys {
            for rev in [1u64, 2, 300, u64::MAX] {
                encoded.push((encode_version_key(k, rev), (k.to_vec(), rev)));
            }
        }
        let mut by_bytes = encoded.clone();
        by_bytes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            by_bytes, encoded,
            "byte order of encoded keys equals (key, revision) order"
        );
        for (raw, (k, rev)) in &encoded {
            assert_eq!(decode_version_key(raw), Some((k.clone(), *rev)));
            assert!(raw.as_slice() >= range_start(k).as_slice());
        }
    }

    #[test]
    fn versions_round_trip() {
        let kv = KeyValue {
            key: "k".into(),
            value: "v".into(),
            create_revision: 3,
            mod_revision: 5,
            version: 2,
            lease: 77,
        };
        let raw = encode_version(Some(&kv));
        assert_eq!(decode_version(b"k", 5, &raw).unwrap(), Some(kv));
        assert_eq!(decode_version(b"k", 5, &encode_version(None)).unwrap(), None);
        assert!(decode_version(b"k", 5, &[9]).is_err());
        let ev =
            encode_event_keys([(EventKind::Put, &b"a"[..]), (EventKind::Delete, &b"bc"[..])].into_iter());
        assert_eq!(
            decode_event_keys(&ev).unwrap(),
            vec![
                (EventKind::Put, b"a".to_vec()),
                (EventKind::Delete, b"bc".to_vec())
            ]
        );
        assert!(decode_event_keys(&ev[..6]).is_err());
    }
}
