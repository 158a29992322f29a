//! The monitor against real peers: an HTTP server the test controls, PostgreSQL, MariaDB and
//! Redis on this machine, and the webhook receiver that verifies signatures with the
//! `standardwebhooks` package. Time moves only when the test moves the clock.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use reqwest::{Method, StatusCode};
use runbook_server::{Settings, monitor, notify, status};

/// An HTTP server the test controls: it answers `/ready` with the status and body set last.
struct Upstream {
    port: u16,
    answer: Arc<Mutex<(u16, String)>>,
}

impl Upstream {
    async fn start() -> Self {
        let answer = Arc::new(Mutex::new((
            200,
            r#"{"status":"ready","workerLagMs":1200}"#.to_string(),
        )));
        let shared = answer.clone();
        let app = axum::Router::new().route(
            "/ready",
            axum::routing::get(move || {
                let shared = shared.clone();
                async move {
                    let (code, body) = shared.lock().expect("lock").clone();
                    (
                        axum::http::StatusCode::from_u16(code).expect("code"),
                        [("content-type", "application/json")],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, answer }
    }

    fn set(&self, code: u16, body: &str) {
        *self.answer.lock().expect("lock") = (code, body.to_string());
    }
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn alerting(receiver: &Receiver) -> Settings {
    let mut s = Settings::from_env(|k| match k {
        "ALERT_WEBHOOK_URL" => Some(format!("http://127.0.0.1:{}/hook", receiver.port)),
        "ALERT_WEBHOOK_SECRET" => Some(SECRET.to_string()),
        _ => None,
    })
    .expect("settings");
    s.rate_limit_enabled = false;
    s
}

fn probe_config(port: u16) -> String {
    format!(
        r#"
[probes.api-ready]
kind = "http"
url = "http://127.0.0.1:{port}/ready"
interval = "10s"
expect = ["status == 200", "json.status == \"ready\"", "json.workerLagMs < 900000", "response_time < 5s"]

[alerts.api-not-ready]
when = "probe.api-ready failing for 3m"
repeat = "1h"
"#
    )
}

/// Moves the clock to `at` and runs one monitor tick; returns the rules firing.
async fn tick_at(app: &App, at: i64) -> Vec<String> {
    app.clock.set(at);
    monitor::tick(&app.state).await.expect("tick").firing
}

fn types(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| {
            assert_eq!(r["verified"], true, "standardwebhooks verifies it: {r}");
            r["payload"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_probe_fires_after_exactly_its_for_repeats_and_resolves_once() {
    let upstream = Upstream::start().await;
    let receiver = Receiver::start(SECRET);
    let app = spawn_with(alerting(&receiver), false, &probe_config(upstream.port)).await;
    let t0 = DAY0;
    assert!(tick_at(&app, t0).await.is_empty(), "passing");

    // The worker lags 20 minutes: the JSON condition fails from the next check on.
    upstream.set(200, r#"{"status":"ready","workerLagMs":1200000}"#);
    let first_failure = t0 + 10_000;
    assert!(tick_at(&app, first_failure).await.is_empty(), "pending");
    let mut at = first_failure;
    while at + 10_000 < first_failure + 180_000 {
        at += 10_000;
        assert!(tick_at(&app, at).await.is_empty(), "still pending at {at}");
    }
    assert!(
        tick_at(&app, first_failure + 179_999).await.is_empty(),
        "one ms short of 3m"
    );
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 0);
    let fired_at = first_failure + 180_000;
    assert_eq!(
        tick_at(&app, fired_at).await,
        ["api-not-ready"],
        "fires at exactly 3m"
    );
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 1);
    let got = receiver.received();
    let data = &got[0]["payload"]["data"];
    assert_eq!(data["rule"], "api-not-ready");
    assert_eq!(data["subject"], "probe.api-ready");
    assert_eq!(data["severity"], "page");
    assert!(
        data["value"]
            .as_str()
            .unwrap_or_default()
            .contains("json.workerLagMs < 900000 failed: got 1200000"),
        "{data}"
    );

    // Still failing: nothing more until `repeat` (1h) has passed, then one repeat.
    for m in 1..60 {
        tick_at(&app, fired_at + m * 60_000).await;
    }
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 0);
    tick_at(&app, fired_at + HOUR).await;
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 1);
    assert_eq!(types(&receiver), ["alert.firing", "alert.firing"]);

    // It recovers: one resolved notice with how long it fired, then silence.
    upstream.set(200, r#"{"status":"ready","workerLagMs":10}"#);
    let resolved_at = fired_at + HOUR + 10_000;
    assert!(tick_at(&app, resolved_at).await.is_empty());
    tick_at(&app, resolved_at + 10_000).await;
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 1);
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 0);
    let got = receiver.received();
    assert_eq!(
        types(&receiver),
        ["alert.firing", "alert.firing", "alert.resolved"]
    );
    assert_eq!(
        got[2]["payload"]["data"]["fired_seconds"],
        (resolved_at - fired_at) / 1000
    );

    // The ops log has each transition; /api/alerts shows it resolved; /metrics has the probe.
    let log = app.state.store.oplog(200).await.expect("oplog");
    let transitions: Vec<&str> = log
        .iter()
        .filter(|e| e.target == "probe.api-ready")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(transitions.len(), 2, "{transitions:?}");
    assert!(transitions.contains(&"alert.firing") && transitions.contains(&"alert.resolved"));
    let alerts: serde_json::Value = app
        .call(Method::GET, "/api/alerts", Some(&app.keys.readonly), None)
        .await
        .json()
        .await
        .expect("json");
    let ours = alerts
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["rule"] == "api-not-ready")
        .expect("listed");
    assert_eq!(ours["state"], "resolved");
    let metrics = app
        .call(Method::GET, "/metrics", Some(&app.keys.readonly), None)
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("runbook_probe_up{name=\"api-ready\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runbook_alerts_firing{rule=\"api-not-ready\"} 0"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_alert_sends_nothing_and_still_resolves() {
    let upstream = Upstream::start().await;
    let receiver = Receiver::start(SECRET);
    let app = spawn_with(alerting(&receiver), false, &probe_config(upstream.port)).await;
    let silence =
        serde_json::json!({"rule": "api-not-ready", "duration": "2h", "comment": "db maintenance"});
    let r = app
        .call(
            Method::POST,
            "/api/silences",
            Some(&app.keys.readonly),
            Some(silence.clone()),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "readonly may not silence"
    );
    let r = app
        .call(
            Method::POST,
            "/api/silences",
            Some(&app.keys.operator),
            Some(silence),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let bad = app
        .call(
            Method::POST,
            "/api/silences",
            Some(&app.keys.operator),
            Some(serde_json::json!({"duration": "soon", "comment": "x"})),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.expect("text").contains("duration"));

    upstream.set(503, r#"{"status":"not ready"}"#);
    tick_at(&app, DAY0).await;
    assert_eq!(tick_at(&app, DAY0 + 180_000).await, ["api-not-ready"]);
    let firing = app
        .state
        .store
        .alert("api-not-ready", "probe.api-ready")
        .await
        .expect("alert");
    assert_eq!(firing.expect("recorded").state, "firing");
    upstream.set(200, r#"{"status":"ready","workerLagMs":1}"#);
    assert!(tick_at(&app, DAY0 + 190_000).await.is_empty());
    let resolved = app
        .state
        .store
        .alert("api-not-ready", "probe.api-ready")
        .await
        .expect("alert");
    assert_eq!(
        resolved.expect("recorded").state,
        "resolved",
        "it still resolves"
    );
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 0);
    assert!(receiver.received().is_empty(), "nothing was sent");

    // After the silence, the same failure notifies.
    upstream.set(503, "{}");
    tick_at(&app, DAY0 + 3 * HOUR).await;
    assert_eq!(
        tick_at(&app, DAY0 + 3 * HOUR + 180_000).await,
        ["api-not-ready"]
    );
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 1);
    assert_eq!(types(&receiver), ["alert.firing"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_go_new_up_late_down_up_and_failed_runs_in_a_row_alert() {
    let receiver = Receiver::start(SECRET);
    let extra = r#"
[heartbeats.nightly]
period = "1h"
grace = "10m"
max_runtime = "5m"
min_runtime = "2s"

[alerts.nightly-down]
when = "heartbeat.nightly down for 1m"

[alerts.nightly-failing]
when = "heartbeat.nightly failed 2 times in a row"
severity = "ticket"
"#;
    let app = spawn_with(alerting(&receiver), false, extra).await;
    let list = |key: String| {
        let app = &app;
        async move {
            let v: serde_json::Value = app
                .call(Method::GET, "/api/heartbeats", Some(&key), None)
                .await
                .json()
                .await
                .expect("json");
            v[0].clone()
        }
    };
    assert!(
        list(app.keys.readonly.clone()).await["ping_path"].is_null(),
        "readonly sees no key"
    );
    let hb = list(app.keys.operator.clone()).await;
    assert_eq!(hb["status"], "new");
    let path = hb["ping_path"]
        .as_str()
        .expect("operator sees the ping path")
        .to_string();
    assert!(path.len() > 30, "an unguessable key: {path}");
    let ping = |suffix: &str| {
        let url = app.url(&format!("{path}{suffix}"));
        async move { reqwest::get(url).await.expect("ping").status() }
    };
    let status = || async {
        list(app.keys.operator.clone()).await["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    assert_eq!(ping("").await, StatusCode::OK, "no API key needed");
    assert_eq!(status().await, "up");
    app.clock.set(DAY0 + HOUR + 1);
    assert_eq!(status().await, "late");
    app.clock.set(DAY0 + HOUR + 10 * 60_000 + 1);
    assert_eq!(status().await, "down");
    assert!(
        tick_at(&app, DAY0 + HOUR + 10 * 60_000 + 1)
            .await
            .is_empty(),
        "down for 1m, not yet"
    );
    assert_eq!(
        tick_at(&app, DAY0 + HOUR + 11 * 60_000).await,
        ["nightly-down"]
    );
    assert_eq!(ping("").await, StatusCode::OK);
    assert_eq!(status().await, "up");
    assert!(
        tick_at(&app, DAY0 + HOUR + 11 * 60_000 + 1)
            .await
            .is_empty(),
        "resolved"
    );

    // A run that finishes in one second (min_runtime 2s) and a reported failure: two failed
    // runs in a row.
    let t = DAY0 + 2 * HOUR;
    app.clock.set(t);
    assert_eq!(ping("/start").await, StatusCode::OK);
    app.clock.set(t + 1000);
    assert_eq!(ping("/0").await, StatusCode::OK);
    assert_eq!(status().await, "down", "too fast counts as failed");
    assert!(
        tick_at(&app, t + 1000).await.is_empty(),
        "down only now: not yet for 1m, and one failed run is not two"
    );
    app.clock.set(t + 60_000);
    assert_eq!(ping("/start").await, StatusCode::OK);
    app.clock.set(t + 60_000 + 6 * 60_000);
    assert_eq!(status().await, "down", "overran max_runtime");
    let firing = tick_at(&app, t + 7 * 60_000).await;
    assert!(
        firing.contains(&"nightly-failing".to_string()),
        "{firing:?}"
    );
    let runs = list(app.keys.operator.clone()).await["runs"].clone();
    assert!(
        runs[0]["note"]
            .as_str()
            .unwrap_or_default()
            .contains("did not finish"),
        "{runs}"
    );
    assert!(
        runs[1]["note"]
            .as_str()
            .unwrap_or_default()
            .contains("min_runtime"),
        "{runs}"
    );
    // An exit code, a bad action, an unknown key.
    app.clock.set(t + 8 * 60_000);
    assert_eq!(ping("/0").await, StatusCode::OK);
    assert_eq!(status().await, "up");
    app.clock.set(t + 9 * 60_000);
    assert_eq!(ping("/3").await, StatusCode::OK);
    assert_eq!(status().await, "down");
    assert_eq!(ping("/nope").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        reqwest::get(app.url("/ping/not-a-key"))
            .await
            .expect("ping")
            .status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// Standard Webhooks headers for `body`, made by the `standardwebhooks` package.
fn signed_by_python(secret: &str, id: &str, ts: i64, body: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, datetime; from standardwebhooks.webhooks import Webhook; \
             print(Webhook(sys.argv[1]).sign(sys.argv[2], datetime.datetime.fromtimestamp(int(sys.argv[3]), datetime.timezone.utc), sys.argv[4]))",
        )
        .args([secret, id, &ts.to_string(), body])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_events_need_a_fresh_unreplayed_signature() {
    let mut settings = no_limit();
    settings.webhook_secret = Some(SECRET.to_string().into());
    let app = spawn(settings, false).await;
    let body = r#"{"type":"deploy","subject":"api","message":"v1.4.2 to production"}"#;
    let now = DAY0 / 1000;
    let send = |id: &str, ts: i64, sig: String, key: String| {
        let req = reqwest::Client::new()
            .post(app.url("/api/events"))
            .header("x-runbook-api-key", key)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body);
        async move { req.send().await.expect("send").status() }
    };
    let op = app.keys.operator.clone();
    let good = signed_by_python(SECRET, "msg_1", now, body);
    assert_eq!(
        send("msg_1", now, good.clone(), app.keys.readonly.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send("msg_1", now, good.clone(), op.clone()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send("msg_1", now, good, op.clone()).await,
        StatusCode::CONFLICT,
        "replayed"
    );
    let stale = now - 6 * 60;
    let old = signed_by_python(SECRET, "msg_2", stale, body);
    assert_eq!(
        send("msg_2", stale, old, op.clone()).await,
        StatusCode::CONFLICT,
        "stale"
    );
    let forged = signed_by_python(
        "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
        "msg_3",
        now,
        body,
    );
    assert_eq!(
        send("msg_3", now, forged, op.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    let unsigned = reqwest::Client::new()
        .post(app.url("/api/events"))
        .header("x-runbook-api-key", &op)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);

    let log = app.state.store.oplog(50).await.expect("oplog");
    let deploys: Vec<_> = log.iter().filter(|e| e.action == "event.deploy").collect();
    assert_eq!(deploys.len(), 1, "recorded once");
    assert_eq!(deploys[0].detail, "v1.4.2 to production");
    let metrics = app
        .call(Method::GET, "/metrics", Some(&app.keys.readonly), None)
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("runbook_webhook_signatures_refused_total 4"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_redis_and_tcp_probes_use_the_real_servers() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let extra = format!(
        r#"
[probes.pg]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/postgres"
[probes.pg-missing]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/runbook_no_such_db"
[probes.maria]
kind = "mariadb"
url = "mysql://root@127.0.0.1:3306/mysql"
[probes.cache]
kind = "redis"
url = "redis://127.0.0.1:6379"
[probes.port]
kind = "tcp"
address = "127.0.0.1:5432"
[probes.closed]
kind = "tcp"
address = "127.0.0.1:{closed}"
timeout = "2s"
"#
    );
    let app = spawn_with(no_limit(), false, &extra).await;
    assert_eq!(monitor::tick(&app.state).await.expect("tick").probes_run, 6);
    let v: serde_json::Value = app
        .call(Method::GET, "/api/probes", Some(&app.keys.readonly), None)
        .await
        .json()
        .await
        .expect("json");
    let status = |name: &str| {
        let p = v
            .as_array()
            .expect("list")
            .iter()
            .find(|p| p["name"] == name)
            .expect(name);
        (
            p["status"].as_str().unwrap_or_default().to_string(),
            p["last"]["error"].clone(),
        )
    };
    for up in ["pg", "maria", "cache", "port"] {
        assert_eq!(status(up).0, "up", "{up}: {:?}", status(up).1);
    }
    let (s, why) = status("pg-missing");
    assert_eq!(s, "down");
    assert!(
        why.as_str()
            .unwrap_or_default()
            .contains("runbook_no_such_db"),
        "{why}"
    );
    assert_eq!(status("closed").0, "down");
    // Not due again until the interval has passed.
    assert_eq!(monitor::tick(&app.state).await.expect("tick").probes_run, 0);
    app.clock.advance(30_000);
    assert_eq!(monitor::tick(&app.state).await.expect("tick").probes_run, 6);
    app.stop().await;
}

/// The seeds' "5xx_rate > 2% for 5m", written against the application's own counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_rate_over_two_percent_for_five_minutes_fires_from_scraped_counters() {
    let app_metrics = Upstream::start().await;
    let extra = format!(
        r#"
[probes.app-5xx]
kind = "prometheus"
url = "http://127.0.0.1:{}/ready"
interval = "1m"
expect = ["increase(http_requests_total{{status=~\"5..\"}}[5m]) / increase(http_requests_total[5m]) < 0.02"]

[alerts.error-rate]
when = "probe.app-5xx failing for 5m"
"#,
        app_metrics.port
    );
    let app = spawn_with(no_limit(), false, &extra).await;
    let (mut ok, mut errors) = (10_000_u64, 10_u64);
    let mut serve = |add_ok: u64, add_err: u64| {
        ok += add_ok;
        errors += add_err;
        app_metrics.set(
            200,
            &format!(
                "# TYPE http_requests_total counter\nhttp_requests_total{{status=\"200\"}} {ok}\nhttp_requests_total{{status=\"503\"}} {errors}\n"
            ),
        );
    };
    const MIN: i64 = 60_000;
    serve(0, 0);
    assert!(tick_at(&app, DAY0).await.is_empty());
    // From now on 5% of the requests fail.
    for m in 1..=5 {
        serve(950, 50);
        assert!(
            tick_at(&app, DAY0 + m * MIN).await.is_empty(),
            "minute {m}: not yet 5m"
        );
    }
    serve(950, 50);
    assert_eq!(
        tick_at(&app, DAY0 + 6 * MIN).await,
        ["error-rate"],
        "failing since minute 1, for 5m"
    );
    let probes: serde_json::Value = app
        .call(Method::GET, "/api/probes", Some(&app.keys.readonly), None)
        .await
        .json()
        .await
        .expect("json");
    let why = probes[0]["last"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("got 0.05"), "{why}");
    // 0.5% errors: once the bad minutes leave the 5-minute window, it resolves.
    let mut m = 7;
    while m < 20 && !tick_at(&app, DAY0 + m * MIN).await.is_empty() {
        serve(995, 5);
        m += 1;
    }
    assert!(
        m <= 13,
        "resolved within the window after recovery (minute {m})"
    );
    app.stop().await;
}

/// Built-in signals need no configuration: two failed jobs in a row, a stale backup; each
/// resolves when its check passes again, and reaches the webhook like any alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_signals_fire_without_configuration_and_resolve() {
    let receiver = Receiver::start(SECRET);
    let app = spawn(alerting(&receiver), false).await;
    let firing = |rule: &'static str| {
        let app = &app;
        async move {
            app.state
                .store
                .alert(rule, "app-db")
                .await
                .expect("alert")
                .is_some_and(|a| a.state == "firing")
        }
    };
    std::fs::rename(app.root.join("app.db"), app.root.join("moved.db")).expect("mv");
    for _ in 0..2 {
        // Jobs a second apart, as they would be: "the last two" is by creation time.
        app.clock.advance(1000);
        assert_eq!(
            backup_job(&app).await.state,
            runbook_store::JobState::Failed
        );
    }
    monitor::tick(&app.state).await.expect("tick");
    assert!(firing("backup.failed").await, "from the worker");
    assert!(firing("jobs.failing").await, "two failed jobs in a row");

    std::fs::rename(app.root.join("moved.db"), app.root.join("app.db")).expect("mv");
    app.clock.advance(1000);
    assert_eq!(
        backup_job(&app).await.state,
        runbook_store::JobState::Succeeded
    );
    app.clock.advance(61_000);
    monitor::tick(&app.state).await.expect("tick");
    assert!(
        !firing("backup.failed").await && !firing("jobs.failing").await,
        "resolved"
    );
    assert!(!firing("backup.stale").await);

    // Three days without a backup of a daily target (the snapshot carries the wall-clock
    // time, so the days count from now).
    app.clock.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64
            + 3 * 86_400_000,
    );
    app.state.forget_cached_snapshots();
    monitor::tick(&app.state).await.expect("tick");
    assert!(
        firing("backup.stale").await,
        "stale after missing its schedule"
    );
    assert!(notify::deliver_due(&app.state).await.expect("deliver") >= 3);
    let rules: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            r["payload"]["data"]["rule"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for rule in ["backup.failed", "jobs.failing", "backup.stale"] {
        assert!(rules.iter().any(|r| r == rule), "{rule} in {rules:?}");
    }
    app.stop().await;
}

/// Regression: a snapshot dated ahead (a clock that was ahead, then set right) showed its
/// target backed up until that date, so backups that stopped never went stale. Now the backup
/// checks go by the other snapshots, and a warning names the ones ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_dated_ahead_does_not_hide_a_stale_backup() {
    let receiver = Receiver::start(SECRET);
    let app = spawn(alerting(&receiver), false).await;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_millis() as i64;
    let ahead = jiff::Timestamp::from_millisecond(wall + 300 * 86_400_000).expect("time");
    let engine = app.state.engine.clone();
    tokio::task::spawn_blocking(move || {
        // One backup now, by the wall clock, and one made while the clock was 300 days ahead.
        engine.backup("app-db", &runbook_backup::BackupRequest::default())?;
        engine.backup(
            "app-db",
            &runbook_backup::BackupRequest {
                reason: "test".into(),
                time: Some(ahead),
                keep_forever: false,
            },
        )
    })
    .await
    .expect("join")
    .expect("backups");
    let summary = || async { status::summary(&app.state).await.expect("summary").checks };

    // Three days on, nothing backed up since: stale, however far ahead the other one is dated.
    app.clock.set(wall + 3 * 86_400_000);
    app.state.forget_cached_snapshots();
    monitor::tick(&app.state).await.expect("tick");
    let stale = app
        .state
        .store
        .alert("backup.stale", "app-db")
        .await
        .expect("alert")
        .is_some_and(|a| a.state == "firing");
    assert!(stale, "{:?}", summary().await);
    let checks = summary().await;
    let warned = checks
        .iter()
        .find(|c| c.name == "backup:app-db:dated-ahead")
        .expect("a check names the snapshot ahead");
    assert_eq!(warned.status, "warn");
    assert!(
        warned.message.contains("1 snapshot(s) dated after now"),
        "{}",
        warned.message
    );
    app.stop().await;
}

/// A dump that a MariaDB restore saved and did not remove may be a database's only copy: the
/// check `restore:TARGET` names it as critical and `restore.interrupted` fires until the file
/// is gone. While the restore that saved it runs (it holds the file's lock), it is a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_a_restore_left_in_saved_fires_restore_interrupted_until_it_is_removed() {
    let receiver = Receiver::start(SECRET);
    let app = spawn(alerting(&receiver), false).await;
    let firing = || async {
        app.state
            .store
            .alert("restore.interrupted", "app-db")
            .await
            .expect("alert")
            .is_some_and(|a| a.state == "firing")
    };
    let dir = app.state.engine.config().saved_dir().join("app-db");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("shop-before-restore-20261129T101500Z-4242.sql");
    std::fs::write(&file, "CREATE TABLE t (x INT);\n").expect("write");
    let check = || async {
        status::summary(&app.state)
            .await
            .expect("summary")
            .checks
            .into_iter()
            .find(|c| c.name == "restore:app-db")
    };

    // Locked, as the restore that saved it holds it while it runs: that restore's, no alarm.
    let held = std::fs::File::open(&file).expect("open");
    held.lock().expect("lock");
    monitor::tick(&app.state).await.expect("tick");
    assert!(!firing().await, "a running restore's dump fires nothing");
    let running = check().await.expect("the check");
    assert_eq!(running.status, "warn");
    assert!(
        running.message.contains("is replacing it"),
        "{}",
        running.message
    );

    // The restore died and the kernel dropped its lock: the file may be the only copy.
    drop(held);
    app.clock.advance(61_000);
    monitor::tick(&app.state).await.expect("tick");
    assert!(firing().await, "fires while the file is there");
    let left = check().await.expect("the check");
    assert_eq!(left.status, "critical");
    assert!(
        left.message.contains(&*file.to_string_lossy())
            && left.message.contains("mariadb shop < FILE"),
        "{}",
        left.message
    );

    std::fs::remove_file(&file).expect("rm");
    app.clock.advance(61_000);
    monitor::tick(&app.state).await.expect("tick");
    assert!(!firing().await, "resolved once the file is removed");
    assert!(check().await.is_none());
    app.stop().await;
}

/// Routing: a `[notifiers.NAME]` that takes only `page` gets the page and not the ticket; the
/// default webhook gets both; a rule's `notify` picks its notifiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_routed_by_severity_and_by_rule() {
    let upstream = Upstream::start().await;
    let default = Receiver::start(SECRET);
    let oncall = Receiver::start("-");
    let extra = format!(
        r#"
[probes.api]
kind = "http"
url = "http://127.0.0.1:{}/ready"
[notifiers.oncall]
kind = "webhook"
url = "http://127.0.0.1:{}/hook"
severities = ["page"]
[alerts.down]
when = "probe.api failing"
[alerts.slow]
when = "probe.api failing"
severity = "ticket"
[alerts.only-oncall]
when = "probe.api failing"
severity = "ticket"
notify = ["oncall"]
"#,
        upstream.port, oncall.port
    );
    let app = spawn_with(alerting(&default), false, &extra).await;
    upstream.set(500, "{}");
    let mut firing = tick_at(&app, DAY0).await;
    firing.sort();
    assert_eq!(firing, ["down", "only-oncall", "slow"]);
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 4);
    let rules = |r: &Receiver| {
        let mut v: Vec<String> = r
            .received()
            .iter()
            .map(|x| {
                x["payload"]["data"]["rule"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(rules(&default), ["down", "slow"]);
    assert_eq!(rules(&oncall), ["down", "only-oncall"]);
    app.stop().await;
}

/// Secrets with ages: due 14 days before `max_age`, overdue after; a watched file whose
/// content changes counts as rotated; `mark_rotated` records one by hand. Never a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_due_raise_signals_and_a_rotation_clears_them() {
    let extra = r#"
[secrets.session-secret]
max_age = "90d"
file = "session.key"
notes = "openssl rand -hex 32 > session.key, then restart"
[secrets.r2-keys]
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("session.key"), "s3cr3t-value-1").expect("write");
    let app = spawn_in(dir, no_limit(), false, extra).await;
    const DAY: i64 = 86_400_000;
    let firing = |rule: &'static str, subject: &'static str| {
        let app = &app;
        async move {
            app.state
                .store
                .alert(rule, subject)
                .await
                .expect("alert")
                .is_some_and(|a| a.state == "firing")
        }
    };
    monitor::tick(&app.state).await.expect("tick");
    assert!(!firing("secret.due", "r2-keys").await);
    tick_at(&app, DAY0 + 77 * DAY).await;
    assert!(
        firing("secret.due", "r2-keys").await,
        "due 14 days before 90"
    );
    tick_at(&app, DAY0 + 91 * DAY).await;
    assert!(firing("secret.overdue", "r2-keys").await);
    assert!(firing("secret.overdue", "session-secret").await);
    let health = app
        .call(Method::GET, "/api/health", Some(&app.keys.readonly), None)
        .await
        .text()
        .await
        .expect("text");
    assert!(
        health.contains("session-secret is overdue") && health.contains("openssl rand"),
        "{health}"
    );

    // The watched file changes: rotated, the alert resolves; the other stays.
    std::fs::write(app.root.join("session.key"), "s3cr3t-value-2").expect("write");
    tick_at(&app, DAY0 + 92 * DAY).await;
    assert!(
        !firing("secret.overdue", "session-secret").await,
        "a changed file is a rotation"
    );
    assert!(firing("secret.overdue", "r2-keys").await);
    runbook_server::secrets::mark_rotated(&app.state, "r2-keys", "test")
        .await
        .expect("rotated");
    tick_at(&app, DAY0 + 93 * DAY).await;
    assert!(
        !firing("secret.overdue", "r2-keys").await,
        "recorded by hand"
    );
    assert!(
        runbook_server::secrets::mark_rotated(&app.state, "nope", "test")
            .await
            .is_err()
    );

    let r = app
        .call(Method::GET, "/api/secrets", Some(&app.keys.readonly), None)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "owner only");
    let body = app
        .call(Method::GET, "/api/secrets", Some(&app.keys.owner), None)
        .await
        .text()
        .await
        .expect("text");
    assert!(
        body.contains("\"status\":\"ok\"") && !body.contains("s3cr3t"),
        "{body}"
    );
    let log = app.state.store.oplog(100).await.expect("oplog");
    assert!(
        log.iter()
            .any(|e| e.action == "secret.rotated" && e.actor == "watch")
    );
    app.stop().await;
}
