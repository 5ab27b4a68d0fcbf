//! `pgdrill render` on disk: every manifest a kube drill would apply, in apply order, one YAML
//! file each under `<out>/<scenario>/`. Never talks to an API server, and never replaces an
//! earlier render unless told to (`force`).

use std::path::{Path, PathBuf};

use crate::scenario::Scenario;

use super::render::{RenderSettings, render_scenario, to_yaml};

/// Why the manifests were not (all) written.
#[derive(Debug, thiserror::Error)]
pub enum RenderFilesError {
    /// A scenario's directory holds files already and `force` was not given.
    #[error("{} is not empty: pass --force to replace an earlier render", .0.display())]
    Occupied(PathBuf),
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One scenario's manifests, written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub scenario: String,
    pub manifests: usize,
    pub dir: PathBuf,
}

/// Write every scenario's manifests into `out/<scenario>/`, calling `on_written` after each
/// scenario. Every directory is checked before the first file is written.
pub fn write_manifests(
    scenarios: &[&Scenario],
    settings: &RenderSettings,
    out: &Path,
    force: bool,
    on_written: &mut dyn FnMut(&Written),
) -> Result<(), RenderFilesError> {
    for s in scenarios {
        let dir = out.join(&s.name);
        let occupied = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
        if occupied && !force {
            return Err(RenderFilesError::Occupied(dir));
        }
    }
    for s in scenarios {
        let dir = out.join(&s.name);
        std::fs::create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
        let manifests = render_scenario(s, settings);
        for (i, m) in manifests.iter().enumerate() {
            let f = dir.join(m.file_name(i));
            let text = format!(
                "# pgdrill render: {} ({} flavour), step `{}`\n{}",
                s.name,
                settings.flavour.as_str(),
                m.step,
                to_yaml(&m.object)
            );
            std::fs::write(&f, text).map_err(|e| io_error("writing", &f, e))?;
        }
        on_written(&Written {
            scenario: s.name.clone(),
            manifests: manifests.len(),
            dir,
        });
    }
    Ok(())
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> RenderFilesError {
    let path = path.to_path_buf();
    RenderFilesError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::render::Flavour;
    use super::super::render::tests::settings as flavoured;
    use super::*;

    fn settings() -> RenderSettings {
        flavoured(Flavour::InTree)
    }

    fn scenario() -> Scenario {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/01-clean-restore-latest.yaml");
        crate::scenario::load_file(&path)
            .expect("shipped scenario")
            .scenario
    }

    #[test]
    fn one_file_per_manifest_then_a_refusal_to_overwrite_without_force() {
        let out = tempfile::tempdir().unwrap();
        let s = scenario();
        let mut written = Vec::new();
        write_manifests(&[&s], &settings(), out.path(), false, &mut |w| {
            written.push(w.clone())
        })
        .unwrap();
        assert_eq!(written.len(), 1);
        let w = &written[0];
        assert_eq!(w.dir, out.path().join(&s.name));
        let mut files: Vec<_> = std::fs::read_dir(&w.dir).unwrap().flatten().collect();
        assert_eq!(files.len(), w.manifests);
        files.sort_by_key(|f| f.file_name());
        let first = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(
            first.starts_with(&format!(
                "# pgdrill render: {} (in-tree flavour), step `",
                s.name
            )),
            "{first}"
        );

        let again = write_manifests(&[&s], &settings(), out.path(), false, &mut |_| {});
        assert!(matches!(again, Err(RenderFilesError::Occupied(d)) if d == w.dir));
        write_manifests(&[&s], &settings(), out.path(), true, &mut |_| {}).unwrap();
    }
}
