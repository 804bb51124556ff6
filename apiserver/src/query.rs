//! Query parameters of resource requests, decoded and checked (bad values are 400s).

use std::time::Duration;

use crate::error::ApiError;

/// The decoded query string.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// `fieldValidation`: what to do with unknown fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the server default).
    Warn,
    /// Reject the request.
    Strict,
}

/// `resourceVersionMatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RvMatch {
    /// Not given.
    Unset,
    /// `NotOlderThan`.
    NotOlderThan,
    /// `Exact`.
    Exact,
}

impl Query {
    /// Decodes a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        Query {
            pairs: raw
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        }
    }

    /// The first value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A non-empty parameter value.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// A boolean parameter (`true`/`1`; absent is false).
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") | Some("false") | Some("0") | Some("False") => Ok(false),
            Some("true") | Some("1") | Some("True") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value for {key}: {other:?} (expected true or false)"
            ))),
        }
    }

    /// An integer parameter.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} (expected an integer)"))
            }),
        }
    }

    /// `watch`.
    pub fn watch(&self) -> Result<bool, ApiError> {
        self.flag("watch")
    }

    /// `limit` (0 when unset).
    pub fn limit(&self) -> Result<u64, ApiError> {
        Ok(self.int("limit")?.map_or(0, |l| l.max(0) as u64))
    }

    /// `resourceVersion` as a revision: `None` when unset, `Some(0)` for "0".
    pub fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self.non_empty("resourceVersion") {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid resource version {v:?}: must be an unsigned integer"
                ))
            }),
        }
    }

    /// `resourceVersionMatch`.
    pub fn rv_match(&self) -> Result<RvMatch, ApiError> {
        match self.non_empty("resourceVersionMatch") {
            None => Ok(RvMatch::Unset),
            Some("NotOlderThan") => Ok(RvMatch::NotOlderThan),
            Some("Exact") => Ok(RvMatch::Exact),
            Some(other) => Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            ))),
        }
    }

    /// `timeoutSeconds`.
    pub fn timeout(&self) -> Result<Option<Duration>, ApiError> {
        Ok(self
            .int("timeoutSeconds")?
            .map(|s| Duration::from_secs(s.max(0) as u64)))
    }

    /// `dryRun`: only `All` is known.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let values: Vec<&str> = self
            .pairs
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        match values.as_slice() {
            [] => Ok(false),
            vs if vs.iter().all(|v| *v == "All") => Ok(true),
            vs => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {:?}: supported values: \"All\"",
                vs.join(",")
            ))),
        }
    }

    /// `fieldValidation` (default `Warn`, as upstream).
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.non_empty("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_checks() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&limit=5&watch=1&dryRun=All&resourceVersion=12",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert_eq!(q.limit().unwrap(), 5);
        assert!(q.watch().unwrap());
        assert!(q.dry_run().unwrap());
        assert_eq!(q.resource_version().unwrap(), Some(12));
        assert_eq!(q.field_validation().unwrap(), FieldValidation::Warn);
        let bad = Query::parse(Some(
            "limit=x&watch=maybe&dryRun=Some&resourceVersion=-1&fieldValidation=Loud",
        ));
        assert_eq!(bad.limit().unwrap_err().code(), 400);
        assert_eq!(bad.watch().unwrap_err().code(), 400);
        assert_eq!(bad.dry_run().unwrap_err().code(), 400);
        assert_eq!(bad.resource_version().unwrap_err().code(), 400);
        assert_eq!(bad.field_validation().unwrap_err().code(), 400);
    }
}
