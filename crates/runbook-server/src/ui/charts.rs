//! The dashboard's charts: inline SVG drawn on the server (no script, no style).

use maud::{Markup, html};

use super::pages::bytes;

/// Backup size and duration over the last snapshots, as inline SVG (no script, no style).
pub(super) fn chart(newest_first: &[runbook_backup::Snapshot]) -> Markup {
    let pts: Vec<&runbook_backup::Snapshot> = newest_first.iter().take(60).rev().collect();
    let max_size = pts.iter().map(|s| s.source_bytes).max().unwrap_or(1).max(1);
    let max_secs = pts
        .iter()
        .map(|s| s.duration_seconds)
        .fold(0.1_f64, f64::max);
    let w = 600.0;
    let h = 120.0;
    #[allow(clippy::cast_precision_loss)]
    let step = w / (pts.len().max(2) - 1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let line = |f: &dyn Fn(&runbook_backup::Snapshot) -> f64| -> String {
        pts.iter()
            .enumerate()
            .map(|(i, s)| format!("{:.1},{:.1}", i as f64 * step, h - f(s) * (h - 10.0) - 5.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    #[allow(clippy::cast_precision_loss)]
    let size = line(&|s| s.source_bytes as f64 / max_size as f64);
    let secs = line(&|s| s.duration_seconds / max_secs);
    html! {
        figure.chart {
            svg viewBox="0 0 600 120" role="img" aria-label="backup size and duration over time" {
                polyline points=(size) fill="none" stroke="currentColor" stroke-width="2" {}
                polyline points=(secs) fill="none" stroke="#d97706" stroke-width="2" stroke-dasharray="4 3" {}
            }
            figcaption { "Size (solid, max " (bytes(max_size)) ") and duration (dashed, max " (format!("{max_secs:.1}")) " s) of the last " (pts.len()) " backups" }
        }
    }
}

/// Each drill's restore time (RTO) as a bar, against the `max_restore` objective (a line).
pub(super) fn rto_chart(
    newest_first: &[runbook_store::DrillRecord],
    max: Option<std::time::Duration>,
) -> Markup {
    let pts: Vec<&runbook_store::DrillRecord> = newest_first.iter().take(30).rev().collect();
    #[allow(clippy::cast_precision_loss)]
    let secs = |d: &runbook_store::DrillRecord| d.drill.restore_ms.unwrap_or(0) as f64 / 1000.0;
    let objective = max.map(|m| m.as_secs_f64());
    let top = pts
        .iter()
        .map(|d| secs(d))
        .fold(objective.unwrap_or(0.1), f64::max)
        .max(0.1);
    let (w, h) = (600.0, 120.0);
    #[allow(clippy::cast_precision_loss)]
    let slot = w / pts.len().max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let bars: Vec<(f64, f64, f64, f64, &str)> = pts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let bh = secs(d) / top * (h - 10.0);
            let fill = if d.drill.outcome == "passed" {
                "#16a34a"
            } else {
                "#dc2626"
            };
            (
                i as f64 * slot + 2.0,
                h - bh,
                (slot - 4.0).max(1.0),
                bh,
                fill,
            )
        })
        .collect();
    html! {
        figure.chart {
            svg viewBox="0 0 600 120" role="img" aria-label="restore time of each drill against the objective" {
                @for (x, y, bw, bh, fill) in &bars {
                    rect x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{bw:.1}")) height=(format!("{bh:.1}")) fill=(fill) {}
                }
                @if let Some(o) = objective {
                    @let y = h - o / top * (h - 10.0);
                    line x1="0" x2="600" y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) stroke="currentColor" stroke-dasharray="6 4" {}
                }
            }
            figcaption {
                "Restore time of the last " (pts.len()) " drills (green passed, red failed)"
                @if let Some(o) = objective { ", dashed: the objective of " (format!("{o:.0}")) " s" }
            }
        }
    }
}
