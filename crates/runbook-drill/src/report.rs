//! `runbook report drills`: the drill table a runbook asks for, ready to paste into an
//! operations log or an audit.

use std::fmt::Write;

use runbook_store::DrillRecord;

use crate::seconds;

/// Parses `--since 90d` (also `12w`, `48h`).
///
/// # Errors
/// A message naming the accepted form.
pub fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    runbook_config::parse_duration(text).map_err(|e| format!("--since (for example 90d): {e}"))
}

/// `0.35s` plus the objective the drill checked it against, if it had one: `0.35s (≤ 15m00s)`.
fn with_objective(measured: String, report: &serde_json::Value, check: &str) -> String {
    let objective = report["checks"].as_array().and_then(|checks| {
        checks
            .iter()
            .find(|c| c["name"] == check)
            .and_then(|c| c["expected"].as_str())
            .and_then(|e| e.strip_prefix("at most "))
    });
    match objective {
        Some(o) if measured != "-" => format!("{measured} (≤ {o})"),
        _ => measured,
    }
}

fn ms_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A Markdown table of `drills` (newest first), with a header line naming the period.
#[must_use]
pub fn markdown(drills: &[DrillRecord], since: &str) -> String {
    let mut out = String::new();
    let passed = drills
        .iter()
        .filter(|d| d.drill.outcome == "passed")
        .count();
    let _ = writeln!(
        out,
        "## Restore drills (last {since}): {} run, {passed} passed, {} not passed\n",
        drills.len(),
        drills.len() - passed
    );
    let _ = writeln!(
        out,
        "| Date | Target | Snapshot | Snapshot time | RTO (restore) | RPO (data age) | Outcome | Failing checks |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    #[allow(clippy::cast_precision_loss)]
    for d in drills.iter().map(|r| &r.drill) {
        let secs =
            |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), |m| seconds(m as f64 / 1000.0));
        let failing = if d.failed_checks.is_empty() {
            d.report["error"].as_str().unwrap_or("-").to_string()
        } else {
            d.failed_checks.join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            ms_time(d.started_at),
            d.target,
            d.snapshot_id
                .as_deref()
                .map_or("-", |s| &s[..s.len().min(8)]),
            d.snapshot_time.map_or_else(|| "-".to_string(), ms_time),
            with_objective(secs(d.restore_ms), &d.report, "max_restore"),
            with_objective(secs(d.data_age_ms), &d.report, "max_data_age"),
            d.outcome,
            failing.replace('|', "\\|"),
        );
    }
    out
}
