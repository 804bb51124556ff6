//! Encryption at rest over HTTP: the raw store underneath holds no plaintext, every read path
//! (get, list, paged list, cached list, watch) decodes, key rotation re-encrypts on replace,
//! identity-first configs migrate back to plaintext, and a bad configuration stops the server.

use std::sync::Arc;

use apiserver::encryption::Encryption;
use apiserver::{ApiServer, Config};
use base64::Engine;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use storage::StorageExt;
use storage::mem::MemStorage;

use crate::support::{TestServer, configmap, deployment};
use crate::watch_cache::Watch;

const KEY1: &str = "c2VjcmV0LWtleS1udW1iZXItb25lLTMyLWJ5dGVzISE="; // 32 bytes
const KEY2: &str = "c2Vjb25kLWtleS1mb3Itcm90YXRpb24tMzItYnl0ZSE="; // 32 bytes
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// An EncryptionConfiguration for `resources` with the given provider list (YAML flow items).
fn config(resources: &str, providers: &[String]) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: {resources}\n    providers:\n{}",
        providers
            .iter()
            .map(|p| format!("      - {p}\n"))
            .collect::<String>()
    )
}

fn keyed(provider: &str, keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(n, s)| format!("{{name: {n}, secret: {s}}}"))
        .collect();
    format!("{provider}: {{keys: [{}]}}", keys.join(", "))
}

fn identity() -> String {
    "identity: {}".into()
}

/// A server over `store` (every request is the admin) with `encryption` (a config text).
async fn server(store: &Arc<MemStorage>, encryption: Option<&str>) -> TestServer {
    let mut config = Config::new("/nonexistent");
    config.allow_unauthenticated = true;
    config.encryption = encryption.map(|t| Arc::new(Encryption::parse(t).expect("valid config")));
    let api = ApiServer::new(config, store.clone());
    api.bootstrap().await.expect("bootstrap");
    TestServer {
        api,
        store: store.clone(),
    }
}

fn secret(name: &str, password: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
        "data": {"password": b64(password)}})
}

/// The raw stored bytes of `key`.
async fn raw(store: &MemStorage, key: &str) -> Vec<u8> {
    let (kv, _) = store.get(key.as_bytes(), 0).await.unwrap();
    kv.unwrap_or_else(|| panic!("{key} is not stored")).value.to_vec()
}

/// Every stored (key, value) under `prefix`.
async fn raw_all(store: &MemStorage, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let page = store.list(prefix.as_bytes(), None, 0, 0).await.unwrap();
    page.kvs
        .into_iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value.to_vec()))
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn password(obj: &Value) -> String {
    let b = obj["data"]["password"].as_str().unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
}

