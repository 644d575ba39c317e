//! The SQLite schema migrations, embedded in the binary at build time.
//!
//! Built at run time from `include_str!` rather than with `sqlx::migrate!`,
//! which would compile all of sqlx (SQLite included) a second time as a
//! procedural macro. Versions, descriptions and checksums are the ones the
//! macro derives from the file names and contents, so databases migrated by
//! earlier builds stay valid.

use sqlx::migrate::Migrator;

/// `(version, description, SQL)` of every file in `migrations/sqlite`, in order.
const MIGRATIONS: [crate::store::migrations::Embedded; 12] = [
    (1, "init", include_str!("../../../migrations/sqlite/0001_init.sql")),
    (2, "provisioner keys", include_str!("../../../migrations/sqlite/0002_provisioner_keys.sql")),
    (3, "template imports", include_str!("../../../migrations/sqlite/0003_template_imports.sql")),
    (4, "log lookup", include_str!("../../../migrations/sqlite/0004_log_lookup.sql")),
    (5, "log rows", include_str!("../../../migrations/sqlite/0005_log_rows.sql")),
    (6, "user roles", include_str!("../../../migrations/sqlite/0006_user_roles.sql")),
    (7, "late results", include_str!("../../../migrations/sqlite/0007_late_results.sql")),
    (8, "queue match", include_str!("../../../migrations/sqlite/0008_queue_match.sql")),
    (
        10,
        "workspace schedules",
        include_str!("../../../migrations/sqlite/0010_workspace_schedules.sql"),
    ),
    (40, "daemons", include_str!("../../../migrations/sqlite/0040_daemons.sql")),
    (
        45,
        "provisioner job timings",
        include_str!("../../../migrations/sqlite/0045_provisioner_job_timings.sql"),
    ),
    (60, "workspace agents", include_str!("../../../migrations/sqlite/0060_workspace_agents.sql")),
];

/// The migrator that brings a database to the current schema.
pub(super) fn migrator() -> Migrator {
    migrator_up_to(i64::MAX)
}

