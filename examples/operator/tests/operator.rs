//! The StaticSite operator against an in-process Keelson API server: it installs its CRD, a
//! site reaches Ready with its ConfigMap and Deployment, a spec change is applied, an event is
//! recorded, and deleting the site runs the finalizer that removes the owned objects.

mod scenario;

use std::collections::BTreeMap;

use apiserver::testing::TestServer;
use keelson_example_operator::{StaticSite, StaticSiteSpec, install_crd};
use kube::api::{Api, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_reaches_ready_and_cleans_up() {
    let server = TestServer::start().await.unwrap();
    scenario::site_lifecycle(server.client(), false).await;
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_sites_are_rejected_by_the_schema() {
    let server = TestServer::start().await.unwrap();
    install_crd(&server.client()).await.unwrap();
    let sites: Api<StaticSite> = Api::default_namespaced(server.client());
    let site = StaticSite::new(
        "big",
        StaticSiteSpec {
            pages: BTreeMap::new(),
            replicas: 50,
            image: None,
        },
    );
    let err = sites.create(&PostParams::default(), &site).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains(
            "spec.replicas: Invalid value: 50: spec.replicas in body should be less than or equal to 20"
        ),
        "{}",
        status.message
    );
}
