//! The barman-cloud commands CloudNativePG runs, invoked as the PostgreSQL user against the
//! drill's destination. Credentials travel only in the child environment, never in arguments,
//! files or logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backend::BackendError;
use crate::backend::WalPrefetch;
use crate::backend::azure::{AzureEnv, AzureTarget};
use crate::backend::objstore::S3Target;
use crate::scenario::Compression;

use super::process::{self, RunAs, ToolOutput};

/// Everything a barman-cloud command needs besides its own arguments.
#[derive(Debug, Clone)]
pub struct Barman {
    pub bin: PathBuf,
    /// The object store and the credentials the tools get.
    pub cloud: Cloud,
    /// `s3://bucket/prefix`, or an Azure blob URL (`https://ACCOUNT.blob.core.windows.net/…`
    /// or the emulator's `http://HOST:PORT/ACCOUNT/CONTAINER/…`).
    pub destination: String,
    pub run_as: RunAs,
    /// HOME for the tools, holding the AWS config file.
    pub home: PathBuf,
    /// The scenario's extra environment (never credentials: validation refuses them).
    pub extra_env: Vec<(String, String)>,
}

/// Which provider barman-cloud talks to, with what credentials.
#[derive(Debug, Clone)]
pub enum Cloud {
    S3(S3Target),
    /// `--cloud-provider azure-blob-storage`; `env` is one `azureCredentials` flavour's
    /// environment (`AzureTarget::env`), `target` the account it was made from (a restore
    /// script is given the account and its key, as seed 004's contract says).
    Azure {
        env: AzureEnv,
        target: AzureTarget,
    },
}

/// The AWS config file barman's boto3 reads: path-style addressing for S3-compatible stores.
pub const AWS_CONFIG: &str = "[default]\ns3 =\n    addressing_style = path\n";

impl Barman {
    /// Environment for the tools (and for postgres, whose archive/restore commands call them).
    pub fn env(&self) -> Vec<(String, String)> {
        let creds = match &self.cloud {
            Cloud::S3(s3) => vec![
                ("AWS_ACCESS_KEY_ID".into(), s3.access_key.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), s3.secret_key.clone()),
                ("AWS_DEFAULT_REGION".into(), s3.region.clone()),
            ],
            Cloud::Azure { env, .. } => env.0.clone(),
        };
        creds
            .into_iter()
            .chain([
                (
                    "AWS_CONFIG_FILE".into(),
                    self.home.join("aws-config").display().to_string(),
                ),
                ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ])
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

    /// `--endpoint-url URL` on S3, `--cloud-provider azure-blob-storage` on Azure (the
    /// destination URL names the endpoint there).
    pub fn endpoint_args(&self) -> [String; 2] {
        match &self.cloud {
            Cloud::S3(s3) => ["--endpoint-url".into(), s3.endpoint.clone()],
            Cloud::Azure { .. } => ["--cloud-provider".into(), "azure-blob-storage".into()],
        }
    }

