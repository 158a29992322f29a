//! `[smoke.NAME]` with `[[smoke.NAME.checks]]`.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

use super::check_name;
use crate::{
    ConfigError,
    monitor::Condition,
    smoke::{SmokeCheck, SmokeSuite},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSuite {
    #[serde(default)]
    checks: Vec<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: Option<String>,
    method: Option<String>,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    capture: BTreeMap<String, String>,
}

pub(super) fn suites(
    file: &Path,
    raw: BTreeMap<String, RawSuite>,
) -> Result<BTreeMap<String, SmokeSuite>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, suite) in raw {
        let key = format!("smoke.{name}");
        check_name(&name).map_err(|e| ConfigError::invalid(file, &key, e))?;
        if suite.checks.is_empty() {
            return Err(ConfigError::invalid(
                file,
                &key,
                "a suite needs at least one [[smoke.NAME.checks]]",
            ));
        }
        let mut checks = Vec::new();
        for (i, c) in suite.checks.into_iter().enumerate() {
            let ck = format!("{key}.checks[{i}]");
            if !c.path.starts_with('/') {
                return Err(ConfigError::invalid(
                    file,
                    format!("{ck}.path"),
                    "a path below the base URL, starting with /",
                ));
            }
            let expect = c
                .expect
                .iter()
                .enumerate()
                .map(|(j, e)| {
                    Condition::parse(e)
                        .map_err(|r| ConfigError::invalid(file, format!("{ck}.expect[{j}]"), r))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (var, from) in &c.capture {
                let ok = from.starts_with("json.") || from.starts_with("header.");
                if !ok
                    || var.is_empty()
                    || !var
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                {
                    return Err(ConfigError::invalid(
                        file,
                        format!("{ck}.capture.{var}"),
                        "capture NAME = \"json.PATH\" or \"header.NAME\" (NAME: letters, digits, _)",
                    ));
                }
            }
            checks.push(SmokeCheck {
                name: c.name.unwrap_or_else(|| {
                    format!("{} {}", c.method.as_deref().unwrap_or("GET"), c.path)
                }),
                method: c
                    .method
                    .unwrap_or_else(|| "GET".into())
                    .to_ascii_uppercase(),
                path: c.path,
                headers: c.headers.into_iter().collect(),
                body: c.body,
                expect,
                capture: c.capture.into_iter().collect(),
            });
        }
        out.insert(name.clone(), SmokeSuite { name, checks });
    }
    Ok(out)
}
