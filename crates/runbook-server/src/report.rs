//! The operations runbook of this installation, rendered from what actually runs: the
//! configuration and the records (`runbook report runbook`, `GET /api/report/runbook`).

use std::fmt::Write as _;

use runbook_config::{Keep, Target, TargetKind};

use crate::AppState;

/// A time as `2026-11-26 03:00 UTC` (the dashboard and the report).
pub(crate) fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn keep_words(k: &Keep) -> String {
    if k.is_empty() {
        return "every snapshot is kept (no `keep` rule)".into();
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (k.last, "the last {} snapshots"),
        (k.hourly, "{} hourly"),
        (k.daily, "{} daily"),
        (k.weekly, "{} weekly"),
        (k.monthly, "{} monthly"),
    ] {
        if let Some(n) = n {
            parts.push(what.replace("{}", &n.to_string()));
        }
    }
    if let Some(w) = k.within {
        parts.push(format!(
            "everything within {}",
            humantime::format_duration(w)
        ));
    }
    format!("keeps {}", parts.join(", "))
}

fn what(t: &Target) -> String {
    match &t.kind {
        TargetKind::Sqlite { path } => format!("SQLite database `{}`", path.display()),
        TargetKind::Postgres(p) => format!("PostgreSQL database `{}`", p.url.without_password()),
        TargetKind::Mariadb(m) => format!("MariaDB database `{}`", m.url.without_password()),
        TargetKind::Bucket(b) => format!("the objects of bucket `{}`", b.s3.url),
        TargetKind::Files { paths, .. } => format!(
            "files: {}",
            paths
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The restore command for `t`, to run as written: a copy beside the live data (below the
/// first restore root, or into a new database).
#[must_use]
pub fn restore_command(config: &runbook_config::Config, t: &Target) -> String {
    let config_file = &config.file;
    let root = config
        .restore_roots
        .first()
        .map_or_else(|| config.data_dir.join("restores"), Clone::clone);
    let base = format!(
        "runbook --config {} restore {} --snapshot latest",
        config_file.display(),
        t.name
    );
    match &t.kind {
        TargetKind::Postgres(_) | TargetKind::Mariadb(_) => {
            format!("{base} --into {}_restored", t.name.replace('-', "_"))
        }
        TargetKind::Sqlite { .. } => format!(
            "{base} --to {}",
            root.join(format!("{}-restored.db", t.name)).display()
        ),
        TargetKind::Bucket(_) | TargetKind::Files { .. } => {
            format!(
                "{base} --to {}",
                root.join(format!("{}-restored", t.name)).display()
            )
        }
    }
}

/// A target's last backup (Unix ms; however it was made) and last drill.
pub(crate) async fn last_backup_and_drill(
    state: &AppState,
    target: &str,
) -> Result<(Option<i64>, Option<runbook_store::NewDrill>), runbook_store::Error> {
    // An unreadable repository shows as "none" here; /api/health names it.
    let last = state.last_backup_ms(target).await.unwrap_or(None);
    let drill = state.store.last_drill(target, None).await?.map(|r| r.drill);
    Ok((last, drill))
}

/// The runbook as one standalone HTML page (no scripts, no external resources): the Markdown
/// rendered with the HTML any text held escaped, so a name in the configuration cannot inject
/// markup.
///
/// # Errors
/// State-store errors.
pub async fn html(state: &AppState) -> Result<String, runbook_store::Error> {
    Ok(to_html(&markdown(state).await?))
}

/// `md` as a standalone HTML page; raw HTML in `md` is shown as text.
#[must_use]
pub fn to_html(md: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, html::push_html};
    let events = Parser::new_ext(md, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        other => other,
    });
    let mut body = String::new();
    push_html(&mut body, events);
    let title = md
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("Operations runbook");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        html_escape(title)
    )
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}\
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccd;padding:.3rem .6rem;text-align:left;vertical-align:top}\
code,pre{font-family:ui-monospace,monospace;background:#f3f4f6}pre{padding:.6rem;overflow-x:auto}";

/// `s` with `&`, `<`, `>` and `"` escaped, for HTML text and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The runbook as Markdown.
///
/// # Errors
/// State-store errors.
pub async fn markdown(state: &AppState) -> Result<String, runbook_store::Error> {
    let config = state.engine.config();
    let now = state.clock.now_ms();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Operations runbook\n\nGenerated {} by runbook {} from `{}` and its records: it describes what runs, not what was planned.\n",
        when(now),
        env!("CARGO_PKG_VERSION"),
        config.file.display()
    );
    let _ = writeln!(md, "## Backups\n");
    let _ = writeln!(
        md,
        "Repositories: `{}` (restic format; `restic -r <repository>/<target> --password-file {} snapshots` reads them).\n",
        config
            .repository
            .location_of("<target>")
            .replace("/<target>", ""),
        config.repository.password_file.display()
    );
    for t in config.targets.values() {
        let (last, drill) = last_backup_and_drill(state, &t.name).await?;
        let _ = writeln!(md, "### {}\n", t.name);
        let _ = writeln!(md, "- **What**: {}", what(t));
        let _ = writeln!(
            md,
            "- **When**: {}",
            t.schedule.as_ref().map_or_else(
                || "no schedule (backed up by hand or by cron: `runbook backup`)".to_string(),
                |s| format!("`{}` (UTC)", s.as_str())
            )
        );
        let _ = writeln!(md, "- **Retention**: {}", keep_words(&t.keep));
        let _ = writeln!(
            md,
            "- **Stored in**: `{}`",
            config.repository.location_of(&t.name)
        );
        if !t.copy_to.is_empty() {
            let _ = writeln!(md, "- **Copied to**: {}", t.copy_to.join(", "));
        }
        let _ = writeln!(
            md,
            "- **Last backup**: {}",
            last.map_or_else(
                || "none yet".to_string(),
                |at| format!("{} ({} h ago)", when(at), (now - at) / 3_600_000)
            )
        );
        match (&t.drill, &drill) {
            (None, _) => {
                let _ = writeln!(
                    md,
                    "- **Restore drill**: none configured (`[targets.{}.drill]`)",
                    t.name
                );
            }
            (Some(d), last) => {
                let objectives = format!(
                    "objectives: restore within {}, data no older than {}",
                    d.max_restore
                        .map_or("–".into(), |m| humantime::format_duration(m).to_string()),
                    d.max_data_age
                        .map_or("–".into(), |m| humantime::format_duration(m).to_string())
                );
                let _ = writeln!(
                    md,
                    "- **Restore drill**: {}; {objectives}; last: {}",
                    d.schedule
                        .as_ref()
                        .map_or("on demand".to_string(), |s| format!("`{}`", s.as_str())),
                    last.as_ref().map_or_else(
                        || "never run".to_string(),
                        |l| format!(
                            "{} {} (RTO {}, data age {}){}",
                            l.outcome,
                            when(l.finished_at),
                            l.restore_ms
                                .map_or("–".into(), |m| format!("{:.1} s", m as f64 / 1000.0)),
                            l.data_age_ms
                                .map_or("–".into(), |m| format!("{} min", m / 60_000)),
                            if l.failed_checks.is_empty() {
                                String::new()
                            } else {
                                format!(", failed: {}", l.failed_checks.join(", "))
                            }
                        )
                    )
                );
            }
        }
        let _ = writeln!(
            md,
            "- **Restore** (the latest snapshot, beside the live data):\n\n  ```sh\n  {}\n  ```\n",
            restore_command(config, t)
        );
    }
    let m = &config.monitor;
    let _ = writeln!(md, "## Alerts\n");
    let _ = writeln!(
        md,
        "Built in: `backup.failed`, `drill.failed`, `backup.stale`, `drill.overdue`, `verify.failed`, `jobs.failing`, `repository.unreachable`, `disk.low`, `auth.misconfigured`, `secret.due`, `secret.overdue`, `restore.interrupted`.\n"
    );
    for a in m.alerts.values() {
        let _ = writeln!(
            md,
            "- `{}`: `{}` — {}{}",
            a.name,
            a.when,
            a.severity.as_str(),
            a.repeat
                .map(|r| format!(", repeated every {}", humantime::format_duration(r)))
                .unwrap_or_default()
        );
    }
    let notifiers: Vec<String> = crate::notify::notifiers(state)
        .iter()
        .map(|n| format!("`{}`", n.name))
        .collect();
    let _ = writeln!(
        md,
        "\nNotices go to: {}.\n",
        if notifiers.is_empty() {
            "nobody (set ALERT_WEBHOOK_URL or SMTP_HOST)".to_string()
        } else {
            notifiers.join(", ")
        }
    );
    if !m.probes.is_empty() || !m.heartbeats.is_empty() {
        let _ = writeln!(md, "## Watched\n");
        for p in m.probes.values() {
            let _ = writeln!(
                md,
                "- probe `{}` ({}, every {})",
                p.name,
                p.check.kind(),
                humantime::format_duration(p.interval)
            );
        }
        for h in m.heartbeats.values() {
            let _ = writeln!(
                md,
                "- heartbeat `{}` (grace {})",
                h.name,
                humantime::format_duration(h.grace)
            );
        }
        md.push('\n');
    }
    let secrets = crate::secrets::refresh(state).await?;
    if !secrets.is_empty() {
        let _ = writeln!(md, "## Secrets\n");
        for s in secrets {
            let _ = writeln!(
                md,
                "- `{}`: {}, rotated {}, due {}{} — after rotating: `runbook secrets rotated {}`",
                s.name,
                s.status,
                when(s.rotated_at),
                when(s.due_at),
                s.notes.map(|n| format!(" ({n})")).unwrap_or_default(),
                s.name
            );
        }
    }
    Ok(md)
}

#[cfg(test)]
mod html_tests {
    #[test]
    fn markup_in_the_text_is_escaped_and_tables_render() {
        let page = super::to_html(
            "# Runbook <b>x</b>\n\n| a | b |\n|---|---|\n| <script>alert(1)</script> | `c` |\n",
        );
        assert!(page.contains("<table>"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(
            page.contains("<title>Runbook &lt;b&gt;x&lt;/b&gt;</title>"),
            "{page}"
        );
    }
}
