//! Label and field selectors of requests: the shared grammar and matching of [`api_util::labels`]
//! and [`api_util::fields`], with the API server's checks (selectable fields, read through each
//! type's [`crate::field_set`]) and errors.

use serde_json::Value;

use crate::descriptor::ResourceDescriptor;
use crate::error::ApiError;
use crate::field_set::FieldValue;

pub use api_util::fields::FieldRequirement;
pub use api_util::labels::{LabelRequirement, LabelSelector};

impl From<api_util::labels::SelectorError> for ApiError {
    /// A `labelSelector` that does not parse is a 400, in upstream's words.
    fn from(e: api_util::labels::SelectorError) -> ApiError {
        ApiError::bad_request(format!("unable to parse requirement: {e}"))
    }
}

/// One requirement of a field selector and where its field's value comes from in an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedField {
    /// The parsed requirement.
    pub requirement: FieldRequirement,
    /// How the object's value of the field is read (absent fields read as their zero value).
    pub source: FieldValue,
}

/// A field selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<SelectedField>);

impl FieldSelector {
    /// Parses the `fieldSelector` grammar ([`api_util::fields`]) and checks every field is
    /// selectable on `desc`, refusing others in upstream's words for the kind.
    pub fn parse(s: &str, desc: &ResourceDescriptor) -> Result<Self, ApiError> {
        let parsed =
            api_util::fields::FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut out = Vec::with_capacity(parsed.0.len());
        for requirement in parsed.0 {
            let Some(source) = desc.selectable_fields.source(&requirement.field).cloned() else {
                return Err(ApiError::bad_request(desc.selectable_fields.refusal.message(
                    &requirement.field,
                    &desc.group,
                    &desc.version,
                    &desc.kind,
                )));
            };
            out.push(SelectedField { requirement, source });
        }
        Ok(FieldSelector(out))
    }

    /// A requirement that the object's `metadata.name` is `name` (a request for one object).
    pub fn require_name(&mut self, name: &str) {
        self.0.push(SelectedField {
            requirement: FieldRequirement {
                field: "metadata.name".into(),
                value: name.to_string(),
                negate: false,
            },
            source: FieldValue::Text("metadata.name".into()),
        });
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name a `metadata.name=x` requirement pins, if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .map(|f| &f.requirement)
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// True when every requirement holds for `obj` (missing fields read as their type's zero
    /// value, see [`crate::field_set`]).
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|f| (f.source.read(obj) == f.requirement.value) != f.requirement.negate)
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
        // Absent fields read as their zero values.
        let s = FieldSelector::parse("spec.hostNetwork=false,status.podIP=", pods).unwrap();
        assert!(s.matches_object(&json!({"metadata": {"name": "q"}})));
        let nodes = rows.iter().find(|d| d.resource == "nodes").unwrap();
        for sel in ["spec.unschedulable=false", "spec.unschedulable!=true"] {
            let s = FieldSelector::parse(sel, nodes).unwrap();
            assert!(
                s.matches_object(&json!({"metadata": {"name": "n"}, "spec": {}})),
                "{sel}"
            );
            assert!(
                !s.matches_object(&json!({"spec": {"unschedulable": true}})),
                "{sel}"
            );
        }
        let err = FieldSelector::parse("metadata.namespace=a", nodes).unwrap_err();
        assert_eq!(err.message(), "field label not supported: metadata.namespace");
        let cms = rows.iter().find(|d| d.resource == "configmaps").unwrap();
        let s = FieldSelector::parse(r"metadata.name=a\,b", cms).unwrap();
        assert_eq!(s.0[0].requirement.value, "a,b");
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
