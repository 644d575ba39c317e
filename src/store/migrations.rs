//! What both backends' embedded migrations share: building sqlx's migrator
//! from a list of `(version, description, SQL)` (the files are embedded with
//! `include_str!` rather than `sqlx::migrate!`, which would compile sqlx a
//! second time as a procedural macro), and, for tests, the check that the
//! list holds every file of the backend's migrations directory.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

/// One embedded migration: version, description and SQL, as `sqlx migrate`
/// derives them from a file `<version>_<description>.sql`.
pub type Embedded = (i64, &'static str, &'static str);

/// The migrator for the migrations up to `version`. A file whose SQL starts
/// with `-- no-transaction` runs outside a transaction, as sqlx's own
/// migrator does. Versions, descriptions and checksums are the ones the
/// macro would derive, so databases migrated by earlier builds stay valid.
pub fn migrator(list: &[Embedded], up_to: i64) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .filter(|m| m.0 <= up_to)
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

/// Asserts that `list` holds every file in `dir` (relative to the crate),
/// under the version and description its name gives, in order.
#[cfg(test)]
pub fn assert_every_file_embedded(dir: &str, list: &[Embedded]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
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
        list.iter().map(|&(v, d, sql)| (v, d.to_owned(), sql.to_owned())).collect();
    assert_eq!(files, embedded);
}
