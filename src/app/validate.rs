//! Coder's limits on what the API accepts, as functions that answer
//! `Error::Invalid` (a 400) naming the field: names (users, workspaces, templates), template version
//! names, display names, real names, descriptions, provisioner tags and the
//! number of `rich_parameter_values`. NUL in any JSON text is refused for
//! every body by [`reject_nul`], which the `Body` extractor calls.
//!
//! The rules follow Coder's `codersdk/name.go` and its request limits; the
//! code and messages are ours. Whether a parameter is declared by the
//! template is checked where builds are queued (`app/builds.rs`).

use std::collections::BTreeMap;

use super::{Error, Result};

/// Longest user, workspace or template name (Coder's `NameValid`).
pub const MAX_NAME: usize = 32;
/// Longest template version name (Coder's `TemplateVersionNameValid`).
pub const MAX_VERSION_NAME: usize = 64;
/// Longest display name (Coder's `DisplayNameValid`).
pub const MAX_DISPLAY_NAME: usize = 64;
/// Longest user real name (Coder's `UserRealNameValid`).
pub const MAX_REAL_NAME: usize = 128;
/// Longest template description (Coder's `CreateTemplateRequest`).
pub const MAX_DESCRIPTION: usize = 128;
/// Longest template version message (Coder's `CreateTemplateVersionRequest`).
pub const MAX_MESSAGE: usize = 1 << 20;
/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// Most provisioner tags on one version or key.
pub const MAX_TAGS: usize = 64;
/// Longest tag key and value.
pub const MAX_TAG_KEY: usize = 128;
pub const MAX_TAG_VALUE: usize = 256;
/// Most `rich_parameter_values` (or `user_variable_values`) in one request.
/// Templates declare far fewer; the bound keeps one request's work small.
pub const MAX_VALUES: usize = 256;

/// Coder's name rule: 1-32 ASCII letters or digits in groups joined by
/// single hyphens, and not `new` or `create` (they clash with routes).
pub fn name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, format!("{field} is required")));
    }
    if value.len() > MAX_NAME {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {MAX_NAME} characters, not {}", value.len()),
        ));
    }
    if value == "new" || value == "create" {
        return Err(Error::invalid(
            field,
            format!("{value:?} is reserved: choose another {field}"),
        ));
    }
    if !groups_joined_by(value, |c| c == '-') {
        return Err(Error::invalid(
            field,
            format!(
                "{value:?} is not a valid {field}: use letters and digits, with single \
                 hyphens between them (not at the start or end)"
            ),
        ));
    }
    Ok(())
}

/// Coder's template version name rule: up to 64 letters or digits in
/// groups joined by single `_`, `.` or `-`.
pub fn version_name(field: &str, value: &str) -> Result<()> {
    if value.len() > MAX_VERSION_NAME {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {MAX_VERSION_NAME} characters, not {}", value.len()),
        ));
    }
    if !groups_joined_by(value, |c| matches!(c, '-' | '_' | '.')) {
        return Err(Error::invalid(
            field,
            format!(
                "{value:?} is not a valid {field}: use letters and digits, with single \
                 '-', '_' or '.' between them"
            ),
        ));
    }
    Ok(())
}

/// Non-empty groups of ASCII letters and digits separated by exactly one
/// separator character.
fn groups_joined_by(value: &str, is_separator: impl Fn(char) -> bool) -> bool {
    !value.is_empty()
        && value
            .split(is_separator)
            .all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Coder's display name rule: empty, or at most 64 characters that neither
/// start nor end with whitespace.
pub fn display_name(field: &str, value: &str) -> Result<()> {
    max_len(field, value, MAX_DISPLAY_NAME)?;
    trimmed(field, value)
}

/// Coder's real name rule: at most 128 characters, no surrounding whitespace.
pub fn real_name(field: &str, value: &str) -> Result<()> {
    max_len(field, value, MAX_REAL_NAME)?;
    trimmed(field, value)
}

/// At most `max` characters (Unicode scalar values, as Coder's UI counts).
pub fn max_len(field: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {max} characters, not {n}"),
        ));
    }
    Ok(())
}

fn trimmed(field: &str, value: &str) -> Result<()> {
    if value.trim() != value {
        return Err(Error::invalid(
            field,
            format!("{field} must not start or end with whitespace"),
        ));
    }
    Ok(())
}

/// An email address: something before and after one `@`, no whitespace.
pub fn email(field: &str, value: &str) -> Result<()> {
    let ok = value.len() <= MAX_EMAIL
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{field} must be an email address such as user@example.com"),
        ))
    }
}

