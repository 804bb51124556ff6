//! The audit log (`--audit-log-path`, `--audit-policy-file`): one `audit.k8s.io/v1 Event` JSON line
//! per request stage (`RequestReceived`, then `ResponseComplete`, or `ResponseStarted` for
//! watches), at the level the first matching policy rule gives (None, Metadata, Request,
//! RequestResponse). Bodies of secrets and token requests/reviews are never logged: those are
//! capped at Metadata whatever the policy says.

use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Attributes, AuthError};
use crate::registry::subresource::UserInfo;

/// How much of a request is logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    /// Nothing.
    #[default]
    None,
    /// User, verb, object reference, status.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata and both bodies.
    RequestResponse,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// A `GroupResources` entry of a policy rule.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResources {
    /// API group ("" core).
    #[serde(default)]
    pub group: String,
    /// Resources (`pods`, `pods/log`, `*/status`); empty: all of the group.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Object names; empty: all.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// One policy rule; empty lists match everything.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// The level of matching requests.
    pub level: Level,
    /// User names.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups.
    #[serde(default)]
    pub user_groups: Vec<String>,
    /// Verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Resources.
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    /// Namespaces ("" matches cluster-scoped requests).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Non-resource paths (`/healthz*`).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Stages not logged.
    #[serde(default)]
    pub omit_stages: Vec<String>,
}

/// An `audit.k8s.io/v1 Policy`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    /// Stages never logged.
    #[serde(default)]
    pub omit_stages: Vec<String>,
}

fn any_or_empty(list: &[String], f: impl Fn(&str) -> bool) -> bool {
    list.is_empty() || list.iter().any(|x| f(x))
}

impl PolicyRule {
    fn matches(&self, a: &Attributes) -> bool {
        if !any_or_empty(&self.users, |u| u == a.user.name)
            || !any_or_empty(&self.user_groups, |g| a.user.groups.iter().any(|x| x == g))
            || !any_or_empty(&self.verbs, |v| v == a.verb)
        {
            return false;
        }
        if !a.resource_request {
            return self.resources.is_empty()
                && self.namespaces.is_empty()
                && any_or_empty(&self.non_resource_urls, |p| {
                    p == a.path || p.strip_suffix('*').is_some_and(|pre| a.path.starts_with(pre))
                });
        }
        if !self.non_resource_urls.is_empty() || !any_or_empty(&self.namespaces, |n| n == a.namespace) {
            return false;
        }
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        any_or_empty_gr(&self.resources, |gr| {
            gr.group == a.group
                && any_or_empty(&gr.resources, |r| {
                    r == "*"
                        || r == combined
                        || r.strip_prefix("*/").is_some_and(|s| s == a.subresource)
                        || r.strip_suffix("/*").is_some_and(|res| res == a.resource)
                })
                && any_or_empty(&gr.resource_names, |n| n == a.name)
        })
    }
}

fn any_or_empty_gr(list: &[GroupResources], f: impl Fn(&GroupResources) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

impl Policy {
    /// Parses a policy file (YAML or JSON).
    pub fn parse(text: &str, path: &Path) -> Result<Policy, AuthError> {
        serde_yaml_ng::from_str(text).map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))
    }

    /// The level and omitted stages for a request.
    pub fn decide(&self, a: &Attributes) -> (Level, Vec<String>) {
        let Some(rule) = self.rules.iter().find(|r| r.matches(a)) else {
            return (Level::None, Vec::new());
        };
        let mut level = rule.level;
        let sensitive = a.resource_request
            && a.group.is_empty()
            && (a.resource == "secrets" || (a.resource == "serviceaccounts" && a.subresource == "token"))
            || a.group == "authentication.k8s.io";
        if sensitive {
            level = level.min(Level::Metadata);
        }
        let mut omit = self.omit_stages.clone();
        omit.extend(rule.omit_stages.iter().cloned());
        (level, omit)
    }
}

/// Writes audit events to a file.
pub struct Logger {
    policy: Policy,
    file: Mutex<std::fs::File>,
    path: PathBuf,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn timestamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// One request being audited.
#[derive(Clone, Debug)]
pub struct Record {
    /// The level.
    pub level: Level,
    omit: Vec<String>,
    event: Value,
}

impl Logger {
    /// Opens (appending) the log and reads the policy.
    pub fn open(log: &Path, policy: &Path) -> Result<Logger, AuthError> {
        let text = std::fs::read_to_string(policy).map_err(|source| AuthError::Io {
            path: policy.to_path_buf(),
            source,
        })?;
        let policy = Policy::parse(&text, policy)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| AuthError::Io {
                path: log.to_path_buf(),
                source,
            })?;
        Ok(Logger {
            policy,
            file: Mutex::new(file),
            path: log.to_path_buf(),
        })
    }