    /// [`Barman::endpoint_args`] quoted for a shell script.
    fn endpoint_words(&self) -> String {
        self.endpoint_args()
            .iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
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
        let secrets: Vec<&str> = match &self.cloud {
            Cloud::S3(s3) => vec![&s3.secret_key, &s3.access_key],
            // The whole value, and the parts a tool might print on their own: the key or
            // the SAS token inside a connection string, the SAS signature.
            Cloud::Azure { env, target } => env
                .0
                .iter()
                .map(|(_, v)| v)
                .chain(std::iter::once(&target.key))
                .flat_map(|v| {
                    std::iter::once(v.as_str()).chain(v.split(';').filter_map(|part| {
                        part.split_once('=')
                            .filter(|(k, _)| matches!(*k, "AccountKey" | "SharedAccessSignature"))
                            .map(|(_, v)| v)
                    }))
                })
                .flat_map(|v| {
                    std::iter::once(v).chain(v.split('&').filter_map(|q| q.strip_prefix("sig=")))
                })
                .collect(),
        };
        for secret in secrets {
            if secret.len() >= 8 {
                t = t.replace(secret, "<redacted>");
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

    /// `barman-cloud-backup` of the server listening in `socket_dir`, with `jobs` parallel
    /// uploads (`None`: barman-cloud's default).
    pub async fn backup(
        &self,
        server_name: &str,
        socket_dir: &Path,
        compression: Compression,
        jobs: Option<u32>,
        name: &str,
        deadline: Duration,
    ) -> Result<ToolOutput, BackendError> {
        let mut a = self.endpoint_args().to_vec();
        if let Some(f) = compression.barman_flag() {
            a.push(f.into());
        }
        if let Some(j) = jobs {
            a.extend(["--jobs".into(), j.to_string()]);
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
               {check} {ep} {dest} {server}\n  \
               rm -f .check-empty-wal-archive\n\
             fi\n\
             exec {archive} {ep} {flag} {dest} {server} \"$1\"\n",
            server = sh_quote(server_name),
            check = sh_quote(
                &self
                    .tool("barman-cloud-check-wal-archive")
                    .display()
                    .to_string()
            ),
            archive = sh_quote(&self.tool("barman-cloud-wal-archive").display().to_string()),
            ep = self.endpoint_words(),
            dest = sh_quote(&self.destination),
        )
    }

    /// The `restore_command` for recovering from `server_name`.
    pub fn restore_command(&self, server_name: &str) -> String {
        format!(
            "{} {} {} {} %f %p",
            sh_quote(&self.tool("barman-cloud-wal-restore").display().to_string()),
            self.endpoint_words(),
            sh_quote(&self.destination),
            sh_quote(server_name)
        )
    }
}

/// Where the parallel `restore_command` keeps what it fetched ahead, and what it logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefetch {
    /// Segments fetched per request that misses the spool: the requested one and the next
    /// `max_parallel - 1` (CNPG's `wal.maxParallel`).
    pub max_parallel: u32,
    /// The spool directory, inside the recovering instance's own directory.
    pub spool: PathBuf,
    /// One line per fetch, spool hit and remembered miss (see [`prefetch_counts`]).
    pub log: PathBuf,
}

impl Barman {
    /// The `restore_command` script that fetches WAL the way CloudNativePG's instance manager
    /// does with `wal.maxParallel`: asked for segment X, serve it from the spool if a previous
    /// call fetched it; answer "not found" at once if a previous call's prefetch found it
    /// missing (once: the marker is consumed); otherwise fetch X and the next N-1 segments in
    /// parallel into the spool (each under a temporary name, renamed when complete), wait for
    /// all, and serve X or exit 1. History, `.partial` and `.backup` files go straight to
    /// `barman-cloud-wal-restore`. Arguments: `%f %p`. No secrets: they come from the
    /// environment the server runs with.
    pub fn restore_script(&self, server_name: &str, p: &Prefetch) -> String {
        let per_log = crate::wal::segments_per_log(crate::wal::DEFAULT_SEGMENT_SIZE);
        format!(
            r#"#!/bin/sh
# pgdrill restore_command for serverName {server}, {n} WAL segments in parallel
# (written per instance; no secrets here)
set -u
restore={restore}
dest={dest}
server={server}
spool={spool}
log={log}
n={n}
per_log={per_log}
f=$1
p=$2
segment=yes
[ ${{#f}} -eq 24 ] || segment=no
case $f in *[!0-9A-F]*) segment=no ;; esac
if [ $segment = no ]; then
  exec "$restore" {ep} "$dest" "$server" "$f" "$p"
fi
mkdir -p "$spool"
if [ -f "$spool/$f" ]; then
  mv -f "$spool/$f" "$p" && echo "spool-hit $f" >>"$log" && exit 0
fi
if [ -f "$spool/$f.missing" ]; then
  rm -f "$spool/$f.missing"
  echo "remembered-missing $f" >>"$log"
  exit 1
fi
tli=${{f%????????????????}}
rest=${{f#????????}}
hi=$((0x${{rest%????????}}))
lo=$((0x${{rest#????????}}))
i=0
while [ $i -lt $n ]; do
  seg=$(printf '%s%08X%08X' "$tli" "$hi" "$lo")
  if [ $i -eq 0 ] || {{ [ ! -f "$spool/$seg" ] && [ ! -f "$spool/$seg.missing" ]; }}; then
    echo "fetch $seg" >>"$log"
    (
      "$restore" {ep} "$dest" "$server" "$seg" "$spool/.$seg.part"
      rc=$?
      if [ $rc -eq 0 ]; then
        mv -f "$spool/.$seg.part" "$spool/$seg"
      else
        rm -f "$spool/.$seg.part"
        echo "fetch-failed $seg exit $rc" >>"$log"
        if [ $rc -eq 1 ] && [ "$seg" != "$f" ]; then : >"$spool/$seg.missing"; fi
      fi
    ) &
  fi
  i=$((i + 1))
  lo=$((lo + 1))
  if [ $lo -ge $per_log ]; then lo=0; hi=$((hi + 1)); fi
done
wait
if [ -f "$spool/$f" ]; then
  mv -f "$spool/$f" "$p" && echo "served $f" >>"$log" && exit 0
fi
exit 1
"#,
            server = sh_quote(server_name),
            n = p.max_parallel,
            restore = sh_quote(&self.tool("barman-cloud-wal-restore").display().to_string()),
            ep = self.endpoint_words(),
            dest = sh_quote(&self.destination),
            spool = sh_quote(&p.spool.display().to_string()),
            log = sh_quote(&p.log.display().to_string()),
        )
    }
}

/// What the parallel `restore_command` did, counted from the lines of its log. Pure.
pub fn prefetch_counts(max_parallel: u32, log: &str) -> WalPrefetch {
    let mut c = WalPrefetch {
        max_parallel,
        ..WalPrefetch::default()
    };
    for line in log.lines() {
        match line.split_whitespace().next() {
            Some("fetch") => c.fetches += 1,
            Some("spool-hit") => c.spool_hits += 1,
            Some("remembered-missing") => c.remembered_missing += 1,
            Some("fetch-failed") => c.failed_fetches += 1,
            _ => {}
        }
    }
    c
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

    fn barman(bin: &Path) -> Barman {
        Barman {
            bin: bin.to_path_buf(),
            cloud: Cloud::S3(S3Target {
                endpoint: "http://127.0.0.1:1".into(),
                region: "us-east-1".into(),
                bucket: "b".into(),
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "wJalrXUtnFEMI".into(),
            }),
            destination: "s3://b/p".into(),
            run_as: RunAs {
                name: "me".into(),
                ids: None,
            },
            home: PathBuf::from("/tmp"),
            extra_env: vec![],
        }
    }

    fn prefetch(dir: &Path, n: u32) -> Prefetch {
        Prefetch {
            max_parallel: n,
            spool: dir.join("wal-spool"),
            log: dir.join("restore-wal.log"),
        }
    }

    #[test]
    fn azure_tools_name_the_provider_and_their_output_hides_every_secret() {
        use crate::backend::azure::{AZURITE_KEY, AzureTarget};
        use crate::scenario::AzureCredentials;
        let t = AzureTarget::azurite("http://127.0.0.1:10000", "c");
        for flavour in [
            AzureCredentials::ConnectionString,
            AzureCredentials::AccountKey,
            AzureCredentials::Sas,
        ] {
            let env = t.env(flavour, chrono::Utc::now()).unwrap();
            let mut b = barman(Path::new("/x"));
            b.cloud = Cloud::Azure {
                env: env.clone(),
                target: t.clone(),
            };
            let script = b.archive_script("src", Compression::Gzip);
            assert!(
                script.contains("--cloud-provider azure-blob-storage"),
                "{script}"
            );
            assert!(!script.contains("Eby8") && !script.contains("sig="));
            let (name, value) = &env.0[0];
            assert!(b.env().iter().any(|(k, v)| k == name && v == value));
            let red = b.redact(&format!("ValueError: bad {value} /"));
            assert!(
                !red.contains("Eby8") && !red.contains("sig="),
                "{flavour:?}: {red}"
            );
            if value.contains("AccountKey") {
                let red = b.redact(&format!("key {AZURITE_KEY} refused"));
                assert_eq!(red, "key <redacted> refused");
            } else {
                let sig = value.split("sig=").nth(1).unwrap().trim_end_matches(';');
                let red = b.redact(&format!("signature {sig} refused"));
                assert_eq!(red, "signature <redacted> refused");
            }
        }
    }

    #[test]
    fn tool_output_never_carries_credentials() {
        let b = barman(Path::new("/x"));
        let t = b.redact("auth AKIDEXAMPLE:wJalrXUtnFEMI failed");
        assert_eq!(t, "auth <redacted>:<redacted> failed");
        assert!(
            !b.archive_script("src", Compression::Gzip)
                .contains("wJalrXUtnFEMI")
        );
        assert!(!b.restore_command("src").contains("wJalrXUtnFEMI"));
        let script = b.restore_script("src", &prefetch(Path::new("/i"), 4));
        assert!(!script.contains("wJalrXUtnFEMI") && !script.contains("AKIDEXAMPLE"));
    }

    #[test]
    fn the_restore_script_quotes_what_it_is_given() {
        let b = barman(Path::new("/opt/barman dir/bin"));
        let script = b.restore_script("it's", &prefetch(Path::new("/runs/a b"), 8));
        for line in [
            "restore='/opt/barman dir/bin/barman-cloud-wal-restore'",
            "  exec \"$restore\" --endpoint-url http://127.0.0.1:1 \"$dest\" \"$server\" \"$f\" \"$p\"",
            "dest=s3://b/p",
            "server='it'\\''s'",
            "spool='/runs/a b/wal-spool'",
            "log='/runs/a b/restore-wal.log'",
            "n=8",
            "per_log=256",
        ] {
            assert!(
                script.lines().any(|l| l == line),
                "no `{line}` in:\n{script}"
            );
        }
        assert!(script.starts_with("#!/bin/sh\n"));
    }

    /// Run the script with a fake `barman-cloud-wal-restore` serving `store/`, as PostgreSQL
    /// would: `%f %p`. Returns the exit code.
    fn restore(dir: &Path, script: &Path, name: &str) -> i32 {
        std::process::Command::new("/bin/sh")
            .arg(script)
            .arg(name)
            .arg(dir.join("pg_wal").join("RECOVERYXLOG"))
            .status()
            .unwrap()
            .code()
            .unwrap()
    }

    #[test]
    fn the_restore_script_prefetches_serves_from_the_spool_and_remembers_misses() {
        use crate::wal::{DEFAULT_SEGMENT_SIZE, SegmentName};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["bin", "store", "pg_wal"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        // The fake tool: `--endpoint-url EP DEST SERVER NAME PATH`; exit 1 when missing, as
        // barman-cloud-wal-restore does; records every name it was asked for.
        std::fs::write(
            d.join("bin/barman-cloud-wal-restore"),
            format!(
                "#!/bin/sh\necho \"$5\" >>{asked}\n[ -f {store}/\"$5\" ] || exit 1\ncp {store}/\"$5\" \"$6\"\n",
                asked = d.join("asked").display(),
                store = d.join("store").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("bin/barman-cloud-wal-restore"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let first: SegmentName = "0000000100000002000000FE".parse().unwrap();
        let mut segs = vec![first];
        for _ in 0..3 {
            let next = segs.last().unwrap().next(DEFAULT_SEGMENT_SIZE).unwrap();
            segs.push(next);
        }
        // FE, FF, then the next log file's 00 and 01: the arithmetic src/wal.rs does.
        assert_eq!(segs[2].to_string(), "000000010000000300000000");
        for s in &segs[..3] {
            std::fs::write(d.join("store").join(s.to_string()), s.to_string()).unwrap();
        }
        std::fs::write(d.join("store/00000002.history"), "1\t0/3000000\tx\n").unwrap();
        let b = barman(&d.join("bin"));
        let script = d.join("restore-wal.sh");
        std::fs::write(&script, b.restore_script("src", &prefetch(d, 4))).unwrap();
        let got = |d: &Path| std::fs::read_to_string(d.join("pg_wal/RECOVERYXLOG")).unwrap();

        // A miss: FE fetched with the next three at once; FE served.
        assert_eq!(restore(d, &script, &segs[0].to_string()), 0);
        assert_eq!(got(d), segs[0].to_string());
        let asked = std::fs::read_to_string(d.join("asked")).unwrap();
        let mut asked: Vec<&str> = asked.lines().collect();
        asked.sort();
        let want: Vec<String> = segs.iter().map(ToString::to_string).collect();
        assert_eq!(asked, want);
        // FF and 3/00 come from the spool without asking the store again.
        for s in &segs[1..3] {
            assert_eq!(restore(d, &script, &s.to_string()), 0);
            assert_eq!(got(d), s.to_string());
        }
        // 3/01 was found missing by the prefetch: "not found" without asking, once.
        assert_eq!(restore(d, &script, &segs[3].to_string()), 1);
        let asked_now = std::fs::read_to_string(d.join("asked")).unwrap();
        assert_eq!(asked_now.lines().count(), 4, "{asked_now}");
        // A history file goes straight to the tool.
        assert_eq!(restore(d, &script, "00000002.history"), 0);
        assert!(got(d).starts_with('1'));
        // Asked again, 3/01 is fetched (and is still missing).
        assert_eq!(restore(d, &script, &segs[3].to_string()), 1);

        let log = std::fs::read_to_string(d.join("restore-wal.log")).unwrap();
        let c = prefetch_counts(4, &log);
        assert_eq!(
            (c.fetches, c.spool_hits, c.remembered_missing),
            (4 + 4, 2, 1),
            "{log}"
        );
        // Nothing half-written is left in the spool.
        let left: Vec<String> = std::fs::read_dir(d.join("wal-spool"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn prefetch_counts_read_the_script_log() {
        let log = "fetch A\nfetch B\nfetch-failed B exit 1\nserved A\nremembered-missing B\nspool-hit C\n";
        assert_eq!(
            prefetch_counts(2, log),
            WalPrefetch {
                max_parallel: 2,
                fetches: 2,
                spool_hits: 1,
                remembered_missing: 1,
                failed_fetches: 1,
            }
        );
    }

    #[test]
    fn quoting_is_shell_safe() {
        assert_eq!(sh_quote("s3://b/run-1/x"), "s3://b/run-1/x");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
