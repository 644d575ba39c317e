//! The SQLite schema migrations, embedded in the binary at build time.
//!
//! Built at run time from `include_str!` rather than with `sqlx::migrate!`,
//! which would compile all of sqlx (SQLite included) a second time as a
//! procedural macro. Versions, descriptions and checksums are the ones the
//! macro derives from the file names and contents, so databases migrated by
//! earlier builds stay valid.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

/// `(version, description, SQL)` of every file in `migrations/sqlite`, in order.
const MIGRATIONS: [(i64, &str, &str); 4] = [
    (1, "init", include_str!("../../../migrations/sqlite/0001_init.sql")),
    (2, "provisioner keys", include_str!("../../../migrations/sqlite/0002_provisioner_keys.sql")),
    (3, "template imports", include_str!("../../../migrations/sqlite/0003_template_imports.sql")),
    (4, "log lookup", include_str!("../../../migrations/sqlite/0004_log_lookup.sql")),
];

/// The migrator that brings a database to the current schema.
pub(super) fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                let no_tx = sql.starts_with("-- no-transaction");
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    no_tx,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// Every file in `migrations/sqlite` is embedded, under the version and
    /// description its name gives (as `sqlx migrate` reads them).
    #[test]
    fn every_migration_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
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
