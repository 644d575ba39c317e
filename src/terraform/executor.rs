//! executor (to be implemented).
