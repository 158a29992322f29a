//! `/healthz`, `/readyz` (and the seeds' `/health/live`, `/health/ready`), `/api/health`.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{AppState, scheduler};

/// `{"status": "live"}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Live {
    /// Always `live`.
    status: &'static str,
}

/// Process alive
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "live", body = Live)))]
pub(crate) async fn live() -> Json<Live> {
    Json(Live { status: "live" })
}

/// Process alive (the seeds' name)
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "live", body = Live)))]
pub(crate) async fn live_alias() -> Json<Live> {
    live().await
}

/// The repository storage answers (a local root, or one listing of the S3 bucket).
async fn repository_reachable(state: &AppState) -> Result<(), String> {
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.repository_reachable())
        .await
        .unwrap_or_else(|e| Err(format!("repository check failed: {e}")))
}

/// Whether this instance can work: its state store and repository storage answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `not ready`.
    status: &'static str,
    /// `ok`, or why the state store does not answer.
    state_store: String,
    /// `ok`, or why the repository storage does not answer.
    repository: String,
}

/// State store and repository reachable
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "ready", body = Ready),
    (status = 503, description = "not ready: what does not answer", body = Ready)))]
pub(crate) async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.ping().await.map_err(|e| e.to_string());
    let repo = repository_reachable(&state).await;
    let ok = store.is_ok() && repo.is_ok();
    let body = Ready {
        status: if ok { "ready" } else { "not ready" },
        state_store: store.err().unwrap_or_else(|| "ok".into()),
        repository: repo.err().unwrap_or_else(|| "ok".into()),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Readiness (the seeds' name)
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "ready", body = Ready),
    (status = 503, description = "not ready: what does not answer", body = Ready)))]
pub(crate) async fn ready_alias(state: State<AppState>) -> impl IntoResponse {
    ready(state).await
}

/// One named health check.
#[derive(Serialize, Debug, ToSchema)]
pub(crate) struct Check {
    /// What is checked (`backup:app`, `drill:app`, `disk`, …).
    pub(crate) name: String,
    /// `ok`, `warn` or `critical`.
    pub(crate) status: &'static str,
    /// Why, in words.
    pub(crate) message: String,
    /// The built-in alert it raises when not ok (rule, subject); `None`: it raises none (the
    /// worker signals failed jobs itself, and "nothing yet" is no alarm).
    #[serde(skip)]
    pub(crate) signal: Option<(&'static str, String)>,
}

fn check(name: impl Into<String>, status: &'static str, message: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status,
        message: message.into(),
        signal: None,
    }
}

impl Check {
    fn raises(mut self, rule: &'static str, subject: impl Into<String>) -> Self {
        self.signal = Some((rule, subject.into()));
        self
    }
}

/// What a check says when the last success is older than its schedule allows.
struct Late<'a> {
    status: &'static str,
    message: &'static str,
    signal: (&'static str, &'a str),
}

