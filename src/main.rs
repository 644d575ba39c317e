//! The `provisionerd` binary: parse the command line, set up tracing, and
//! call into the library.

fn main() {}
