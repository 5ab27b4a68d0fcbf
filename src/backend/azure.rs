//! Azure Blob Storage as pgdrill reaches it: the account, its key, the container; the
//! credentials each CNPG `azureCredentials` flavour hands the tools (connection string,
//! account + key, a SAS token pgdrill signs with the key), the barman-cloud destination URL,
//! and `azure://`/`https://`/emulator URLs. Pure except the clock for a SAS's validity; never
//! talks to Azure and never logs a secret (`Debug` redacts the key).

use base64::Engine;
use chrono::{DateTime, Duration, Utc};

use crate::scenario::AzureCredentials;

/// Azurite's well-known development account and its published key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The SAS service version pgdrill signs (Azurite 3.37 and Azure both accept it).
pub const SAS_VERSION: &str = "2021-08-06";

/// One Azure storage account and container. `Debug` redacts the key.
#[derive(Clone)]
pub struct AzureTarget {
    /// The blob service URL: `https://ACCOUNT.blob.core.windows.net`, or an emulator's
    /// `http://HOST:PORT/ACCOUNT`.
    pub endpoint: String,
    pub account: String,
    pub key: String,
    pub container: String,
}

impl std::fmt::Debug for AzureTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureTarget")
            .field("endpoint", &self.endpoint)
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .field("container", &self.container)
            .finish()
    }
}

/// The environment barman-cloud reads for one credential flavour. `Debug` redacts values.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureEnv(pub Vec<(String, String)>);

impl std::fmt::Debug for AzureEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

impl AzureTarget {
    /// The emulator at `http://HOST:PORT` with Azurite's development account.
    pub fn azurite(base: &str, container: &str) -> Self {
        AzureTarget {
            endpoint: format!("{}/{AZURITE_ACCOUNT}", base.trim_end_matches('/')),
            account: AZURITE_ACCOUNT.into(),
            key: AZURITE_KEY.into(),
            container: container.into(),
        }
    }

    /// A real account: `https://ACCOUNT.blob.core.windows.net`, or `endpoint` when given
    /// (an emulator's `http://HOST:PORT/ACCOUNT` form included).
    pub fn external(endpoint: Option<&str>, account: &str, key: &str, container: &str) -> Self {
        let endpoint = endpoint
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        AzureTarget {
            endpoint,
            account: account.into(),
            key: key.into(),
            container: container.into(),
        }
    }

    /// Whether the endpoint is Azure's own (`*.blob.core.windows.net`), not an emulator.
    pub fn is_azure_domain(&self) -> bool {
        host_of(&self.endpoint).is_some_and(|h| h.ends_with(".blob.core.windows.net"))
    }

