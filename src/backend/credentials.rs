//! S3 credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, or a profile of the AWS shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`). Never
//! prints a secret; errors name the file and profile only.

use std::path::{Path, PathBuf};

/// An access key pair. `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl KeyPair {
    /// A fresh random key pair, so nothing outside this run can use the endpoint.
    pub fn random() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut token = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    let c = rng.random_range(0..36u8);
                    (if c < 10 { b'0' + c } else { b'A' + c - 10 }) as char
                })
                .collect()
        };
        Self {
            access_key: format!("PGDRILL{}", token(13)),
            secret_key: token(40),
        }
    }
}

/// The `[profile]` section of a shared credentials file (INI), if it has both keys.
pub fn parse_profile(text: &str, profile: &str) -> Option<KeyPair> {
    let mut in_section = false;
    let (mut ak, mut sk) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_section = name == profile || name.strip_prefix("profile ") == Some(profile);
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => ak = Some(v.trim().to_string()),
                "aws_secret_access_key" => sk = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    Some(KeyPair {
        access_key: ak?,
        secret_key: sk?,
    })
}

/// Where the shared credentials file is.
pub fn credentials_file() -> Option<PathBuf> {
    std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws/credentials")))
}

/// Resolve credentials: an explicit `profile` wins; then the two environment variables; then
/// `AWS_PROFILE`. `what` names the command in errors.
pub fn resolve(profile: Option<&str>, what: &str) -> Result<KeyPair, String> {
    resolve_with(
        profile,
        what,
        |k| std::env::var(k).ok(),
        || {
            let file = credentials_file().ok_or_else(|| {
                "cannot locate the AWS credentials file (HOME is not set)".to_string()
            })?;
            std::fs::read_to_string(&file)
                .map(|t| (file.clone(), t))
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
        },
    )
}

/// `resolve` with the environment and the credentials file handed in.
fn resolve_with(
    profile: Option<&str>,
    what: &str,
    env: impl Fn(&str) -> Option<String>,
    read_file: impl FnOnce() -> Result<(PathBuf, String), String>,
) -> Result<KeyPair, String> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let from_env = match (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) {
        (Some(a), Some(s)) => Some(KeyPair {
            access_key: a,
            secret_key: s,
        }),
        _ => None,
    };
    let profile = match (profile, from_env) {
        (Some(p), _) => p.to_string(),
        (None, Some(k)) => return Ok(k),
        (None, None) => set("AWS_PROFILE").ok_or_else(|| {
            format!(
                "{what} needs credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE, or --profile where the command has it)"
            )
        })?,
    };
    let (file, text) = read_file().map_err(|e| format!("{what}: profile `{profile}`: {e}"))?;
    parse_profile(&text, &profile).ok_or_else(|| {
        format!(
            "{what}: profile `{profile}` in {} has no aws_access_key_id and aws_secret_access_key \
             (session tokens and SSO profiles are not supported)",
            file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
[default]
aws_access_key_id = AKDEFAULT
aws_secret_access_key = sdefault

# a comment
[profile gameday]
aws_access_key_id=AKGAME
aws_secret_access_key= sgame
region = eu-west-1

[half]
aws_access_key_id = AKHALF
";

    #[test]
    fn profiles_are_read_by_name() {
        assert_eq!(
            parse_profile(FILE, "default").unwrap().access_key,
            "AKDEFAULT"
        );
        let g = parse_profile(FILE, "gameday").unwrap();
        assert_eq!(
            (g.access_key.as_str(), g.secret_key.as_str()),
            ("AKGAME", "sgame")
        );
        assert!(
            parse_profile(FILE, "half").is_none(),
            "a secret is required"
        );
        assert!(parse_profile(FILE, "missing").is_none());
        assert!(!format!("{g:?}").contains("sgame"), "Debug redacts");
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn file() -> Result<(PathBuf, String), String> {
        Ok((PathBuf::from("credentials"), FILE.to_string()))
    }

    #[test]
    fn an_explicit_profile_beats_the_environment_which_beats_aws_profile() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
            ("AWS_PROFILE", "default"),
        ];
        let r = |p: Option<&str>, vars| resolve_with(p, "t", env(vars), file);
        assert_eq!(r(Some("gameday"), &keys).unwrap().access_key, "AKGAME");
        assert_eq!(r(None, &keys).unwrap().access_key, "AKENV");
        assert_eq!(
            r(None, &[("AWS_PROFILE", "default")]).unwrap().access_key,
            "AKDEFAULT"
        );
        let half = [("AWS_ACCESS_KEY_ID", "AKENV"), ("AWS_PROFILE", "gameday")];
        assert_eq!(
            r(None, &half).unwrap().access_key,
            "AKGAME",
            "one env key is not a pair"
        );
        let none = r(None, &[]).unwrap_err();
        assert!(none.contains("needs credentials"), "{none}");
        let missing = r(Some("half"), &[]).unwrap_err();
        assert!(
            missing.contains("profile `half`") && !missing.contains("AKHALF"),
            "{missing}"
        );
    }
}
