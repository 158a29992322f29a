//! The monitor's endpoints: heartbeat pings (`/ping/{key}`, healthchecks.io-compatible),
//! `GET /api/probes`, `/api/heartbeats`, `/api/alerts`, `/api/silences`,
//! `POST /api/silences` and signed inbound events (`POST /api/events`).

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use runbook_store::{HeartbeatEvent, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{api::ApiResult, doc::ErrorBody};
use crate::{AppState, auth::Caller, error::AppError, monitor};

/// Inbound events older (or newer) than this are refused.
const EVENT_TOLERANCE_MS: i64 = 5 * 60_000;

/// Heartbeat ping: a successful run (healthchecks.io-compatible)
///
/// The first 1,000 bytes of a body are kept with the run.
#[utoipa::path(method(get, post, head), path = "/ping/{key}", tag = "monitor",
    params(("key" = String, Path, description = "the heartbeat's ping key")),
    responses(
        (status = 200, description = "recorded", content_type = "text/plain", body = String),
        (status = 404, description = "no heartbeat with this key", body = ErrorBody)))]
pub(crate) async fn ping(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    record_ping(&state, &key, "", &body).await
}

/// Heartbeat ping: start, fail, log, or an exit code 0-255 (0 is success)
#[utoipa::path(method(get, post, head), path = "/ping/{key}/{action}", tag = "monitor",
    params(
        ("key" = String, Path, description = "the heartbeat's ping key"),
        ("action" = String, Path, description = "start, fail, log, or an exit code 0-255")),
    responses(
        (status = 200, description = "recorded", content_type = "text/plain", body = String),
        (status = 400, description = "unknown action", body = ErrorBody),
        (status = 404, description = "no heartbeat with this key", body = ErrorBody)))]
pub(crate) async fn ping_action(
    State(state): State<AppState>,
    Path((key, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    record_ping(&state, &key, &action, &body).await
}

async fn record_ping(
    state: &AppState,
    key: &str,
    action: &str,
    body: &[u8],
) -> ApiResult<&'static str> {
    let Some(hb) = state.heartbeat_by_key(key) else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "no heartbeat with this key",
        ));
    };
    let now = state.clock.now_ms();
    // The first 1,000 bytes of the body are kept with the run (healthchecks keeps the body too).
    let note = (!body.is_empty())
        .then(|| String::from_utf8_lossy(&body[..body.len().min(1000)]).into_owned());
    let min = hb.min_runtime.map(monitor::probe::ms);
    let name = hb.name.clone();
    let finish = |ok: bool, exit_code: Option<i64>, note: Option<String>| HeartbeatEvent::Finish {
        name: name.clone(),
        at: now,
        ok,
        exit_code,
        note,
        min_runtime_ms: min,
    };
    let event = match action {
        "start" => HeartbeatEvent::Start {
            name: name.clone(),
            at: now,
        },
        "log" => {
            state
                .audit(
                    "heartbeat",
                    "heartbeat.log",
                    &name,
                    "ok",
                    note.unwrap_or_default(),
                )
                .await?;
            return Ok("OK");
        }
        "" | "0" => finish(true, None, note),
        "fail" => finish(false, None, note),
        code => {
            let code: i64 = code.parse().ok().filter(|c| (0..=255).contains(c)).ok_or_else(|| {
                AppError::new(
                    StatusCode::BAD_REQUEST,
                    "use /ping/KEY, /ping/KEY/start, /ping/KEY/fail, /ping/KEY/log or /ping/KEY/EXIT_CODE (0-255)",
                )
            })?;
            finish(code == 0, Some(code), note)
        }
    };
    // Buffered: written with the others within 100 ms, and before anything reads heartbeats.
    if monitor::pings::push(state, event) {
        monitor::pings::flush(state).await?;
    }
    Ok("OK")
}

/// A probe as `GET /api/probes` shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProbeView {
    /// Its name.
    name: String,
    /// `http`, `tcp`, `postgres`, `mariadb`, `redis` or `prometheus`.
    kind: &'static str,
    /// How often it runs.
    interval_seconds: u64,
    /// `pending` (not run yet), `up` or `down`.
    status: &'static str,
    /// Since when it has been up (or down), Unix ms.
    since: Option<i64>,
    /// Its latest result.
    last: Option<runbook_store::ProbeResult>,
    /// Checks and failures over the last 24 hours.
    last_24h: Day,
}

/// Checks run and failed over a day.
#[derive(Serialize, ToSchema)]
pub(crate) struct Day {
    checks: i64,
    failures: i64,
}

/// Each probe's latest result, since when it is up or down, its checks and failures over 24 hours
#[utoipa::path(get, path = "/api/probes", tag = "monitor",
    responses((status = 200, description = "probes", body = Vec<ProbeView>)))]
