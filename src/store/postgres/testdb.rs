//! Scratch PostgreSQL databases for tests. The server is the one
//! `PROVISIONERD_TEST_DATABASE_URL` names (`scripts/test` starts a
//! throwaway cluster and exports it); without it, the first test that needs
//! one starts a cluster itself with `scripts/test-postgres`, which stops it
//! once the test process has exited. Each caller gets a database of its own,
//! copied from a migrated template (fast: no migrations per database), and
//! dropped when its guard is.

use tokio::sync::OnceCell;
use uuid::Uuid;

/// Names the server the PostgreSQL tests use.
pub const URL_ENV: &str = "PROVISIONERD_TEST_DATABASE_URL";

/// The server's admin URL and the migrated template database's name.
static SERVER: OnceCell<(String, String)> = OnceCell::const_new();

pub use super::with_database;

/// Starts a cluster with `scripts/test-postgres` that lives as long as this
/// process; panics with the script's message (how to install PostgreSQL)
/// when it cannot.
fn start_cluster() -> String {
    let dir = std::env::temp_dir().join(format!("provisionerd-pg-{}", Uuid::new_v4()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-postgres");
    let mut last = String::new();
    // The script picks a random port; another process may hold it.
    for _ in 0..3 {
        let out = std::process::Command::new(script)
            .arg("start")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/test-postgres");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        if last.contains("not found") {
            break;
        }
        let _ = std::process::Command::new(script).arg("stop").arg(&dir).status();
    }
    panic!(
        "the PostgreSQL tests need a PostgreSQL server: set {URL_ENV} to a postgres:// URL whose \
         user may create databases, or install the PostgreSQL server binaries \
         (Debian/Ubuntu: apt-get install -y postgresql) so the tests start a throwaway cluster.\n{last}"
    );
}

async fn server() -> &'static (String, String) {
    SERVER
        .get_or_init(|| async {
            let admin = match std::env::var(URL_ENV) {
                Ok(url) if !url.is_empty() => url,
                _ => tokio::task::spawn_blocking(start_cluster).await.expect("start a cluster"),
            };
            let template = template(&admin).await;
            (admin, template)
        })
        .await
}

/// The migrated template database, named after the schema it holds, so
/// test runs against a long-lived server reuse it instead of leaving one
/// behind each; made once under an advisory lock (test binaries run at
/// the same time).
async fn template(admin: &str) -> String {
    use sha2::Digest;
    use sqlx::Connection;
    let digest = sha2::Sha256::digest(
        super::migrations::MIGRATIONS.iter().map(|m| m.2).collect::<String>().as_bytes(),
    );
    let name = format!("provisionerd_template_{}", &hex::encode(digest)[..16]);
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL server ({URL_ENV}): {e}"));
    sqlx::query("SELECT pg_advisory_lock(7236108461)").execute(&mut conn).await.expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .expect("look for the template");
    if !exists {
        // Migrated under a temporary name, then renamed: a run that dies
        // half way never leaves a template that looks finished.
        let building = format!("{name}_building");
        let drop = format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await.expect("drop");
        create(admin, &building, None).await;
        let store = super::PgStore::open(&with_database(admin, &building))
            .await
            .expect("migrate the template database");
        store.pool.close().await;
        let rename = format!("ALTER DATABASE {building} RENAME TO {name}");
        sqlx::query(sqlx::AssertSqlSafe(rename)).execute(&mut conn).await.expect("rename");
    }
    let _ = conn.close().await;
    name
}

async fn create(admin: &str, name: &str, template: Option<&str>) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL server ({URL_ENV}): {e}"));
    let sql = match template {
        Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
        None => format!("CREATE DATABASE {name}"),
    };
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect("create a database");
    let _ = conn.close().await;
}

/// Drops its database when dropped (on a thread of its own: `Drop` cannot
/// wait on the test's runtime).
pub struct Scratch {
    admin: String,
    name: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
                conn.close().await
            })
            .map_err(std::io::Error::other)
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("could not drop the scratch database {}: {e}", self.name);
        }
    }
}

/// A new, migrated, empty database: its URL and the guard that drops it.
pub async fn fresh_database() -> (String, Scratch) {
    let (admin, template) = server().await;
    let name = format!("provisionerd_test_{}", Uuid::new_v4().simple());
    create(admin, &name, Some(template)).await;
    (with_database(admin, &name), Scratch { admin: admin.clone(), name })
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
