//! Coder's workspace search grammar (`GET /workspaces?q=`), as a pure
//! parser: space-separated terms, each `key:value` or a bare word (matched
//! against the name); values may be double-quoted to hold spaces. Unknown
//! keys and bad values are collected, one validation per term, so the
//! caller answers them all at once.

use super::BuildStatus;

/// What a query asks for; `None` leaves that filter off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceQuery {
    /// `me` or a username.
    pub owner: Option<String>,
    /// A part of the name, any case.
    pub name: Option<String>,
    pub template: Option<String>,
    pub status: Option<BuildStatus>,
    pub deleted: bool,
    pub dormant: Option<bool>,
    pub outdated: Option<bool>,
}

/// One term the grammar refuses: the key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryIssue {
    pub field: String,
    pub detail: String,
}

/// Splits a query into terms, keeping double-quoted runs together.
fn terms(q: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for ch in q.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn boolean(key: &str, value: &str) -> Result<bool, QueryIssue> {
    value.parse().map_err(|_| QueryIssue {
        field: key.to_owned(),
        detail: format!(
            "Query param {key:?} must be a valid boolean (true or false), not {value:?}"
        ),
    })
}

impl WorkspaceQuery {
    /// Parses `q`; every refused term is reported.
    pub fn parse(q: &str) -> Result<Self, Vec<QueryIssue>> {
        let mut query = Self::default();
        let mut issues = Vec::new();
        for term in terms(q) {
            let (key, value) = match term.split_once(':') {
                Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
                None => ("name".to_owned(), term.clone()),
            };
            if let Err(issue) = query.set(&key, value) {
                issues.push(issue);
            }
        }
        if issues.is_empty() {
            Ok(query)
        } else {
            Err(issues)
        }
    }

    /// Sets one key (also used for the separate query parameters).
    pub fn set(&mut self, key: &str, value: String) -> Result<(), QueryIssue> {
        match key {
            "owner" => self.owner = Some(value),
            "name" => self.name = Some(value),
            "template" => self.template = Some(value),
            "status" => {
                let status = value.parse().map_err(|_| QueryIssue {
                    field: key.to_owned(),
                    detail: format!("Query param \"status\" has an invalid value {value:?}: use one of pending, starting, running, stopping, stopped, failed, canceling, canceled, deleting, deleted"),
                })?;
                self.status = Some(status);
            }
            "deleted" => self.deleted = boolean(key, &value)?,
            "dormant" => self.dormant = Some(boolean(key, &value)?),
            "outdated" => self.outdated = Some(boolean(key, &value)?),
            "has-agent" | "has_agent" => {
                return Err(QueryIssue {
                    field: key.to_owned(),
                    detail: "Query param \"has-agent\" is not supported: no agent connects to \
                             this server yet, so every agent would be \"connecting\""
                        .into(),
                })
            }
            other => {
                return Err(QueryIssue {
                    field: other.to_owned(),
                    detail: format!(
                        "Query param {other:?} is not a valid query param: use owner, name, \
                         template, status, deleted, dormant or outdated"
                    ),
                })
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_keys_and_bare_words() {
        let q = WorkspaceQuery::parse(
            r#"owner:me template:"my tpl" status:running dormant:false outdated:true dev"#,
        )
        .expect("valid");
        assert_eq!(
            q,
            WorkspaceQuery {
                owner: Some("me".into()),
                name: Some("dev".into()),
                template: Some("my tpl".into()),
                status: Some(BuildStatus::Running),
                deleted: false,
                dormant: Some(false),
                outdated: Some(true),
            }
        );
        assert_eq!(WorkspaceQuery::parse("  ").expect("empty"), WorkspaceQuery::default());
    }

    #[test]
    fn every_bad_term_is_reported() {
        let issues =
            WorkspaceQuery::parse("colour:red deleted:maybe status:asleep").expect_err("bad");
        let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["colour", "deleted", "status"]);
    }
}
