//! The one hook point through which a row adds behaviour to the generic registry: custom
//! resources validate, default and prune against their schema; the CRD row validates CRDs.

use std::fmt::Debug;

use serde_json::Value;

use crate::error::ApiResult;

/// Where a custom `Scale` subresource reads and writes (CRD `subresources.scale`), as dotted
/// JSON paths without the leading dot (`spec.replicas`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// `specReplicasPath`.
    pub spec_replicas: String,
    /// `statusReplicasPath`.
    pub status_replicas: String,
    /// `labelSelectorPath` (a string field holding the serialized selector).
    pub label_selector: Option<String>,
}

/// Behaviour of a row beyond the generic registry. Every method has a neutral default.
pub trait ObjectHooks: Send + Sync + Debug {
    /// Normalizes an incoming body of a create, update or patch (after the kind check, before
    /// the registry merges it with the stored object): defaulting and pruning. Returns the
    /// strict decoding errors of the fields it pruned (`unknown field "spec.x"`), which the
    /// registry reports per `fieldValidation`.
    fn normalize(&self, _obj: &mut Value) -> ApiResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// Checks (and may adjust) the object about to be stored; `old` is the stored object on
    /// updates, None on creates.
    fn admit(&self, _obj: &mut Value, _old: Option<&Value>) -> ApiResult<()> {
        Ok(())
    }

    /// Adjusts an object being deleted before the registry decides on finalizers (adds a
    /// finalizer, sets a condition).
    fn prepare_delete(&self, _obj: &mut Value) {}

    /// Adjusts an object read from storage before it is served (defaulting on read).
    fn present(&self, _obj: &mut Value) {}

    /// Custom table columns: the column definitions, or None for the generic ones.
    fn table_columns(&self) -> Option<Vec<Value>> {
        None
    }

    /// The cells of one object for [`ObjectHooks::table_columns`].
    fn table_cells(&self, _obj: &Value) -> Vec<Value> {
        Vec::new()
    }

    /// Custom scale paths, or None for `spec.replicas` / `status.replicas` / `spec.selector`.
    fn scale_paths(&self) -> Option<ScalePaths> {
        None
    }
}