#[tokio::test]
async fn secrets_are_ciphertext_in_the_store_and_plaintext_on_every_read_path() {
    let store = Arc::new(MemStorage::new());
    let cfg = config("[secrets]", &[keyed("aescbc", &[("key1", KEY1)]), identity()]);
    let s = server(&store, Some(&cfg)).await;
    let mut watch = Watch::open(&s, &format!("{SECRETS}?watch=true")).await;
    for i in 0..3 {
        let (st, body) = s
            .post(SECRETS, secret(&format!("s{i}"), &format!("hunter2-secret-{i}")))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    let (st, _) = s
        .post(
            "/api/v1/namespaces/default/configmaps",
            configmap("plain", &[("k", "visible-value")]),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    // Server-side apply creates through the same layer.
    let (st, _, body) = s
        .call(
            Method::PATCH,
            &format!("{SECRETS}/applied?fieldManager=it"),
            &[("content-type", "application/apply-patch+yaml")],
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "applied"},
                "data": {"password": b64("hunter2-applied")}}),
            ),
        )
        .await;
    assert!(st.is_success(), "{st} {body}");

    // The raw store: secrets are aescbc ciphertext with upstream's prefix; nothing readable.
    for name in ["s0", "s1", "s2", "applied"] {
        let value = raw(&store, &format!("/registry/secrets/default/{name}")).await;
        assert!(value.starts_with(b"k8s:enc:aescbc:v1:key1:"), "{name}");
    }
    for (key, value) in raw_all(&store, "/").await {
        for i in 0..3 {
            assert!(!contains(&value, &format!("hunter2-secret-{i}")), "{key}");
            assert!(!contains(&value, &b64(&format!("hunter2-secret-{i}"))), "{key}");
        }
        assert!(
            !contains(&value, "hunter2-applied") && !contains(&value, &b64("hunter2-applied")),
            "{key}"
        );
        if key.starts_with("/registry/secrets/") {
            assert!(
                !contains(&value, "password") && !contains(&value, "Opaque"),
                "{key}"
            );
        }
    }
    // Resources the configuration does not name stay plaintext.
    let cm = raw(&store, "/registry/configmaps/default/plain").await;
    assert!(contains(&cm, "visible-value"));

    // Reads: get, list, paged list, list from the watch cache, watch.
    let (st, got) = s.get(&format!("{SECRETS}/s1")).await;
    assert_eq!(
        (st, password(&got)),
        (StatusCode::OK, "hunter2-secret-1".to_string())
    );
    let (_, applied) = s.get(&format!("{SECRETS}/applied")).await;
    assert_eq!(password(&applied), "hunter2-applied");
    let (st, list) = s.get(SECRETS).await;
    assert_eq!(st, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(password(&items[1]), "hunter2-secret-0");
    let (_, page) = s.get(&format!("{SECRETS}?limit=2")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cont = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, rest) = s.get(&format!("{SECRETS}?limit=2&continue={cont}")).await;
    assert_eq!(password(&rest["items"][1]), "hunter2-secret-2");
    let (_, cached) = s.get(&format!("{SECRETS}?resourceVersion=0")).await;
    assert_eq!(cached["items"].as_array().unwrap().len(), 4);
    let events = watch.events(4).await;
    for (i, e) in events.iter().take(3).enumerate() {
        assert_eq!(e["type"], "ADDED");
        assert_eq!(password(&e["object"]), format!("hunter2-secret-{i}"));
    }

    // Updates (CAS) and patches keep the data encrypted; the watch sees the new value.
    let (st, _, body) = s
        .call(
            Method::PATCH,
            &format!("{SECRETS}/s0"),
            &[("content-type", "application/merge-patch+json")],
            Some(json!({"data": {"password": b64("hunter2-patched")}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let modified = watch.events(1).await;
    assert_eq!(modified[0]["type"], "MODIFIED");
    assert_eq!(password(&modified[0]["object"]), "hunter2-patched");
    let value = raw(&store, "/registry/secrets/default/s0").await;
    assert!(value.starts_with(b"k8s:enc:aescbc:v1:key1:") && !contains(&value, "hunter2"));

    // deletecollection decodes what it deletes and leaves nothing behind.
    let (st, _, body) = s.call(Method::DELETE, SECRETS, &[], None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let deleted = watch.events(4).await;
    assert!(
        deleted
            .iter()
            .all(|e| e["type"] == "DELETED" && e["object"]["data"]["password"].is_string())
    );
    assert!(raw_all(&store, "/registry/secrets/").await.is_empty());
}

#[tokio::test]
async fn key_rotation_reads_old_keys_and_replace_rewrites_with_the_new_one() {
    let store = Arc::new(MemStorage::new());
    let old = config("[secrets]", &[keyed("aescbc", &[("key1", KEY1)])]);
    {
        let s = server(&store, Some(&old)).await;
        for name in ["a", "b", "never-replaced"] {
            let (st, _) = s.post(SECRETS, secret(name, &format!("pw-{name}"))).await;
            assert_eq!(st, StatusCode::CREATED);
        }
    }
    assert!(
        raw(&store, "/registry/secrets/default/a")
            .await
            .starts_with(b"k8s:enc:aescbc:v1:key1:")
    );

    // Restart with [new key, old key]: old values still read; new writes use key2.
    let both = config("[secrets]", &[keyed("aescbc", &[("key2", KEY2), ("key1", KEY1)])]);
    let s = server(&store, Some(&both)).await;
    let (st, list) = s.get(SECRETS).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let (st, _) = s.post(SECRETS, secret("fresh", "pw-fresh")).await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(
        raw(&store, "/registry/secrets/default/fresh")
            .await
            .starts_with(b"k8s:enc:aescbc:v1:key2:")
    );
    // `kubectl get secret -o json | kubectl replace -f -`: an unchanged replace still rewrites.
    for name in ["a", "b"] {
        let (_, current) = s.get(&format!("{SECRETS}/{name}")).await;
        let (st, _, replaced) = s
            .call(
                Method::PUT,
                &format!("{SECRETS}/{name}"),
                &[],
                Some(current.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{replaced}");
        assert_ne!(
            replaced["metadata"]["resourceVersion"], current["metadata"]["resourceVersion"],
            "a stale value is rewritten"
        );
        let value = raw(&store, &format!("/registry/secrets/default/{name}")).await;
        assert!(value.starts_with(b"k8s:enc:aescbc:v1:key2:"), "{name}");
        // A second unchanged replace is a no-op again.
        let (_, again) = s.get(&format!("{SECRETS}/{name}")).await;
        let (_, _, same) = s
            .call(
                Method::PUT,
                &format!("{SECRETS}/{name}"),
                &[],
                Some(again.clone()),
            )
            .await;
        assert_eq!(
            same["metadata"]["resourceVersion"],
            again["metadata"]["resourceVersion"]
        );
    }
    assert!(
        raw(&store, "/registry/secrets/default/never-replaced")
            .await
            .starts_with(b"k8s:enc:aescbc:v1:key1:")
    );
    drop(s);

    // Only the new key: rewritten values read; one still under the removed key is a clear 500.
    let new_only = config("[secrets]", &[keyed("aescbc", &[("key2", KEY2)])]);
    let s = server(&store, Some(&new_only)).await;
    for name in ["a", "b", "fresh"] {
        let (st, got) = s.get(&format!("{SECRETS}/{name}")).await;
        assert_eq!((st, password(&got)), (StatusCode::OK, format!("pw-{name}")));
    }
    let (st, err) = s.get(&format!("{SECRETS}/never-replaced")).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("/registry/secrets/default/never-replaced") && msg.contains("k8s:enc:aescbc:v1:key1"),
        "{msg}"
    );
    assert_eq!(err["kind"], "Status");
}

#[tokio::test]
async fn identity_first_configs_write_plaintext_and_still_read_ciphertext() {
    let store = Arc::new(MemStorage::new());
    let gcm = config("[secrets]", &[keyed("aesgcm", &[("k", KEY1)])]);
    {
        let s = server(&store, Some(&gcm)).await;
        for name in ["x", "left-encrypted"] {
            assert_eq!(s.post(SECRETS, secret(name, "pw")).await.0, StatusCode::CREATED);
        }
    }
    assert!(
        raw(&store, "/registry/secrets/default/x")
            .await
            .starts_with(b"k8s:enc:aesgcm:v1:k:")
    );
    let migrate = config("[secrets]", &[identity(), keyed("aesgcm", &[("k", KEY1)])]);
    {
        let s = server(&store, Some(&migrate)).await;
        assert_eq!(password(&s.get(&format!("{SECRETS}/x")).await.1), "pw");
        assert_eq!(s.post(SECRETS, secret("y", "pw-y")).await.0, StatusCode::CREATED);
        assert!(raw(&store, "/registry/secrets/default/y").await.starts_with(b"{"));
        let (_, x) = s.get(&format!("{SECRETS}/x")).await;
        assert_eq!(
            s.call(Method::PUT, &format!("{SECRETS}/x"), &[], Some(x)).await.0,
            StatusCode::OK
        );
        assert!(raw(&store, "/registry/secrets/default/x").await.starts_with(b"{"));
    }
    // Without any configuration: plaintext reads; a value still encrypted is a clear error.
    let s = server(&store, None).await;
    assert_eq!(password(&s.get(&format!("{SECRETS}/x")).await.1), "pw");
    assert_eq!(password(&s.get(&format!("{SECRETS}/y")).await.1), "pw-y");
    let (st, err) = s.get(&format!("{SECRETS}/left-encrypted")).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(err["message"].as_str().unwrap().contains("encrypted"), "{err}");
}

#[tokio::test]
async fn wildcard_configs_encrypt_every_resource_and_the_server_still_works() {
    let store = Arc::new(MemStorage::new());
    let all = config("[\"*.*\"]", &[keyed("secretbox", &[("sb", KEY1)])]);
    let s = server(&store, Some(&all)).await;
    let (st, _) = s
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            deployment("web", "nginx", 2),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = s
        .post(
            "/api/v1/namespaces/default/configmaps",
            configmap("c", &[("k", "v")]),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, list) = s.get("/api/v1/namespaces").await;
    assert_eq!(st, StatusCode::OK);
    assert!(list["items"].as_array().unwrap().len() >= 4);
    let (_, d) = s.get("/apis/apps/v1/namespaces/default/deployments/web").await;
    assert_eq!(d["spec"]["replicas"], 2);
    let stored = raw_all(&store, "/registry/").await;
    assert!(stored.len() > 10);
    for (key, value) in stored {
        assert!(value.starts_with(b"k8s:enc:secretbox:v1:sb:"), "{key}");
    }
}

#[tokio::test]
async fn the_flag_loads_the_file_and_a_bad_file_stops_the_server() {
    use clap::Parser;
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        auth: apiserver::flags::AuthFlags,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption.yaml");
    let args = Args::parse_from(["x", "--encryption-provider-config", path.to_str().unwrap()]);
    let store = Arc::new(MemStorage::new());
    let start = |file: &str| {
        std::fs::write(&path, file).unwrap();
        let mut config = Config::new(dir.path()).bind(([127, 0, 0, 1], 0).into());
        args.auth.clone().apply(&mut config.auth);
        apiserver::start(config, store.clone())
    };
    let bad = config("[secrets]", &[keyed("aesgcm", &[("k", "dG9vLXNob3J0")])]);
    let err = start(&bad).await.unwrap_err().to_string();
    assert!(err.contains("encryption.yaml"), "{err}");
    assert!(
        err.contains("resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 9"),
        "{err}"
    );
    assert!(!err.contains("dG9vLXNob3J0"));
    let err = start("kind: Nope").await.unwrap_err().to_string();
    assert!(
        err.contains("error decoding encryption provider configuration file"),
        "{err}"
    );

    let good = config("[secrets]", &[keyed("secretbox", &[("k", KEY2)])]);
    let server = start(&good).await.expect("starts");
    assert!(server.api.config.encryption.is_some());
    let secrets = server.api.table.lookup("", "v1", "secrets").unwrap();
    server
        .api
        .registry
        .create(&secrets, "default", secret("via-flag", "pw"), &Default::default())
        .await
        .unwrap();
    let value = raw(&store, "/registry/secrets/default/via-flag").await;
    assert!(value.starts_with(b"k8s:enc:secretbox:v1:k:") && !contains(&value, "via-flag"));
    server.shutdown().await;
}

/// Runs kubectl off the runtime's threads; returns stdout.
async fn kubectl(k: &Arc<crate::kubectl::Kubectl>, args: &[&str]) -> String {
    let (k, args): (_, Vec<String>) = (k.clone(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        use crate::kubectl::KubectlExt;
        k.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

/// Upstream's rotation procedure with stock kubectl: write with key1, restart with
/// [key2, key1], `kubectl get secrets -o json | kubectl replace -f -`, restart with key2 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_key_rotation_follows_the_upstream_procedure() {
    let Some(bin) = conformance::tools::kubectls().into_iter().next() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption.yaml");
    let store = Arc::new(MemStorage::new());
    let start = |file: String| {
        std::fs::write(&path, file).unwrap();
        let mut config = Config::new(dir.path()).bind(([127, 0, 0, 1], 0).into());
        config.auth.encryption_provider_config = Some(path.clone());
        apiserver::start(config, store.clone())
    };
    let client = |server: &apiserver::RunningServer| {
        Arc::new(crate::kubectl::Kubectl::new(&bin, &server.kubeconfig).expect("kubectl runs"))
    };
    let key = |name: &str| format!("/registry/secrets/default/{name}");

    let server = start(config("[secrets]", &[keyed("aesgcm", &[("key1", KEY1)])]))
        .await
        .unwrap();
    let k = client(&server);
    kubectl(
        &k,
        &[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=hunter2-kubectl",
        ],
    )
    .await;
    kubectl(
        &k,
        &[
            "create",
            "secret",
            "generic",
            "api",
            "--from-literal=token=hunter2-token",
        ],
    )
    .await;
    server.shutdown().await;
    assert!(
        raw(&store, &key("db"))
            .await
            .starts_with(b"k8s:enc:aesgcm:v1:key1:")
    );

    let both = config("[secrets]", &[keyed("aesgcm", &[("key2", KEY2), ("key1", KEY1)])]);
    let server = start(both).await.unwrap();
    let k = client(&server);
    let all = kubectl(&k, &["get", "secrets", "-o", "json"]).await;
    let file = dir.path().join("secrets.json");
    std::fs::write(&file, &all).unwrap();
    kubectl(&k, &["replace", "-f", file.to_str().unwrap()]).await;
    server.shutdown().await;
    for name in ["db", "api"] {
        let value = raw(&store, &key(name)).await;
        assert!(value.starts_with(b"k8s:enc:aesgcm:v1:key2:"), "{name}");
        assert!(!contains(&value, "hunter2"));
    }

    let server = start(config("[secrets]", &[keyed("aesgcm", &[("key2", KEY2)])]))
        .await
        .unwrap();
    let k = client(&server);
    let out = kubectl(&k, &["get", "secret", "db", "-o", "jsonpath={.data.password}"]).await;
    assert_eq!(out, b64("hunter2-kubectl"));
    server.shutdown().await;
}