/// `warn` with `[never, fresh][0]` when there is no success yet, `late` when the last one (at
/// `last`) is stale by `schedule`, else ok with `[never, fresh][1]`.
fn on_schedule(
    name: String,
    schedule: &runbook_config::Schedule,
    last: Option<i64>,
    now: i64,
    [never, fresh]: [&'static str; 2],
    late: Late<'_>,
) -> Check {
    if last.is_none() {
        check(name, "warn", never)
    } else if scheduler::is_stale(schedule, last, now) {
        check(name, late.status, late.message).raises(late.signal.0, late.signal.1)
    } else {
        check(name, "ok", fresh)
    }
}

/// The worst of the checks, and each check.
#[derive(Serialize, ToSchema)]
pub(crate) struct HealthReport {
    /// `ok`, `warn` or `critical`: the worst check.
    status: &'static str,
    /// Every check.
    checks: Vec<Check>,
}

/// ok/warn/critical with named checks
///
/// Backups and drills against their schedules and objectives, the repository, jobs, the
/// disk, secrets, auth, Redis when configured.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "the report", body = HealthReport)))]
pub(crate) async fn report(
    State(state): State<AppState>,
) -> Result<Json<HealthReport>, crate::error::AppError> {
    let checks = checks(&state).await?;
    let status = worst(checks.iter().map(|c| c.status));
    Ok(Json(HealthReport { status, checks }))
}

/// Free space on the data directory's filesystem: under 10% is critical.
fn disk_check(dir: &std::path::Path) -> Check {
    match rustix::fs::statvfs(dir) {
        Ok(st) if st.f_blocks > 0 => {
            #[allow(clippy::cast_precision_loss)]
            let free = st.f_bavail as f64 / st.f_blocks as f64 * 100.0;
            let gib = st.f_bavail.saturating_mul(st.f_frsize) >> 30;
            let msg = format!("{free:.0}% free ({gib} GiB) on {}", dir.display());
            if free < 10.0 {
                check("disk", "critical", msg).raises("disk.low", dir.display().to_string())
            } else {
                check("disk", "ok", msg)
            }
        }
        Ok(_) => check("disk", "ok", "size unknown"),
        Err(e) => check(
            "disk",
            "warn",
            format!("cannot read free space of {}: {e}", dir.display()),
        ),
    }
}

/// What the dumps that restores into `target` saved in `data_dir/saved` say: none, no check;
/// one a running restore holds, a warning; one no process holds, which may be the only copy
/// of a database, critical (and `restore.interrupted`).
fn saved_dump_check(state: &AppState, target: &str) -> Option<Check> {
    let (running, left): (Vec<_>, Vec<_>) = state
        .engine
        .saved_dumps(target)
        .into_iter()
        .partition(|d| d.in_use);
    let name = format!("restore:{target}");
    let Some(first) = left.first() else {
        let r = running.first()?;
        return Some(check(
            name,
            "warn",
            format!(
                "a restore into {db} is replacing it: what {db} held is saved in {} until the restore is done",
                r.path.display(),
                db = r.database,
            ),
        ));
    };
    let more = match left.len() {
        1 => String::new(),
        n => format!(
            " ({} more in {})",
            n - 1,
            state.engine.config().saved_dir().join(target).display()
        ),
    };
    Some(
        check(
            name,
            "critical",
            format!(
                "a restore into {db} did not finish: what {db} held before it is saved in {}{more}; if {db} lacks data, load it back (`mariadb {db} < FILE`), then remove the file",
                first.path.display(),
                db = first.database,
            ),
        )
        .raises("restore.interrupted", target.to_string()),
    )
}

/// Snapshots of `target` dated after `now` (Unix ms), by more than the slack: a clock that
/// was ahead, then set right. Retention keeps them outside the keep rule and the backup checks
/// go by the others; this says so, as a warning, until `now` passes them.
async fn dated_ahead_check(state: &AppState, target: &str, now: i64) -> Option<Check> {
    let list = state.snapshot_list(target).await.ok()?;
    let ahead: Vec<_> = list
        .iter()
        .filter(|s| s.time.as_millisecond() > now + AppState::AHEAD_SLACK_MS)
        .collect();
    let newest = ahead.last()?;
    Some(check(
        format!("backup:{target}:dated-ahead"),
        "warn",
        format!(
            "{} snapshot(s) dated after now, the newest {}: was the clock ahead? Retention keeps them outside the keep rule until then, and the backup checks go by the others",
            ahead.len(),
            newest.time.strftime("%Y-%m-%d %H:%M UTC")
        ),
    ))
}

/// The worst of some check statuses: `critical`, else `warn`, else `ok`.
pub(crate) fn worst<'a>(statuses: impl Iterator<Item = &'a str>) -> &'static str {
    statuses.fold("ok", |w, s| match (w, s) {
        ("critical", _) | (_, "critical") => "critical",
        ("warn", _) | (_, "warn") => "warn",
        _ => "ok",
    })
}

