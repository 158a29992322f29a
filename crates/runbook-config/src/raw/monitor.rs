//! `[probes.NAME]`, `[heartbeats.NAME]`, `[alerts.NAME]`, `[silences.NAME]` and
//! `[notifiers.NAME]`.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Deserialize;

use super::check_name;
use crate::{
    ConfigError, Schedule,
    monitor::{
        AlertRule, Expected, Heartbeat, Monitor, Notifier, NotifierTarget, Severity, Silence,
        Subject, When,
    },
    parse_duration,
};

pub(super) struct RawMonitor {
    pub(super) probes: BTreeMap<String, super::probe::RawProbe>,
    pub(super) heartbeats: BTreeMap<String, RawHeartbeat>,
    pub(super) alerts: BTreeMap<String, RawAlert>,
    pub(super) silences: BTreeMap<String, RawSilence>,
    pub(super) notifiers: BTreeMap<String, RawNotifier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeartbeat {
    period: Option<String>,
    schedule: Option<String>,
    grace: Option<String>,
    max_runtime: Option<String>,
    min_runtime: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    when: String,
    severity: Option<String>,
    repeat: Option<String>,
    #[serde(default)]
    notify: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSilence {
    rule: Option<String>,
    start: String,
    duration: String,
    every: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifier {
    kind: String,
    url: Option<String>,
    /// Environment variable holding the `whsec_…` secret (never the secret itself).
    secret_env: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    severities: Vec<String>,
}

impl RawMonitor {
    pub(super) fn validate(self, file: &Path) -> Result<Monitor, ConfigError> {
        let bad = |key: String, why: String| ConfigError::invalid(file, key, why);
        let dur =
            |key: String, v: Option<&str>, default: Duration| -> Result<Duration, ConfigError> {
                v.map_or(Ok(default), |t| parse_duration(t).map_err(|e| bad(key, e)))
            };
        let mut m = Monitor {
            probes: super::probe::validate(self.probes, file)?,
            ..Monitor::default()
        };
        for (name, h) in self.heartbeats {
            let key = format!("heartbeats.{name}");
            check_name(&name).map_err(|e| bad(key.clone(), e))?;
            let expect = match (h.period.as_deref(), h.schedule.as_deref()) {
                (Some(p), None) => Expected::Period(
                    parse_duration(p).map_err(|e| bad(format!("{key}.period"), e))?,
                ),
                (None, Some(s)) => Expected::Schedule(
                    Schedule::parse(s)
                        .map(Box::new)
                        .map_err(|e| bad(format!("{key}.schedule"), e))?,
                ),
                _ => {
                    return Err(bad(
                        key,
                        "give either period (\"1h\") or schedule (a cron expression)".into(),
                    ));
                }
            };
            let opt = |k: &str, v: Option<&str>| -> Result<Option<Duration>, ConfigError> {
                v.map(|t| parse_duration(t).map_err(|e| bad(format!("{key}.{k}"), e)))
                    .transpose()
            };
            m.heartbeats.insert(
                name.clone(),
                Heartbeat {
                    name,
                    expect,
                    grace: dur(
                        format!("{key}.grace"),
                        h.grace.as_deref(),
                        Duration::from_secs(3600),
                    )?,
                    max_runtime: opt("max_runtime", h.max_runtime.as_deref())?,
                    min_runtime: opt("min_runtime", h.min_runtime.as_deref())?,
                },
            );
        }
        for (name, n) in self.notifiers {
            let key = format!("notifiers.{name}");
            check_name(&name).map_err(|e| bad(key.clone(), e))?;
            if name == "webhook" || name == "email" {
                return Err(bad(
                    key,
                    "`webhook` and `email` are the notifiers ALERT_WEBHOOK_URL and SMTP_HOST configure; pick another name".into(),
                ));
            }
            let target = match n.kind.as_str() {
                "webhook" => {
                    let url = n.url.ok_or_else(|| {
                        bad(format!("{key}.url"), "a webhook notifier needs url".into())
                    })?;
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(bad(
                            format!("{key}.url"),
                            "use an http:// or https:// URL".into(),
                        ));
                    }
                    if let Some(var) = &n.secret_env
                        && (var.is_empty()
                            || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    {
                        return Err(bad(
                            format!("{key}.secret_env"),
                            "the name of an environment variable (letters, digits, _), not the secret".into(),
                        ));
                    }
                    NotifierTarget::Webhook {
                        url,
                        secret_env: n.secret_env,
                    }
                }
                "email" => {
                    if n.to.is_empty() {
                        return Err(bad(
                            format!("{key}.to"),
                            "an email notifier needs at least one address".into(),
                        ));
                    }
                    NotifierTarget::Email { to: n.to }
                }
                other => {
                    return Err(bad(
                        format!("{key}.kind"),
                        format!("unknown notifier kind {other:?}; use \"webhook\" or \"email\""),
                    ));
                }
            };
            let severities = n
                .severities
                .iter()
                .map(|s| Severity::parse(s).map_err(|e| bad(format!("{key}.severities"), e)))
                .collect::<Result<Vec<_>, _>>()?;
            m.notifiers.insert(
                name.clone(),
                Notifier {
                    name,
                    target,
                    severities,
                },
            );
        }
        for (name, a) in self.alerts {
            let key = format!("alerts.{name}");
            check_name(&name).map_err(|e| bad(key.clone(), e))?;
            let when = When::parse(&a.when).map_err(|e| bad(format!("{key}.when"), e))?;
            let known = match when.subject() {
                Subject::Probe(p) => m.probes.contains_key(p),
                Subject::Heartbeat(h) => m.heartbeats.contains_key(h),
            };
            if !known {
                return Err(bad(
                    format!("{key}.when"),
                    format!("{} is not configured", when.subject()),
                ));
            }
            for (i, n) in a.notify.iter().enumerate() {
                if !m.notifiers.contains_key(n) && n != "webhook" && n != "email" {
                    return Err(bad(
                        format!("{key}.notify[{i}]"),
                        format!("no notifier named {n:?}"),
                    ));
                }
            }
            m.alerts.insert(
                name.clone(),
                AlertRule {
                    name,
                    when,
                    severity: a
                        .severity
                        .as_deref()
                        .map_or(Ok(Severity::Page), Severity::parse)
                        .map_err(|e| bad(format!("{key}.severity"), e))?,
                    repeat: a
                        .repeat
                        .as_deref()
                        .map(|r| parse_duration(r).map_err(|e| bad(format!("{key}.repeat"), e)))
                        .transpose()?,
                    notify: a.notify,
                },
            );
        }
        for (name, s) in self.silences {
            let key = format!("silences.{name}");
            if let Some(r) = &s.rule
                && !m.alerts.contains_key(r)
                && !r.contains('.')
            {
                return Err(bad(
                    format!("{key}.rule"),
                    format!(
                        "no rule named {r:?} (built-in signals are written like backup.failed)"
                    ),
                ));
            }
            let start: jiff::Timestamp = s.start.parse().map_err(|e| {
                bad(
                    format!("{key}.start"),
                    format!("{e}; write an RFC 3339 time such as 2026-12-01T02:00:00Z"),
                )
            })?;
            m.silences.push(Silence {
                name,
                rule: s.rule,
                start_ms: start.as_millisecond(),
                duration: parse_duration(&s.duration)
                    .map_err(|e| bad(format!("{key}.duration"), e))?,
                every: s
                    .every
                    .as_deref()
                    .map(|e| parse_duration(e).map_err(|r| bad(format!("{key}.every"), r)))
                    .transpose()?,
            });
        }
        Ok(m)
    }
}
