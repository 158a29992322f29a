//! Alert rules and their severities. A rule's `when` is one of:
//! - `probe.NAME failing [for DUR]` (also `heartbeat.NAME down [for DUR]`): the subject has failed
//!   without a success in between for at least `DUR`;
//! - `probe.NAME failures > N in DUR`: more than `N` failed checks within the last `DUR`;
//! - `probe.NAME failed N times in a row` (or a heartbeat's runs).

use std::time::Duration;

use crate::parse_duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
