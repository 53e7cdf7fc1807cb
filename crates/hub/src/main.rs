//! `kv-hub`: placeholder, being written (issue #6).

fn main() {}
