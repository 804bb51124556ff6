//! The `kubernetes` service in `default` (upstream's apiserver controller): the first IP of the
//! service range, port 443 to the API server, with Endpoints naming the server's address.

use std::net::{IpAddr, SocketAddr};

use serde_json::json;

use crate::ApiServer;
use crate::error::{ApiError, ApiResult};
use crate::registry::WriteOptions;

/// Where clients reach the server: the advertised address (`host` or `host:port`) and the
/// listening port when the address names none.
fn endpoint(advertise: &str, bind: SocketAddr) -> (String, u16) {
    if let Ok(sa) = advertise.parse::<SocketAddr>() {
        return (sa.ip().to_string(), sa.port());
    }
    match advertise.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.contains(':') => {
            (host.to_string(), port.parse().unwrap_or(bind.port()))
        }
        _ if advertise.is_empty() => (bind.ip().to_string(), bind.port()),
        _ => (advertise.to_string(), bind.port()),
    }
}

async fn create_missing(api: &ApiServer, resource: &str, body: serde_json::Value) -> ApiResult<()> {
    let desc = api
        .table
        .lookup("", "v1", resource)
        .ok_or_else(|| ApiError::internal(format!("{resource} are not served")))?;
    let opts = WriteOptions {
        field_manager: "kube-apiserver".into(),
        ..WriteOptions::default()
    };
    match api.registry.create(&desc, "default", body, &opts).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason() == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Records the IPs and node ports of the stored services (a no-op for those already recorded),
/// then creates the `kubernetes` service and its Endpoints when missing.
pub async fn ensure_kubernetes_service(api: &ApiServer) -> ApiResult<()> {
    let alloc = api.registry.service_allocator();
    if let Some(services) = api.table.lookup("", "v1", "services") {
        let list = api
            .registry
            .list(&services, "", &crate::registry::ListOptions::default())
            .await?;
        for svc in list["items"].as_array().into_iter().flatten() {
            alloc.adopt(svc).await?;
        }
    }
    let (host, port) = endpoint(&api.config.advertise_address, api.config.bind);
    let first_ip = alloc.first_ip().to_string();
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    create_missing(
        api,
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": first_ip,
                "sessionAffinity": "None",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            },
        }),
    )
    .await?;
    if host.parse::<IpAddr>().is_ok() {
        create_missing(
            api,
            "endpoints",
            json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{
                    "addresses": [{"ip": host}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                }],
            }),
        )
        .await?;
    }
    tracing::debug!(cluster_ip = %first_ip, %host, port, "kubernetes service in place");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_takes_the_port_from_the_address_or_the_listener() {
        let bind: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        assert_eq!(endpoint("10.0.0.5:7443", bind), ("10.0.0.5".into(), 7443));
        assert_eq!(endpoint("10.0.0.5", bind), ("10.0.0.5".into(), 6443));
        assert_eq!(endpoint("", bind), ("127.0.0.1".into(), 6443));
        assert_eq!(endpoint("[::1]:9443", bind), ("::1".into(), 9443));
        assert_eq!(endpoint("api.example:8443", bind), ("api.example".into(), 8443));
    }
}
