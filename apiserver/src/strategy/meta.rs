//! Upstream's `ValidateObjectMeta` checks of labels and annotations: keys are qualified names
//! (an optional DNS subdomain prefix and `/`, then a name of at most 63 characters), label
//! values are at most 63 characters of the same alphabet, and all annotations together are at
//! most 256 KiB.

use serde_json::Value;

use crate::error::FieldError;

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// Upstream's `RegexError`: the message, examples and the regular expression.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name_part(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(ok_char)
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Upstream's `IsQualifiedName`: the problems with `key`, empty when it is fine.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if !is_subdomain(prefix) {
                let why = if prefix.len() > 253 {
                    "must be no more than 253 characters".to_string()
                } else {
                    regex_error(SUBDOMAIN_MSG, SUBDOMAIN_FMT, &["example.com"])
                };
                errs.push(format!("prefix part {why}"));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    if !name.is_empty() && !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Upstream's `IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// The errors of an object's `metadata.labels` and `metadata.annotations`.
pub fn validate_labels_and_annotations(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for msg in qualified_name_errors(k) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &Value::from(k.as_str()),
                    &msg,
                ));
            }
            let value = v.as_str().unwrap_or("");
            for msg in label_value_errors(value) {
                errs.push(FieldError::invalid("metadata.labels", &Value::from(value), &msg));
            }
        }
    }
    if let Some(annotations) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            for msg in qualified_name_errors(&k.to_lowercase()) {
                errs.push(FieldError::invalid(
                    "metadata.annotations",
                    &Value::from(k.as_str()),
                    &msg,
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: format!("Too long: may not be more than {TOTAL_ANNOTATION_SIZE} bytes"),
            });
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qualified_names() {
        for ok in [
            "a",
            "app.kubernetes.io/name",
            "A_b-c.9",
            "kubernetes.io/metadata.name",
        ] {
            assert!(qualified_name_errors(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            qualified_name_errors("inv@lid"),
            [
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert!(qualified_name_errors("a/b/c")[0].starts_with("a qualified name must consist"));
        assert!(qualified_name_errors("Bad_Prefix/x")[0].starts_with("prefix part a lowercase RFC 1123"));
        assert_eq!(
            qualified_name_errors(&"x".repeat(64)),
            ["name part must be no more than 63 characters"]
        );
        assert_eq!(qualified_name_errors("/x"), ["prefix part must be non-empty"]);
    }

    #[test]
    fn labels_and_annotations() {
        let obj = json!({"metadata": {
            "labels": {"ok": "", "fine": "v1.2_x", "bad key": "v", "k": "bad value!"},
            "annotations": {"Any.Case/Key": "anything at all", "no good": "x"}}});
        let errs = validate_labels_and_annotations(&obj);
        let fields: Vec<(&str, &str)> = errs
            .iter()
            .map(|e| (e.field.as_str(), e.message.split(':').nth(1).unwrap_or("").trim()))
            .collect();
        assert_eq!(
            fields,
            [
                ("metadata.labels", "\"bad key\""),
                ("metadata.labels", "\"bad value!\""),
                ("metadata.annotations", "\"no good\"")
            ]
        );
        let big = json!({"metadata": {"annotations": {"a": "x".repeat(TOTAL_ANNOTATION_SIZE)}}});
        assert_eq!(
            validate_labels_and_annotations(&big)[0].reason,
            "FieldValueTooLong"
        );
    }
}
