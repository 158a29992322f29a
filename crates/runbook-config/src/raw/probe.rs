//! `[probes.NAME]`: what each probe checks, how often, and the conditions it must meet.

use std::{collections::BTreeMap, path::Path, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

use super::check_name;
use crate::{
    ConfigError, DbUrl,
    monitor::{Condition, Probe, ProbeCheck},
    parse_duration,
    promql::PromCondition,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    kind: String,
    url: Option<String>,
    address: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    expect: Vec<String>,
}

/// Validates the `[probes]` tables.
pub(super) fn validate(
    probes: BTreeMap<String, RawProbe>,
    file: &Path,
) -> Result<BTreeMap<String, Probe>, ConfigError> {
    let bad = |key: String, why: String| ConfigError::invalid(file, key, why);
    let dur = |key: String, v: Option<&str>, default: Duration| -> Result<Duration, ConfigError> {
        v.map_or(Ok(default), |t| parse_duration(t).map_err(|e| bad(key, e)))
    };
    let mut out = BTreeMap::new();
    for (name, p) in probes {
        let key = format!("probes.{name}");
        check_name(&name).map_err(|e| bad(key.clone(), e))?;
        let check = probe_check(&p, &key).map_err(|(k, e)| bad(k, e))?;
        let scraped = matches!(check, ProbeCheck::Prometheus { .. });
        let (expect, series) = if scraped {
            let series = p
                .expect
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    PromCondition::parse(c).map_err(|e| bad(format!("{key}.expect[{i}]"), e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (Vec::new(), series)
        } else {
            let expect = p
                .expect
                .iter()
                .enumerate()
                .map(|(i, c)| Condition::parse(c).map_err(|e| bad(format!("{key}.expect[{i}]"), e)))
                .collect::<Result<Vec<_>, _>>()?;
            (expect, Vec::new())
        };
        if !expect.is_empty() && !matches!(check, ProbeCheck::Http { .. }) {
            return Err(bad(
                format!("{key}.expect"),
                "conditions apply to http and prometheus probes only (the others pass when they connect)"
                    .into(),
            ));
        }
        let interval = dur(
            format!("{key}.interval"),
            p.interval.as_deref(),
            Duration::from_secs(30),
        )?;
        let timeout = dur(
            format!("{key}.timeout"),
            p.timeout.as_deref(),
            Duration::from_secs(10),
        )?;
        out.insert(
            name.clone(),
            Probe {
                name,
                check,
                interval,
                timeout,
                expect,
                series,
            },
        );
    }
    Ok(out)
}

fn probe_check(p: &RawProbe, key: &str) -> Result<ProbeCheck, (String, String)> {
    let need = |v: &Option<String>, what: &str| {
        v.clone().ok_or_else(|| {
            (
                format!("{key}.{what}"),
                format!("a {} probe needs {what}", p.kind),
            )
        })
    };
    let only_http = p.method.is_some() || !p.headers.is_empty() || p.body.is_some();
    if only_http && p.kind != "http" {
        return Err((
            key.to_string(),
            "method, headers and body are for http probes".into(),
        ));
    }
    let db = |scheme: &str| -> Result<DbUrl, (String, String)> {
        let url = DbUrl::parse(&need(&p.url, "url")?).map_err(|e| (format!("{key}.url"), e))?;
        if url.scheme != scheme {
            return Err((
                format!("{key}.url"),
                format!("a {} probe takes a {scheme}:// URL", p.kind),
            ));
        }
        Ok(url)
    };
    Ok(match p.kind.as_str() {
        "http" => {
            let url = need(&p.url, "url")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    format!("{key}.url"),
                    "use an http:// or https:// URL".into(),
                ));
            }
            ProbeCheck::Http {
                url,
                method: p
                    .method
                    .clone()
                    .unwrap_or_else(|| "GET".into())
                    .to_ascii_uppercase(),
                headers: p.headers.clone().into_iter().collect(),
                body: p.body.clone(),
            }
        }
        "prometheus" => {
            let url = need(&p.url, "url")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    format!("{key}.url"),
                    "use an http:// or https:// URL".into(),
                ));
            }
            ProbeCheck::Prometheus { url }
        }
        "tcp" => ProbeCheck::Tcp {
            address: need(&p.address, "address")?,
        },
        "postgres" => ProbeCheck::Postgres(db("postgres")?),
        "mariadb" | "mysql" => ProbeCheck::Mariadb(db("mysql")?),
        "redis" => {
            let url = need(&p.url, "url")?;
            let rest = url.strip_prefix("redis://").ok_or_else(|| {
                (
                    format!("{key}.url"),
                    "use redis://[:PASSWORD@]HOST[:PORT]".to_string(),
                )
            })?;
            let (auth, host) = rest
                .rsplit_once('@')
                .map_or((None, rest), |(a, h)| (Some(a), h));
            let host = host.split('/').next().unwrap_or_default();
            if host.is_empty() {
                return Err((format!("{key}.url"), "missing host".into()));
            }
            let address = if host.contains(':') {
                host.to_string()
            } else {
                format!("{host}:6379")
            };
            let password = auth
                .map(|a| a.rsplit_once(':').map_or(a, |(_, p)| p))
                .filter(|p| !p.is_empty())
                .map(|p| SecretString::from(p.to_string()));
            ProbeCheck::Redis { address, password }
        }
        other => {
            return Err((
                format!("{key}.kind"),
                format!(
                    "unknown probe kind {other:?}; use http, tcp, postgres, mariadb, redis or prometheus"
                ),
            ));
        }
    })
}
