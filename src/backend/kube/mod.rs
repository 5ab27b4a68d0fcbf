//! The Kubernetes backend: CloudNativePG clusters, Backups and recoveries driven with `kube`.
//! `resources` types the CRDs; `render` (drills) and `render_scratch` (game days) build every
//! object (pure), `render_files` writes a drill's as files; `conditions` decides readiness and failure (pure); `session` is the API-server
//! work both share; `drill` and `scratch` are the drill and the game-day restore built on it.
//! Declarations and re-exports only.

pub mod conditions;
mod drill;
pub mod render;
pub mod render_files;
pub mod render_scratch;
pub mod resources;
mod scratch;
mod session;

pub use drill::{KubeBackend, KubeDrill, KubeOptions};
pub use scratch::KubeScratch;
