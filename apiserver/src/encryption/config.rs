//! The `EncryptionConfiguration` file (apiserver.config.k8s.io/v1), validated as upstream does:
//! every problem is reported with its field path, secrets are never echoed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;

use super::provider::{Chain, NamedKey, ProviderKind, Transformer};

/// The only accepted `apiVersion`.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The only accepted `kind`.
pub const KIND: &str = "EncryptionConfiguration";

/// A bad `--encryption-provider-config`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("error reading encryption provider configuration file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed EncryptionConfiguration.
    #[error("error decoding encryption provider configuration file {path:?}: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The configuration breaks a rule; one line per problem.
    #[error("encryption provider configuration file {path:?} is invalid: {}", errors.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each problem, with its field path.
        errors: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceEntry>,
}

#[derive(Debug, Deserialize)]
struct ResourceEntry {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderEntry>,
}

#[derive(Debug, Deserialize)]
struct ProviderEntry {
    aesgcm: Option<KeysEntry>,
    aescbc: Option<KeysEntry>,
    secretbox: Option<KeysEntry>,
    identity: Option<serde_yaml_ng::Value>,
    kms: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
struct KeysEntry {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
struct KeyEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

/// A group and resource of the configuration (`*` as a wildcard), parsed as upstream's
/// `ParseGroupResource`: `secrets` → ("", secrets), `deployments.apps` → (apps, deployments),
/// `*.` → ("", *), `*.*` → (*, *).
pub fn parse_group_resource(s: &str) -> (String, String) {
    match s.split_once('.') {
        Some((resource, group)) => (group.to_string(), resource.to_string()),
        None => (String::new(), s.to_string()),
    }
}

fn display_gr((group, resource): &(String, String)) -> String {
    match (group.as_str(), resource.as_str()) {
        ("", "*") => "*.".to_string(),
        ("", r) => r.to_string(),
        (g, r) => format!("{r}.{g}"),
    }
}

/// The resources' chains, keyed by (group, resource) with `*` wildcards.
pub type Chains = HashMap<(String, String), Chain>;

/// Reads, validates and builds the configuration at `path`.
pub fn load(path: &Path) -> Result<Chains, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        ParseError::Decode(reason) => ConfigError::Decode {
            path: path.to_path_buf(),
            reason,
        },
        ParseError::Invalid(errors) => ConfigError::Invalid {
            path: path.to_path_buf(),
            errors,
        },
    })
}

/// Why a configuration text was refused.
#[derive(Debug)]
pub enum ParseError {
    /// Not YAML/JSON of the expected shape.
    Decode(String),
    /// Rule violations, with field paths.
    Invalid(Vec<String>),
}

