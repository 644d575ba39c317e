//! jsonlog (to be implemented).
