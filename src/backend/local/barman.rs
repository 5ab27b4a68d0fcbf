//! The barman-cloud commands CloudNativePG runs, invoked as the PostgreSQL user against the
//! drill's destination. Credentials travel only in the child environment, never in arguments,
//! files or logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backend::BackendError;
use crate::backend::objstore::S3Target;
use crate::scenario::Compression;

use super::process::{self, RunAs, ToolOutput};

/// Everything a barman-cloud command needs besides its own arguments.
#[derive(Debug, Clone)]
pub struct Barman {
    pub bin: PathBuf,
    pub s3: S3Target,
    /// `s3://bucket/prefix`
    pub destination: String,
    pub run_as: RunAs,
    /// HOME for the tools, holding the AWS config file.
    pub home: PathBuf,
    /// The scenario's extra environment (never credentials: validation refuses them).
    pub extra_env: Vec<(String, String)>,
}

/// The AWS config file barman's boto3 reads: path-style addressing for S3-compatible stores.
pub const AWS_CONFIG: &str = "[default]\ns3 =\n    addressing_style = path\n";

impl Barman {
    /// Environment for the tools (and for postgres, whose archive/restore commands call them).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.s3.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.s3.secret_key.clone()),
            ("AWS_DEFAULT_REGION".into(), self.s3.region.clone()),
            (
                "AWS_CONFIG_FILE".into(),
                self.home.join("aws-config").display().to_string(),
            ),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
        .into_iter()
        .chain(self.extra_env.iter().cloned())
        .collect()
    }

    /// Write the AWS config file into `home`.
    pub fn prepare_home(&self) -> Result<(), BackendError> {
        let p = self.home.join("aws-config");
        std::fs::write(&p, AWS_CONFIG).map_err(|e| BackendError::io(p.display().to_string(), e))?;
        self.run_as.chown(&p)
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// `--endpoint-url URL`
    pub fn endpoint_args(&self) -> [String; 2] {
        ["--endpoint-url".into(), self.s3.endpoint.clone()]
    }

    async fn run(
        &self,
        name: &str,
        args: &[String],
        deadline: Duration,
    ) -> Result<ToolOutput, BackendError> {
        let mut c = process::command(self.tool(name), &self.run_as, &self.home);
        c.args(args).current_dir(&self.home);
        for (k, v) in self.env() {
            c.env(k, v);
        }
        let mut out = process::run(c, name, deadline).await?;
        out.stdout = self.redact(&out.stdout);
        out.stderr = self.redact(&out.stderr);
        Ok(out)
    }

    /// Remove the credentials from text a tool printed, before it reaches logs or reports.
    pub fn redact(&self, text: &str) -> String {
        let mut t = text.to_string();
        for secret in [&self.s3.secret_key, &self.s3.access_key] {
            if !secret.is_empty() {
                t = t.replace(secret.as_str(), "<redacted>");
            }
        }
        t
    }

    /// `barman-cloud-check-wal-archive`: is `server_name`'s WAL archive empty, as a new
    /// cluster needs? Returns the tool's output; `success == false` carries its message.
    pub async fn check_wal_archive(&self, server_name: &str) -> Result<ToolOutput, BackendError> {
        let mut a = self.endpoint_args().to_vec();
        a.extend([self.destination.clone(), server_name.to_string()]);
        self.run(
            "barman-cloud-check-wal-archive",
            &a,
            Duration::from_secs(120),
        )
        .await
    }

    /// `barman-cloud-backup` of the server listening in `socket_dir`.
    pub async fn backup(
        &self,
        server_name: &str,
        socket_dir: &Path,
        compression: Compression,
        name: &str,
        deadline: Duration,
    ) -> Result<ToolOutput, BackendError> {
        let mut a = self.endpoint_args().to_vec();
        if let Some(f) = compression.barman_flag() {
            a.push(f.into());
        }
        a.extend([
            "--host".into(),
            socket_dir.display().to_string(),
            "--port".into(),
            "5432".into(),
            "--user".into(),
            "postgres".into(),
            "--immediate-checkpoint".into(),
            "--name".into(),
            name.into(),
            self.destination.clone(),
            server_name.into(),
        ]);
        self.run("barman-cloud-backup", &a, deadline).await
    }

    /// `barman-cloud-backup-list --format json`.
    pub async fn list_backups(&self, server_name: &str) -> Result<Vec<BarmanBackup>, BackendError> {
        let mut a = self.endpoint_args().to_vec();
        a.extend([
            "--format".into(),
            "json".into(),
            self.destination.clone(),
            server_name.into(),
        ]);
        let out = self
            .run("barman-cloud-backup-list", &a, Duration::from_secs(120))
            .await?;
        if !out.success {
            return Err(out.failure("barman-cloud-backup-list"));
        }
        let parsed: BackupList = serde_json::from_str(&out.stdout).map_err(|e| {
            BackendError::parse("barman-cloud-backup-list printed unexpected JSON", e)
        })?;
        Ok(parsed.backups_list)
    }

    /// `barman-cloud-restore` of `backup_id` into `dest` (must not exist or be empty).
    pub async fn restore(
        &self,
        server_name: &str,
        backup_id: &str,
        dest: &Path,
        deadline: Duration,
    ) -> Result<ToolOutput, BackendError> {
        let mut a = self.endpoint_args().to_vec();
        a.extend([
            self.destination.clone(),
            server_name.into(),
            backup_id.into(),
            dest.display().to_string(),
        ]);
        self.run("barman-cloud-restore", &a, deadline).await
    }

    /// The `archive_command` wrapper: as CloudNativePG does, the first archive after bootstrap
    /// checks that the destination is empty (the `.check-empty-wal-archive` marker in PGDATA),
    /// then every call runs `barman-cloud-wal-archive`.
    pub fn archive_script(&self, server_name: &str, compression: Compression) -> String {
        let flag = compression.barman_flag().unwrap_or("");
        format!(
            "#!/bin/sh\n\
             # pgdrill archive_command for serverName {server} (written per instance; no secrets here)\n\
             set -eu\n\
             if [ -f .check-empty-wal-archive ]; then\n  \
               {check} --endpoint-url {ep} {dest} {server}\n  \
               rm -f .check-empty-wal-archive\n\
             fi\n\
             exec {archive} --endpoint-url {ep} {flag} {dest} {server} \"$1\"\n",
            server = sh_quote(server_name),
            check = sh_quote(
                &self
                    .tool("barman-cloud-check-wal-archive")
                    .display()
                    .to_string()
            ),
            archive = sh_quote(&self.tool("barman-cloud-wal-archive").display().to_string()),
            ep = sh_quote(&self.s3.endpoint),
            dest = sh_quote(&self.destination),
        )
    }

    /// The `restore_command` for recovering from `server_name`.
    pub fn restore_command(&self, server_name: &str) -> String {
        format!(
            "{} --endpoint-url {} {} {} %f %p",
            sh_quote(&self.tool("barman-cloud-wal-restore").display().to_string()),
            sh_quote(&self.s3.endpoint),
            sh_quote(&self.destination),
            sh_quote(server_name)
        )
    }
}

