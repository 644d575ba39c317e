//! The PostgreSQL schema migrations, embedded in the binary at build time,
//! built as `sqlite/migrations.rs` builds its own (no `sqlx::migrate!`).
//!
//! sqlx's migrator runs them under `pg_advisory_lock` on a key derived from
//! the database name, so replicas that start together on an empty database
//! wait for each other, and the second finds the work done.

use sqlx::migrate::Migrator;

/// `(version, description, SQL)` of every file in `migrations/postgres`, in order.
pub(super) const MIGRATIONS: [crate::store::migrations::Embedded; 6] = [
    (1, "init", include_str!("../../../migrations/postgres/0001_init.sql")),
    (
        2,
        "workspace schedules",
        include_str!("../../../migrations/postgres/0002_workspace_schedules.sql"),
    ),
    (3, "daemons", include_str!("../../../migrations/postgres/0003_daemons.sql")),
    (
        4,
        "provisioner job timings",
        include_str!("../../../migrations/postgres/0004_provisioner_job_timings.sql"),
    ),
    (6, "workspace agents", include_str!("../../../migrations/postgres/0006_workspace_agents.sql")),
    (7, "queue runs", include_str!("../../../migrations/postgres/0007_queue_runs.sql")),
];

/// The migrator that brings a database to the current schema.
pub(super) fn migrator() -> Migrator {
    let mut m = crate::store::migrations::migrator(&MIGRATIONS, i64::MAX);
    // The lock is what makes concurrent starts safe; it is sqlx's default,
    // set here so that no later default change drops it silently.
    m.set_locking(true);
    m
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::MIGRATIONS;
    use crate::store::Store;

    /// Agents stored before the agent index existed are indexed by the
    /// migration that adds it (the PostgreSQL half of the SQLite test).
    #[tokio::test]
    async fn agents_stored_before_the_index_are_indexed() {
        use crate::domain::JobOutcome;
        use crate::store::conformance::fixture::{agent, fixture, new_workspace, resource, take};
        let (url, _guard) = crate::store::postgres::testdb::fresh_database().await;
        let store = super::super::PgStore::open(&url).await.expect("store");
        let f = fixture(&store).await;
        let (_, build, job) = new_workspace(&store, &f, "dev").await;
        let worker = take(&store, job.id).await;
        let id = Uuid::new_v4();
        let mut vm = resource("vm", "echo");
        vm.agents = vec![agent(id)];
        let outcome = JobOutcome { resources: vec![vm], ..JobOutcome::default() };
        store.complete_job(job.id, worker, &outcome).await.expect("complete");
        // As if the resources had been written before migration 6.
        for sql in ["DROP TABLE workspace_agents", "DELETE FROM _sqlx_migrations WHERE version = 6"]
        {
            sqlx::query(sql).execute(&store.pool).await.expect(sql);
        }
        store.pool.close().await;

        let store = super::super::PgStore::open(&url).await.expect("migrated again");
        assert_eq!(store.build_of_agent(id).await.expect("indexed").id, build.id);
    }

    /// Every file in `migrations/postgres` is embedded, under the version and
    /// description its name gives.
    #[test]
    fn every_migration_file_is_embedded() {
        crate::store::migrations::assert_every_file_embedded("migrations/postgres", &MIGRATIONS);
    }
}
