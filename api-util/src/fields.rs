//! Field selectors (upstream `k8s.io/apimachinery/pkg/fields`): the `fieldSelector` grammar
//! (`k=v`, `k==v`, `k!=v`, comma-separated, `\` escapes) and matching against the values a
//! caller extracts for each field.

use std::fmt;

/// One requirement of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `metadata.name`.
    pub field: String,
    /// The value, unescaped.
    pub value: String,
    /// `!=` instead of `=`.
    pub negate: bool,
}

/// Why a field selector does not parse, in upstream's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Term {
        /// The whole selector.
        selector: String,
        /// The term.
        term: String,
    },
    /// `\` followed by anything but `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    Escape(String),
    /// `,` or `=` unescaped in a value.
    #[error("invalid field selector: unescaped character in value: {0}")]
    Unescaped(char),
}

/// A field selector: every requirement must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses the `fieldSelector` grammar as upstream's `fields.ParseSelector` does: terms split
    /// on unescaped commas, each at its first operator; field names are trimmed.
    pub fn parse(s: &str) -> Result<Self, FieldSelectorError> {
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            if term.is_empty() {
                continue;
            }
            let Some((field, op, value)) = split_term(term) else {
                return Err(FieldSelectorError::Term {
                    selector: s.to_string(),
                    term: term.to_string(),
                });
            };
            reqs.push(FieldRequirement {
                field: field.trim().to_string(),
                value: unescape(value)?,
                negate: op == "!=",
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value a `field=value` requirement pins, if any (`metadata.name`, `spec.nodeName`).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == field && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// True when every requirement holds, `value_of` giving each field's value (absent fields
    /// as their zero value, which the caller knows).
    pub fn matches_with<S: AsRef<str>>(&self, mut value_of: impl FnMut(&str) -> S) -> bool {
        self.0
            .iter()
            .all(|r| (value_of(&r.field).as_ref() == r.value) != r.negate)
    }
}

impl fmt::Display for FieldSelector {
    /// The selector string, values escaped (upstream's `Selector.String`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if r.negate { "!=" } else { "=" };
            write!(f, "{}{op}{}", r.field, escape(&r.value))?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` in a value (upstream's `EscapeValue`).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas not escaped by a backslash (escapes are kept for [`unescape`]).
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Splits a term at the earliest operator (`!=`, `==`, `=`).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// Upstream's `UnescapeValue`: `\\`, `\,`, `\=` are escapes; anything else after `\`, or an
/// unescaped `,` or `=`, is an error.
fn unescape(s: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError::Escape(format!("\\{c}")));
            }
            out.push(c);
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' || c == '=' {
            return Err(FieldSelectorError::Unescaped(c));
        } else {
            out.push(c);
        }
    }
    if in_slash {
        return Err(FieldSelectorError::Escape("\\".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed,metadata.name==p").unwrap();
        assert_eq!(s.0.len(), 3);
        assert_eq!(s.exact("metadata.name"), Some("p"));
        assert_eq!(s.exact("status.phase"), None);
        let values = |f: &str| match f {
            "spec.nodeName" => "n1",
            "status.phase" => "Running",
            "metadata.name" => "p",
            _ => "",
        };
        assert!(s.matches_with(values));
        assert!(!s.matches_with(|f| if f == "status.phase" { "Failed" } else { values(f) }));
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse("a=,").unwrap().matches_with(|_| ""));
    }

    #[test]
    fn escapes() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(s.0[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(
            FieldSelector::parse("nonsense").unwrap_err().to_string(),
            "invalid selector: 'nonsense'; can't understand 'nonsense'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err(),
            FieldSelectorError::Escape(r"\x".into())
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            FieldSelectorError::Unescaped('=')
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err(),
            FieldSelectorError::Escape(r"\".into())
        );
    }

    #[test]
    fn first_operator_wins() {
        let s = FieldSelector::parse("a!=b").unwrap();
        assert!(s.0[0].negate && s.0[0].field == "a" && s.0[0].value == "b");
        let s = FieldSelector::parse("a==b").unwrap();
        assert!(!s.0[0].negate && s.0[0].value == "b");
    }
}