/// Quote for /bin/sh.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[derive(Debug, Deserialize)]
struct BackupList {
    backups_list: Vec<BarmanBackup>,
}

/// One entry of `barman-cloud-backup-list --format json` (fields pgdrill uses).
#[derive(Debug, Clone, Deserialize)]
pub struct BarmanBackup {
    pub backup_id: String,
    #[serde(default)]
    pub backup_name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub begin_wal: Option<String>,
    #[serde(default)]
    pub end_wal: Option<String>,
    #[serde(default)]
    pub begin_xlog: Option<String>,
    #[serde(default)]
    pub end_xlog: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub timeline: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_output_never_carries_credentials() {
        let b = Barman {
            bin: PathBuf::from("/x"),
            s3: S3Target {
                endpoint: "http://127.0.0.1:1".into(),
                region: "us-east-1".into(),
                bucket: "b".into(),
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "wJalrXUtnFEMI".into(),
            },
            destination: "s3://b/p".into(),
            run_as: RunAs {
                name: "me".into(),
                ids: None,
            },
            home: PathBuf::from("/tmp"),
            extra_env: vec![],
        };
        let t = b.redact("auth AKIDEXAMPLE:wJalrXUtnFEMI failed");
        assert_eq!(t, "auth <redacted>:<redacted> failed");
        assert!(
            !b.archive_script("src", Compression::Gzip)
                .contains("wJalrXUtnFEMI")
        );
        assert!(!b.restore_command("src").contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn quoting_is_shell_safe() {
        assert_eq!(sh_quote("s3://b/run-1/x"), "s3://b/run-1/x");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