/// Parses, validates and builds a configuration (YAML or JSON).
pub fn parse(text: &str) -> Result<Chains, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Decode("the file is empty".into()));
    }
    let file: File = serde_yaml_ng::from_str(text).map_err(|e| ParseError::Decode(e.to_string()))?;
    if file.api_version != API_VERSION || file.kind != KIND {
        return Err(ParseError::Decode(format!(
            "expected apiVersion {API_VERSION:?} and kind {KIND:?}, got {:?} and {:?}",
            file.api_version, file.kind
        )));
    }
    let mut errors = Vec::new();
    if file.resources.is_empty() {
        errors.push("resources: Required value: at least one resources is required".to_string());
    }
    let mut chains = Chains::new();
    for (i, entry) in file.resources.iter().enumerate() {
        let rpath = format!("resources[{i}].resources");
        let ppath = format!("resources[{i}].providers");
        if entry.resources.is_empty() {
            errors.push(format!(
                "{rpath}: Required value: at least one {rpath} is required"
            ));
        }
        validate_resources(&entry.resources, &rpath, &mut errors);
        if entry.providers.is_empty() {
            errors.push(format!(
                "{ppath}: Required value: at least one {ppath} is required"
            ));
        }
        let mut transformers = Vec::new();
        for (j, provider) in entry.providers.iter().enumerate() {
            build_provider(provider, &format!("{ppath}[{j}]"), &mut transformers, &mut errors);
        }
        if !errors.is_empty() {
            continue;
        }
        let transformers: Vec<Arc<Transformer>> = transformers.into_iter().map(Arc::new).collect();
        for resource in &entry.resources {
            let gr = parse_group_resource(resource);
            let any_in_group = (gr.0.clone(), "*".to_string());
            let any = ("*".to_string(), "*".to_string());
            // As upstream: an earlier `*.group` or `*.*` rule would mask this one.
            let masked = [&any_in_group, &any]
                .into_iter()
                .find(|m| chains.contains_key(*m));
            if let Some(mask) = masked {
                errors.push(format!(
                    "{rpath}: resource {:?} is masked by earlier rule {:?}",
                    display_gr(&gr),
                    display_gr(mask)
                ));
                continue;
            }
            // A resource named again later gets the later providers too (for reads).
            chains.entry(gr).or_default().extend(&transformers);
        }
    }
    if errors.is_empty() {
        Ok(chains)
    } else {
        Err(ParseError::Invalid(errors))
    }
}

fn validate_resources(resources: &[String], path: &str, errors: &mut Vec<String>) {
    let parsed: Vec<(String, String)> = resources.iter().map(|r| parse_group_resource(r)).collect();
    let any = ("*".to_string(), "*".to_string());
    let (mut duplicate, mut overlap) = (false, false);
    for (i, a) in parsed.iter().enumerate() {
        for (j, b) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if a == b {
                duplicate = true;
            } else if *a == any || (a.0 == b.0 && (a.1 == "*" || b.1 == "*")) {
                overlap = true;
            }
        }
    }
    if duplicate {
        errors.push(format!(
            "{path}: Invalid value: {resources:?}: the same resource cannot be specified multiple times"
        ));
    }
    if overlap {
        errors.push(format!(
            "{path}: Invalid value: {resources:?}: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked"
        ));
    }
    for (j, res) in resources.iter().enumerate() {
        let (group, resource) = &parsed[j];
        let why = if res.to_lowercase() != *res {
            "resource name should not contain capital letters"
        } else if res == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if matches!(
            res.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            "resources which do not have REST API/s cannot be encrypted"
        } else if group == "events.k8s.io" {
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
        } else if group == "extensions" {
            "'extensions' group has been removed and cannot be used for encryption"
        } else if group == "*" && resource != "*" {
            "encrypting the same resource across groups is not supported"
        } else if resource.is_empty() {
            "resource name is empty"
        } else {
            continue;
        };
        errors.push(format!("{path}[{j}]: Invalid value: {res:?}: {why}"));
    }
}

