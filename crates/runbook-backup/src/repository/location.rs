//! Where a repository is: a local directory or a prefix in an S3 bucket, as rustic backend
//! options; and whether that storage answers.

use std::collections::BTreeMap;

use runbook_config::{RepositoryConfig, S3Repository};
use rustic_backend::BackendOptions;
use secrecy::ExposeSecret;

use super::errors::{one_line, raw_line, storage_cause};
use crate::{Error, Result};

/// The rustic backend options for `target`'s repository: a local directory, or OpenDAL's S3
/// service with the keys from the environment or the credentials file.
pub(super) fn backends(location: &RepositoryConfig, target: &str) -> Result<BackendOptions> {
    let Some(s3) = &location.s3 else {
        let dir = location.path.join(target);
        let path = dir.to_str().ok_or_else(|| Error::Repository {
            target: target.to_string(),
            action: "open repository",
            message: format!("path {} is not valid UTF-8", dir.display()),
        })?;
        return Ok(BackendOptions::default().repository(path));
    };
    let options =
        opendal_options(s3, &s3.url.root_of(target)).map_err(|message| Error::Repository {
            target: target.to_string(),
            action: "open repository",
            message: format!("{}: {message}", s3.url),
        })?;
    Ok(BackendOptions::default()
        .repository("opendal:s3")
        .options(options))
}

/// OpenDAL's S3 options for `s3` at the key prefix `root`, with its keys; only what runbook
/// was given (no `~/.aws` files, no instance metadata lookups).
pub(crate) fn opendal_options(
    s3: &S3Repository,
    root: &str,
) -> std::result::Result<BTreeMap<String, String>, String> {
    let creds = s3.credentials()?;
    let options = [
        ("bucket", s3.url.bucket.clone()),
        ("root", format!("/{root}")),
        ("endpoint", s3.url.endpoint.clone()),
        ("region", s3.region()),
        ("access_key_id", creds.access_key_id),
        (
            "secret_access_key",
            creds.secret_access_key.expose_secret().to_string(),
        ),
        ("disable_config_load", "true".into()),
        ("disable_ec2_metadata", "true".into()),
    ];
    Ok(options
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
}

/// Whether the repository storage answers: the local root can be created and read, or the
/// bucket can be listed with the credentials given.
pub(crate) fn probe(location: &RepositoryConfig) -> std::result::Result<(), String> {
    if location.s3.is_none() {
        let root = &location.path;
        return std::fs::create_dir_all(root)
            .and_then(|()| std::fs::metadata(root))
            .map(drop)
            .map_err(|e| format!("repository root {}: {e}", root.display()));
    }
    let backends = backends(location, "")
        .map_err(|e| e.to_string())?
        .to_backends()
        .map_err(|e| one_line(&e))?;
    // A listing of a missing bucket can come back empty; reading a key cannot: it answers
    // "not found" (reachable) or why the storage refused.
    match backends
        .repository()
        .read_full(rustic_core::FileType::Config, &rustic_core::Id::default())
    {
        Ok(_) => Ok(()),
        Err(e) => match storage_cause(&raw_line(&e)) {
            Some(cause) => Err(cause),
            None => Ok(()),
        },
    }
}
