//! `/metrics` through the Prometheus project's Rust client (`prometheus-client`), in the
//! OpenMetrics text format. Request, job and backup counters live in memory; per-target backup
//! and drill facts are read from the repository and the state store at scrape time, so they
//! hold however the backup or drill was made.

use std::{
    collections::BTreeMap,
    sync::{Mutex, atomic::AtomicU64},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Upper bounds of the backup duration histogram, in seconds.
const BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// OpenMetrics, for scrapers that ask for it (`Accept: application/openmetrics-text`).
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format (0.0.4), for everyone else: `promtool check metrics`, curl.
pub(crate) const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text turned into the Prometheus text format: a counter's HELP and TYPE name its
/// `_total` series, and the `# EOF` marker goes. (The two differ only there for what we
/// expose.)
pub(crate) fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

impl TargetLabel {
    fn new(target: &str) -> Self {
        Self {
            target: target.to_string(),
        }
    }
}

type Seconds = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What this process counted since it started.
#[derive(Debug)]
pub(crate) struct Metrics {
    http: Family<HttpLabels, Counter>,
    rate_limited: Counter,
    signatures_refused: Counter,
    jobs: Family<JobLabels, Counter>,
    durations: Family<TargetLabel, Histogram, fn() -> Histogram>,
    added: Family<TargetLabel, Counter>,
    last_success: Mutex<BTreeMap<String, f64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            http: Family::default(),
            rate_limited: Counter::default(),
            signatures_refused: Counter::default(),
            jobs: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            added: Family::default(),
            last_success: Mutex::default(),
        }
    }
}

/// What the state store knows about one target's drills, for `/metrics`.
#[derive(Debug)]
pub(crate) struct DrillFacts {
    pub target: String,
    pub last_success_ms: Option<i64>,
    pub restore_ms: Option<i64>,
    pub data_age_ms: Option<i64>,
    pub failures: i64,
}

#[allow(clippy::cast_precision_loss)]
fn secs(ms: Option<i64>) -> f64 {
    ms.map_or(0.0, |m| m as f64 / 1000.0)
}

impl Metrics {
    pub(crate) fn request(&self, route: &str, method: &str, status: u16) {
        self.http
            .get_or_create(&HttpLabels {
                route: route.into(),
                method: method.into(),
                status: status.to_string(),
            })
            .inc();
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub(crate) fn signature_refused(&self) {
        self.signatures_refused.inc();
    }

    pub(crate) fn job(&self, kind: &str, outcome: &str) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub(crate) fn backup(&self, target: &str, seconds: f64, added: u64, finished_unix: f64) {
        let label = TargetLabel::new(target);
        self.durations.get_or_create(&label).observe(seconds);
        self.added.get_or_create(&label).inc_by(added);
        self.last_success
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target.into(), finished_unix);
    }

