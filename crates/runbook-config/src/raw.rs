//! The file as written: serde structs that reject unknown keys, turned into [`Config`] by
//! `validate`, which resolves paths and parses durations and schedules.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

mod drill;
mod monitor;
mod probe;
mod repository;
mod secrets;
mod smoke;
mod target;
mod tasks;

use drill::RawDrill;
use repository::{RawCopyRepository, RawRepository, copies};
use target::RawTarget;

use crate::{Config, ConfigError, Keep, RepositoryConfig, Schedule, Target, keep};

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
    #[serde(default)]
    probes: BTreeMap<String, probe::RawProbe>,
    #[serde(default)]
    heartbeats: BTreeMap<String, monitor::RawHeartbeat>,
    #[serde(default)]
    alerts: BTreeMap<String, monitor::RawAlert>,
    #[serde(default)]
    silences: BTreeMap<String, monitor::RawSilence>,
    #[serde(default)]
    notifiers: BTreeMap<String, monitor::RawNotifier>,
    #[serde(default)]
    smoke: BTreeMap<String, smoke::RawSuite>,
    #[serde(default)]
    secrets: BTreeMap<String, secrets::RawSecret>,
    #[serde(default)]
    tasks: BTreeMap<String, tasks::RawTask>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    url: Option<String>,
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
            let (kind, schedule, keep, drill, copy_to) = target::parse(raw, file, &key, &resolve)?;
            let schedule = schedule
                .map(|s| Schedule::parse(&s))
                .transpose()
                .map_err(|r| ConfigError::invalid(file, format!("{key}.schedule"), r))?;
            let keep = keep.into_keep().map_err(|(field, r)| {
                ConfigError::invalid(file, format!("{key}.keep.{field}"), r)
            })?;
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
        let monitor = monitor::RawMonitor {
            probes: self.probes,
            heartbeats: self.heartbeats,
            alerts: self.alerts,
            silences: self.silences,
            notifiers: self.notifiers,
        }
        .validate(file)?;
        let smoke = smoke::suites(file, self.smoke)?;
        let secrets = secrets::secrets(file, self.secrets, &resolve)?;
        let tasks = tasks::tasks(file, self.tasks, &targets)?;
        Ok(Config {
            tasks,
            monitor,
            smoke,
            secrets,
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
    /// The rule, or the field that is wrong (`last`, `within`, …) and why.
    ///
    /// A count of 0 is refused: rustic reads it as "keep none by this rule" (restic as "no
    /// rule"), so `keep = { last = 0 }` alone would remove every snapshot, the one just made
    /// included, at each backup.
    fn into_keep(self) -> Result<Keep, (&'static str, String)> {
        for (field, n) in [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
        ] {
            if n == Some(0) {
                return Err((
                    field,
                    format!(
                        "0 keeps no snapshot by this rule, so with no other rule each backup would remove every snapshot, its own included; give at least 1, or leave {field} out"
                    ),
                ));
            }
        }
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
                .transpose()
                .map_err(|reason| ("within", reason))?,
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
