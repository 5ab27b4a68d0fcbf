//! The Kubernetes backend: CloudNativePG clusters, Backups and recoveries driven with `kube`.
//! `resources` types the CRDs, `render` builds every object (pure), `conditions` decides
//! readiness and failure (pure), `drill` is the only part that talks to an API server.

pub mod conditions;
mod drill;
pub mod render;
pub mod resources;

pub use drill::{KubeBackend, KubeDrill, KubeOptions};
