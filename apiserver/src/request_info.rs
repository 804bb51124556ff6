//! `RequestInfo`: what a resource request is about, parsed from its path, method and query before
//! any routing to a type (upstream `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`).

use http::Method;

use crate::error::ApiError;

/// The verb of a resource request, as authorization and the registry see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection (or one object, upstream's legacy form) with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

impl Verb {
    /// Upstream's name for the verb.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Long-running verbs are exempt from request timeouts.
    pub fn is_long_running(self) -> bool {
        self == Verb::Watch
    }
}

/// A parsed resource request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// API group ("" for `/api`).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from the path ("" when none).
    pub namespace: String,
    /// The resource (plural).
    pub resource: String,
    /// The object's name ("" for collections).
    pub name: String,
    /// The subresource ("" when none).
    pub subresource: String,
    /// The verb; `None` only for methods the API does not know.
    pub verb: Option<Verb>,
}

/// Subresources of a namespace that are addressed as `/namespaces/{name}/{sub}`.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl RequestInfo {
    /// Parses `path` (starting with `/api/` or `/apis/`), `method` and whether the query asks to
    /// watch. Returns `None` when the path is not a resource path (discovery, unknown).
    pub fn parse(method: &Method, path: &str, watch_param: bool) -> Option<RequestInfo> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, mut rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
            ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
            _ => return None,
        };
        if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
            return None;
        }
        let mut info = RequestInfo {
            group,
            version,
            ..Default::default()
        };
        // Legacy `/watch/` prefix.
        let mut watch = watch_param;
        if rest[0] == "watch" {
            watch = true;
            rest = &rest[1..];
            if rest.is_empty() {
                return None;
            }
        }
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        match rest {
            [resource] => info.resource = resource.to_string(),
            [resource, name] => {
                info.resource = resource.to_string();
                info.name = name.to_string();
            }
            [resource, name, sub] => {
                info.resource = resource.to_string();
                info.name = name.to_string();
                info.subresource = sub.to_string();
            }
            _ => return None,
        }
        info.verb = match *method {
            Method::GET | Method::HEAD if watch => Some(Verb::Watch),
            Method::GET | Method::HEAD if info.name.is_empty() => Some(Verb::List),
            Method::GET | Method::HEAD => Some(Verb::Get),
            Method::POST => Some(Verb::Create),
            Method::PUT => Some(Verb::Update),
            Method::PATCH => Some(Verb::Patch),
            Method::DELETE if info.name.is_empty() => Some(Verb::DeleteCollection),
            Method::DELETE => Some(Verb::Delete),
            _ => None,
        };
        Some(info)
    }

    /// The verb, or 405 for methods the API does not know.
    pub fn verb(&self) -> Result<Verb, ApiError> {
        self.verb.ok_or_else(|| {
            ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str) -> RequestInfo {
        RequestInfo::parse(&method, path, false).unwrap_or_else(|| panic!("{path} did not parse"))
    }

    #[test]
    fn core_namespaced_paths() {
        let i = parse(Method::GET, "/api/v1/namespaces/default/pods");
        assert_eq!((i.group.as_str(), i.version.as_str()), ("", "v1"));
        assert_eq!(
            (i.namespace.as_str(), i.resource.as_str(), i.name.as_str()),
            ("default", "pods", "")
        );
        assert_eq!(i.verb, Some(Verb::List));
        let i = parse(Method::GET, "/api/v1/namespaces/default/pods/web");
        assert_eq!((i.name.as_str(), i.verb), ("web", Some(Verb::Get)));
        let i = parse(Method::PUT, "/api/v1/namespaces/default/pods/web/status");
        assert_eq!((i.subresource.as_str(), i.verb), ("status", Some(Verb::Update)));
        let i = parse(Method::POST, "/api/v1/namespaces/default/pods/web/eviction");
        assert_eq!((i.subresource.as_str(), i.verb), ("eviction", Some(Verb::Create)));
    }

    #[test]
    fn namespaces_themselves() {
        let i = parse(Method::GET, "/api/v1/namespaces");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "", "")
        );
        let i = parse(Method::DELETE, "/api/v1/namespaces/foo");
        assert_eq!((i.resource.as_str(), i.name.as_str()), ("namespaces", "foo"));
        assert_eq!(i.verb, Some(Verb::Delete));
        let i = parse(Method::PUT, "/api/v1/namespaces/foo/finalize");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("namespaces", "foo", "finalize")
        );
        let i = parse(Method::PATCH, "/api/v1/namespaces/foo/status");
        assert_eq!((i.subresource.as_str(), i.verb), ("status", Some(Verb::Patch)));
    }

    #[test]
    fn groups_cluster_scope_and_verbs() {
        let i = parse(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!(
            (i.group.as_str(), i.resource.as_str(), i.namespace.as_str()),
            ("apps", "deployments", "")
        );
        let i = parse(Method::DELETE, "/apis/apps/v1/namespaces/ns1/deployments");
        assert_eq!(i.verb, Some(Verb::DeleteCollection));
        let i = parse(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns1/deployments/web/scale",
        );
        assert_eq!((i.subresource.as_str(), i.verb), ("scale", Some(Verb::Patch)));
        let i = parse(
            Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
        );
        assert_eq!((i.resource.as_str(), i.name.as_str()), ("clusterroles", "admin"));
        let i = parse(Method::POST, "/apis/apps/v1/namespaces/ns1/deployments");
        assert_eq!(i.verb, Some(Verb::Create));
    }

    #[test]
    fn watch_by_param_and_legacy_prefix() {
        let i = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/a/configmaps", true).unwrap();
        assert_eq!(i.verb, Some(Verb::Watch));
        let i = parse(Method::GET, "/api/v1/watch/namespaces/a/configmaps");
        assert_eq!(
            (i.verb, i.namespace.as_str(), i.resource.as_str()),
            (Some(Verb::Watch), "a", "configmaps")
        );
    }

    #[test]
    fn non_resource_paths() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/healthz",
            "/api/v1/a/b/c/d",
        ] {
            assert_eq!(RequestInfo::parse(&Method::GET, p, false), None, "{p}");
        }
        let i = parse(Method::OPTIONS, "/api/v1/pods");
        assert!(i.verb().is_err());
    }
}