/// Appends the transformers of one provider entry (one per key, in order), or records why it
/// is not valid.
fn build_provider(
    provider: &ProviderEntry,
    path: &str,
    out: &mut Vec<Transformer>,
    errors: &mut Vec<String>,
) {
    let keyed = [
        (ProviderKind::AesGcm, &provider.aesgcm),
        (ProviderKind::AesCbc, &provider.aescbc),
        (ProviderKind::Secretbox, &provider.secretbox),
    ];
    let found = keyed.iter().filter(|(_, k)| k.is_some()).count()
        + usize::from(provider.identity.is_some())
        + usize::from(provider.kms.is_some());
    if found == 0 {
        errors.push(format!(
            "{path}: Invalid value: provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity"
        ));
        return;
    }
    if found > 1 {
        errors.push(format!(
            "{path}: Invalid value: more than one provider specified in a single element, should split into different list elements"
        ));
        return;
    }
    if provider.kms.is_some() {
        errors.push(format!(
            "{path}.kms: Unsupported value: the kms provider is not supported; use aesgcm, aescbc, secretbox or identity"
        ));
        return;
    }
    if provider.identity.is_some() {
        out.push(Transformer::Identity);
        return;
    }
    for (kind, keys) in keyed {
        let Some(keys) = keys else { continue };
        let kpath = format!("{path}.{}.keys", kind.name());
        if keys.keys.is_empty() {
            errors.push(format!("{kpath}: Required value: at least one keys is required"));
        }
        for (n, key) in keys.keys.iter().enumerate() {
            let at = format!("{kpath}[{n}]");
            if key.name.is_empty() {
                errors.push(format!(
                    "{at}.name: Required value: name is a mandatory field for a key"
                ));
            }
            if key.secret.is_empty() {
                errors.push(format!(
                    "{at}.secret: Required value: secret is a mandatory field for a key"
                ));
                continue;
            }
            let Ok(secret) = base64::engine::general_purpose::STANDARD.decode(key.secret.trim()) else {
                errors.push(format!(
                    "{at}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"
                ));
                continue;
            };
            match NamedKey::new(kind, &key.name, &secret) {
                Ok(k) if !key.name.is_empty() => out.push(Transformer::Key(k)),
                Ok(_) => {}
                Err(why) => errors.push(format!("{at}.secret: Invalid value: \"REDACTED\": {why}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const K16: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // 16 bytes

    fn config(body: &str) -> String {
        format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n{body}")
    }

    fn invalid(body: &str) -> String {
        match parse(&config(body)) {
            Err(ParseError::Invalid(e)) => e.join("\n"),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn parses_upstream_examples() {
        let chains = parse(&config(&format!(
            r#"resources:
  - resources: [secrets, configmaps]
    providers:
      - aesgcm:
          keys: [{{name: key1, secret: {K16}}}, {{name: key2, secret: {K32}}}]
      - aescbc:
          keys: [{{name: old, secret: {K32}}}]
      - secretbox:
          keys: [{{name: sb, secret: {K32}}}]
      - identity: {{}}
  - resources: ["*.apps"]
    providers: [{{identity: {{}}}}]
  - resources: ["*.*"]
    providers: [{{aescbc: {{keys: [{{name: k, secret: {K32}}}]}}}}]
"#
        )))
        .unwrap();
        assert_eq!(chains.len(), 4);
        assert!(!chains[&(String::new(), "secrets".into())].writes_plaintext());
        assert!(chains[&("apps".into(), "*".into())].writes_plaintext());
        assert!(chains.contains_key(&("*".into(), "*".into())));
        // JSON works too.
        let json = format!(
            r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","resources":[{{"resources":["secrets"],"providers":[{{"identity":{{}}}}]}}]}}"#
        );
        assert!(parse(&json).is_ok());
    }

    #[test]
    fn rejects_bad_keys_with_field_paths_and_no_secret() {
        let e = invalid(
            "resources:\n  - resources: [secrets]\n    providers:\n      - aescbc:\n          keys: [{name: k, secret: c2hvcnQ=}]\n",
        );
        assert_eq!(
            e,
            "resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5, expected one of [16, 24, 32]"
        );
        let e = invalid(&format!(
            "resources:\n  - resources: [secrets]\n    providers:\n      - secretbox:\n          keys: [{{name: k, secret: {K16}}}]\n      - aesgcm:\n          keys: [{{name: '', secret: 'not base64!'}}]\n      - aesgcm: {{keys: []}}\n"
        ));
        assert!(e.contains("providers[0].secretbox.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 16, expected one of [32]"), "{e}");
        assert!(
            e.contains("providers[1].aesgcm.keys[0].name: Required value"),
            "{e}"
        );
        assert!(e.contains("providers[1].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"), "{e}");
        assert!(
            e.contains("providers[2].aesgcm.keys: Required value: at least one keys is required"),
            "{e}"
        );
        assert!(!e.contains(K16));
    }

    #[test]
    fn rejects_bad_provider_entries_and_resources() {
        let e = invalid(&format!(
            "resources:\n  - resources: [secrets]\n    providers:\n      - identity: {{}}\n        aescbc: {{keys: [{{name: k, secret: {K32}}}]}}\n      - {{}}\n      - kms: {{name: x}}\n"
        ));
        assert!(
            e.contains("providers[0]: Invalid value: more than one provider"),
            "{e}"
        );
        assert!(
            e.contains(
                "providers[1]: Invalid value: provider does not contain any of the expected providers"
            ),
            "{e}"
        );
        assert!(e.contains("providers[2].kms: Unsupported value"), "{e}");
        let e = invalid(
            "resources:\n  - resources: [Secrets, '*', secrets.*, events.events.k8s.io, deployments.extensions, serviceipallocations]\n    providers: [{identity: {}}]\n",
        );
        for want in [
            "[0]: Invalid value: \"Secrets\": resource name should not contain capital letters",
            "[1]: Invalid value: \"*\": use '*.'",
            "[2]: Invalid value: \"secrets.*\": encrypting the same resource across groups is not supported",
            "[3]: Invalid value: \"events.events.k8s.io\": '*.events.k8s.io' objects",
            "[4]: Invalid value: \"deployments.extensions\": 'extensions' group has been removed",
            "[5]: Invalid value: \"serviceipallocations\": resources which do not have REST API/s",
        ] {
            assert!(e.contains(want), "{want}\n{e}");
        }
        let e =
            invalid("resources:\n  - resources: [secrets, secrets, '*.']\n    providers: [{identity: {}}]\n");
        assert!(e.contains("cannot be specified multiple times"), "{e}");
        assert!(e.contains("overlapping resources"), "{e}");
        let e = invalid(
            "resources:\n  - resources: ['*.apps']\n    providers: [{identity: {}}]\n  - resources: [deployments.apps]\n    providers: [{identity: {}}]\n",
        );
        assert!(
            e.contains("resource \"deployments.apps\" is masked by earlier rule \"*.apps\""),
            "{e}"
        );
        assert!(invalid("resources: []\n").contains("at least one resources is required"));
        assert!(
            invalid("resources:\n  - providers: [{identity: {}}]\n")
                .contains("resources[0].resources: Required value")
        );
        assert!(
            invalid("resources:\n  - resources: [secrets]\n")
                .contains("resources[0].providers: Required value")
        );
    }

    #[test]
    fn rejects_other_kinds_and_garbage() {
        for text in [
            "",
            "not: [valid",
            "apiVersion: v1\nkind: EncryptionConfig\nresources: []\n",
            "apiVersion: apiserver.config.k8s.io/v1\nkind: Other\n",
        ] {
            assert!(matches!(parse(text), Err(ParseError::Decode(_))), "{text}");
        }
    }

    #[test]
    fn a_resource_named_twice_reads_with_both_entries() {
        let chains = parse(&config(&format!(
            "resources:\n  - resources: [secrets]\n    providers: [{{aescbc: {{keys: [{{name: a, secret: {K32}}}]}}}}]\n  - resources: [secrets]\n    providers: [{{identity: {{}}}}]\n"
        )))
        .unwrap();
        let chain = &chains[&(String::new(), "secrets".into())];
        assert!(!chain.writes_plaintext());
        assert_eq!(
            chain.from_storage(b"{}", b"k").unwrap().0,
            bytes::Bytes::from_static(b"{}")
        );
    }

    #[test]
    fn load_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.yaml");
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("enc.yaml"), "{e}");
        std::fs::write(&path, config("resources:\n  - resources: [secrets]\n    providers: [{aescbc: {keys: [{name: k, secret: YQ==}]}}]\n")).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.starts_with("encryption provider configuration file"), "{e}");
        assert!(e.contains("got 1, expected one of [16, 24, 32]"), "{e}");
    }
}