    /// barman-cloud's destination for `path` in the container: Azure's
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH`, or the emulator form
    /// `http://HOST:PORT/ACCOUNT/CONTAINER/PATH`.
    pub fn destination(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.endpoint,
            self.container,
            path.trim_matches('/')
        )
    }

    /// `azure://CONTAINER/PATH`, how reports and errors name a location (no endpoint, no key).
    pub fn url(&self, path: &str) -> String {
        format!("azure://{}/{}", self.container, path.trim_matches('/'))
    }

    /// `AZURE_STORAGE_CONNECTION_STRING` with the account key.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol={};AccountName={};AccountKey={};BlobEndpoint={};",
            scheme_of(&self.endpoint),
            self.account,
            self.key,
            self.endpoint
        )
    }

    /// A connection string carrying a SAS token instead of the key.
    pub fn sas_connection_string(&self, sas: &str) -> String {
        format!(
            "BlobEndpoint={};SharedAccessSignature={sas};",
            self.endpoint
        )
    }

    /// An account SAS for the blob service (containers and objects: read, add, create, write,
    /// delete, list), valid from five minutes before `now` for `hours`, signed with the key.
    pub fn account_sas(&self, now: DateTime<Utc>, hours: i64) -> Result<String, String> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(&self.key)
            .map_err(|_| "the Azure storage key is not base64".to_string())?;
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let (start, expiry) = (
            fmt(now - Duration::minutes(5)),
            fmt(now + Duration::hours(hours)),
        );
        let (perms, services, types, protocol) =
            ("racwdl", "b", "co", scheme_protocols(&self.endpoint));
        // Account SAS string-to-sign (service version 2020-12-06 and later): account,
        // permissions, services, resource types, start, expiry, IP, protocol, version,
        // encryption scope, each followed by a newline.
        let to_sign = format!(
            "{}\n{perms}\n{services}\n{types}\n{start}\n{expiry}\n\n{protocol}\n{SAS_VERSION}\n\n",
            self.account
        );
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let sig = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&k, to_sign.as_bytes()).as_ref());
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        Ok(format!(
            "sv={SAS_VERSION}&ss={services}&srt={types}&sp={perms}&st={}&se={}&spr={protocol}&sig={}",
            enc(&start),
            enc(&expiry),
            enc(&sig)
        ))
    }

    /// The environment barman-cloud reads for `flavour`, as CloudNativePG sets it from
    /// `azureCredentials`. On an emulator barman-cloud insists on a connection string (it
    /// cannot tell the account from such a URL otherwise), so there the account-and-key
    /// flavour travels as a connection string with the key and the SAS flavour as one with
    /// the token; on Azure's domain they are `AZURE_STORAGE_ACCOUNT` with
    /// `AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN`.
    pub fn env(&self, flavour: AzureCredentials, now: DateTime<Utc>) -> Result<AzureEnv, String> {
        let v = |k: &str, val: String| (k.to_string(), val);
        let azure = self.is_azure_domain();
        Ok(AzureEnv(match flavour {
            AzureCredentials::ConnectionString => {
                vec![v(
                    "AZURE_STORAGE_CONNECTION_STRING",
                    self.connection_string(),
                )]
            }
            AzureCredentials::AccountKey if azure => vec![
                v("AZURE_STORAGE_ACCOUNT", self.account.clone()),
                v("AZURE_STORAGE_KEY", self.key.clone()),
            ],
            AzureCredentials::AccountKey => {
                vec![v(
                    "AZURE_STORAGE_CONNECTION_STRING",
                    self.connection_string(),
                )]
            }
            AzureCredentials::Sas => {
                let sas = self.account_sas(now, 24)?;
                if azure {
                    vec![
                        v("AZURE_STORAGE_ACCOUNT", self.account.clone()),
                        v("AZURE_STORAGE_SAS_TOKEN", sas),
                    ]
                } else {
                    vec![v(
                        "AZURE_STORAGE_CONNECTION_STRING",
                        self.sas_connection_string(&sas),
                    )]
                }
            }
        }))
    }
}

fn scheme_of(url: &str) -> &str {
    url.split_once("://").map(|(s, _)| s).unwrap_or("https")
}

/// `spr`: HTTPS only on Azure, HTTP allowed on a plain-HTTP emulator.
fn scheme_protocols(endpoint: &str) -> &'static str {
    if scheme_of(endpoint) == "http" {
        "https,http"
    } else {
        "https"
    }
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split('/').next()?;
    Some(host.split(':').next().unwrap_or(host))
}

/// An Azure archive location named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureLocation {
    /// The blob service URL when the URL names one (`https://…` and emulator forms).
    pub endpoint: Option<String>,
    /// The account when the URL names one.
    pub account: Option<String>,
    pub container: String,
    /// The path inside the container, no leading or trailing slash.
    pub path: String,
}