pub(crate) async fn probes(State(state): State<AppState>) -> ApiResult<Json<Vec<ProbeView>>> {
    let stored = state.store.probe_statuses().await?;
    let day_ago = state.clock.now_ms() - 86_400_000;
    let mut out = Vec::new();
    for p in state.engine.config().monitor.probes.values() {
        let last = stored.iter().find(|s| s.last.probe == p.name);
        let day = state.store.probe_rollups(&p.name, day_ago).await?;
        let (checks, failures) = day
            .iter()
            .fold((0, 0), |(c, f), r| (c + r.checks, f + r.failures));
        out.push(ProbeView {
            name: p.name.clone(),
            kind: p.check.kind(),
            interval_seconds: p.interval.as_secs(),
            status: match last {
                None => "pending",
                Some(s) if s.last.ok => "up",
                Some(_) => "down",
            },
            since: last.map(|s| s.since),
            last: last.map(|s| s.last.clone()),
            last_24h: Day { checks, failures },
        });
    }
    Ok(Json(out))
}

/// A heartbeat as `GET /api/heartbeats` shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct HeartbeatView {
    /// Its name.
    name: String,
    /// `new`, `up`, `late` or `down`.
    status: &'static str,
    /// Why, in words.
    reason: String,
    /// A run has started and not finished.
    running: bool,
    /// When the next ping is expected (Unix ms).
    next_due: Option<i64>,
    /// The last successful run (Unix ms).
    last_ok: Option<i64>,
    /// The last failed run (Unix ms).
    last_fail: Option<i64>,
    /// `/ping/KEY`: shown to operator and owner keys only.
    ping_path: Option<String>,
    /// Recent runs, newest first.
    runs: Vec<runbook_store::HeartbeatRun>,
}

/// Each heartbeat's state, recent runs, and its ping path (operator and owner keys only)
#[utoipa::path(get, path = "/api/heartbeats", tag = "monitor",
    responses((status = 200, description = "heartbeats", body = Vec<HeartbeatView>)))]
pub(crate) async fn heartbeats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<HeartbeatView>>> {
    let now = state.clock.now_ms();
    let facts = monitor::heartbeat_states(&state, now).await?;
    let show_keys = caller.role.is_none_or(|r| r >= Role::Operator);
    let mut out = Vec::new();
    for hb in state.engine.config().monitor.heartbeats.values() {
        let Some((status, runs)) = facts.get(&hb.name) else {
            continue;
        };
        let row = state.store.heartbeat(&hb.name, now).await?;
        out.push(HeartbeatView {
            name: hb.name.clone(),
            status: status.state,
            reason: status.reason.clone(),
            running: status.running,
            next_due: status.next_due,
            last_ok: row.last_ok,
            last_fail: row.last_fail,
            ping_path: show_keys.then(|| format!("/ping/{}", row.ping_key)),
            runs: runs.clone(),
        });
    }
    Ok(Json(out))
}

/// Alerts firing now, then the 50 most recently resolved
#[utoipa::path(get, path = "/api/alerts", tag = "monitor",
    responses((status = 200, description = "alerts", body = Vec<runbook_store::Alert>)))]
pub(crate) async fn alerts(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<runbook_store::Alert>>> {
    Ok(Json(state.store.alerts(50).await?))
}

/// A silence from the configuration (`[silences.NAME]`).
#[derive(Serialize, ToSchema)]
pub(crate) struct ConfiguredSilence {
    /// `config:NAME`.
    id: String,
    /// Only this rule (`None`: all).
    rule: Option<String>,
    /// From (Unix ms).
    starts_at: i64,
    /// How long each time.
    duration_seconds: u64,
    /// Recurs this often, if it recurs.
    every_seconds: Option<u64>,
    /// In force now.
    active: bool,
}

/// Silences from the configuration and those made through the API.
#[derive(Serialize, ToSchema)]
pub(crate) struct Silences {
    /// From `[silences.NAME]`.
    configured: Vec<ConfiguredSilence>,
    /// From `POST /api/silences`, current and coming.
    api: Vec<runbook_store::SilenceRow>,
}

/// Silences from the config and through the API that have not ended
#[utoipa::path(get, path = "/api/silences", tag = "monitor",
    responses((status = 200, description = "silences", body = Silences)))]
pub(crate) async fn silences(State(state): State<AppState>) -> ApiResult<Json<Silences>> {
    let now = state.clock.now_ms();
    let configured: Vec<_> = state
        .engine
        .config()
        .monitor
        .silences
        .iter()
        .map(|s| ConfiguredSilence {
            id: format!("config:{}", s.name),
            rule: s.rule.clone(),
            starts_at: s.start_ms,
            duration_seconds: s.duration.as_secs(),
            every_seconds: s.every.map(|e| e.as_secs()),
            active: s
                .rule
                .as_deref()
                .map_or_else(|| s.covers("*", now), |r| s.covers(r, now)),
        })
        .collect();
    let made = state.store.silences(now).await?;
    Ok(Json(Silences {
        configured,
        api: made,
    }))
}

