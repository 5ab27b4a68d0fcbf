//! `pgdrill render`: every manifest a kube drill would apply, written without a cluster. Parses,
//! refuses what the kube backend cannot run, calls the library, prints; never renders an object
//! or writes a file itself.

use std::path::PathBuf;

use pgdrill::backend::kube::KubeBackend;
use pgdrill::backend::kube::render_files::{RenderFilesError, Written, write_manifests};
use pgdrill::backend::support;
use pgdrill::error::{Error, exit};
use pgdrill::scenario::{Scenario, load_all};

use super::args::{BackendKind, KubeArgs};

/// Arguments of `pgdrill render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "kube")]
    backend: BackendKind,
    /// Directory to write `<scenario>/NN-kind-name.yaml` into.
    #[arg(long)]
    out: PathBuf,
    /// Replace files an earlier render wrote into `<out>/<scenario>/`.
    #[arg(long)]
    force: bool,
    #[arg(long, default_value = "pgdrill")]
    s3_bucket: String,
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Every manifest of every scenario, in apply order, one file each.
pub fn run(args: RenderArgs) -> anyhow::Result<i32> {
    if args.backend != BackendKind::Kube {
        return Err(Error::Usage(
            "render writes Kubernetes manifests: use --backend kube (the local backend applies none)"
                .into(),
        )
        .into());
    }
    let loaded = load_all(&args.paths, &args.fixtures).map_err(Error::from)?;
    let (loaded, refused) = support::partition::<KubeBackend>(loaded);
    if let Some(r) = refused.first() {
        return Err(Error::Usage(r.to_string()).into());
    }
    let settings = args.kube.settings("preview", &args.s3_bucket);
    let scenarios: Vec<&Scenario> = loaded.iter().map(|l| &l.scenario).collect();
    let mut print = |w: &Written| {
        println!(
            "{}: {} manifests in {}",
            w.scenario,
            w.manifests,
            w.dir.display()
        );
    };
    write_manifests(&scenarios, &settings, &args.out, args.force, &mut print).map_err(
        |e| match e {
            RenderFilesError::Occupied(_) => Error::Usage(e.to_string()).into(),
            RenderFilesError::Io { .. } => anyhow::Error::from(e),
        },
    )?;
    Ok(exit::PASSED)
}