/// `azure://CONTAINER/PATH`, `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH`, or the
/// emulator's `http://HOST:PORT/ACCOUNT/CONTAINER/PATH`.
pub fn parse_azure_url(url: &str) -> Result<AzureLocation, String> {
    let split = |rest: &str| {
        let (c, p) = rest.split_once('/').unwrap_or((rest, ""));
        (c.to_string(), p.trim_matches('/').to_string())
    };
    let (endpoint, account, (container, path)) = if let Some(rest) = url.strip_prefix("azure://") {
        (None, None, split(rest))
    } else {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(s, _)| *s == "http" || *s == "https")
            .ok_or_else(|| format!("`{url}` is not an azure://, https:// or http:// URL"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let bare = host.split(':').next().unwrap_or(host);
        if let Some(account) = bare.strip_suffix(".blob.core.windows.net") {
            (
                Some(format!("{scheme}://{host}")),
                Some(account.to_string()),
                split(path),
            )
        } else {
            let (account, rest) = path.split_once('/').unwrap_or((path, ""));
            if account.is_empty() {
                return Err(format!("`{url}` names no storage account"));
            }
            (
                Some(format!("{scheme}://{host}/{account}")),
                Some(account.to_string()),
                split(rest),
            )
        }
    };
    if container.is_empty() {
        return Err(format!("`{url}` names no container"));
    }
    Ok(AzureLocation {
        endpoint,
        account,
        container,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> AzureTarget {
        AzureTarget::azurite("http://127.0.0.1:10000", "pgdrill")
    }

    #[test]
    fn destinations_follow_barman_clouds_two_url_forms() {
        assert_eq!(
            t().destination("/pgdrill/run/scn/"),
            "http://127.0.0.1:10000/devstoreaccount1/pgdrill/pgdrill/run/scn"
        );
        let real = AzureTarget::external(None, "acct", "a2V5", "backups");
        assert_eq!(
            real.destination("prod"),
            "https://acct.blob.core.windows.net/backups/prod"
        );
        assert!(real.is_azure_domain() && !t().is_azure_domain());
        assert_eq!(t().url("p/q"), "azure://pgdrill/p/q");
    }

    #[test]
    fn each_flavour_gets_its_own_environment_and_debug_hides_it() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let cs = t().env(AzureCredentials::ConnectionString, now).unwrap();
        assert_eq!(cs.0[0].0, "AZURE_STORAGE_CONNECTION_STRING");
        assert!(
            cs.0[0].1.contains("AccountKey=Eby8")
                && cs.0[0]
                    .1
                    .contains("BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
        );
        let sas = t().env(AzureCredentials::Sas, now).unwrap();
        assert!(sas.0[0].1.starts_with("BlobEndpoint=") && !sas.0[0].1.contains("AccountKey"));
        assert!(sas.0[0].1.contains("sv=2021-08-06&ss=b&srt=co&sp=racwdl&st=2026-01-02T02%3A59%3A05Z&se=2026-01-03T03%3A04%3A05Z&spr=https,http&sig="));
        let real = AzureTarget::external(None, "acct", AZURITE_KEY, "c");
        let ak = real.env(AzureCredentials::AccountKey, now).unwrap();
        let names: Vec<&str> = ak.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"]);
        let rs = real.env(AzureCredentials::Sas, now).unwrap();
        assert_eq!(rs.0[1].0, "AZURE_STORAGE_SAS_TOKEN");
        for e in [&cs, &sas, &ak, &rs] {
            let d = format!("{e:?}");
            assert!(!d.contains("Eby8") && !d.contains("sig="), "{d}");
        }
        assert!(!format!("{:?}", t()).contains("Eby8"));
    }

    #[test]
    fn the_sas_signature_is_hmac_sha256_of_the_string_to_sign() {
        // Recomputed independently: the signature changes with the key and the account.
        let now = Utc::now();
        let a = t().account_sas(now, 1).unwrap();
        let mut other = t();
        other.account = "someoneelse".into();
        assert_ne!(a, other.account_sas(now, 1).unwrap());
        let mut bad = t();
        bad.key = "not base64!".into();
        assert!(bad.account_sas(now, 1).is_err());
    }

    #[test]
    fn urls_of_all_three_forms_parse() {
        let l = parse_azure_url("azure://backups/prod/pg").unwrap();
        assert_eq!(
            (l.container.as_str(), l.path.as_str(), l.endpoint),
            ("backups", "prod/pg", None)
        );
        let l = parse_azure_url("https://acct.blob.core.windows.net/backups/prod").unwrap();
        assert_eq!(
            l.endpoint.as_deref(),
            Some("https://acct.blob.core.windows.net")
        );
        assert_eq!(
            (l.account.as_deref(), l.container.as_str()),
            (Some("acct"), "backups")
        );
        let l = parse_azure_url("http://127.0.0.1:10000/devstoreaccount1/c/p/").unwrap();
        assert_eq!(
            l.endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!((l.container.as_str(), l.path.as_str()), ("c", "p"));
        assert!(parse_azure_url("s3://b/p").is_err());
        assert!(parse_azure_url("azure:///p").is_err());
        assert!(parse_azure_url("http://127.0.0.1:10000/").is_err());
    }
}
