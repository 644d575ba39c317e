//! convert (to be implemented).
