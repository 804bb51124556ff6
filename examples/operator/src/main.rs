//! The StaticSite operator: installs its CRD and runs the controller against the cluster of the
//! current kubeconfig.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let client = kube::Client::try_default().await?;
    keelson_example_operator::install_crd(&client).await?;
    keelson_example_operator::run(client).await;
    Ok(())
}