/// A silence to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSilence {
    /// An `[alerts.NAME]` or a built-in rule such as `backup.failed`; absent: every rule.
    rule: Option<String>,
    /// From (RFC 3339); absent: now.
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// How long, e.g. `2h`.
    #[schema(pattern = "^[1-9][0-9]{0,5}(s|m|h|d|w)$")]
    duration: String,
    /// Why (it goes into the ops log).
    #[schema(min_length = 1, pattern = "\\S")]
    comment: String,
}

/// Silence one rule (or all) for a while
///
/// Nothing is sent while it holds; alerts still resolve.
#[utoipa::path(post, path = "/api/silences", tag = "monitor", request_body = NewSilence, responses(
    (status = 201, description = "silence created", body = runbook_store::SilenceRow),
    (status = 400, description = "malformed JSON", body = ErrorBody),
    (status = 415, description = "not application/json", body = ErrorBody),
    (status = 422, description = "bad field (duration, starts_at, comment)", body = ErrorBody)))]
pub(crate) async fn add_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    req: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(req) = req?;
    let bad = |m: String| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let now = state.clock.now_ms();
    let start = match &req.starts_at {
        None => now,
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|e| {
                bad(format!(
                    "starts_at: {e}; use RFC 3339, e.g. 2026-12-01T02:00:00Z"
                ))
            })?
            .as_millisecond(),
    };
    let len =
        runbook_config::parse_duration(&req.duration).map_err(|e| bad(format!("duration: {e}")))?;
    if req.comment.trim().is_empty() {
        return Err(bad("comment: say why (it goes into the ops log)".into()));
    }
    let end = start.saturating_add(monitor::probe::ms(len));
    let row = state
        .store
        .add_silence(
            req.rule.as_deref(),
            start,
            end,
            req.comment.trim(),
            &caller.actor,
            now,
        )
        .await?;
    state
        .audit(
            &caller.actor,
            "silence.add",
            req.rule.as_deref().unwrap_or("*"),
            "ok",
            format!("{} until {end}: {}", row.id, row.comment),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// A deploy or incident for the ops log.
#[derive(Deserialize, ToSchema)]
pub(crate) struct Event {
    /// `deploy`, `incident`, … (letters, digits, `-`, `_`, `.`; at most 40).
    #[serde(rename = "type")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,40}$")]
    kind: String,
    /// What it is about (a service, a release).
    subject: Option<String>,
    /// What happened.
    message: Option<String>,
}

/// `{"recorded": true}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Recorded {
    recorded: bool,
}

/// Record a deploy or incident in the ops log
///
/// Signed as Standard Webhooks specifies when `RUNBOOK_WEBHOOK_SECRET` is set.
#[utoipa::path(post, path = "/api/events", tag = "monitor", request_body = Event, responses(
    (status = 202, description = "recorded", body = Recorded),
    (status = 400, description = "body not UTF-8", body = ErrorBody),
    (status = 401, description = "missing key, or a missing or bad signature", body = ErrorBody),
    (status = 409, description = "timestamp more than 5 minutes off, or a replayed webhook-id", body = ErrorBody),
    (status = 422, description = "not {type, subject, message}", body = ErrorBody)))]
/// `POST /api/events` (operator): a deploy or incident into the ops log. With
/// `RUNBOOK_WEBHOOK_SECRET` set it must be signed as Standard Webhooks specifies: a bad or
/// missing signature is 401, a timestamp more than 5 minutes off or a replayed id is 409.
pub(crate) async fn event(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let now = state.clock.now_ms();
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
    if let Some(secret) = &state.settings.webhook_secret {
        let refuse = |code, msg: &str| {
            state.metrics.signature_refused();
            AppError::new(code, msg)
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let (Some(id), Some(ts), Some(sigs)) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        ) else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unsigned: send webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks)",
            ));
        };
        let ts: i64 = ts.parse().map_err(|_| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "webhook-timestamp is not Unix seconds",
            )
        })?;
        if !crate::notify::verify(secret, id, ts, text, sigs) {
            return Err(refuse(StatusCode::UNAUTHORIZED, "bad signature"));
        }
        if (now - ts.saturating_mul(1000)).abs() > EVENT_TOLERANCE_MS {
            return Err(refuse(
                StatusCode::CONFLICT,
                "webhook-timestamp is more than 5 minutes off",
            ));
        }
        if !state
            .store
            .first_sight(id, now, now - 2 * EVENT_TOLERANCE_MS)
            .await?
        {
            return Err(refuse(StatusCode::CONFLICT, "replayed webhook-id"));
        }
    }
    let ev: Event = serde_json::from_str(text).map_err(|e| {
        AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "expected {{\"type\": \"deploy\", \"subject\": \"…\", \"message\": \"…\"}}: {e}"
            ),
        )
    })?;
    let ok_kind = !ev.kind.is_empty()
        && ev.kind.len() <= 40
        && ev
            .kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok_kind {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "type: letters, digits, '-', '_' and '.' (at most 40), e.g. deploy or incident",
        ));
    }
    state
        .audit(
            &caller.actor,
            &format!("event.{}", ev.kind),
            ev.subject.as_deref().unwrap_or("-"),
            "recorded",
            ev.message.unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Recorded { recorded: true })))
}
