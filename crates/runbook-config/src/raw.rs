//! The file as written: serde structs that reject unknown keys, turned into [`Config`] by
//! `validate`, which resolves paths and parses durations and schedules.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

mod drill;

use drill::RawDrill;

use crate::{Config, ConfigError, Keep, RepositoryConfig, Schedule, Target, TargetKind, keep};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    data_dir: Option<PathBuf>,
    /// Directories API restores may write into (default: `<data_dir>/restores`).
    restore_roots: Option<Vec<PathBuf>>,
    #[serde(default)]
    repository: RawRepository,
    /// Second repositories that targets copy their snapshots to (`copy_to`).
    #[serde(default)]
    repositories: BTreeMap<String, RawCopyRepository>,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    targets: BTreeMap<String, RawTarget>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    path: Option<PathBuf>,
    /// `s3:https://host/bucket/prefix`: the repositories on S3-compatible storage.
    url: Option<String>,
    region: Option<String>,
    credentials_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCopyRepository {
    path: Option<PathBuf>,
    url: Option<String>,
    region: Option<String>,
    credentials_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
    keep: Option<RawKeep>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
enum RawTarget {
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKeep {
    last: Option<u32>,
    hourly: Option<u32>,
    daily: Option<u32>,
    weekly: Option<u32>,
    monthly: Option<u32>,
    within: Option<String>,
}

impl RawConfig {
    pub(crate) fn validate(self, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        // Absolute paths: snapshots record them, and they must not depend on the cwd.
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let data_dir = resolve(
            self.data_dir
                .as_deref()
                .unwrap_or(Path::new("runbook-data")),
        );
        let repository = RepositoryConfig {
            path: self
                .repository
                .path
                .as_deref()
                .map_or_else(|| data_dir.join("repo"), resolve),
            password_file: self
                .repository
                .password_file
                .as_deref()
                .map_or_else(|| data_dir.join("repo.key"), resolve),
            s3: self.repository.s3(file, &base, "repository")?,
        };
        let copies = copies(
            file,
            &base,
            self.repositories,
            &repository.password_file,
            &data_dir,
        )?;
        let mut targets = BTreeMap::new();
        for (name, raw) in self.targets {
            let key = format!("targets.{name}");
            check_name(&name).map_err(|r| ConfigError::invalid(file, &key, r))?;
            let (kind, schedule, keep, drill, copy_to) = match raw {
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
                    let url = db_url(file, &key, &url, "postgres")?;
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
                    let url = db_url(file, &key, &url, "mysql")?;
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
            };
            let schedule = schedule
                .map(|s| Schedule::parse(&s))
                .transpose()
                .map_err(|r| ConfigError::invalid(file, format!("{key}.schedule"), r))?;
            let keep = keep
                .into_keep()
                .map_err(|r| ConfigError::invalid(file, format!("{key}.keep.within"), r))?;
            let drill = drill
                .map(|d| d.validate(file, &format!("{key}.drill"), &kind))
                .transpose()?;
            for (i, to) in copy_to.iter().enumerate() {
                if !copies.contains_key(to) {
                    return Err(ConfigError::invalid(
                        file,
                        format!("{key}.copy_to[{i}]"),
                        format!(
                            "no repository named {to:?}: add [repositories.{to}] with path or url"
                        ),
                    ));
                }
            }
            targets.insert(
                name.clone(),
                Target {
                    name,
                    kind,
                    schedule,
                    keep,
                    drill,
                    copy_to,
                },
            );
        }
        let state_url = std::env::var("RUNBOOK_STATE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or(self.state.url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("state.db").display()));
        if !(state_url.starts_with("sqlite:")
            || state_url.starts_with("postgres://")
            || state_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::invalid(
                file,
                "state.url",
                "use sqlite://PATH or postgres://USER@HOST:PORT/DB",
            ));
        }
        let restore_roots = match self.restore_roots {
            None => vec![data_dir.join("restores")],
            Some(roots) if roots.is_empty() => {
                return Err(ConfigError::invalid(
                    file,
                    "restore_roots",
                    "give at least one directory (or leave the key out for <data_dir>/restores)",
                ));
            }
            Some(roots) => roots.iter().map(|r| resolve(r)).collect(),
        };
        Ok(Config {
            file: file.to_path_buf(),
            state_url,
            restore_roots,
            data_dir,
            repository,
            copies,
            targets,
        })
    }
}

impl RawKeep {
    fn into_keep(self) -> Result<Keep, String> {
        Ok(Keep {
            last: self.last,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            within: self
                .within
                .as_deref()
                .map(keep::parse_duration)
                .transpose()?,
        })
    }
}

/// Parses a database target's URL and checks its scheme matches the target's kind.
fn db_url(file: &Path, key: &str, url: &str, scheme: &str) -> Result<crate::DbUrl, ConfigError> {
    let parsed = crate::DbUrl::parse(url)
        .map_err(|r| ConfigError::invalid(file, format!("{key}.url"), r))?;
    if parsed.scheme != scheme {
        return Err(ConfigError::invalid(
            file,
            format!("{key}.url"),
            format!(
                "a {} URL does not fit this target's kind; use {scheme}://",
                parsed.scheme
            ),
        ));
    }
    Ok(parsed)
}

/// Target names become directory names: keep them short and plain.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid target name {name:?}: use letters, digits, '-' and '_' (at most 64, starting with a letter or digit)"
        ))
    }
}

impl RawRepository {
    /// The S3 location when `url` is given; `path` and the S3 keys exclude each other.
    fn s3(
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
fn copies(
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
            .map_err(|reason| ConfigError::invalid(file, format!("{key}.keep.within"), reason))?;
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
