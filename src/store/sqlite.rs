//! SQLite backend (to be implemented).

/// The SQLite store.
pub struct SqliteStore;

impl SqliteStore {
    pub async fn open(_url: &str) -> super::Result<Self> {
        Err(super::StoreError::NotFound)
    }
}
