//! Prometheus text metrics kept in memory; per-target backup and drill facts are read from the
//! state store at scrape time.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

/// Upper bounds of the backup duration histogram, in seconds.
const BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    http: BTreeMap<(String, String, u16), u64>,
    rate_limited: u64,
    jobs: BTreeMap<(String, String), u64>,
    durations: BTreeMap<String, (Vec<u64>, f64, u64)>,
    added: BTreeMap<String, u64>,
    last_success: BTreeMap<String, f64>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub(crate) fn request(&self, route: &str, method: &str, status: u16) {
        self.with(|m| {
            *m.http
                .entry((route.into(), method.into(), status))
                .or_default() += 1
        });
    }

    pub(crate) fn rate_limited(&self) {
        self.with(|m| m.rate_limited += 1);
    }

    pub(crate) fn job(&self, kind: &str, outcome: &str) {
        self.with(|m| *m.jobs.entry((kind.into(), outcome.into())).or_default() += 1);
    }

    pub(crate) fn backup(&self, target: &str, seconds: f64, added: u64, finished_unix: f64) {
        self.with(|m| {
            let h = m
                .durations
                .entry(target.into())
                .or_insert_with(|| (vec![0; BUCKETS.len()], 0.0, 0));
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.0[i] += 1;
                }
            }
            h.1 += seconds;
            h.2 += 1;
            *m.added.entry(target.into()).or_default() += added;
            m.last_success.insert(target.into(), finished_unix);
        });
    }

    pub(crate) fn render(&self, targets: &[(String, Option<f64>)]) -> String {
        self.with(|m| {
            let mut out = String::new();
            let _ = writeln!(out, "# HELP runbook_backup_last_success_timestamp_seconds Unix time of the last successful backup.\n# TYPE runbook_backup_last_success_timestamp_seconds gauge");
            for (t, stored) in targets {
                let v = m.last_success.get(t).copied().or(*stored).unwrap_or(0.0);
                let _ = writeln!(out, "runbook_backup_last_success_timestamp_seconds{{target=\"{t}\"}} {v}");
            }
            let _ = writeln!(out, "# HELP runbook_backup_duration_seconds Backup duration.\n# TYPE runbook_backup_duration_seconds histogram");
            for (t, (counts, sum, n)) in &m.durations {
                for (b, c) in BUCKETS.iter().zip(counts) {
                    let _ = writeln!(out, "runbook_backup_duration_seconds_bucket{{target=\"{t}\",le=\"{b}\"}} {c}");
                }
                let _ = writeln!(out, "runbook_backup_duration_seconds_bucket{{target=\"{t}\",le=\"+Inf\"}} {n}");
                let _ = writeln!(out, "runbook_backup_duration_seconds_sum{{target=\"{t}\"}} {sum}");
                let _ = writeln!(out, "runbook_backup_duration_seconds_count{{target=\"{t}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP runbook_backup_added_bytes_total Bytes added to the repository.\n# TYPE runbook_backup_added_bytes_total counter");
            for (t, v) in &m.added {
                let _ = writeln!(out, "runbook_backup_added_bytes_total{{target=\"{t}\"}} {v}");
            }
            let _ = writeln!(out, "# HELP runbook_jobs_total Finished jobs by kind and outcome.\n# TYPE runbook_jobs_total counter");
            for ((k, o), v) in &m.jobs {
                let _ = writeln!(out, "runbook_jobs_total{{kind=\"{k}\",outcome=\"{o}\"}} {v}");
            }
            let _ = writeln!(out, "# HELP runbook_http_requests_total HTTP requests by route, method and status.\n# TYPE runbook_http_requests_total counter");
            for ((r, meth, s), v) in &m.http {
                let _ = writeln!(out, "runbook_http_requests_total{{route=\"{r}\",method=\"{meth}\",status=\"{s}\"}} {v}");
            }
            let _ = writeln!(out, "# HELP runbook_http_rate_limited_total Requests refused by the rate limit.\n# TYPE runbook_http_rate_limited_total counter\nrunbook_http_rate_limited_total {}", m.rate_limited);
            out
        })
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

/// Appends the drill gauges and counter: last success, last restore time (RTO), last data age
/// (RPO), failures.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn render_drills(out: &mut String, drills: &[DrillFacts]) {
    let secs = |ms: Option<i64>| ms.map_or(0.0, |m| m as f64 / 1000.0);
    let _ = writeln!(
        out,
        "# HELP runbook_drill_last_success_timestamp_seconds Unix time of the last passed restore drill (0: never).\n# TYPE runbook_drill_last_success_timestamp_seconds gauge"
    );
    for d in drills {
        let _ = writeln!(
            out,
            "runbook_drill_last_success_timestamp_seconds{{target=\"{}\"}} {}",
            d.target,
            secs(d.last_success_ms)
        );
    }
    let _ = writeln!(
        out,
        "# HELP runbook_drill_restore_seconds Restore time of the last drill (the measured RTO).\n# TYPE runbook_drill_restore_seconds gauge"
    );
    for d in drills.iter().filter(|d| d.restore_ms.is_some()) {
        let _ = writeln!(
            out,
            "runbook_drill_restore_seconds{{target=\"{}\"}} {}",
            d.target,
            secs(d.restore_ms)
        );
    }
    let _ = writeln!(
        out,
        "# HELP runbook_drill_data_age_seconds Age of the data restored by the last drill (the measured RPO).\n# TYPE runbook_drill_data_age_seconds gauge"
    );
    for d in drills.iter().filter(|d| d.data_age_ms.is_some()) {
        let _ = writeln!(
            out,
            "runbook_drill_data_age_seconds{{target=\"{}\"}} {}",
            d.target,
            secs(d.data_age_ms)
        );
    }
    let _ = writeln!(
        out,
        "# HELP runbook_drill_failures_total Drills that failed or could not run.\n# TYPE runbook_drill_failures_total counter"
    );
    for d in drills {
        let _ = writeln!(
            out,
            "runbook_drill_failures_total{{target=\"{}\"}} {}",
            d.target, d.failures
        );
    }
}
