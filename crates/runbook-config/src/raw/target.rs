//! `[targets.NAME]`: one variant per kind, validated into a [`TargetKind`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{RawDrill, RawKeep, db_url};
use crate::{ConfigError, TargetKind};

/// A target's kind, and the raw settings every kind shares.
pub(super) type Parsed = (
    TargetKind,
    Option<String>,
    RawKeep,
    Option<RawDrill>,
    Vec<String>,
);

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub(super) enum RawTarget {
    Sqlite {
        path: PathBuf,
        schedule: Option<String>,
        #[serde(default)]
        keep: RawKeep,
        drill: Option<RawDrill>,
        #[serde(default)]
        copy_to: Vec<String>,
    },
    Postgres {
        url: String,
        password_file: Option<PathBuf>,
        #[serde(default)]
        exclude_tables: Vec<String>,
        #[serde(default)]
        schemas: Vec<String>,
        pg_bin_dir: Option<PathBuf>,
        schedule: Option<String>,
        #[serde(default)]
        keep: RawKeep,
        drill: Option<RawDrill>,
        #[serde(default)]
        copy_to: Vec<String>,
    },
    Mariadb {
        url: String,
        password_file: Option<PathBuf>,
        schedule: Option<String>,
        #[serde(default)]
        keep: RawKeep,
        drill: Option<RawDrill>,
        #[serde(default)]
        copy_to: Vec<String>,
    },
    Bucket {
        url: String,
        region: Option<String>,
        credentials_file: Option<PathBuf>,
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        schedule: Option<String>,
        #[serde(default)]
        keep: RawKeep,
        drill: Option<RawDrill>,
        #[serde(default)]
        copy_to: Vec<String>,
    },
    Files {
        paths: Vec<PathBuf>,
        #[serde(default)]
        exclude: Vec<String>,
        schedule: Option<String>,
        #[serde(default)]
        keep: RawKeep,
        drill: Option<RawDrill>,
        #[serde(default)]
        copy_to: Vec<String>,
    },
}

/// A target's kind-specific settings, validated, and the settings every kind shares.
pub(super) fn parse(
    raw: RawTarget,
    file: &Path,
    key: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Parsed, ConfigError> {
    Ok(match raw {
        RawTarget::Sqlite {
            path,
            schedule,
            keep,
            drill,
            copy_to,
        } => (
            TargetKind::Sqlite {
                path: resolve(&path),
            },
            schedule,
            keep,
            drill,
            copy_to,
        ),
        RawTarget::Postgres {
            url,
            password_file,
            exclude_tables,
            schemas,
            pg_bin_dir,
            schedule,
            keep,
            drill,
            copy_to,
        } => {
            let url = db_url(file, key, &url, "postgres")?;
            (
                TargetKind::Postgres(crate::Postgres {
                    url,
                    password_file: password_file.as_deref().map(resolve),
                    exclude_tables,
                    schemas,
                    pg_bin_dir: pg_bin_dir.as_deref().map(resolve),
                }),
                schedule,
                keep,
                drill,
                copy_to,
            )
        }
        RawTarget::Mariadb {
            url,
            password_file,
            schedule,
            keep,
            drill,
            copy_to,
        } => {
            let url = db_url(file, key, &url, "mysql")?;
            (
                TargetKind::Mariadb(crate::Mariadb {
                    url,
                    password_file: password_file.as_deref().map(resolve),
                }),
                schedule,
                keep,
                drill,
                copy_to,
            )
        }
        RawTarget::Bucket {
            url,
            region,
            credentials_file,
            include,
            exclude,
            schedule,
            keep,
            drill,
            copy_to,
        } => {
            for (field, list) in [("include", &include), ("exclude", &exclude)] {
                for (i, g) in list.iter().enumerate() {
                    globset::Glob::new(g).map_err(|e| {
                        ConfigError::invalid(file, format!("{key}.{field}[{i}]"), e.to_string())
                    })?;
                }
            }
            let url = crate::S3Url::parse(&url)
                .map_err(|r| ConfigError::invalid(file, format!("{key}.url"), r))?;
            let s3 = crate::S3Repository {
                url,
                region,
                credentials_file: credentials_file.as_deref().map(resolve),
            };
            (
                TargetKind::Bucket(crate::BucketSource {
                    s3,
                    include,
                    exclude,
                }),
                schedule,
                keep,
                drill,
                copy_to,
            )
        }
        RawTarget::Files {
            paths,
            exclude,
            schedule,
            keep,
            drill,
            copy_to,
        } => {
            if paths.is_empty() {
                return Err(ConfigError::invalid(
                    file,
                    format!("{key}.paths"),
                    "must list at least one file or directory",
                ));
            }
            for (i, g) in exclude.iter().enumerate() {
                globset::Glob::new(g).map_err(|e| {
                    ConfigError::invalid(file, format!("{key}.exclude[{i}]"), e.to_string())
                })?;
            }
            let paths = paths.iter().map(|p| resolve(p)).collect();
            (
                TargetKind::Files { paths, exclude },
                schedule,
                keep,
                drill,
                copy_to,
            )
        }
    })
}
