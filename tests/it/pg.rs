//! The PostgreSQL cluster the integration tests use: the one
//! `PROVISIONERD_TEST_DATABASE_URL` names (`scripts/test` starts a throwaway
//! one), or, without it, a cluster started once per test process with
//! `scripts/test-postgres` that stops when the process exits; and empty
//! databases on it, one per server or test.

use std::sync::OnceLock;

use uuid::Uuid;

/// The admin URL of the PostgreSQL cluster the tests use.
pub fn admin_url() -> String {
    static STARTED: OnceLock<String> = OnceLock::new();
    if let Ok(url) = std::env::var("PROVISIONERD_TEST_DATABASE_URL") {
        if !url.is_empty() {
            return url;
        }
    }
    STARTED
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("provisionerd-pg-{}", Uuid::new_v4()));
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-postgres");
            // The watcher the script starts stops the cluster once this
            // test process has exited.
            let out = std::process::Command::new(script)
                .arg("start")
                .arg(&dir)
                .arg(std::process::id().to_string())
                .output()
                .expect("run scripts/test-postgres");
            assert!(
                out.status.success(),
                "these tests need PostgreSQL: run them with scripts/test, or set \
                 PROVISIONERD_TEST_DATABASE_URL, or install the PostgreSQL server binaries \
                 (apt-get install -y postgresql): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .clone()
}

pub use provisionerd::store::postgres::with_database;

async fn admin_sql(admin: &str, sql: String) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
    conn.close().await
}

/// An empty database of the test's own (the servers migrate it), dropped
/// with the guard.
pub struct ScratchDb {
    admin: String,
    name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn create() -> Self {
        let admin = tokio::task::spawn_blocking(admin_url).await.expect("cluster");
        let name = format!("provisionerd_it_{}", Uuid::new_v4().simple());
        admin_sql(&admin, format!("CREATE DATABASE {name}")).await.expect("create a database");
        let url = with_database(&admin, &name);
        Self { admin, name, url }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        // On a thread of its own: `Drop` cannot wait on the test's runtime.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(admin_sql(&admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .map_err(std::io::Error::other)
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("could not drop the scratch database {}: {e}", self.name);
        }
    }
}

/// A new, empty database on the test cluster, left for the cluster's end
/// (a server under test may still hold connections when the test returns);
/// returns its URL.
pub async fn new_database() -> String {
    let admin = tokio::task::spawn_blocking(admin_url).await.expect("cluster");
    let name = format!("provisionerd_it_{}", Uuid::new_v4().simple());
    admin_sql(&admin, format!("CREATE DATABASE {name}")).await.expect("create a test database");
    with_database(&admin, &name)
}
