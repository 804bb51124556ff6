//! Static bearer tokens (`--token-auth-file`): CSV lines `token,user,uid,"group1,group2"`, the
//! groups column optional, further columns ignored.

use std::collections::HashMap;
use std::path::Path;

use super::AuthError;
use crate::registry::subresource::UserInfo;

/// The users of a token file, by token.
#[derive(Clone, Debug, Default)]
pub struct StaticTokens(HashMap<String, UserInfo>);

/// Splits one CSV record: commas separate fields, double quotes enclose fields that hold commas,
/// `""` inside quotes is a quote, leading spaces are trimmed.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(_) => return Err("extraneous characters after a quoted field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break,
                    Some('"') => return Err("bare \" in a non-quoted field".into()),
                    Some(c) => field.push(c),
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                }
            }
        }
        fields.push(field);
    }
}

impl StaticTokens {
    /// Parses a token file's contents (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<StaticTokens, AuthError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let err = |reason: String| AuthError::TokenFile {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let fields = csv_fields(line).map_err(err)?;
            if fields.len() < 3 {
                return Err(err(format!(
                    "must have at least 3 columns (token, user name, user uid), found {}",
                    fields.len()
                )));
            }
            if fields[0].is_empty() {
                return Err(err("the token is empty".into()));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
                ..Default::default()
            };
            if users.insert(fields[0].clone(), user).is_some() {
                tracing::warn!(path = %path.display(), line = i + 1, "duplicate token; the last one wins");
            }
        }
        Ok(StaticTokens(users))
    }

    /// Reads a token file.
    pub fn load(path: &Path) -> Result<StaticTokens, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        StaticTokens::parse(&text, path)
    }

    /// The user a token belongs to.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        self.0.get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_format() {
        let text = "tok1,alice,u1,\"devs,ops\"\n\ntok2,bob,u2\ntok3, carol ,u3,single,ignored\n";
        let t = StaticTokens::parse(text, Path::new("t.csv")).unwrap();
        let a = t.lookup("tok1").unwrap();
        assert_eq!((a.name.as_str(), a.uid.as_str()), ("alice", "u1"));
        assert_eq!(a.groups, ["devs", "ops"]);
        assert!(t.lookup("tok2").unwrap().groups.is_empty());
        assert_eq!(t.lookup("tok3").unwrap().groups, ["single"]);
        assert_eq!(t.lookup("tok3").unwrap().name, "carol ");
        assert!(t.lookup("nope").is_none());
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in ["tok,user", "tok,user,\"uid", "\"a\"b,user,uid", ",user,uid"] {
            let e = StaticTokens::parse(bad, Path::new("t.csv")).unwrap_err();
            assert!(e.to_string().starts_with("t.csv:1:"), "{bad}: {e}");
        }
    }
}
