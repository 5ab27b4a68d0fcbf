//! `--metrics-file` and `--pushgateway`, shared by `audit`, `run` and `gameday`: where a
//! command's Prometheus exposition goes besides its report directory. Writes the file
//! atomically (node_exporter's textfile collector may read it at any moment) and PUTs the
//! exposition to a Pushgateway group; never builds metrics itself (`pgdrill::report::metrics`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use pgdrill::report::metrics::Exposition;

/// Where metrics go.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Also write the Prometheus metrics to this file, atomically (for node_exporter's textfile
    /// collector: a `*.prom` file in its directory).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Also push the metrics to this Pushgateway (e.g. `http://pushgateway:9091`), replacing
    /// the command's group (`job` plus the server name, scenario backend or game-day name).
    #[arg(long, value_name = "URL", env = "PGDRILL_PUSHGATEWAY")]
    pub pushgateway: Option<String>,
}

impl MetricsArgs {
    /// Write and push `x`; `job` and `grouping` name the Pushgateway group.
    pub async fn publish(
        &self,
        x: &Exposition,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        self.publish_text(&x.encode(), job, grouping).await
    }

    /// Write and push an exposition already encoded (a run's `metrics.prom`).
    pub async fn publish_text(
        &self,
        text: &str,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        if let Some(path) = &self.metrics_file {
            write_atomically(path, text)?;
        }
        if let Some(url) = &self.pushgateway {
            push(url, job, grouping, text.to_string()).await?;
        }
        Ok(())
    }
}

/// Write next to `path`, then rename over it, so a reader never sees half a file.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--metrics-file {}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The group's URL: `/metrics/job/<job>/<label>/<value>…`; a value that is empty or holds a
/// `/` goes base64url-encoded (`<label>@base64/<value>`), as the Pushgateway's API asks.
pub fn group_url(base: &str, job: &str, grouping: &[(&str, &str)]) -> String {
    let mut url = format!(
        "{}/metrics/job{}",
        base.trim_end_matches('/'),
        segment("", job)
    );
    for (label, value) in grouping {
        url.push_str(&segment(label, value));
    }
    url
}

fn segment(label: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    let sep = if label.is_empty() { "" } else { "/" };
    if plain {
        format!("{sep}{label}/{value}")
    } else {
        use base64::Engine;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(value);
        let enc = if enc.is_empty() { "=".to_string() } else { enc };
        let at = if label.is_empty() { "" } else { "@base64" };
        format!("{sep}{label}{at}/{enc}")
    }
}

async fn push(
    base: &str,
    job: &str,
    grouping: &[(&str, &str)],
    text: String,
) -> anyhow::Result<()> {
    let url = group_url(base, job, grouping);
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?
        .put(&url)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(text)
        .send()
        .await
        .with_context(|| format!("pushing metrics to {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!("pushing metrics to {url}: {status}: {}", body.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_urls_encode_what_a_path_cannot_hold() {
        assert_eq!(
            group_url(
                "http://pg:9091/",
                "pgdrill_audit",
                &[("server_name", "pg-main")]
            ),
            "http://pg:9091/metrics/job/pgdrill_audit/server_name/pg-main"
        );
        assert_eq!(
            group_url(
                "http://pg:9091",
                "pgdrill_audit",
                &[("destination", "s3://b/p")]
            ),
            "http://pg:9091/metrics/job/pgdrill_audit/destination@base64/czM6Ly9iL3A="
        );
        assert_eq!(
            group_url("http://pg:9091", "j", &[("x", "")]),
            "http://pg:9091/metrics/job/j/x@base64/="
        );
    }
}
