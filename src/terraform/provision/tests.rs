//! Tests of a real terraform run.