/// The migrator that brings a database to schema `version`.
fn migrator_up_to(version: i64) -> Migrator {
    crate::store::migrations::migrator(&MIGRATIONS, version)
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::SqlitePool;
    use uuid::Uuid;

    use super::{migrator_up_to, MIGRATIONS};
    use crate::store::{LogBatch, LogRange, Store};

    /// A database written before log rows named their job by a key keeps
    /// every line, id and order, and takes new lines after them.
    #[tokio::test]
    async fn log_lines_survive_the_move_to_job_keys() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.db");
        let old = SqlitePool::connect_with(
            // Only the tables the test needs are filled.
            SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(false),
        )
        .await
        .expect("old database");
        migrator_up_to(4).run(&old).await.expect("schema 4");
        let (job, other) = (Uuid::new_v4(), Uuid::new_v4());
        for id in [job, other] {
            sqlx::query(
                "INSERT INTO provisioner_jobs (id, job_type, provisioner, organization_id,
                    initiator_id, file_id, input, tags, created_at, updated_at)
                 VALUES (?, 'workspace_build', 'echo', 'o', 'u', 'f', '{}', '{}',
                    '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
            )
            .bind(id.to_string())
            .execute(&old)
            .await
            .expect("old job");
        }
        // Lines of two jobs, interleaved, with a gap in the ids.
        for (id, j, seq, out) in
            [(3, job, 1, "a"), (4, other, 1, "x"), (9, job, 2, "b"), (10, other, 2, "y")]
        {
            sqlx::query(
                "INSERT INTO provisioner_job_logs (id, job_id, seq, created_at, source, level, stage, output)
                 VALUES (?, ?, ?, '2026-01-01T00:00:01.000000Z', 'provisioner', 'info', 'Plan', ?)",
            )
            .bind(id)
            .bind(j.to_string())
            .bind(seq)
            .bind(out)
            .execute(&old)
            .await
            .expect("old line");
        }
        old.close().await;

        let store = super::super::SqliteStore::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("migrated");
        let lines = store.logs(job, LogRange::default()).await.expect("logs");
        let got: Vec<_> = lines.iter().map(|l| (l.id, l.seq, l.line.output.as_str())).collect();
        assert_eq!(got, [(3, 1, "a"), (9, 2, "b")]);
        assert!(lines.iter().all(|l| l.job_id == job));
        let mut next = lines[1].line.clone();
        next.output = "c".into();
        let more = LogBatch { job_id: job, lines: vec![(2, lines[1].line.clone()), (3, next)] };
        let appended = store.append_logs(more).await.expect("append");
        assert_eq!(appended.up_to_seq, 3);
        let stored: Vec<_> = appended.stored.iter().map(|l| (l.id, l.seq)).collect();
        assert_eq!(stored, [(11, 3)], "only the new line, after every old id");
        let others = store.logs(other, LogRange::default()).await.expect("other logs");
        assert_eq!(others.iter().map(|l| l.id).collect::<Vec<_>>(), [4, 10]);
    }

    /// An owner made before roles existed stays an owner; everyone else
    /// becomes a plain member. Files (rebuilt to deduplicate per uploader)
    /// keep their ids, and the jobs that refer to them stay valid.
    #[tokio::test]
    async fn owners_keep_their_role_when_roles_arrive() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.db");
        let old = SqlitePool::connect_with(
            SqliteConnectOptions::new().filename(&path).create_if_missing(true),
        )
        .await
        .expect("old database");
        migrator_up_to(5).run(&old).await.expect("schema 5");
        let (owner, member) = (Uuid::new_v4(), Uuid::new_v4());
        for (id, name, is_owner) in [(owner, "boss", true), (member, "dev", false)] {
            sqlx::query(
                "INSERT INTO users (id, username, email, name, password_hash, is_owner, created_at)
                 VALUES (?, ?, ?, '', 'x', ?, '2026-01-01T00:00:00.000000Z')",
            )
            .bind(id.to_string())
            .bind(name)
            .bind(format!("{name}@example.com"))
            .bind(is_owner)
            .execute(&old)
            .await
            .expect("old user");
        }
        let (file, job) = (Uuid::new_v4(), Uuid::new_v4());
        sqlx::query(
            "INSERT INTO files (id, hash, mimetype, data, created_by, created_at)
             VALUES (?, 'ab', 'application/x-tar', x'00', ?, '2026-01-01T00:00:00.000000Z')",
        )
        .bind(file.to_string())
        .bind(owner.to_string())
        .execute(&old)
        .await
        .expect("old file");
        sqlx::query(
            "INSERT INTO provisioner_jobs (id, job_type, provisioner, organization_id,
                initiator_id, file_id, input, tags, created_at, updated_at)
             VALUES (?, 'template_version_import', 'echo', ?, ?, ?, '{}', '{}',
                '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
        )
        .bind(job.to_string())
        .bind(Uuid::new_v4().to_string())
        .bind(owner.to_string())
        .bind(file.to_string())
        .execute(&old)
        .await
        .expect("old job");
        old.close().await;

        let store = super::super::SqliteStore::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("migrated");
        assert_eq!(store.file(file).await.expect("file kept").created_by, owner);
        assert_eq!(store.job(job).await.expect("job kept").file_id, file);
        let fk: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&store.pool)
            .await
            .expect("foreign key check");
        assert!(fk.is_empty(), "jobs still refer to their files: {fk:?}");
        let on: i64 =
            sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&store.pool).await.expect("pragma");
        assert_eq!(on, 1, "foreign keys are on again after the migration");
        let roles = store.user_by_id(owner).await.expect("owner").roles;
        assert_eq!(roles, [crate::domain::Role::Owner]);
        assert!(store.user_by_id(member).await.expect("member").roles.is_empty());
    }

    /// Agents stored before the agent index existed are indexed by the
    /// migration that adds it, so `GET /workspaceagents/{id}` finds them.
    #[tokio::test]
    async fn agents_stored_before_the_index_are_indexed() {
        use crate::domain::JobOutcome;
        use crate::store::conformance::fixture::{agent, fixture, new_workspace, resource, take};
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.db");
        let path = path.to_str().expect("utf-8 path");
        let store = super::super::SqliteStore::open(path).await.expect("store");
        let f = fixture(&store).await;
        let (_, build, job) = new_workspace(&store, &f, "dev").await;
        let worker = take(&store, job.id).await;
        let id = Uuid::new_v4();
        let mut vm = resource("vm", "echo");
        vm.agents = vec![agent(id)];
        let outcome = JobOutcome { resources: vec![vm], ..JobOutcome::default() };
        store.complete_job(job.id, worker, &outcome).await.expect("complete");
        // As if the resources had been written before migration 60.
        for sql in
            ["DROP TABLE workspace_agents", "DELETE FROM _sqlx_migrations WHERE version = 60"]
        {
            sqlx::query(sql).execute(&store.pool).await.expect(sql);
        }
        drop(store);

        let store = super::super::SqliteStore::open(path).await.expect("migrated again");
        assert_eq!(store.build_of_agent(id).await.expect("indexed").id, build.id);
    }

    /// Every file in `migrations/sqlite` is embedded, under the version and
    /// description its name gives (as `sqlx migrate` reads them).
    #[test]
    fn every_migration_file_is_embedded() {
        crate::store::migrations::assert_every_file_embedded("migrations/sqlite", &MIGRATIONS);
    }
}
