//! The root CA publisher: `kube-root-ca.crt` in every namespace, restored when changed or
//! deleted.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use controller_manager::root_ca::{self, CONFIG_MAP_NAME, DESCRIPTION, RootCaConfig};

use crate::poll::{Running, until};

#[tokio::test]
async fn every_namespace_gets_the_root_ca_and_keeps_it() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let pem = std::fs::read_to_string(server.data_dir().join("pki").join("ca.crt")).expect("the server's CA");
    let c = client.clone();
    let config = RootCaConfig::new(pem.clone().into_bytes());
    let publisher = Running::spawn(move |t| root_ca::run(c, config, t));
    crate::poll::namespace(&client, "fresh").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fresh");
    let published = || async {
        let cm = cms.get_opt(CONFIG_MAP_NAME).await.unwrap()?;
        (cm.data.as_ref()?.get("ca.crt") == Some(&pem)).then_some(cm)
    };
    let first = until("kube-root-ca.crt in the new namespace", 30, published).await;
    assert_eq!(first.annotations()["kubernetes.io/description"], DESCRIPTION);
    // Namespaces that existed before are covered too.
    let defaults: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    until("kube-root-ca.crt in default", 30, || async {
        defaults.get_opt(CONFIG_MAP_NAME).await.unwrap()
    })
    .await;

    cms.patch(
        CONFIG_MAP_NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"ca.crt": "tampered", "extra": "x"}})),
    )
    .await
    .unwrap();
    let restored = until("the tampered ConfigMap restored", 30, || async {
        let cm = cms.get(CONFIG_MAP_NAME).await.unwrap();
        (cm.data.as_ref()?.len() == 1 && cm.data.as_ref()?.get("ca.crt") == Some(&pem)).then_some(cm)
    })
    .await;
    assert_eq!(restored.uid(), first.uid());

    cms.delete(CONFIG_MAP_NAME, &DeleteParams::default())
        .await
        .unwrap();
    let recreated = until("the deleted ConfigMap re-created", 30, || async {
        let cm = cms.get_opt(CONFIG_MAP_NAME).await.unwrap()?;
        (cm.uid() != first.uid()).then_some(cm)
    })
    .await;
    assert_eq!(recreated.data.unwrap()["ca.crt"], pem);
    publisher.stop().await;
    server.shutdown().await;
}