    /// The exposition: this process's counters plus `targets` (each target's last successful
    /// backup, Unix seconds, as the repository and the store know it) and `drills`.
    pub(crate) fn render(
        &self,
        targets: &[(String, Option<f64>)],
        drills: &[DrillFacts],
        monitor: &MonitorFacts,
    ) -> String {
        let mut reg = Registry::default();
        let last = Family::<TargetLabel, Seconds>::default();
        {
            let seen = self
                .last_success
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (t, stored) in targets {
                let here = seen.get(t).copied();
                let v = match (here, *stored) {
                    (Some(a), Some(b)) => a.max(b),
                    (a, b) => a.or(b).unwrap_or(0.0),
                };
                last.get_or_create(&TargetLabel::new(t)).set(v);
            }
        }
        reg.register(
            "runbook_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup (0: never)",
            last,
        );
        reg.register(
            "runbook_backup_duration_seconds",
            "Backup duration",
            self.durations.clone(),
        );
        reg.register(
            "runbook_backup_added_bytes",
            "Bytes added to the repository",
            self.added.clone(),
        );
        reg.register(
            "runbook_jobs",
            "Finished jobs by kind and outcome",
            self.jobs.clone(),
        );
        reg.register(
            "runbook_http_requests",
            "HTTP requests by route, method and status",
            self.http.clone(),
        );
        reg.register(
            "runbook_http_rate_limited",
            "Requests refused by the rate limit",
            self.rate_limited.clone(),
        );
        reg.register(
            "runbook_webhook_signatures_refused",
            "Inbound events refused for a bad, stale or replayed signature",
            self.signatures_refused.clone(),
        );
        register_drills(&mut reg, drills);
        register_monitor(&mut reg, monitor);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

/// What the monitor knows, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct MonitorFacts {
    /// (probe, up, last duration in seconds)
    pub probes: Vec<(String, bool, f64)>,
    /// (heartbeat, up or late)
    pub heartbeats: Vec<(String, bool)>,
    /// (rule, alerts firing)
    pub firing: Vec<(String, i64)>,
    /// Instances sharing the state store (seen within two leases), and whether this one leads.
    pub instances: i64,
    /// 1 when this instance runs the schedules and the monitor.
    pub leader: bool,
}

fn register_monitor(reg: &mut Registry, m: &MonitorFacts) {
    let instances = Gauge::<i64>::default();
    instances.set(m.instances);
    reg.register(
        "runbook_cluster_instances",
        "Instances sharing the state store, seen within two leases",
        instances,
    );
    let leader = Gauge::<i64>::default();
    leader.set(i64::from(m.leader));
    reg.register(
        "runbook_cluster_leader",
        "1 when this instance runs the schedules, probes and alert rules",
        leader,
    );
    let up = Family::<NameLabel, Gauge>::default();
    let took = Family::<NameLabel, Seconds>::default();
    for (name, ok, secs) in &m.probes {
        let l = NameLabel { name: name.clone() };
        up.get_or_create(&l).set(i64::from(*ok));
        took.get_or_create(&l).set(*secs);
    }
    let beat = Family::<NameLabel, Gauge>::default();
    for (name, ok) in &m.heartbeats {
        beat.get_or_create(&NameLabel { name: name.clone() })
            .set(i64::from(*ok));
    }
    let firing = Family::<RuleLabel, Gauge>::default();
    for (rule, n) in &m.firing {
        firing
            .get_or_create(&RuleLabel { rule: rule.clone() })
            .set(*n);
    }
    reg.register(
        "runbook_probe_up",
        "1 when the probe's last check passed",
        up,
    );
    reg.register(
        "runbook_probe_duration_seconds",
        "How long the probe's last check took",
        took,
    );
    reg.register(
        "runbook_heartbeat_up",
        "1 when the heartbeat is up or late (within its grace time), 0 when down or new",
        beat,
    );
    reg.register("runbook_alerts_firing", "Alerts firing, per rule", firing);
}

/// The drill gauges and counter: last success, last restore time (RTO), last data age (RPO),
/// failures.
fn register_drills(reg: &mut Registry, drills: &[DrillFacts]) {
    let last = Family::<TargetLabel, Seconds>::default();
    let restore = Family::<TargetLabel, Seconds>::default();
    let age = Family::<TargetLabel, Seconds>::default();
    let failures = Family::<TargetLabel, Counter>::default();
    for d in drills {
        let label = TargetLabel::new(&d.target);
        last.get_or_create(&label).set(secs(d.last_success_ms));
        if d.restore_ms.is_some() {
            restore.get_or_create(&label).set(secs(d.restore_ms));
        }
        if d.data_age_ms.is_some() {
            age.get_or_create(&label).set(secs(d.data_age_ms));
        }
        failures
            .get_or_create(&label)
            .inc_by(u64::try_from(d.failures).unwrap_or(0));
    }
    reg.register(
        "runbook_drill_last_success_timestamp_seconds",
        "Unix time of the last passed restore drill (0: never)",
        last,
    );
    reg.register(
        "runbook_drill_restore_seconds",
        "Restore time of the last drill (the measured RTO)",
        restore,
    );
    reg.register(
        "runbook_drill_data_age_seconds",
        "Age of the data restored by the last drill (the measured RPO)",
        age,
    );
    reg.register(
        "runbook_drill_failures",
        "Drills that failed or could not run",
        failures,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_renamed_for_the_text_format() {
        let om = "# HELP jobs Finished jobs.\n# TYPE jobs counter\njobs_total{kind=\"b\"} 2\n# HELP up Up.\n# TYPE up gauge\nup 1\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP jobs_total Finished jobs.\n# TYPE jobs_total counter\njobs_total{kind=\"b\"} 2\n# HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }
}
