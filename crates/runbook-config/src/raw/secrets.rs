//! `[secrets.NAME]`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::check_name;
use crate::{
    ConfigError, parse_duration,
    secrets::{Secret, Watch},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    max_age: Option<String>,
    env: Option<String>,
    file: Option<PathBuf>,
    notes: Option<String>,
}

pub(super) fn secrets(
    file: &Path,
    raw: BTreeMap<String, RawSecret>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<BTreeMap<String, Secret>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, s) in raw {
        let key = format!("secrets.{name}");
        check_name(&name).map_err(|e| ConfigError::invalid(file, &key, e))?;
        let max_age = match &s.max_age {
            None => Duration::from_secs(90 * 86_400),
            Some(t) => parse_duration(t)
                .map_err(|e| ConfigError::invalid(file, format!("{key}.max_age"), e))?,
        };
        let watch = match (s.env, s.file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    file,
                    &key,
                    "watch either env or file, not both",
                ));
            }
            (Some(var), None) => {
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ConfigError::invalid(
                        file,
                        format!("{key}.env"),
                        "the name of an environment variable (letters, digits, _), never the secret",
                    ));
                }
                Some(Watch::Env(var))
            }
            (None, Some(p)) => Some(Watch::File(resolve(&p))),
            (None, None) => None,
        };
        out.insert(
            name.clone(),
            Secret {
                name,
                max_age,
                watch,
                notes: s.notes,
            },
        );
    }
    Ok(out)
}
