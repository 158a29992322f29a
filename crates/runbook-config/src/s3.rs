//! Repositories on S3-compatible storage: the location as restic writes it, and credentials from
//! the environment or a credentials file, never from the config file.

use std::path::PathBuf;

use secrecy::SecretString;

/// Where an S3 repository root lives: `s3:[http[s]://]host[:port]/bucket[/prefix]`, the syntax
/// stock restic accepts (without a scheme the endpoint is `https`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// `scheme://host[:port]`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3:...`.
    ///
    /// # Errors
    /// A reason for the config error line.
    pub fn parse(text: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected s3:https://HOST[:PORT]/BUCKET[/PREFIX]";
        let rest = text
            .strip_prefix("s3:")
            .ok_or_else(|| format!("{EXPECTED} (only s3: repositories are remote)"))?;
        let (scheme, rest) = match rest.split_once("://") {
            Some((s @ ("http" | "https"), r)) => (s, r),
            Some((other, _)) => return Err(format!("unsupported scheme {other:?}: {EXPECTED}")),
            None => ("https", rest),
        };
        let mut parts = rest.trim_end_matches('/').splitn(3, '/');
        let host = parts.next().unwrap_or_default();
        let bucket = parts.next().unwrap_or_default();
        let prefix = parts.next().unwrap_or_default().trim_matches('/');
        if host.is_empty() || bucket.is_empty() {
            return Err(format!("{EXPECTED} (host and bucket are required)"));
        }
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        {
            return Err(format!(
                "bucket {bucket:?}: use lowercase letters, digits, '-', '.' and '_'"
            ));
        }
        Ok(Self {
            endpoint: format!("{scheme}://{host}"),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The key prefix of `target`'s repository: `prefix/target`.
    #[must_use]
    pub fn root_of(&self, target: &str) -> String {
        if self.prefix.is_empty() {
            target.to_string()
        } else {
            format!("{}/{target}", self.prefix)
        }
    }

    /// `target`'s repository as stock restic names it (`restic -r` takes it as is).
    #[must_use]
    pub fn restic_url(&self, target: &str) -> String {
        format!(
            "s3:{}/{}/{}",
            self.endpoint,
            self.bucket,
            self.root_of(target)
        )
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3:{}/{}", self.endpoint, self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// A repository root on S3-compatible storage.
#[derive(Debug, Clone)]
pub struct S3Repository {
    /// Where.
    pub url: S3Url,
    /// The region (`region` in the config, else `AWS_DEFAULT_REGION`/`AWS_REGION`, else
    /// `us-east-1`; Cloudflare R2 takes `auto`).
    pub region: Option<String>,
    /// An AWS-style credentials file (`[default]` or `$AWS_PROFILE`, with
    /// `aws_access_key_id` and `aws_secret_access_key`).
    pub credentials_file: Option<PathBuf>,
}

/// Access keys for S3.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// The access key id (not secret, but not logged either).
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: SecretString,
}

impl S3Repository {
    /// The region to sign requests for.
    #[must_use]
    pub fn region(&self) -> String {
        self.region
            .clone()
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"))
            .or_else(|| env_nonempty("AWS_REGION"))
            .unwrap_or_else(|| "us-east-1".into())
    }

    /// The access keys: from `credentials_file` when configured, else `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, else the seeds' `R2_ACCESS_KEY_ID` and `R2_SECRET_ACCESS_KEY`.
    ///
    /// # Errors
    /// One line saying what is missing and where it was looked for.
    pub fn credentials(&self) -> Result<S3Credentials, String> {
        if let Some(file) = &self.credentials_file {
            return from_file(file);
        }
        for (id, secret) in [
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            ("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"),
        ] {
            match (env_nonempty(id), env_nonempty(secret)) {
                (Some(i), Some(s)) => {
                    return Ok(S3Credentials {
                        access_key_id: i,
                        secret_access_key: s.into(),
                    });
                }
                (Some(_), None) => return Err(format!("{id} is set but {secret} is not")),
                (None, Some(_)) => return Err(format!("{secret} is set but {id} is not")),
                (None, None) => {}
            }
        }
        Err("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY), or repository.credentials_file".into())
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads an AWS-style credentials file: the `[default]` profile, or `$AWS_PROFILE`'s.
fn from_file(file: &std::path::Path) -> Result<S3Credentials, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read credentials_file {}: {e}", file.display()))?;
    let profile = env_nonempty("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let mut in_profile = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
        } else if in_profile && let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok(S3Credentials {
            access_key_id: id,
            secret_access_key: secret.into(),
        }),
        _ => Err(format!(
            "credentials_file {}: profile [{profile}] needs aws_access_key_id and aws_secret_access_key",
            file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_syntax_parses() {
        let u = S3Url::parse("s3:http://127.0.0.1:9000/backups/prod/app").expect("parses");
        assert_eq!(u.endpoint, "http://127.0.0.1:9000");
        assert_eq!(u.bucket, "backups");
        assert_eq!(u.prefix, "prod/app");
        assert_eq!(u.root_of("db"), "prod/app/db");
        assert_eq!(
            u.restic_url("db"),
            "s3:http://127.0.0.1:9000/backups/prod/app/db"
        );
        let bare = S3Url::parse("s3:s3.amazonaws.com/b").expect("parses");
        assert_eq!(bare.endpoint, "https://s3.amazonaws.com");
        assert_eq!(bare.root_of("db"), "db");
        assert_eq!(bare.to_string(), "s3:https://s3.amazonaws.com/b");
    }

    #[test]
    fn bad_locations_say_why() {
        for (text, why) in [
            ("/srv/repo", "s3:"),
            ("s3:ftp://h/b", "unsupported scheme"),
            ("s3:https://host", "bucket are required"),
            ("s3:https://host/Bad_Bucket", "lowercase"),
        ] {
            let e = S3Url::parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_credentials_file_profile_is_read() {
        let dir = std::env::temp_dir().join(format!("runbook-s3-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[other]\naws_access_key_id = X\n[default]\naws_access_key_id = AKID\naws_secret_access_key = s3cret\n",
        )
        .expect("write");
        let repo = S3Repository {
            url: S3Url::parse("s3:http://h/b").expect("parses"),
            region: None,
            credentials_file: Some(file.clone()),
        };
        let c = repo.credentials().expect("read");
        assert_eq!(c.access_key_id, "AKID");
        std::fs::write(&file, "[default]\naws_access_key_id = AKID\n").expect("write");
        let e = repo.credentials().expect_err("incomplete");
        assert!(e.contains("aws_secret_access_key"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
