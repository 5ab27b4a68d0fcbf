//! Scenario → the Kubernetes objects a kube drill applies, in order. Pure: no API calls, no clock.

use serde_json::Value;

use crate::scenario::Scenario;

/// Which CloudNativePG backup integration the clusters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// `spec.backup.barmanObjectStore` (in-tree, deprecated since CNPG 1.26, what the seeds use).
    #[default]
    InTree,
    /// The barman-cloud plugin: an `ObjectStore` resource and `spec.plugins`.
    Plugin,
}

/// Where and how a kube drill's objects are created.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub run_id: String,
    pub flavour: Flavour,
    pub bucket: String,
    /// The run's prefix inside the bucket, e.g. `pgdrill/<run-id>`.
    pub bucket_prefix: String,
    /// The S3 endpoint as the pods see it (in-cluster service URL).
    pub cluster_s3_endpoint: String,
    /// Image for a PostgreSQL major, `{major}` is replaced.
    pub image_template: String,
    pub storage_size: String,
}

/// One object to apply, with the plan step it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Plan step that applies it (`setup`, `start_source`, a base backup step id, `recover`).
    pub step: String,
    pub kind: String,
    pub name: String,
    pub object: Value,
}

/// Every object a drill of `scenario` applies, in the order it applies them.
pub fn render_scenario(scenario: &Scenario, settings: &RenderSettings) -> Vec<Manifest> {
    let _ = (scenario, settings);
    unimplemented!("being written")
}
