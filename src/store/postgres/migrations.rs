//! The PostgreSQL schema migrations, embedded in the binary at build time,
//! built as `sqlite/migrations.rs` builds its own (no `sqlx::migrate!`).
//!
//! sqlx's migrator runs them under `pg_advisory_lock` on a key derived from
//! the database name, so replicas that start together on an empty database
//! wait for each other, and the second finds the work done.

use sqlx::migrate::Migrator;

/// `(version, description, SQL)` of every file in `migrations/postgres`, in order.
pub(super) const MIGRATIONS: [crate::store::migrations::Embedded; 3] = [
    (1, "init", include_str!("../../../migrations/postgres/0001_init.sql")),
    (
        2,
        "workspace schedules",
        include_str!("../../../migrations/postgres/0002_workspace_schedules.sql"),
    ),
    (
        4,
        "provisioner job timings",
        include_str!("../../../migrations/postgres/0004_provisioner_job_timings.sql"),
    ),
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
    use super::MIGRATIONS;

    /// Every file in `migrations/postgres` is embedded, under the version and
    /// description its name gives.
    #[test]
    fn every_migration_file_is_embedded() {
        crate::store::migrations::assert_every_file_embedded("migrations/postgres", &MIGRATIONS);
    }
}
