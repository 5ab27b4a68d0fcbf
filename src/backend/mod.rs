//! Backends: where a plan's side effects happen.
