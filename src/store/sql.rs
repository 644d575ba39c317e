//! SQL both backends share word for word: the latest build's status and
//! whether it is outdated, as subqueries over a workspace row `w`, so the
//! workspace filters of SQLite and PostgreSQL cannot drift apart. Both
//! spell the domain's rules (`Job::status`, `domain::build_status`), which
//! the conformance suite checks them against.

/// `domain::build_speaks_for_workspace` of a build's job `j`: not a dry
/// run that ended. The stored job input is compact JSON with sorted keys,
/// `dry_run` first (pinned byte for byte by `store/stored/tests.rs`), so
/// one text prefix says "dry run" on both backends.
macro_rules! speaks {
    () => {
        r#"NOT (j.completed_at IS NOT NULL AND j.input LIKE '{"dry_run":true,%')"#
    };
}

/// The status of a workspace's latest build, in SQL: `Job::status` and
/// `domain::build_status` spelled as a CASE, so lists filter by status in
/// the database. The conformance suite checks it against the domain's.
pub(super) const LATEST_STATUS: &str = concat!(
    r#"(SELECT CASE
        WHEN j.error IS NOT NULL THEN 'failed'
        WHEN j.completed_at IS NOT NULL AND j.canceled_at IS NOT NULL THEN 'canceled'
        WHEN j.completed_at IS NOT NULL THEN
            CASE b.transition WHEN 'start' THEN 'running' WHEN 'stop' THEN 'stopped' ELSE 'deleted' END
        WHEN j.canceled_at IS NOT NULL THEN 'canceling'
        WHEN j.started_at IS NULL THEN 'pending'
        ELSE CASE b.transition WHEN 'start' THEN 'starting' WHEN 'stop' THEN 'stopping' ELSE 'deleting' END
    END
    FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
    WHERE b.workspace_id = w.id AND "#,
    speaks!(),
    r#"
    ORDER BY b.build_number DESC LIMIT 1)"#
);

/// Whether the latest build runs another version than the active one.
pub(super) const LATEST_OUTDATED: &str = concat!(
    r#"(SELECT b.template_version_id <> t.active_version_id
    FROM workspace_builds b JOIN templates t ON t.id = w.template_id
    JOIN provisioner_jobs j ON j.id = b.job_id
    WHERE b.workspace_id = w.id AND "#,
    speaks!(),
    r#" ORDER BY b.build_number DESC LIMIT 1)"#
);

/// The id of the build that speaks for a workspace row `w`: its latest
/// build that is not a dry run that ended (`app::settled_build`).
pub(super) const LATEST_BUILD_ID: &str = concat!(
    r#"(SELECT b.id FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
    WHERE b.workspace_id = w.id AND "#,
    speaks!(),
    r#" ORDER BY b.build_number DESC LIMIT 1)"#
);
