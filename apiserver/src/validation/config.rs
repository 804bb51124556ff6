//! ConfigMaps and Secrets: key syntax, the 1 MiB size limit, the keys each Secret type needs, and
//! `immutable` (upstream `ValidateConfigMap`, `ValidateSecret` and their updates).

use serde_json::Value;

use super::field::{Errs, key, object, string};
use super::names;

/// Upstream's limit on ConfigMap and Secret payloads.
pub const MAX_SIZE: usize = 1024 * 1024;

/// Length of the bytes a base64 string stands for.
fn decoded_len(s: &str) -> usize {
    let padding = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3 + (s.len() % 4) * 3 / 4).saturating_sub(padding)
}

fn check_keys(obj: &Value, field: &str, errs: &mut Errs) {
    for k in object(obj, field).into_iter().flatten().map(|(k, _)| k) {
        errs.invalid_each(&key(field, k), k, names::config_key(k));
    }
}

/// A ConfigMap.
pub fn config_map(obj: &Value, errs: &mut Errs) {
    check_keys(obj, "data", errs);
    check_keys(obj, "binaryData", errs);
    let data = object(obj, "data");
    let mut size = 0;
    for v in data.into_iter().flat_map(|d| d.values()) {
        size += v.as_str().map_or(0, str::len);
    }
    for (k, v) in object(obj, "binaryData").into_iter().flatten() {
        size += v.as_str().map_or(0, decoded_len);
        if data.is_some_and(|d| d.contains_key(k)) {
            errs.invalid_str("binaryData", k, "duplicate of key present in data");
        }
    }
    if size > MAX_SIZE {
        errs.too_long("", MAX_SIZE);
    }
}

/// A Secret (`stringData` counts as `data`, as upstream merges it before validating).
pub fn secret(obj: &Value, errs: &mut Errs) {
    check_keys(obj, "data", errs);
    check_keys(obj, "stringData", errs);
    let data = object(obj, "data");
    let string_data = object(obj, "stringData");
    let has =
        |k: &str| data.is_some_and(|d| d.contains_key(k)) || string_data.is_some_and(|d| d.contains_key(k));
    let nonempty = |k: &str| {
        data.and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
            || string_data
                .and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
    };
    let mut size = 0;
    for (k, v) in data.into_iter().flatten() {
        if !string_data.is_some_and(|s| s.contains_key(k)) {
            size += v.as_str().map_or(0, decoded_len);
        }
    }
    size += string_data
        .into_iter()
        .flatten()
        .map(|(_, v)| v.as_str().map_or(0, str::len))
        .sum::<usize>();
    if size > MAX_SIZE {
        errs.too_long("data", MAX_SIZE);
    }
    match string(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotated = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !annotated {
                errs.required("metadata.annotations[kubernetes.io/service-account.name]", "");
            }
        }
        "kubernetes.io/dockercfg" => docker_config(obj, ".dockercfg", errs),
        "kubernetes.io/dockerconfigjson" => docker_config(obj, ".dockerconfigjson", errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.required("data[username]", "");
            errs.required("data[password]", "");
        }
        "kubernetes.io/ssh-auth" if !nonempty("ssh-privatekey") => {
            errs.required("data[ssh-privatekey]", "");
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.required(key("data", k), "");
                }
            }
        }
        _ => {}
    }
}

fn docker_config(obj: &Value, name: &str, errs: &mut Errs) {
    let path = key("data", name);
    let bytes = if let Some(s) = obj
        .get("stringData")
        .and_then(|d| d.get(name))
        .and_then(Value::as_str)
    {
        Some(s.as_bytes().to_vec())
    } else if let Some(s) = obj.get("data").and_then(|d| d.get(name)).and_then(Value::as_str) {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(s).ok()
    } else {
        errs.required(path, "");
        return;
    };
    let parsed = bytes.and_then(|b| {
        serde_json::from_slice::<Value>(&b)
            .map_err(|e| e.to_string())
            .err()
    });
    if let Some(e) = parsed {
        errs.invalid_str(path, "<secret contents redacted>", &e);
    }
}

/// ConfigMap/Secret updates: nothing changes once `immutable` is set; a Secret's type is fixed.
pub fn update(new: &Value, old: &Value, errs: &mut Errs) {
    if old.get("immutable") == Some(&Value::Bool(true)) {
        if new.get("immutable") != Some(&Value::Bool(true)) {
            errs.forbidden("immutable", "field is immutable when `immutable` is set");
        }
        for field in ["data", "binaryData", "stringData"] {
            if new.get(field) != old.get(field) {
                errs.forbidden(field, "field is immutable when `immutable` is set");
            }
        }
    }
}

/// Secret updates: also the type is fixed.
pub fn secret_update(new: &Value, old: &Value, errs: &mut Errs) {
    errs.immutable("type", new.get("type"), old.get("type"));
    update(new, old, errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(f: fn(&Value, &mut Errs), obj: Value) -> Vec<(String, String)> {
        let mut errs = Errs::default();
        f(&obj, &mut errs);
        errs.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn secret_types_need_their_keys() {
        assert_eq!(
            fields(
                secret,
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})
            ),
            [("data[tls.key]".into(), "Required value".into())]
        );
        assert_eq!(
            fields(
                secret,
                json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "x", "tls.key": "y"}})
            ),
            []
        );
        let errs = fields(
            secret,
            json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{nope"}}),
        );
        assert_eq!(errs[0].0, "data[.dockerconfigjson]");
        assert!(
            errs[0]
                .1
                .starts_with("Invalid value: \"<secret contents redacted>\": ")
        );
        assert_eq!(
            fields(secret, json!({"type": "kubernetes.io/service-account-token"})),
            [(
                "metadata.annotations[kubernetes.io/service-account.name]".into(),
                "Required value".into()
            )]
        );
    }

    #[test]
    fn sizes_and_keys() {
        let big = "x".repeat(MAX_SIZE + 1);
        assert_eq!(
            fields(config_map, json!({"data": {"a": big}})),
            [("".into(), "Too long: may not be more than 1048576 bytes".into())]
        );
        let errs = fields(config_map, json!({"data": {"a/b": "x"}}));
        assert_eq!(errs[0].0, "data[a/b]");
        assert!(
            errs[0]
                .1
                .starts_with("Invalid value: \"a/b\": a valid config key must consist of")
        );
        assert_eq!(decoded_len("eA=="), 1);
        assert_eq!(decoded_len("eHl6"), 3);
    }
}