/// Provisioner tags: at most 64; keys of letters, digits and `-_.:/`, up to
/// 128 characters; values up to 256 printable characters. The daemons
/// match tags exactly, so anything unprintable could only ever mismatch.
pub fn tags(field: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_TAGS} tags are allowed, not {}", tags.len()),
        ));
    }
    for (key, value) in tags {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_TAG_KEY
            && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
        if !key_ok {
            return Err(Error::invalid(
                &format!("{field}.{key}"),
                format!(
                    "tag key {key:?} is invalid: use 1-{MAX_TAG_KEY} letters, digits, \
                     '-', '_', '.', ':' or '/'"
                ),
            ));
        }
        if value.chars().count() > MAX_TAG_VALUE || value.chars().any(char::is_control) {
            return Err(Error::invalid(
                &format!("{field}.{key}"),
                format!(
                    "the value of tag {key:?} must be at most {MAX_TAG_VALUE} characters \
                     without control characters"
                ),
            ));
        }
    }
    Ok(())
}

/// A bounded list of name/value pairs with each name given once.
pub fn values(field: &str, names: &[&str]) -> Result<()> {
    if names.len() > MAX_VALUES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_VALUES} values are allowed, not {}", names.len()),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        if !seen.insert(*n) {
            return Err(Error::invalid(
                &format!("{field}[{i}].name"),
                format!("{n:?} is given more than once"),
            ));
        }
    }
    Ok(())
}

/// Refuses NUL anywhere in a JSON document's strings (keys included):
/// SQLite and PostgreSQL text cannot hold it faithfully and no name,
/// description or value needs it. The field is named by its JSON path.
pub fn reject_nul(value: &serde_json::Value) -> Result<()> {
    match find_nul(value, String::new()) {
        None => Ok(()),
        Some(path) => {
            let field = if path.is_empty() { "body".to_owned() } else { path };
            Err(Error::invalid(&field, format!("{field} must not contain NUL characters")))
        }
    }
}

fn find_nul(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then_some(path),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| find_nul(v, format!("{path}[{i}]")))
        }
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            if k.contains('\0') {
                return Some(here);
            }
            find_nul(v, here)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_coders_rule() {
        for ok in ["a", "a-b", "A1-b2-c3", "x".repeat(32).as_str()] {
            assert!(name("name", ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "-a", "a-", "a--b", "a_b", "a b", "é", "new", "create"] {
            assert!(name("name", bad).is_err(), "{bad:?}");
        }
        assert!(name("name", &"x".repeat(33)).is_err());
    }

    #[test]
    fn version_names_allow_dots_and_underscores() {
        assert!(version_name("name", "v1.2_3-rc").is_ok());
        for bad in ["", ".v", "v..1", "v 1", "v1."] {
            assert!(version_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(version_name("name", &"v".repeat(65)).is_err());
    }

    #[test]
    fn display_and_real_names() {
        assert!(display_name("display_name", "").is_ok());
        assert!(display_name("display_name", "My Template").is_ok());
        assert!(display_name("display_name", " padded").is_err());
        assert!(display_name("display_name", &"é".repeat(64)).is_ok(), "counts characters");
        assert!(display_name("display_name", &"x".repeat(65)).is_err());
        assert!(real_name("name", &"x".repeat(128)).is_ok());
        assert!(real_name("name", &"x".repeat(129)).is_err());
        assert!(real_name("name", "trailing ").is_err());
    }

    #[test]
    fn emails() {
        assert!(email("email", "a@b.c").is_ok());
        for bad in ["", "a", "@b", "a@", "a@b@c", "a b@c"] {
            assert!(email("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tag_rules() {
        let t = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(tags("tags", &t("scope", "organization")).is_ok());
        assert!(tags("tags", &t("os", "")).is_ok());
        let e = tags("tags", &t("bad key", "x")).expect_err("space in key");
        assert_eq!(e.validations()[0].field, "tags.bad key");
        assert!(tags("tags", &t("", "x")).is_err());
        assert!(tags("tags", &t("os", "li\nnux")).is_err());
        assert!(tags("tags", &t("os", &"x".repeat(257))).is_err());
        let many: BTreeMap<_, _> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(tags("tags", &many).is_err());
    }

    #[test]
    fn value_lists_are_bounded_and_unique() {
        assert!(values("v", &["a", "b"]).is_ok());
        let e = values("v", &["a", "b", "a"]).expect_err("duplicate");
        assert_eq!(e.validations()[0].field, "v[2].name");
        let many: Vec<String> = (0..=MAX_VALUES).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(values("v", &refs).is_err());
    }

    #[test]
    fn nul_is_found_by_path() {
        let v = serde_json::json!({"name": "ok", "list": [{"value": "a\u{0}b"}]});
        let e = reject_nul(&v).expect_err("nul");
        assert_eq!(e.validations()[0].field, "list[0].value");
        assert!(reject_nul(&serde_json::json!({"k\u{0}": 1})).is_err(), "keys too");
        assert!(reject_nul(&serde_json::json!({"name": "fine", "n": 1})).is_ok());
    }
}
