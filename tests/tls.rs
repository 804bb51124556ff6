//! The etcd API over TLS with client-certificate authentication.
#![cfg(feature = "raft")]

mod common;

use common::*;

#[test]
fn https_client_urls_require_a_client_certificate() {
    let mut spec = MemberSpec::new("secure", Backend::from_env());
    spec.client_url = "https://127.0.0.1:0".into();
    let m = spec.start();
    assert!(m.client_url.starts_with("https://127.0.0.1:"), "{}", m.client_url);
    let pki = m.data_dir.join("pki");
    let (ca, cert, key) = (pki.join("ca.crt"), pki.join("client.crt"), pki.join("client.key"));
    let tls = [
        format!("--cacert={}", ca.display()),
        format!("--cert={}", cert.display()),
        format!("--key={}", key.display()),
    ];
    let with_tls = |args: &[&str]| {
        let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        etcdctl(&m, &all)
    };
    assert_eq!(with_tls(&["put", "secret", "s3"]).ok(), "OK\n");
    assert_eq!(with_tls(&["get", "secret"]).ok(), "secret\ns3\n");
    // Endpoints written as URLs: etcdctl sends the URL as the `:authority` of this call.
    let mut status_args: Vec<&str> = tls.iter().map(String::as_str).collect();
    status_args.extend(["endpoint", "status"]);
    let status = run_cmd(etcdctl_cmd(&m.client_url, &status_args)).ok();
    assert!(status.starts_with(&format!("{}, ", m.client_url)), "{status}");

    // Without a client certificate the handshake is refused.
    let out = etcdctl(
        &m,
        &[
            &format!("--cacert={}", ca.display()),
            "--dial-timeout=3s",
            "--command-timeout=3s",
            "get",
            "secret",
        ],
    );
    assert!(!out.ok, "a client without a certificate got in: {}", out.stdout);

    // keelson kv with the same files.
    let out = kv(
        &m,
        &[
            "--cacert",
            ca.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "get",
            "secret",
        ],
    );
    assert_eq!(out.ok(), "secret\ns3\n");
}
