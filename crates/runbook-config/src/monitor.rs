//! What `serve` watches and whom it tells: probes, heartbeats, alert rules, silences and
//! notifiers. The two small grammars they use live in [`condition`] (probe conditions) and
//! [`rules`] (rule `when`s).

use std::{collections::BTreeMap, time::Duration};

use secrecy::SecretString;

use crate::DbUrl;

mod condition;
mod rules;

pub use condition::{Condition, Field, Op, Value};
pub use rules::{AlertRule, Severity, Subject, When};

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
