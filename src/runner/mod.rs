//! Walks a plan through a backend and emits events.

mod events;

pub use events::*;
