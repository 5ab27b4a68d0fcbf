//! The Kubernetes backend: CloudNativePG clusters, Backups and recoveries driven with `kube`.

pub mod render;
pub mod resources;
