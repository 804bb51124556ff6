//! Label and field selectors of requests: the shared grammar and matching of [`api_util::labels`]
//! and [`api_util::fields`], with the API server's checks (selectable fields) and errors.

use serde_json::Value;

use crate::descriptor::ResourceDescriptor;
use crate::error::ApiError;

pub use api_util::fields::FieldRequirement;
pub use api_util::labels::{LabelRequirement, LabelSelector};

impl From<api_util::labels::SelectorError> for ApiError {
    /// A `labelSelector` that does not parse is a 400, in upstream's words.
    fn from(e: api_util::labels::SelectorError) -> ApiError {
        ApiError::bad_request(format!("unable to parse requirement: {e}"))
    }
}

/// A field selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses the `fieldSelector` grammar ([`api_util::fields`]) and checks every field is
    /// selectable on `desc`.
    pub fn parse(s: &str, desc: &ResourceDescriptor) -> Result<Self, ApiError> {
        let parsed =
            api_util::fields::FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if let Some(r) = parsed.0.iter().find(|r| !desc.field_selectable(&r.field)) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {}",
                r.field
            )));
        }
        Ok(FieldSelector(parsed.0))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name a `metadata.name=x` requirement pins, if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// True when every requirement holds for `obj` (missing fields read as "").
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negate
        })
    }
}

/// The string value of a dotted field path (`spec.nodeName`), "" when absent.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors() {
        let rows = crate::builtin::rows();
        let pods = rows.iter().find(|d| d.resource == "pods").unwrap();
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed,metadata.name==p", pods).unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(s.matches_object(&pod));
        assert_eq!(s.exact_name(), Some("p"));
        let s = FieldSelector::parse("spec.nodeName=", pods).unwrap();
        assert!(s.matches_object(&json!({"metadata": {"name": "q"}})));
        let err = FieldSelector::parse("spec.containers=x", pods).unwrap_err();
        assert_eq!(err.message(), "field label not supported: spec.containers");
        let cms = rows.iter().find(|d| d.resource == "configmaps").unwrap();
        let s = FieldSelector::parse(r"metadata.name=a\,b", cms).unwrap();
        assert_eq!(s.0[0].value, "a,b");
        assert!(FieldSelector::parse("nonsense", cms).is_err());
    }

    #[test]
    fn label_selector_errors_are_400() {
        let err = ApiError::from(LabelSelector::parse("a in x").unwrap_err());
        assert_eq!(err.code(), 400);
        assert!(
            err.message().starts_with("unable to parse requirement: "),
            "{}",
            err.message()
        );
    }
}