    /// Starts the record of a request and writes its `RequestReceived` event.
    pub fn begin(
        &self,
        a: &Attributes,
        uri: &str,
        user_agent: &str,
        source_ips: Vec<String>,
    ) -> Option<Record> {
        let (level, omit) = self.policy.decide(a);
        if level == Level::None {
            return None;
        }
        let mut event = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1",
            "level": level.as_str(),
            "auditID": uuid::Uuid::new_v4().to_string(),
            "requestURI": uri,
            "verb": a.verb,
            "user": a.user.to_json(),
            "sourceIPs": source_ips,
            "userAgent": user_agent,
            "requestReceivedTimestamp": timestamp(),
        });
        if a.resource_request {
            let mut obj = json!({"resource": a.resource, "apiGroup": a.group, "apiVersion": a.version});
            for (k, v) in [
                ("namespace", &a.namespace),
                ("name", &a.name),
                ("subresource", &a.subresource),
            ] {
                if !v.is_empty() {
                    obj[k] = json!(v);
                }
            }
            event["objectRef"] = obj;
        }
        let record = Record { level, omit, event };
        self.write(&record, "RequestReceived", None);
        Some(record)
    }

    /// Writes a stage of a record, with the response code when known.
    pub fn write(&self, record: &Record, stage: &str, code: Option<u16>) {
        if record.omit.iter().any(|s| s == stage) {
            return;
        }
        let mut event = record.event.clone();
        event["stage"] = json!(stage);
        event["stageTimestamp"] = json!(timestamp());
        if let Some(code) = code {
            event["responseStatus"] = json!({"metadata": {}, "code": code});
        }
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = self.file.lock().write_all(&line) {
            tracing::warn!(path = %self.path.display(), error = %e, "writing the audit log failed");
        }
    }
}

impl Record {
    /// Adds the authorization decision annotations.
    pub fn decision(&mut self, allowed: bool) {
        self.event["annotations"] =
            json!({"authorization.k8s.io/decision": if allowed { "allow" } else { "forbid" }});
    }

    /// Adds the request body (level Request and above, JSON bodies only).
    pub fn request_object(&mut self, body: &[u8]) {
        if self.level >= Level::Request
            && let Ok(v) = serde_json::from_slice::<Value>(body)
        {
            self.event["requestObject"] = v;
        }
    }

    /// Adds the response body (level RequestResponse, JSON bodies only).
    pub fn response_object(&mut self, body: &[u8]) {
        if self.level >= Level::RequestResponse
            && let Ok(v) = serde_json::from_slice::<Value>(body)
        {
            self.event["responseObject"] = v;
        }
    }

    /// Replaces the user (after authentication or impersonation).
    pub fn set_user(&mut self, user: &UserInfo) {
        self.event["user"] = user.to_json();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(user: &str, verb: &str, group: &str, resource: &str, ns: &str) -> Attributes {
        Attributes {
            user: UserInfo {
                name: user.into(),
                groups: vec!["system:authenticated".into()],
                ..Default::default()
            },
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn policy_first_match_and_secret_cap() {
        let policy = Policy::parse(
            r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-proxy"]
- level: RequestResponse
  resources: [{group: "", resources: ["secrets", "configmaps"]}]
- level: Metadata
  nonResourceURLs: ["/healthz*"]
- level: Request
  namespaces: ["team"]
"#,
            Path::new("p.yaml"),
        )
        .unwrap();
        assert_eq!(
            policy
                .decide(&attrs("system:kube-proxy", "get", "", "configmaps", "d"))
                .0,
            Level::None
        );
        assert_eq!(
            policy.decide(&attrs("a", "get", "", "configmaps", "d")).0,
            Level::RequestResponse
        );
        assert_eq!(
            policy.decide(&attrs("a", "get", "", "secrets", "d")).0,
            Level::Metadata
        );
        assert_eq!(
            policy
                .decide(&attrs("a", "list", "apps", "deployments", "team"))
                .0,
            Level::Request
        );
        assert_eq!(
            policy
                .decide(&attrs("a", "list", "apps", "deployments", "other"))
                .0,
            Level::None
        );
        let mut health = attrs("a", "get", "", "", "");
        health.resource_request = false;
        health.path = "/healthz/ready".into();
        let (level, omit) = policy.decide(&health);
        assert_eq!(
            (level, omit),
            (Level::Metadata, vec!["RequestReceived".to_string()])
        );
    }
}
