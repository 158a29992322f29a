//! What `serve` watches and whom it tells: probes, heartbeats, alert rules, silences and
//! notifiers, and the two small grammars they use (probe conditions and rule `when`s).
//!
//! Conditions are `FIELD OP VALUE`: `status == 200`, `json.status == "ready"`,
//! `json.workerLagMs < 900000`, `response_time < 500ms`, `cert_days > 14`,
//! `body contains "ok"`. Rules are one of:
//! - `probe.NAME failing [for DUR]` (also `heartbeat.NAME down [for DUR]`): the subject has failed
//!   without a success in between for at least `DUR`;
//! - `probe.NAME failures > N in DUR`: more than `N` failed checks within the last `DUR`;
//! - `probe.NAME failed N times in a row` (or a heartbeat's runs).

use std::{collections::BTreeMap, time::Duration};

use secrecy::SecretString;

use crate::{DbUrl, parse_duration};

/// Everything `serve` watches.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    /// `[probes.NAME]`.
    pub probes: BTreeMap<String, Probe>,
    /// `[heartbeats.NAME]`.
    pub heartbeats: BTreeMap<String, Heartbeat>,
    /// `[alerts.NAME]`.
    pub alerts: BTreeMap<String, AlertRule>,
    /// `[silences.NAME]`.
    pub silences: Vec<Silence>,
    /// `[notifiers.NAME]`.
    pub notifiers: BTreeMap<String, Notifier>,
}

/// One probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Its name.
    pub name: String,
    /// What it checks.
    pub check: ProbeCheck,
    /// Time between checks (default 30 s).
    pub interval: Duration,
    /// Longest a check may take (default 10 s).
    pub timeout: Duration,
    /// Conditions a result must meet (HTTP only; other kinds pass when they connect).
    pub expect: Vec<Condition>,
    /// Conditions over the scraped series (prometheus probes).
    pub series: Vec<crate::promql::PromCondition>,
}

/// What a probe checks.
#[derive(Debug, Clone)]
pub enum ProbeCheck {
    /// An HTTP request.
    Http {
        /// The URL.
        url: String,
        /// `GET` unless given.
        method: String,
        /// Request headers.
        headers: Vec<(String, String)>,
        /// Request body.
        body: Option<String>,
    },
    /// A TCP connection to `host:port`.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// Connects and runs `SELECT 1`.
    Postgres(DbUrl),
    /// Connects and runs `SELECT 1`.
    Mariadb(DbUrl),
    /// Scrapes an application's `/metrics` (Prometheus text format) and checks `series`.
    Prometheus {
        /// The metrics URL.
        url: String,
    },
    /// Connects and sends `PING` (with `AUTH` first when a password is given).
    Redis {
        /// `host:port`.
        address: String,
        /// From `redis://:PASSWORD@host`.
        password: Option<SecretString>,
    },
}

impl ProbeCheck {
    /// The kind's name as written in the config.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Tcp { .. } => "tcp",
            Self::Postgres(_) => "postgres",
            Self::Mariadb(_) => "mariadb",
            Self::Redis { .. } => "redis",
            Self::Prometheus { .. } => "prometheus",
        }
    }
}

/// One probe condition, `FIELD OP VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As written (for messages).
    pub text: String,
    /// What is compared.
    pub field: Field,
    /// How.
    pub op: Op,
    /// With what.
    pub value: Value,
}

