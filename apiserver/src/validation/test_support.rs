//! Helpers the validation tests share.

use serde_json::Value;

use super::field::Errs;

/// Runs one check on `obj`; its errors as (field path, message) pairs.
pub fn run(check: fn(&Value, &mut Errs), obj: Value) -> Vec<(String, String)> {
    let mut errs = Errs::default();
    check(&obj, &mut errs);
    errs.0.into_iter().map(|e| (e.field, e.message)).collect()
}

/// An expected (field path, message) pair.
pub fn pair(path: &str, message: &str) -> (String, String) {
    (path.into(), message.into())
}

/// The errors as `field: message` lines.
pub fn lines(errs: &Errs) -> Vec<String> {
    errs.0
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect()
}
