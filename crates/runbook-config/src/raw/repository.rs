//! `[repository]` and `[repositories.NAME]`: a local directory or an S3 location.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{RawKeep, check_name};
use crate::{ConfigError, RepositoryConfig};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepository {
    pub(super) path: Option<PathBuf>,
    /// `s3:https://host/bucket/prefix`: the repositories on S3-compatible storage.
    pub(super) url: Option<String>,
    pub(super) region: Option<String>,
    pub(super) credentials_file: Option<PathBuf>,
    pub(super) password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCopyRepository {
    pub(super) path: Option<PathBuf>,
    pub(super) url: Option<String>,
    pub(super) region: Option<String>,
    pub(super) credentials_file: Option<PathBuf>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) keep: Option<RawKeep>,
}

impl RawRepository {
    /// The S3 location when `url` is given; `path` and the S3 keys exclude each other.
    pub(super) fn s3(
        &self,
        file: &Path,
        base: &Path,
        section: &str,
    ) -> Result<Option<crate::S3Repository>, ConfigError> {
        let Some(url) = &self.url else {
            for (key, set) in [
                ("region", self.region.is_some()),
                ("credentials_file", self.credentials_file.is_some()),
            ] {
                if set {
                    return Err(ConfigError::invalid(
                        file,
                        format!("{section}.{key}"),
                        "only for an S3 repository (repository.url = \"s3:...\")",
                    ));
                }
            }
            return Ok(None);
        };
        if self.path.is_some() {
            return Err(ConfigError::invalid(
                file,
                format!("{section}.url"),
                "give either path (a local directory) or url (s3:...), not both",
            ));
        }
        let parsed = crate::S3Url::parse(url)
            .map_err(|r| ConfigError::invalid(file, format!("{section}.url"), r))?;
        Ok(Some(crate::S3Repository {
            url: parsed,
            region: self.region.clone(),
            credentials_file: self.credentials_file.as_ref().map(|p| base.join(p)),
        }))
    }
}

/// The `[repositories.NAME]` tables: where copies go, each with its own retention.
pub(super) fn copies(
    file: &Path,
    base: &Path,
    raw: BTreeMap<String, RawCopyRepository>,
    password_file: &Path,
    data_dir: &Path,
) -> Result<BTreeMap<String, crate::CopyRepository>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, r) in raw {
        let key = format!("repositories.{name}");
        let keep = r.keep;
        let r = RawRepository {
            path: r.path,
            url: r.url,
            region: r.region,
            credentials_file: r.credentials_file,
            password_file: r.password_file,
        };
        check_name(&name).map_err(|reason| ConfigError::invalid(file, &key, reason))?;
        if r.password_file.is_some() {
            return Err(ConfigError::invalid(
                file,
                format!("{key}.password_file"),
                "copies are encrypted with the main repository's password (repository.password_file)",
            ));
        }
        if r.path.is_none() && r.url.is_none() {
            return Err(ConfigError::invalid(
                file,
                &key,
                "give path (a local directory) or url (s3:...)",
            ));
        }
        let s3 = r.s3(file, base, &key)?;
        let keep = keep
            .map(RawKeep::into_keep)
            .transpose()
            .map_err(|(field, reason)| {
                ConfigError::invalid(file, format!("{key}.keep.{field}"), reason)
            })?;
        let path = r
            .path
            .as_deref()
            .map_or_else(|| data_dir.join("copies").join(&name), |p| base.join(p));
        out.insert(
            name.clone(),
            crate::CopyRepository {
                name,
                location: RepositoryConfig {
                    path,
                    password_file: password_file.to_path_buf(),
                    s3,
                },
                keep,
            },
        );
    }
    Ok(out)
}
