//! The PostgreSQL schema migrations, embedded in the binary at build time,
//! built as `sqlite/migrations.rs` builds its own (no `sqlx::migrate!`).
//!
//! sqlx's migrator runs them under `pg_advisory_lock` on a key derived from
//! the database name, so replicas that start together on an empty database
//! wait for each other, and the second finds the work done.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

/// `(version, description, SQL)` of every file in `migrations/postgres`, in order.
pub(super) const MIGRATIONS: [(i64, &str, &str); 2] = [
    (1, "init", include_str!("../../../migrations/postgres/0001_init.sql")),
    (
        2,
        "workspace schedules",
        include_str!("../../../migrations/postgres/0002_workspace_schedules.sql"),
    ),
];

/// The migrator that brings a database to the current schema.
pub(super) fn migrator() -> Migrator {
    let mut m = Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    );
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
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
        let mut files: Vec<(i64, String, String)> = std::fs::read_dir(dir)
            .expect("migrations directory")
            .map(|entry| {
                let path = entry.expect("directory entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
                let stem = name.strip_suffix(".sql").expect("only .sql files");
                let (version, description) = stem.split_once('_').expect("<version>_<name>.sql");
                let sql = std::fs::read_to_string(&path).expect("readable migration");
                (version.parse().expect("numeric version"), description.replace('_', " "), sql)
            })
            .collect();
        files.sort();
        let embedded: Vec<(i64, String, String)> =
            MIGRATIONS.iter().map(|&(v, d, sql)| (v, d.to_owned(), sql.to_owned())).collect();
        assert_eq!(files, embedded);
    }
}