/// The left side of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The HTTP status code.
    Status,
    /// The response time (compare with a duration: `500ms`).
    ResponseTime,
    /// The response body as text.
    Body,
    /// Days until the server's TLS certificate expires.
    CertDays,
    /// A field of the JSON body: `json.a.b` (array items by index: `json.items.0`).
    Json(Vec<String>),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains` (text)
    Contains,
}

/// The right side of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number (durations are held in milliseconds).
    Number(f64),
    /// A quoted string.
    Text(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl Condition {
    /// Parses `FIELD OP VALUE`.
    ///
    /// # Errors
    /// One line naming what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        const OPS: [(&str, Op); 7] = [
            (" contains ", Op::Contains),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, token, op) = OPS
            .iter()
            .filter_map(|(t, op)| text.find(t).map(|i| (i, *t, *op)))
            .min_by_key(|(i, t, _)| (*i, std::cmp::Reverse(t.len())))
            .ok_or_else(|| {
                format!("condition `{text}`: no comparison; write FIELD OP VALUE with OP one of == != < <= > >= contains")
            })?;
        let left = text[..at].trim();
        let right = text[at + token.len()..].trim();
        let field = match left {
            "status" => Field::Status,
            "response_time" => Field::ResponseTime,
            "body" => Field::Body,
            "cert_days" => Field::CertDays,
            f if f.starts_with("json.") && f.len() > 5 => {
                Field::Json(f[5..].split('.').map(str::to_string).collect())
            }
            "json" => Field::Json(Vec::new()),
            other => {
                return Err(format!(
                    "condition `{text}`: unknown field {other:?}; use status, response_time, body, cert_days or json.PATH"
                ));
            }
        };
        let value = parse_value(right)
            .ok_or_else(|| format!("condition `{text}`: cannot read the value {right:?}; use a number, a duration (500ms), \"text\", true, false or null"))?;
        let value = match (&field, value) {
            (Field::ResponseTime, Value::Text(t)) => {
                return Err(format!(
                    "condition `{text}`: response_time compares with a duration, not {t:?}"
                ));
            }
            (Field::Body, v) if !matches!(v, Value::Text(_)) => {
                return Err(format!("condition `{text}`: body compares with \"text\""));
            }
            (_, v) => v,
        };
        if op == Op::Contains && !matches!(value, Value::Text(_)) {
            return Err(format!(
                "condition `{text}`: contains needs \"text\" on the right"
            ));
        }
        Ok(Self {
            text: text.trim().to_string(),
            field,
            op,
            value,
        })
    }
}

fn parse_value(s: &str) -> Option<Value> {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return Some(Value::Text(s[1..s.len() - 1].to_string()));
    }
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Ok(n) = s.parse::<f64>() {
        return Some(Value::Number(n));
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let d = humantime::parse_duration(s).ok()?;
        return Some(Value::Number(d.as_secs_f64() * 1000.0));
    }
    None
}

/// One heartbeat: a job that pings `/ping/{key}` when it runs.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Its name.
    pub name: String,
    /// When pings are expected.
    pub expect: Expected,
    /// How late a ping may be before the heartbeat is down.
    pub grace: Duration,
    /// A `/start` with no finish within this is a failure.
    pub max_runtime: Option<Duration>,
    /// A run (from `/start` to its finish) shorter than this is a failure.
    pub min_runtime: Option<Duration>,
}

/// When a heartbeat expects its pings.
#[derive(Debug, Clone)]
pub enum Expected {
    /// Every `period`.
    Period(Duration),
    /// At the times of a schedule (cron or `daily at HH UTC`).
    Schedule(Box<crate::Schedule>),
}

/// Severity of an alert, used for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Someone is woken.
    Page,
    /// Someone looks during working hours.
    Ticket,
}

impl Severity {
    /// As written.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Ticket => "ticket",
        }
    }

    /// Parses `page` or `ticket`.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "page" => Ok(Self::Page),
            "ticket" => Ok(Self::Ticket),
            other => Err(format!(
                "unknown severity {other:?}; use \"page\" or \"ticket\""
            )),
        }
    }
}

/// One alert rule.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// Its name.
    pub name: String,
    /// When it fires.
    pub when: When,
    /// How bad it is.
    pub severity: Severity,
    /// Send the firing notice again this often while it fires.
    pub repeat: Option<Duration>,
    /// Only these notifiers (default: every notifier that takes the severity).
    pub notify: Vec<String>,
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `probe.NAME`
    Probe(String),
    /// `heartbeat.NAME`
    Heartbeat(String),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Probe(n) => write!(f, "probe.{n}"),
            Self::Heartbeat(n) => write!(f, "heartbeat.{n}"),
        }
    }
}

/// A rule's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Failing (a probe) or down (a heartbeat) for at least `for_` (zero: at once).
    Failing {
        /// What.
        subject: Subject,
        /// How long.
        for_: Duration,
    },
    /// More than `more_than` failures within `within`.
    Failures {
        /// What.
        subject: Subject,
        /// The threshold (strictly more).
        more_than: u32,
        /// The window.
        within: Duration,
    },
    /// The last `times` results (probe checks or heartbeat runs) all failed.
    InARow {
        /// What.
        subject: Subject,
        /// How many.
        times: u32,
    },
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failing { subject, for_ } if for_.is_zero() => write!(f, "{subject} failing"),
            Self::Failing { subject, for_ } => {
                write!(
                    f,
                    "{subject} failing for {}",
                    humantime::format_duration(*for_)
                )
            }
            Self::Failures {
                subject,
                more_than,
                within,
            } => write!(
                f,
                "{subject} failures > {more_than} in {}",
                humantime::format_duration(*within)
            ),
            Self::InARow { subject, times } => write!(f, "{subject} failed {times} times in a row"),
        }
    }
}

impl When {
    /// What the rule watches.
    #[must_use]
    pub fn subject(&self) -> &Subject {
        match self {
            Self::Failing { subject, .. }
            | Self::Failures { subject, .. }
            | Self::InARow { subject, .. } => subject,
        }
    }

    /// Parses a rule's `when`.
    ///
    /// # Errors
    /// One line naming what could not be read and the forms accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        const FORMS: &str = "write `probe.NAME failing for 3m`, `heartbeat.NAME down for 5m`, `probe.NAME failures > 3 in 5m` or `heartbeat.NAME failed 2 times in a row`";
        let words: Vec<&str> = text.split_whitespace().collect();
        let bad = |why: &str| format!("rule `{text}`: {why}; {FORMS}");
        let Some((first, rest)) = words.split_first() else {
            return Err(bad("empty"));
        };
        let subject = match first.split_once('.') {
            Some(("probe", n)) if !n.is_empty() => Subject::Probe(n.to_string()),
            Some(("heartbeat", n)) if !n.is_empty() => Subject::Heartbeat(n.to_string()),
            _ => {
                return Err(bad(&format!(
                    "{first:?} is not probe.NAME or heartbeat.NAME"
                )));
            }
        };
        let duration = |s: &str| parse_duration(s).map_err(|e| bad(&e));
        let count = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n > 0 || rest.first() == Some(&"failures"))
                .ok_or_else(|| bad(&format!("{s:?} is not a count")))
        };
        match rest {
            ["failing" | "down"] => Ok(Self::Failing {
                subject,
                for_: Duration::ZERO,
            }),
            ["failing" | "down", "for", d] => Ok(Self::Failing {
                subject,
                for_: duration(d)?,
            }),
            ["failures", op @ (">" | ">="), n, "in", d] => {
                let n = count(n)?;
                Ok(Self::Failures {
                    subject,
                    more_than: if *op == ">=" { n.saturating_sub(1) } else { n },
                    within: duration(d)?,
                })
            }
            ["failed", n, "times" | "time", "in", "a", "row"] => Ok(Self::InARow {
                subject,
                times: count(n)?,
            }),
            _ => Err(bad("cannot read the condition")),
        }
    }
}

/// A time when notices are held back.
#[derive(Debug, Clone)]
pub struct Silence {
    /// Its name.
    pub name: String,
    /// Only this rule (`None`: every rule).
    pub rule: Option<String>,
    /// The first start (Unix ms).
    pub start_ms: i64,
    /// How long each window lasts.
    pub duration: Duration,
    /// Repeats this often after `start` (a weekly maintenance window: `7d`).
    pub every: Option<Duration>,
}

impl Silence {
    /// Whether `rule` is silenced at `now_ms`.
    #[must_use]
    pub fn covers(&self, rule: &str, now_ms: i64) -> bool {
        if self.rule.as_deref().is_some_and(|r| r != rule) || now_ms < self.start_ms {
            return false;
        }
        let len = i64::try_from(self.duration.as_millis()).unwrap_or(i64::MAX);
        let offset = now_ms - self.start_ms;
        let offset = match self.every {
            Some(every) => {
                let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
                offset % every
            }
            None => offset,
        };
        offset < len
    }
}

/// A named notifier.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// Its name (the default notifiers are `webhook` and `email`).
    pub name: String,
    /// Where it sends.
    pub target: NotifierTarget,
    /// Only alerts of these severities (empty: all).
    pub severities: Vec<Severity>,
}

/// Where a notifier sends.
#[derive(Debug, Clone)]
pub enum NotifierTarget {
    /// A Standard Webhooks POST.
    Webhook {
        /// The URL.
        url: String,
        /// The environment variable holding the `whsec_…` signing secret (read when sending,
        /// so commands that never notify do not need it).
        secret_env: Option<String>,
    },
    /// Mail through the `SMTP_*` server.
    Email {
        /// Recipients.
        to: Vec<String>,
    },
}

impl Notifier {
    /// Whether this notifier takes alerts of `severity`.
    #[must_use]
    pub fn takes(&self, severity: Severity) -> bool {
        self.severities.is_empty() || self.severities.contains(&severity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_bad_ones_say_why() {
        let c = Condition::parse("json.workerLagMs < 900000").expect("parses");
        assert_eq!(c.field, Field::Json(vec!["workerLagMs".into()]));
        assert_eq!(c.op, Op::Lt);
        assert_eq!(c.value, Value::Number(900_000.0));
        let c = Condition::parse("response_time < 500ms").expect("parses");
        assert_eq!(c.value, Value::Number(500.0));
        let c = Condition::parse(r#"json.status == "ready""#).expect("parses");
        assert_eq!(c.value, Value::Text("ready".into()));
        let c = Condition::parse("status <= 299").expect("parses");
        assert_eq!(c.op, Op::Le);
        let c = Condition::parse(r#"body contains "ok""#).expect("parses");
        assert_eq!(c.op, Op::Contains);
        for bad in [
            "status 200",
            "latency < 5",
            "status == ready",
            "response_time < \"x\"",
            "body == 3",
        ] {
            let e = Condition::parse(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn every_threshold_of_the_seeds_can_be_written() {
        assert_eq!(
            When::parse("probe.api-ready failing for 3m").expect("ok"),
            When::Failing {
                subject: Subject::Probe("api-ready".into()),
                for_: Duration::from_secs(180)
            }
        );
        assert_eq!(
            When::parse("probe.app-db failures > 3 in 5m").expect("ok"),
            When::Failures {
                subject: Subject::Probe("app-db".into()),
                more_than: 3,
                within: Duration::from_secs(300)
            }
        );
        assert_eq!(
            When::parse("heartbeat.worker failed 2 times in a row").expect("ok"),
            When::InARow {
                subject: Subject::Heartbeat("worker".into()),
                times: 2
            }
        );
        assert!(matches!(
            When::parse("heartbeat.nightly down").expect("ok"),
            When::Failing { for_, .. } if for_.is_zero()
        ));
        for bad in [
            "",
            "api failing",
            "probe.x failing for ever",
            "probe.x failures > three in 5m",
            "probe.x is bad",
        ] {
            let e = When::parse(bad).expect_err(bad);
            assert!(e.contains("probe.NAME failing for 3m"), "{e}");
        }
    }

    #[test]
    fn silences_cover_their_window_and_recur() {
        let s = Silence {
            name: "m".into(),
            rule: None,
            start_ms: 1_000,
            duration: Duration::from_secs(60),
            every: Some(Duration::from_secs(3600)),
        };
        assert!(!s.covers("r", 999));
        assert!(s.covers("r", 1_000));
        assert!(!s.covers("r", 61_000));
        assert!(s.covers("r", 3_601_000));
        let only = Silence {
            rule: Some("a".into()),
            every: None,
            ..s
        };
        assert!(only.covers("a", 2_000));
        assert!(!only.covers("b", 2_000));
        assert!(!only.covers("a", 3_601_000));
    }
}
