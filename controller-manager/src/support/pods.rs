//! Pod facts the endpoint controllers share (upstream `podutil` and `endpointslice/util`):
//! readiness, whether a pod belongs in a Service's endpoints, its IP of a family, named ports,
//! and Service selectors.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip` (anything with a colon is IPv6).
    pub fn of(ip: &str) -> Family {
        if ip.contains(':') { Family::V6 } else { Family::V4 }
    }

    /// The EndpointSlice `addressType`.
    pub fn address_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Upstream `IsPodReady`: the `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// True once the pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Upstream `ShouldPodBeInEndpoints`: not terminal (as its restart policy decides), has an IP,
/// and, unless `include_terminating`, not being deleted.
pub fn belongs_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let terminal = match restart {
        "Never" => matches!(phase(pod), "Failed" | "Succeeded"),
        "OnFailure" => phase(pod) == "Succeeded",
        _ => false,
    };
    if terminal || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || !is_terminating(pod)
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`).
pub fn pod_ips(pod: &Pod) -> Vec<&str> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !ips.is_empty() {
        return ips;
    }
    status
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

/// The pod's IP of `family`, if it has one.
pub fn pod_ip(pod: &Pod, family: Family) -> Option<&str> {
    pod_ips(pod).into_iter().find(|ip| Family::of(ip) == family)
}

/// The Service's IP families: `spec.ipFamilies`, else its cluster IP's, else IPv4.
pub fn service_families(svc: &Service) -> Vec<Family> {
    let spec = svc.spec.as_ref();
    let declared: Vec<Family> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    if !declared.is_empty() {
        return declared;
    }
    match spec.and_then(|s| s.cluster_ip.as_deref()) {
        Some(ip) if ip != "None" && !ip.is_empty() => vec![Family::of(ip)],
        _ => vec![Family::V4],
    }
}

/// True for a headless Service (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The Service's selector, `None` when it has none (its endpoints are managed by hand).
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref()
}

/// True when the pod's labels carry every `key: value` of `selector`.
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Upstream `FindPort`: the container port a Service port targets on this pod (a named
/// `targetPort` is looked up among the pod's container ports of the same protocol; a number is
/// taken as is; no `targetPort` means `port`).
pub fn find_port(pod: &Pod, port: &ServicePort) -> Result<i32, String> {
    match &port.target_port {
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    format!(
                        "no suitable port for manifest: {}",
                        pod.metadata.uid.as_deref().unwrap_or("")
                    )
                })
        }
        Some(IntOrString::Int(n)) if *n != 0 => Ok(*n),
        _ => Ok(port.port),
    }
}

/// The pod's hostname in a Service's endpoints: `spec.hostname` when `spec.subdomain` names the
/// Service (in the same namespace).
pub fn endpoint_hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| hostname.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus};
    use kube::api::ObjectMeta;

    /// A pod in `default` with `ip`, readiness and named container ports.
    pub fn pod(name: &str, ip: &str, ready: bool, ports: &[(&str, i32)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(
                        ports
                            .iter()
                            .map(|(n, p)| ContainerPort {
                                name: Some(n.to_string()),
                                container_port: *p,
                                ..ContainerPort::default()
                            })
                            .collect(),
                    ),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
                pod_ips: (!ip.is_empty()).then(|| vec![PodIP { ip: ip.into() }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let p = pod("a", "10.0.0.1", true, &[("http", 8080)]);
        let named = ServicePort {
            port: 80,
            target_port: Some(IntOrString::String("http".into())),
            ..ServicePort::default()
        };
        assert_eq!(find_port(&p, &named), Ok(8080));
        let udp = ServicePort {
            protocol: Some("UDP".into()),
            ..named
        };
        assert!(find_port(&p, &udp).is_err());
        let numbered = ServicePort {
            port: 80,
            target_port: Some(IntOrString::Int(9090)),
            ..ServicePort::default()
        };
        assert_eq!(find_port(&p, &numbered), Ok(9090));
        let bare = ServicePort {
            port: 80,
            ..ServicePort::default()
        };
        assert_eq!(find_port(&p, &bare), Ok(80));
    }

    #[test]
    fn terminal_ipless_and_deleting_pods_are_left_out_as_upstream() {
        let mut p = pod("a", "10.0.0.1", true, &[]);
        assert!(belongs_in_endpoints(&p, false));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        assert!(!belongs_in_endpoints(&p, false));
        assert!(belongs_in_endpoints(&p, true));
        let mut done = pod("b", "10.0.0.2", false, &[]);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(
            belongs_in_endpoints(&done, false),
            "restartPolicy Always: never terminal"
        );
        done.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        assert!(!belongs_in_endpoints(&done, false));
        assert!(!belongs_in_endpoints(&pod("c", "", true, &[]), true));
    }
}