/// Every health check, as `/api/health` shows them and the built-in signals read them.
pub(crate) async fn checks(state: &AppState) -> Result<Vec<Check>, runbook_store::Error> {
    let state = state.clone();
    let mut checks = Vec::new();
    checks.push(match repository_reachable(&state).await {
        Ok(()) => check("repository", "ok", "reachable"),
        Err(e) => check("repository", "critical", e).raises("repository.unreachable", "repository"),
    });
    checks.push(disk_check(&state.engine.config().data_dir));
    match state.limiter.shared_state().await {
        None => {}
        Some(Ok(())) => checks.push(check(
            "redis",
            "ok",
            "the rate limit is shared by every instance",
        )),
        Some(Err(why)) => checks.push(check(
            "redis",
            "warn",
            format!("Redis does not answer ({why}): the rate limit is counted per instance until it does"),
        )),
    }
    for s in crate::secrets::refresh(&state).await? {
        let due = jiff::Timestamp::from_millisecond(s.due_at)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let how = s
            .notes
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let name = format!("secret:{}", s.name);
        checks.push(match s.status {
            "overdue" => check(name, "critical", format!("{} is overdue for rotation (due {due}){how}; then `runbook secrets rotated {}`", s.name, s.name))
                .raises("secret.overdue", s.name.clone()),
            "due" => check(name, "warn", format!("{} is due for rotation by {due}{how}", s.name))
                .raises("secret.due", s.name.clone()),
            _ => check(name, "ok", format!("rotated less than {} days ago", s.max_age_days)),
        });
    }
    if state.settings.auth_enabled {
        if state.store.has_owner_key().await? {
            checks.push(check("auth", "ok", "enabled with an owner key"));
        } else {
            checks.push(check("auth", "critical", "auth enabled but no owner key: set SECURITY_OWNER_KEYS or run `runbook keys create --role owner`").raises("auth.misconfigured", "auth"));
        }
    } else {
        checks.push(
            check("auth", "warn", "auth disabled (SECURITY_AUTH_ENABLED=0)")
                .raises("auth.misconfigured", "auth"),
        );
    }
    let now = state.clock.now_ms();
    for target in state.engine.config().targets.values() {
        let name = format!("backup:{}", target.name);
        let (last_ok, last_fail) = state
            .store
            .last_outcomes(&target.name, runbook_store::JobKind::Backup)
            .await?;
        // The repository's own record counts, however the backup was made.
        let last = match state.last_backup_ms(&target.name).await {
            Ok(last) => last,
            Err(_) => {
                checks.push(
                    check(
                        format!("{name}:repository"),
                        "critical",
                        "cannot read the target's repository (see the server log)",
                    )
                    .raises("repository.unreachable", target.name.clone()),
                );
                last_ok.and_then(|j| j.finished_at)
            }
        };
        if let Some(c) = dated_ahead_check(&state, &target.name, now).await {
            checks.push(c);
        }
        if let Some(f) = &last_fail
            && last.is_none_or(|l| f.finished_at.is_some_and(|failed| l < failed))
        {
            checks.push(check(
                format!("{name}:last-job"),
                "critical",
                format!(
                    "last backup failed: {}",
                    f.error.clone().unwrap_or_default()
                ),
            ));
        }
        let Some(schedule) = &target.schedule else {
            checks.push(match last {
                None => check(
                    name,
                    "warn",
                    "no backup yet, and no schedule: set `schedule` or run `runbook backup`",
                ),
                Some(_) => check(name, "ok", "backed up (no schedule to be late against)"),
            });
            continue;
        };
        checks.push(on_schedule(
            name,
            schedule,
            last,
            now,
            ["no backup yet", "fresh"],
            Late {
                status: "critical",
                message: "last successful backup is older than its schedule allows",
                signal: ("backup.stale", &target.name),
            },
        ));
    }
    for target in state.engine.config().targets.values() {
        // The rolling verification: damage it found stays critical until a later one passes.
        let (passed, failed) = state
            .store
            .last_outcomes(&target.name, runbook_store::JobKind::Verify)
            .await?;
        if let Some(f) = failed
            && passed.is_none_or(|p| p.finished_at < f.finished_at)
        {
            checks.push(check(
                format!("verify:{}", target.name),
                "critical",
                format!(
                    "reading back stored data failed: {} (the next backup stores damaged data again; `runbook check {} --read-data 100` reads it all)",
                    f.error.unwrap_or_default(),
                    target.name
                ),
            ).raises("verify.failed", target.name.clone()));
        }
        let recent = state.store.jobs(Some(&target.name), 2).await?;
        if recent.len() == 2
            && recent
                .iter()
                .all(|j| j.state == runbook_store::JobState::Failed)
        {
            checks.push(
                check(
                    format!("jobs:{}", target.name),
                    "critical",
                    format!(
                        "the last two jobs failed ({} and {})",
                        recent[0].kind, recent[1].kind
                    ),
                )
                .raises("jobs.failing", target.name.clone()),
            );
        }
    }
    for target in state.engine.config().targets.values() {
        let Some(drill) = &target.drill else { continue };
        let name = format!("drill:{}", target.name);
        let last = state
            .store
            .last_drill(&target.name, None)
            .await?
            .map(|r| r.drill);
        if let Some(d) = last.as_ref().filter(|d| d.outcome != "passed") {
            let why = if d.failed_checks.is_empty() {
                d.report["error"].as_str().unwrap_or("").to_string()
            } else {
                format!("failed {}", d.failed_checks.join(", "))
            };
            checks.push(check(
                format!("{name}:last"),
                "critical",
                format!("last restore drill {}: {why}", d.outcome),
            ));
        }
        let Some(schedule) = &drill.schedule else {
            continue;
        };
        let passed = state
            .store
            .last_drill(&target.name, Some("passed"))
            .await?
            .map(|r| r.drill);
        let at = passed.as_ref().map(|d| d.finished_at);
        checks.push(on_schedule(
            name,
            schedule,
            at,
            now,
            ["no passed restore drill yet", "drilled on schedule"],
            Late {
                status: "warn",
                message: "restore drill overdue: the last passed drill is older than its schedule allows",
                signal: ("drill.overdue", &target.name),
            },
        ));
    }
    for target in state.engine.config().targets.values() {
        checks.extend(saved_dump_check(&state, &target.name));
    }
    Ok(checks)
}
