//! Safe unpacking of template archives (interface; to be implemented).

/// Caps on what an archive may contain.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: u64,
    pub max_total_bytes: u64,
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_entries: 10_000, max_total_bytes: 1 << 30, max_file_bytes: 256 << 20 }
    }
}
