//! `componentstatuses` with real probes: a tiny HTTPS `/healthz` server stands in for the
//! scheduler (Healthy), nothing listens for the controller manager (Unhealthy with upstream's
//! message), and the store is `etcd-0`; read with kube-rs and with stock `kubectl get cs`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ComponentStatus;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::kube_client::Running;
use crate::kubectl::{Kubectl, KubectlExt};

/// An HTTPS server answering every request with 200 `ok` (a self-signed certificate, as the
/// components serve by default); stops when the returned task is aborted.
async fn healthz_server() -> (u16, tokio::task::JoinHandle<()>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, task)
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn start(scheduler: u16, controller_manager: u16) -> Running {
    Running::start_with(|c| {
        c.components = vec![
            apiserver::componentstatus::ComponentProbe {
                name: "scheduler".into(),
                url: format!("https://127.0.0.1:{scheduler}/healthz"),
            },
            apiserver::componentstatus::ComponentProbe {
                name: "controller-manager".into(),
                url: format!("https://127.0.0.1:{controller_manager}/healthz"),
            },
        ];
    })
    .await
}

fn healthy(cs: &ComponentStatus) -> (String, Option<String>, Option<String>) {
    let c = &cs.conditions.as_ref().unwrap()[0];
    assert_eq!(c.type_, "Healthy");
    (c.status.clone(), c.message.clone(), c.error.clone())
}

#[tokio::test]
async fn kube_rs_reads_probed_component_statuses() {
    let (port, server) = healthz_server().await;
    let down = closed_port();
    let running = start(port, down).await;
    let client = running.client().await;
    let api: Api<ComponentStatus> = Api::all(client);

    let list = api.list(&ListParams::default()).await.unwrap();
    let names: Vec<&str> = list
        .items
        .iter()
        .map(|c| c.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["controller-manager", "etcd-0", "scheduler"]);
    assert_eq!(healthy(&list.items[2]), ("True".into(), Some("ok".into()), None));
    assert_eq!(healthy(&list.items[1]), ("True".into(), Some("ok".into()), None));
    assert_eq!(
        healthy(&list.items[0]),
        (
            "False".into(),
            Some(format!(
                "Get \"https://127.0.0.1:{down}/healthz\": dial tcp 127.0.0.1:{down}: connect: connection refused"
            )),
            None
        )
    );

    let scheduler = api.get("scheduler").await.unwrap();
    assert_eq!(healthy(&scheduler).0, "True");
    let lp = ListParams::default().fields("metadata.name=etcd-0");
    let only: Vec<String> = api
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(only, ["etcd-0"]);
    match api.get("kube-proxy").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 404),
        other => panic!("{other:?}"),
    }

    // The scheduler stops: the next read says so.
    server.abort();
    let _ = server.await;
    let scheduler = api.get("scheduler").await.unwrap();
    assert_eq!(healthy(&scheduler).0, "False");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_get_cs() {
    let bins = conformance::tools::kubectls();
    if bins.is_empty() {
        return;
    }
    let (port, _server) = healthz_server().await;
    let down = closed_port();
    let running = start(port, down).await;
    let kubeconfig = running.kubeconfig();
    tokio::task::spawn_blocking(move || {
        for bin in bins {
            let k = Kubectl::new(&bin, &kubeconfig).expect("kubectl runs");
            let out = k.ok(&["get", "cs"]);
            let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
            assert_eq!(rows[0], ["NAME", "STATUS", "MESSAGE", "ERROR"], "{out}");
            assert_eq!(rows[1][..2], ["controller-manager", "Unhealthy"], "{out}");
            assert!(
                out.contains(&format!(
                    "Get \"https://127.0.0.1:{down}/healthz\": dial tcp 127.0.0.1:{down}: connect: connection refused"
                )),
                "{out}"
            );
            assert_eq!(rows[2], ["etcd-0", "Healthy", "ok"], "{out}");
            assert_eq!(rows[3], ["scheduler", "Healthy", "ok"], "{out}");
            let out = k.ok(&["get", "componentstatus", "scheduler", "-o", "jsonpath={.conditions[0].status}"]);
            assert_eq!(out, "True");
        }
    })
    .await
    .unwrap();
}
