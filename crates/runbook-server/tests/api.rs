//! The real server on a random port, with a real SQLite state store, a real repository and a
//! hand-driven clock.

mod common;

use std::{path::Path, time::Duration};

use common::*;

use reqwest::{Client, Method, StatusCode};
use runbook_config::Config;
use runbook_server::{Settings, notify, scheduler, worker};
use runbook_store::{JobState, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_by_role() {
    let app = spawn(no_limit(), false).await;
    let run = serde_json::json!({"target": "app-db", "reason": "t"});
    let restore = serde_json::json!({"target": "app-db", "to": "r.db"});
    // (method, path, body, minimum role: 0 none, 1 readonly, 2 operator, 3 owner)
    let cases: Vec<(Method, &str, Option<serde_json::Value>, u8, StatusCode)> = vec![
        (Method::GET, "/healthz", None, 0, StatusCode::OK),
        (Method::GET, "/health/live", None, 0, StatusCode::OK),
        (Method::GET, "/readyz", None, 0, StatusCode::OK),
        (Method::GET, "/health/ready", None, 0, StatusCode::OK),
        (Method::GET, "/api/health", None, 1, StatusCode::OK),
        (Method::GET, "/api/targets", None, 1, StatusCode::OK),
        (Method::GET, "/api/backups", None, 1, StatusCode::OK),
        (
            Method::GET,
            "/api/backups?target=app-db",
            None,
            1,
            StatusCode::OK,
        ),
        (Method::GET, "/api/jobs", None, 1, StatusCode::OK),
        (Method::GET, "/api/drills", None, 1, StatusCode::OK),
        (Method::GET, "/api/oplog", None, 1, StatusCode::OK),
        (Method::GET, "/metrics", None, 1, StatusCode::OK),
        (Method::GET, "/api/openapi.json", None, 1, StatusCode::OK),
        (Method::GET, "/api/probes", None, 1, StatusCode::OK),
        (Method::GET, "/api/heartbeats", None, 1, StatusCode::OK),
        (Method::GET, "/api/alerts", None, 1, StatusCode::OK),
        (Method::GET, "/api/silences", None, 1, StatusCode::OK),
        (
            Method::POST,
            "/api/silences",
            Some(serde_json::json!({"duration": "1h", "comment": "deploy"})),
            2,
            StatusCode::CREATED,
        ),
        (
            Method::POST,
            "/api/events",
            Some(serde_json::json!({"type": "deploy", "message": "v2"})),
            2,
            StatusCode::ACCEPTED,
        ),
        (
            Method::POST,
            "/api/backups/run",
            Some(run),
            2,
            StatusCode::ACCEPTED,
        ),
        (
            Method::POST,
            "/api/drills/run",
            Some(serde_json::json!({"target": "app-db"})),
            2,
            StatusCode::ACCEPTED,
        ),
        (
            Method::POST,
            "/api/backups/restore",
            Some(restore),
            3,
            StatusCode::ACCEPTED,
        ),
    ];
    let keys = [
        (0u8, None),
        (1, Some(app.keys.readonly.clone())),
        (2, Some(app.keys.operator.clone())),
        (3, Some(app.keys.owner.clone())),
    ];
    for (method, path, body, min, ok) in &cases {
        for (level, key) in &keys {
            // A restore is refused while a backup is queued: finish queued work first.
            while let worker::Outcome::Ran(_) =
                worker::try_execute_next(&app.state).await.expect("step")
            {}
            let resp = app
                .call(method.clone(), path, key.as_deref(), body.clone())
                .await;
            let expected = if level >= min {
                *ok
            } else if *level == 0 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(
                resp.status(),
                expected,
                "{method} {path} with role level {level}"
            );
            assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
            assert!(resp.headers().contains_key("x-request-id"));
        }
    }
    let bad = app
        .call(Method::GET, "/api/targets", Some("rbk_not_a_key"), None)
        .await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let bearer = Client::new()
        .get(app.url("/api/targets"))
        .bearer_auth(&app.keys.readonly)
        .header("x-request-id", "req-42")
        .send()
        .await
        .expect("req");
    assert_eq!(bearer.status(), StatusCode::OK);
    assert_eq!(
        bearer.headers()["x-request-id"],
        "req-42",
        "request id echoed"
    );
    let unknown = app
        .call(
            Method::POST,
            "/api/backups/run",
            Some(&app.keys.owner),
            Some(serde_json::json!({"target": "nope"})),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let malformed = app
        .call(
            Method::POST,
            "/api/backups/run",
            Some(&app.keys.owner),
            Some(serde_json::json!({"tgt": 1})),
        )
        .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let settings = Settings {
        rate_limit_max: 3,
        rate_limit_window: Duration::from_secs(60),
        ..Settings::default()
    };
    let app = spawn(settings, false).await;
    let key = app.keys.readonly.clone();
    let doc = "/api/openapi.json";
    for _ in 0..3 {
        assert_eq!(
            app.call(Method::GET, doc, Some(&key), None).await.status(),
            StatusCode::OK
        );
    }
    let limited = app.call(Method::GET, doc, Some(&key), None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&retry), "{retry}");
    // Regression: a load balancer's health probes got 429. They are never limited.
    for path in ["/healthz", "/health/live", "/readyz", "/health/ready"] {
        for _ in 0..5 {
            assert_eq!(
                app.call(Method::GET, path, None, None).await.status(),
                StatusCode::OK,
                "{path}"
            );
        }
    }
    app.clock.advance(61_000);
    assert_eq!(
        app.call(Method::GET, doc, Some(&key), None).await.status(),
        StatusCode::OK,
        "next window"
    );
    let metrics = app
        .call(Method::GET, "/metrics", Some(&app.keys.readonly), None)
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("runbook_http_rate_limited_total 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_only_for_allowed_origins() {
    let settings = Settings {
        cors_origins: vec!["https://ops.example.com".into()],
        rate_limit_enabled: false,
        ..Settings::default()
    };
    let app = spawn(settings, false).await;
    let get = |origin: &'static str| {
        Client::new()
            .get(app.url("/healthz"))
            .header("origin", origin)
            .send()
    };
    let ok = get("https://ops.example.com").await.expect("req");
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://ops.example.com"
    );
    let other = get("https://evil.example.com").await.expect("req");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_runs_at_its_hour_and_a_missed_slot_runs_once() {
    let settings = Settings {
        verify_days: 0,
        ..no_limit()
    };
    let app = spawn(settings, false).await;
    // Midnight: first sight of the target, nothing due.
    assert!(scheduler::tick(&app.state).await.expect("tick").is_empty());
    app.clock.set(DAY0 + 2 * HOUR);
    assert!(
        scheduler::tick(&app.state).await.expect("tick").is_empty(),
        "02:00 is before the slot"
    );
    app.clock.set(DAY0 + 3 * HOUR + 1000);
    assert_eq!(
        scheduler::tick(&app.state).await.expect("tick"),
        vec!["app-db".to_string()]
    );
    assert!(
        scheduler::tick(&app.state).await.expect("tick").is_empty(),
        "not twice for one slot"
    );
    let worker::Outcome::Ran(job) = worker::try_execute_next(&app.state).await.expect("step")
    else {
        panic!("a job was queued");
    };
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(
        job.result.as_ref().expect("result")["snapshot"]["reason"],
        "schedule"
    );
    // Down for three days: one catch-up run, not three.
    app.clock.set(DAY0 + 3 * 24 * HOUR + 12 * HOUR);
    assert_eq!(scheduler::tick(&app.state).await.expect("tick").len(), 1);
    assert!(scheduler::tick(&app.state).await.expect("tick").is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_restore_leaves_a_pre_restore_snapshot_that_undoes_it() {
    let app = spawn(no_limit(), true).await;
    let owner = app.keys.owner.clone();
    let db = app.root.join("app.db");
    // Backup with 10 rows, then the data changes to 25 rows.
    let resp = app
        .call(
            Method::POST,
            "/api/backups/run",
            Some(&owner),
            Some(serde_json::json!({"target": "app-db"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let id = resp.json::<serde_json::Value>().await.expect("json")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let backup = app.wait_job(&id).await;
    let first = backup.result.expect("result")["snapshot"]["id"]
        .as_str()
        .expect("sid")
        .to_string();
    make_db(&db, 25);

    // Restore the 10-row snapshot over the live file.
    let resp = app
        .call(
            Method::POST,
            "/api/backups/restore",
            Some(&owner),
            Some(serde_json::json!({"target": "app-db", "snapshot": first})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let id = resp.json::<serde_json::Value>().await.expect("json")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let job = app.wait_job(&id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(count(&db), 10);
    let pre = job.result.expect("result")["pre_restore_snapshot"]["id"]
        .as_str()
        .expect("pre")
        .to_string();

    // The pre-restore snapshot brings the 25 rows back.
    let resp = app
        .call(
            Method::POST,
            "/api/backups/restore",
            Some(&owner),
            Some(serde_json::json!({"target": "app-db", "snapshot": pre, "to": "undo.db"})),
        )
        .await;
    let id = resp.json::<serde_json::Value>().await.expect("json")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(app.wait_job(&id).await.state, JobState::Succeeded);
    assert_eq!(count(&app.root.join("runbook-data/restores/undo.db")), 25);

    let oplog = app.state.store.verify_oplog().await.expect("verify");
    assert!(
        oplog.expect("intact") >= 6,
        "requests and job outcomes are in the ops log"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_running_when_the_process_died_is_interrupted_and_retried() {
    let app = spawn(no_limit(), false).await;
    let store = app.state.store.clone();
    let job = store
        .enqueue(
            runbook_store::NewJob {
                kind: runbook_store::JobKind::Backup,
                target: "app-db".into(),
                params: serde_json::json!({"reason": "t"}),
                requested_by: "test".into(),
            },
            DAY0,
        )
        .await
        .expect("enqueue");
    // The process claims it and dies: the row stays `running`.
    store.claim_next(DAY0).await.expect("claim").expect("job");
    let (dir, root) = app.stop().await;
    // Restart: the background loop marks it interrupted, retries it once, and it succeeds.
    let app = start(dir, root, no_limit(), true).await;
    let done = app.wait_job(&job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempts, 2);
    let log = app.state.store.oplog(50).await.expect("oplog");
    assert!(
        log.iter()
            .any(|e| e.action == "job.retry" && e.outcome == "interrupted")
    );
    app.stop().await;
}

#[test]
fn settings_follow_the_seed_variables() {
    let env = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    let s = Settings::from_env(env(&[
        ("PORT", "9100"),
        (
            "SECURITY_OWNER_KEYS",
            &format!("{}, {}", "a".repeat(32), "b".repeat(40)),
        ),
        ("SECURITY_RATE_LIMIT_WINDOW", "15m"),
    ]))
    .expect("ok");
    assert_eq!(s.listen.port(), 9100);
    assert_eq!(s.owner_keys, vec!["a".repeat(32), "b".repeat(40)]);
    // Regression: a 3-character bootstrap owner key was accepted.
    let e = Settings::from_env(env(&[("SECURITY_OWNER_KEYS", "abc")])).expect_err("short");
    assert!(
        e.contains("entry 1 has 3 characters") && e.contains("32"),
        "{e}"
    );
    assert!(!e.contains("abc"), "the key itself is never echoed: {e}");
    // Regression: `RUNBOOK_LISTEN=0.0.0.0` was refused; an address alone keeps PORT.
    let s = Settings::from_env(env(&[("PORT", "9100"), ("RUNBOOK_LISTEN", "0.0.0.0")]))
        .expect("address alone");
    assert_eq!(s.listen.to_string(), "0.0.0.0:9100");
    let s = Settings::from_env(env(&[("RUNBOOK_LISTEN", "::1")])).expect("v6");
    assert_eq!(s.listen.to_string(), "[::1]:9000");
    let s = Settings::from_env(env(&[("RUNBOOK_LISTEN", "127.0.0.2:7000")])).expect("both");
    assert_eq!(s.listen.to_string(), "127.0.0.2:7000");
    assert_eq!(s.rate_limit_max, 500);
    assert_eq!(s.rate_limit_window, Duration::from_secs(900));
    assert!(s.auth_enabled);
    let e = Settings::from_env(env(&[
        ("SECURITY_AUTH_ENABLED", "0"),
        ("RUNBOOK_LISTEN", "0.0.0.0:9000"),
    ]))
    .expect_err("refused");
    assert!(e.contains("loopback"), "{e}");
    let e = Settings::from_env(env(&[("SECURITY_RATE_LIMIT_MAX", "lots")])).expect_err("bad");
    assert!(e.contains("SECURITY_RATE_LIMIT_MAX"), "{e}");
    let e = Settings::from_env(env(&[("RUNBOOK_REDIS_URL", "http://cache:6379")]))
        .expect_err("not redis");
    assert!(
        e.contains("RUNBOOK_REDIS_URL") && e.contains("redis://"),
        "{e}"
    );
    let s = Settings::from_env(env(&[("RUNBOOK_REDIS_URL", "redis://:pw@cache:6379/2")]))
        .expect("redis");
    assert!(s.redis_url.is_some());
    assert_eq!(s.redis_prefix, "runbook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_trusted_only_from_trusted_proxies() {
    for (trusted, second_status) in [
        (true, StatusCode::OK),
        (false, StatusCode::TOO_MANY_REQUESTS),
    ] {
        let settings = Settings {
            rate_limit_max: 1,
            trusted_proxies: if trusted {
                vec!["127.0.0.1".parse().expect("ip")]
            } else {
                Vec::new()
            },
            ..Settings::default()
        };
        let app = spawn(settings, false).await;
        let from = |xff: String| {
            Client::new()
                .get(app.url("/api/openapi.json"))
                .header("x-runbook-api-key", app.keys.readonly.clone())
                .header("x-forwarded-for", xff)
                .send()
        };
        assert_eq!(
            from("10.0.0.1".into()).await.expect("req").status(),
            StatusCode::OK
        );
        assert_eq!(
            from("10.0.0.2".into()).await.expect("req").status(),
            second_status,
            "trusted proxy: {trusted}"
        );
        app.stop().await;
    }
}

/// Regression: behind a trusted proxy the leftmost `X-Forwarded-For` entry was believed, so
/// a client that rotated it was never limited. The proxy appends the address it saw; that
/// rightmost untrusted entry is the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_forwarded_for_behind_a_trusted_proxy_is_still_limited() {
    let settings = Settings {
        rate_limit_max: 3,
        trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        ..Settings::default()
    };
    let app = spawn(settings, false).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let resp = Client::new()
            .get(app.url("/api/openapi.json"))
            .header("x-runbook-api-key", app.keys.readonly.clone())
            .header("x-forwarded-for", format!("198.51.100.{i}, 203.0.113.9"))
            .send()
            .await
            .expect("req");
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_critical_on_a_failed_backup_and_without_an_owner_key() {
    let app = spawn(no_limit(), false).await;
    let health = |app: &App| {
        let key = app.keys.readonly.clone();
        let url = app.url("/api/health");
        async move {
            let v: serde_json::Value = Client::new()
                .get(url)
                .header("x-runbook-api-key", key)
                .send()
                .await
                .expect("req")
                .json()
                .await
                .expect("json");
            v
        }
    };
    let v = health(&app).await;
    assert_eq!(v["status"], "warn", "no backup yet: {v}");

    std::fs::remove_file(app.root.join("app.db")).expect("rm");
    let job = backup_job(&app).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error
            .as_deref()
            .unwrap_or("")
            .contains("cannot read source"),
        "{:?}",
        job.error
    );
    let v = health(&app).await;
    assert_eq!(v["status"], "critical", "{v}");
    assert!(
        v["checks"].to_string().contains("last backup failed"),
        "{v}"
    );

    // Revoke every owner key: auth on without an owner is critical too.
    for k in app.state.store.keys().await.expect("keys") {
        if k.role == Role::Owner {
            app.state
                .store
                .revoke_key(&k.id, DAY0)
                .await
                .expect("revoke");
        }
    }
    let v = health(&app).await;
    assert!(v["checks"].to_string().contains("no owner key"), "{v}");
    app.stop().await;
}

#[test]
fn seed_backup_variables_apply_to_targets_without_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("runbook.toml");
    std::fs::write(
        &file,
        "[targets.a]\nkind = \"sqlite\"\npath = \"a.db\"\n[targets.b]\nkind = \"sqlite\"\npath = \"b.db\"\nschedule = \"0 1 * * *\"\nkeep = { last = 3 }\n",
    )
    .expect("write");
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        }
    };
    let mut c = Config::load(&file).expect("config");
    scheduler::apply_seed_env(
        &mut c,
        env(&[
            ("BACKUP_DAILY_ENABLED", "1"),
            ("BACKUP_DAILY_HOUR_UTC", "4"),
            ("BACKUP_RETENTION_DAYS", "14"),
        ]),
    )
    .expect("ok");
    assert_eq!(
        c.targets["a"]
            .schedule
            .as_ref()
            .map(|s| s.cron().pattern.to_string()),
        Some("0 4 * * *".into())
    );
    assert_eq!(
        c.targets["a"].keep.within,
        Some(Duration::from_secs(14 * 86_400))
    );
    assert_eq!(
        c.targets["b"]
            .schedule
            .as_ref()
            .map(|s| s.as_str().to_string()),
        Some("0 1 * * *".into()),
        "own schedule kept"
    );
    assert_eq!(c.targets["b"].keep.last, Some(3));
    assert_eq!(c.targets["b"].keep.within, None, "own keep kept");

    let mut c = Config::load(&file).expect("config");
    scheduler::apply_seed_env(&mut c, env(&[("BACKUP_ENABLED", "0")])).expect("ok");
    assert!(c.targets.values().all(|t| t.schedule.is_none()));
    let mut c = Config::load(&file).expect("config");
    let e = scheduler::apply_seed_env(&mut c, env(&[("BACKUP_DAILY_HOUR_UTC", "25")]))
        .expect_err("bad hour");
    assert!(e.contains("BACKUP_DAILY_HOUR_UTC"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_run_through_the_api_and_show_in_health_metrics_and_schedule() {
    // Mondays at 05:00; DAY0 is a Wednesday.
    let app = spawn_with(
        no_limit(),
        false,
        "[targets.app-db.drill]\nschedule = \"0 5 * * 1\"\n[[targets.app-db.drill.checks]]\nsql = \"select count(*) = 10 from items\"\n",
    )
    .await;
    let get = |path: &'static str| {
        let key = app.keys.readonly.clone();
        let url = app.url(path);
        async move {
            Client::new()
                .get(url)
                .header("x-runbook-api-key", key)
                .send()
                .await
                .expect("req")
                .text()
                .await
                .expect("body")
        }
    };
    let step = || async {
        match worker::try_execute_next(&app.state).await.expect("step") {
            worker::Outcome::Ran(job) => *job,
            worker::Outcome::Idle => panic!("a job was queued"),
        }
    };
    assert!(scheduler::tick(&app.state).await.expect("tick").is_empty());
    let health: serde_json::Value = serde_json::from_str(&get("/api/health").await).expect("json");
    assert!(
        health["checks"]
            .to_string()
            .contains("no passed restore drill yet"),
        "{health}"
    );

    assert_eq!(backup_job(&app).await.state, JobState::Succeeded);
    let body = serde_json::json!({"target": "app-db"});
    let denied = app
        .call(
            Method::POST,
            "/api/drills/run",
            Some(&app.keys.readonly),
            Some(body.clone()),
        )
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let unknown = app
        .call(
            Method::POST,
            "/api/drills/run",
            Some(&app.keys.operator),
            Some(serde_json::json!({"target": "nope"})),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let accepted = app
        .call(
            Method::POST,
            "/api/drills/run",
            Some(&app.keys.operator),
            Some(body),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let job = step().await;
    assert_eq!(job.kind, "drill");
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let result = job.result.expect("result");
    assert_eq!(result["drill"]["outcome"], "passed");

    let targets: serde_json::Value =
        serde_json::from_str(&get("/api/targets").await).expect("json");
    assert_eq!(targets[0]["drill"]["last_outcome"], "passed", "{targets}");
    assert_eq!(targets[0]["drill"]["schedule"], "0 5 * * 1");
    let drills: serde_json::Value =
        serde_json::from_str(&get("/api/drills?target=app-db").await).expect("json");
    assert_eq!(drills.as_array().map(Vec::len), Some(1), "{drills}");
    assert_eq!(drills[0]["outcome"], "passed");
    assert!(drills[0]["restore_ms"].as_i64().is_some(), "{drills}");
    assert!(
        drills[0]["report"]["checks"]
            .to_string()
            .contains("select count(*) = 10 from items")
    );
    let health: serde_json::Value = serde_json::from_str(&get("/api/health").await).expect("json");
    assert!(
        health["checks"].to_string().contains("drilled on schedule"),
        "{health}"
    );
    let metrics = get("/metrics").await;
    for line in [
        "runbook_drill_last_success_timestamp_seconds{target=\"app-db\"} 17955648",
        "runbook_drill_restore_seconds{target=\"app-db\"} ",
        "runbook_drill_data_age_seconds{target=\"app-db\"} ",
        "runbook_drill_failures_total{target=\"app-db\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let oplog = app.state.store.oplog(50).await.expect("oplog");
    assert!(
        oplog
            .iter()
            .any(|e| e.action == "drill.run" && e.outcome == "passed")
    );

    // An hour later, a drill that fails: the job fails with the drill's summary; health is
    // critical.
    app.clock.set(DAY0 + HOUR);
    let bad = serde_json::json!({"target": "app-db", "snapshot": "deadbeef"});
    app.call(
        Method::POST,
        "/api/drills/run",
        Some(&app.keys.operator),
        Some(bad),
    )
    .await;
    let job = step().await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error
            .as_deref()
            .is_some_and(|e| e.contains("failed snapshot")),
        "{:?}",
        job.error
    );
    let health: serde_json::Value = serde_json::from_str(&get("/api/health").await).expect("json");
    assert_eq!(health["status"], "critical", "{health}");
    assert!(
        health["checks"]
            .to_string()
            .contains("last restore drill failed"),
        "{health}"
    );
    assert!(
        get("/metrics")
            .await
            .contains("runbook_drill_failures_total{target=\"app-db\"} 1")
    );

    // Thirteen days on (two Monday slots missed): the drill is overdue and the scheduler
    // queues one.
    app.clock.set(DAY0 + 13 * 24 * HOUR);
    let queued = scheduler::tick(&app.state).await.expect("tick");
    assert!(queued.contains(&"app-db:drill".to_string()), "{queued:?}");
    let health: serde_json::Value = serde_json::from_str(&get("/api/health").await).expect("json");
    assert!(
        health["checks"]
            .to_string()
            .contains("restore drill overdue"),
        "{health}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_removes_scratch_of_a_killed_drill_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    make_db(&root.join("app.db"), 3);
    std::fs::write(
        root.join("runbook.toml"),
        "[targets.app-db]\nkind = \"sqlite\"\npath = \"app.db\"\n",
    )
    .expect("config");
    std::fs::create_dir_all(root.join("runbook-data")).expect("data");
    std::fs::write(root.join("runbook-data/repo.key"), "pw\n").expect("key");
    // What a drill killed with -9 leaves: its scratch directory, named with a dead pid.
    let stale = root.join("runbook-data/scratch/drills/app-db.4242424");
    std::fs::create_dir_all(&stale).expect("stale");
    std::fs::write(stale.join("app.db"), "half a restore").expect("write");
    let app = start(dir, root, no_limit(), true).await;
    let mut logged = false;
    for _ in 0..200 {
        let log = app.state.store.oplog(20).await.expect("oplog");
        if log
            .iter()
            .any(|e| e.action == "drill.cleanup" && e.detail.contains("app-db.4242424"))
        {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged, "the cleanup is in the ops log");
    assert!(!stale.exists());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_pass_through_the_api_for_every_kind() {
    let pid = std::process::id();
    let db = format!("rbt_apidrill_{pid}");
    runbook_testkit::psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    runbook_testkit::psql("postgres", &format!("CREATE DATABASE {db}"));
    runbook_testkit::psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    runbook_testkit::mariadb(
        "",
        &format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT); INSERT INTO {db}.t VALUES (1)"
        ),
    );
    let extra = format!(
        "[targets.pg]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{db}\"\n\
         [targets.my]\nkind = \"mariadb\"\nurl = \"mysql://root@127.0.0.1:3306/{db}\"\n\
         [targets.files]\nkind = \"files\"\npaths = [\"app.db\"]\n"
    );
    let app = spawn_with(no_limit(), false, &extra).await;
    for target in ["app-db", "pg", "my", "files"] {
        let body = serde_json::json!({ "target": target, "backup_first": true });
        let resp = app
            .call(
                Method::POST,
                "/api/drills/run",
                Some(&app.keys.operator),
                Some(body),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let worker::Outcome::Ran(job) = worker::try_execute_next(&app.state).await.expect("step")
        else {
            panic!("queued");
        };
        assert_eq!(job.state, JobState::Succeeded, "{target}: {:?}", job.error);
        let drill = &job.result.as_ref().expect("result")["drill"];
        assert_eq!(drill["snapshot"]["reason"], "restore-drill", "{target}");
    }
    let drills: serde_json::Value = app
        .call(Method::GET, "/api/drills", Some(&app.keys.readonly), None)
        .await
        .json()
        .await
        .expect("json");
    let passed: Vec<&str> = drills
        .as_array()
        .expect("array")
        .iter()
        .filter(|d| d["outcome"] == "passed")
        .filter_map(|d| d["report"]["kind"].as_str())
        .collect();
    for kind in ["sqlite", "postgres", "mariadb", "files"] {
        assert!(passed.contains(&kind), "{kind}: {passed:?}");
    }
    app.stop().await;
    runbook_testkit::psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    runbook_testkit::mariadb("", &format!("DROP DATABASE IF EXISTS {db}"));
}

/// Regression: an owner's `"to": "runbook-data/repo.key", "force": true` replaced the
/// repository password with a SQLite file. API restores now go only below the restore roots;
/// `..`, absolute paths elsewhere, symlinks and runbook's own files are refused with 400 and
/// nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_restore_destinations_are_confined_to_the_restore_roots() {
    let files = "[targets.docs]\nkind = \"files\"\npaths = [\"app.db\"]\n";
    let app = spawn_with(no_limit(), false, files).await;
    let owner = app.keys.owner.clone();
    assert_eq!(app.run_backup(&owner).await.status(), StatusCode::ACCEPTED);
    worker::try_execute_next(&app.state).await.expect("backup");
    let key_before = std::fs::read(app.root.join("runbook-data/repo.key")).expect("key");
    let roots = app.root.join("runbook-data/restores");
    std::fs::create_dir_all(&roots).expect("roots");
    let outside = tempfile::tempdir().expect("outside");
    std::os::unix::fs::symlink(outside.path(), roots.join("link")).expect("symlink");
    let repo_key = app.root.join("runbook-data/repo.key");
    let outside_file = outside.path().join("x.db");
    let via_link = roots.join("link/x.db");
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!("../repo.key"), ".."),
        (serde_json::json!("../../app.db"), ".."),
        (serde_json::json!(repo_key), "restore roots"),
        (serde_json::json!(outside_file), "restore roots"),
        (serde_json::json!("/etc/passwd"), "restore roots"),
        (serde_json::json!("link/x.db"), "symbolic link"),
        (serde_json::json!(via_link), "symbolic link"),
        (serde_json::json!(""), "empty"),
        (serde_json::json!(roots), "restore root itself"),
    ];
    for (to, why) in cases {
        let resp = app
            .call(
                Method::POST,
                "/api/backups/restore",
                Some(&owner),
                Some(serde_json::json!({"target": "app-db", "to": to, "force": true})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "to = {to}");
        let text = resp.text().await.expect("body");
        assert!(
            text.contains("to:") && text.contains(why),
            "to = {to}: {text}"
        );
    }
    assert_eq!(
        std::fs::read(app.root.join("runbook-data/repo.key")).expect("key"),
        key_before,
        "the password file is untouched"
    );
    assert!(!outside_file.exists(), "nothing written outside the roots");
    let jobs = app.state.store.jobs(None, 100).await.expect("jobs");
    assert!(
        jobs.iter().all(|j| j.kind != "restore"),
        "no restore job was queued"
    );

    // Wrong field for the kind: 400 naming the field, before any job exists.
    for (body, field) in [
        (
            serde_json::json!({"target": "app-db", "into": "x"}),
            "into:",
        ),
        (serde_json::json!({"target": "docs"}), "to: required"),
    ] {
        let resp = app
            .call(
                Method::POST,
                "/api/backups/restore",
                Some(&owner),
                Some(body),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.text().await.expect("body").contains(field));
    }

    // A relative path lands in the (first) restore root.
    let ok = app
        .call(
            Method::POST,
            "/api/backups/restore",
            Some(&owner),
            Some(serde_json::json!({"target": "app-db", "to": "nested/copy.db"})),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    let job = worker::try_execute_next(&app.state).await.expect("restore");
    let worker::Outcome::Ran(job) = job else {
        panic!("no job ran")
    };
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(count(&roots.join("nested/copy.db")), 10);
    app.stop().await;
}

/// Regression: backups made outside the service (the CLI, cron) did not count in
/// `/api/health` and `/metrics` ("no backup yet" after three CLI snapshots), and targets
/// without a schedule were missing from `/api/health`. Both now read the repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_made_outside_the_service_count_in_health_and_metrics() {
    let files = "[targets.docs]\nkind = \"files\"\npaths = [\"app.db\"]\n";
    let app = spawn_with(no_limit(), false, files).await;
    let key = app.keys.readonly.clone();
    let health = |app: &App| {
        let url = app.url("/api/health");
        let key = key.clone();
        async move {
            Client::new()
                .get(url)
                .header("x-runbook-api-key", key)
                .send()
                .await
                .expect("req")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    let status_of = |v: &serde_json::Value, name: &str| {
        v["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().expect("status").to_string())
    };
    let before = health(&app).await;
    assert_eq!(status_of(&before, "backup:app-db").as_deref(), Some("warn"));
    assert_eq!(
        status_of(&before, "backup:docs").as_deref(),
        Some("warn"),
        "a target without a schedule is listed: {before}"
    );
    // As `runbook backup` does it: straight through the engine, no job.
    let engine = app.state.engine.clone();
    tokio::task::spawn_blocking(move || {
        for t in ["app-db", "docs"] {
            engine
                .backup(t, &runbook_backup::BackupRequest::default())
                .expect("backup");
        }
    })
    .await
    .expect("join");
    // The snapshots carry the wall clock's time: the service's clock reads it too, as in
    // production (a snapshot dated after the clock's now would not count).
    app.clock.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("now")
            .as_millis() as i64,
    );
    app.state.forget_cached_snapshots();
    let after = health(&app).await;
    assert_eq!(
        status_of(&after, "backup:app-db").as_deref(),
        Some("ok"),
        "{after}"
    );
    assert_eq!(
        status_of(&after, "backup:docs").as_deref(),
        Some("ok"),
        "{after}"
    );
    let targets: serde_json::Value = app
        .call(Method::GET, "/api/targets", Some(&app.keys.readonly), None)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        targets
            .as_array()
            .expect("targets")
            .iter()
            .all(|t| t["last_success"].is_i64()),
        "/api/targets counts them too: {targets}"
    );
    let metrics = app
        .call(Method::GET, "/metrics", Some(&app.keys.readonly), None)
        .await
        .text()
        .await
        .expect("text");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("runbook_backup_last_success_timestamp_seconds{target=\"app-db\"}"))
        .expect("metric");
    let value: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(value > 1.0e9, "{line}");
    app.stop().await;
}

/// Every pack in the repository, largest last.
fn packs_of(repo: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(repo.join("data"))
        .expect("data")
        .flatten()
    {
        for f in std::fs::read_dir(dir.path()).expect("dir").flatten() {
            out.push(f.path());
        }
    }
    out.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    out
}

/// The rolling verification: `serve` reads back a slice of packs every day; damage it finds
/// is critical in `/api/health` until a later verification passes, and the next backup
/// stores the damaged data again so its snapshot restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_verification_finds_damage_and_the_next_backup_heals_it() {
    let settings = Settings {
        verify_days: 1,
        ..no_limit()
    };
    let app = spawn(settings, false).await;
    let step = || async {
        match worker::try_execute_next(&app.state).await.expect("step") {
            worker::Outcome::Ran(job) => *job,
            worker::Outcome::Idle => panic!("a job was queued"),
        }
    };
    let critical = || async {
        let v: serde_json::Value = app
            .call(Method::GET, "/api/health", Some(&app.keys.readonly), None)
            .await
            .json()
            .await
            .expect("json");
        v["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["name"] == "verify:app-db" && c["status"] == "critical")
    };
    assert!(scheduler::tick(&app.state).await.expect("tick").is_empty());
    app.run_backup(&app.keys.operator).await;
    assert_eq!(step().await.state, JobState::Succeeded);

    // A byte flips in the largest pack.
    let pack = packs_of(&app.root.join("runbook-data/repo/app-db"))
        .pop()
        .expect("pack");
    let mut bytes = std::fs::read(&pack).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&pack, bytes).expect("write");

    // Ticks at `at` and runs the queued jobs up to the verification (the scheduled 03:00
    // backup is due too, and runs first).
    let (app_ref, step_ref) = (&app, &step);
    let verify_at = |at: i64| async move {
        app_ref.clock.set(at);
        let queued = scheduler::tick(&app_ref.state).await.expect("tick");
        assert!(queued.contains(&"app-db:verify".to_string()), "{queued:?}");
        loop {
            let job = step_ref().await;
            if job.kind == "verify" {
                return job;
            }
        }
    };
    let verify = verify_at(DAY0 + 4 * HOUR + 1000).await;
    assert_eq!(verify.state, JobState::Failed, "the flipped byte is found");
    assert!(critical().await, "damage is critical in /api/health");

    // The next backup heals: the damaged pack goes to quarantine, the data is stored again.
    app.run_backup(&app.keys.operator).await;
    let healed = step().await;
    assert_eq!(healed.state, JobState::Succeeded, "{:?}", healed.error);
    assert!(!pack.exists(), "moved to quarantine");
    let next = verify_at(DAY0 + 28 * HOUR + 1000).await;
    assert_eq!(next.state, JobState::Succeeded, "{:?}", next.error);
    assert!(!critical().await, "a passing verification clears it");
    let engine = app.state.engine.clone();
    let to = app.root.join("healed.db");
    let to2 = to.clone();
    tokio::task::spawn_blocking(move || engine.restore("app-db", "latest", &to2, false))
        .await
        .expect("join")
        .expect("the newest snapshot restores");
    assert_eq!(count(&to), 10);
    app.stop().await;
}

#[test]
fn verification_slices_go_round_one_per_day() {
    let day = 86_400_000;
    let slices: Vec<u32> = (0..6)
        .map(|d| scheduler::verify_slice(DAY0 + d * day, 3))
        .collect();
    assert_eq!(slices.len(), 6);
    assert!(slices.iter().all(|n| (1..=3).contains(n)));
    assert_eq!(slices[0], slices[3]);
    assert_ne!(slices[0], slices[1]);
    assert_eq!(scheduler::verify_slice(DAY0, 1), 1);
}

/// A failure that may pass (another process holds the target) is retried with backoff instead
/// of failing the job; a permanent one fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_failure_is_retried_with_backoff_and_succeeds() {
    let app = spawn(no_limit(), false).await;
    assert_eq!(
        app.run_backup(&app.keys.operator).await.status(),
        StatusCode::ACCEPTED
    );
    // Another runbook process is working on the target.
    let lock = runbook_backup::TargetLock::acquire(&app.root.join("runbook-data"), "app-db")
        .expect("lock");
    let worker::Outcome::Ran(first) = worker::try_execute_next(&app.state).await.expect("step")
    else {
        panic!("a job was queued")
    };
    assert_eq!(first.state, JobState::Queued, "waiting to be retried");
    assert!(
        first.error.as_deref().unwrap_or("").contains("busy"),
        "{:?}",
        first.error
    );
    assert!(
        matches!(
            worker::try_execute_next(&app.state).await.expect("step"),
            worker::Outcome::Idle
        ),
        "not before its backoff has passed"
    );
    drop(lock);
    app.clock.advance(worker::retry_delay_ms(1) + 1);
    let worker::Outcome::Ran(done) = worker::try_execute_next(&app.state).await.expect("step")
    else {
        panic!("the job is due again")
    };
    assert_eq!(done.id, first.id);
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempts, 2);
    let log = app.state.store.oplog(20).await.expect("oplog");
    assert!(
        log.iter()
            .any(|e| e.action == "job.retry" && e.outcome == "temporary")
    );
    app.stop().await;
}

#[test]
fn retry_delays_double_up_to_ten_minutes() {
    let delays: Vec<i64> = (1..=7).map(worker::retry_delay_ms).collect();
    assert_eq!(
        delays,
        [30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000]
    );
}

/// The router without a listener, through `tower::ServiceExt::oneshot`: auth, role, body
/// rejection and unknown paths answer as documented, each with a JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_answers_through_oneshot() {
    use tower::ServiceExt;
    let app = spawn(no_limit(), false).await;
    let call = |method: &str, path: &str, key: Option<&str>, body: &str| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("x-runbook-api-key", k);
        }
        let mut req = req
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                50_000,
            ))));
        runbook_server::router(app.state.clone()).oneshot(req)
    };
    let status = |r: axum::response::Response| r.status().as_u16();
    assert_eq!(
        status(call("GET", "/healthz", None, "").await.expect("ok")),
        200
    );
    assert_eq!(
        status(call("GET", "/api/targets", None, "").await.expect("ok")),
        401
    );
    let ro = app.keys.readonly.clone();
    assert_eq!(
        status(
            call("POST", "/api/backups/run", Some(&ro), "{}")
                .await
                .expect("ok")
        ),
        403
    );
    let op = app.keys.operator.clone();
    let bad = call("POST", "/api/backups/run", Some(&op), "{\"target\": 5}")
        .await
        .expect("ok");
    assert_eq!(bad.status().as_u16(), 400);
    let body = axum::body::to_bytes(bad.into_body(), 1 << 16)
        .await
        .expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json error");
    assert!(
        v["error"].as_str().expect("message").contains("target"),
        "{v}"
    );
    assert_eq!(
        status(call("GET", "/api/nope", Some(&ro), "").await.expect("ok")),
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failing_backup_reaches_the_webhook_signed_and_a_receiver_that_is_down_loses_nothing() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::start(secret);
    receiver.set_down(true);
    // ALERT_WEBHOOK_URL and its secret are the only alert configuration.
    let mut settings = Settings::from_env(|k| match k {
        "ALERT_WEBHOOK_URL" => Some(format!("http://127.0.0.1:{}/hook", receiver.port)),
        "ALERT_WEBHOOK_SECRET" => Some(secret.to_string()),
        "SECURITY_RATE_LIMIT_ENABLED" => Some("false".into()),
        _ => None,
    })
    .expect("settings");
    settings.rate_limit_enabled = false;
    let app = spawn(settings, false).await;
    std::fs::rename(app.root.join("app.db"), app.root.join("moved.db")).expect("mv");
    assert_eq!(backup_job(&app).await.state, JobState::Failed);
    // A second failure of a firing alert sends nothing new.
    assert_eq!(backup_job(&app).await.state, JobState::Failed);

    // The receiver is down: the attempt fails, is recorded, and waits (10 s backoff).
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 0);
    let log = app.state.store.oplog(100).await.expect("oplog");
    assert!(
        log.iter()
            .any(|e| e.action == "notify.failed" && e.detail.contains("503")),
        "the failed delivery is recorded"
    );
    receiver.set_down(false);
    assert_eq!(
        notify::deliver_due(&app.state).await.expect("deliver"),
        0,
        "not before its time"
    );
    app.clock.advance(11_000);
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0]["verified"], true,
        "standardwebhooks verifies the signature: {got:?}"
    );
    let data = &got[0]["payload"]["data"];
    assert_eq!(got[0]["payload"]["type"], "alert.firing");
    assert_eq!(data["rule"], "backup.failed");
    assert_eq!(data["subject"], "app-db");
    assert!(
        data["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot read source"),
        "{data}"
    );

    // The next backup succeeds: one resolved notice, with how long it fired.
    std::fs::rename(app.root.join("moved.db"), app.root.join("app.db")).expect("mv");
    app.clock.advance(60_000);
    assert_eq!(backup_job(&app).await.state, JobState::Succeeded);
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 1);
    assert_eq!(
        notify::deliver_due(&app.state).await.expect("deliver"),
        0,
        "sent once"
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["payload"]["type"], "alert.resolved");
    assert!(
        got[1]["payload"]["data"]["fired_seconds"]
            .as_i64()
            .unwrap_or(0)
            >= 60,
        "{got:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_webhook_secret_is_caught_by_the_receiver() {
    // The check above can fail: signed with another key, the independent verifier refuses it.
    let receiver = Receiver::start("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let settings = Settings::from_env(|k| match k {
        "ALERT_WEBHOOK_URL" => Some(format!("http://127.0.0.1:{}/hook", receiver.port)),
        "ALERT_WEBHOOK_SECRET" => Some("whsec_c2VjcmV0LWtleS1vZi1hbm90aGVyLXNlbmRlcg==".into()),
        "SECURITY_RATE_LIMIT_ENABLED" => Some("false".into()),
        _ => None,
    })
    .expect("settings");
    let app = spawn(settings, false).await;
    notify::signal(&app.state, "backup.failed", "app-db", true, "test")
        .await
        .expect("signal");
    assert_eq!(
        notify::deliver_due(&app.state).await.expect("deliver"),
        0,
        "refused with 401"
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["verified"], false, "{got:?}");
    app.stop().await;
}

/// Queues a backup of `app-db` through the API and runs it.
#[tokio::test]
async fn a_failing_backup_reaches_the_smtp_sink_with_the_right_subject() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/helpers/smtp_sink.py"
        ))
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (the README test command installs it and aiosmtpd)");
    let mut line = String::new();
    std::io::BufReader::new(sink.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    let _sink = runbook_testkit::KillOnDrop(sink);
    let port = line.trim().to_string();
    assert!(
        port.parse::<u16>().is_ok(),
        "the sink printed its port: {line:?} (is aiosmtpd installed?)"
    );
    // The seeds' variables alone: host, port, sender; the recipient defaults to the sender.
    let settings = Settings::from_env(|k| match k {
        "SMTP_HOST" => Some("127.0.0.1".into()),
        "SMTP_PORT" => Some(port.clone()),
        "SMTP_FROM" => Some("ops@example.com".into()),
        "SECURITY_RATE_LIMIT_ENABLED" => Some("false".into()),
        _ => None,
    })
    .expect("settings");
    let app = spawn(settings, false).await;
    std::fs::remove_file(app.root.join("app.db")).expect("rm");
    assert_eq!(backup_job(&app).await.state, JobState::Failed);
    assert_eq!(notify::deliver_due(&app.state).await.expect("deliver"), 1);
    let mail = std::fs::read_to_string(dir.path().join("0.eml")).expect("a message arrived");
    assert!(
        mail.contains("Subject: [runbook] FIRING backup.failed: app-db"),
        "{mail}"
    );
    assert!(mail.contains("To: ops@example.com"), "{mail}");
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "both bodies: {mail}"
    );
    assert!(mail.contains("cannot read source"), "the cause: {mail}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_listed_a_page_at_a_time() {
    let app = spawn(no_limit(), false).await;
    for _ in 0..3 {
        app.clock.advance(1000);
        assert_eq!(backup_job(&app).await.state, JobState::Succeeded);
    }
    let r = app
        .call(
            Method::GET,
            "/api/backups?limit=2&offset=1",
            Some(&app.keys.readonly),
            None,
        )
        .await;
    assert_eq!(r.headers()["x-total-count"], "3");
    let page: Vec<serde_json::Value> = r.json().await.expect("json");
    let all: Vec<serde_json::Value> = app
        .call(Method::GET, "/api/backups", Some(&app.keys.readonly), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["id"], all[1]["id"], "oldest first, from the offset");
    let r = app
        .call(
            Method::GET,
            "/api/backups?limit=0",
            Some(&app.keys.readonly),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

/// A scheduled task runs once per slot as a job; a failing one fails its job and raises
/// `task.failed`, which the next good run resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_tasks_run_once_per_slot_and_a_failure_raises_its_alert() {
    let settings = Settings {
        verify_days: 0,
        ..no_limit()
    };
    let app = spawn_with(
        settings,
        false,
        "[tasks.optimize]\nkind = \"sqlite-optimize\"\ntarget = \"app-db\"\nschedule = \"daily at 05 UTC\"\n\n[tasks.cleanup]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"test -e fail && { echo disk full >&2; exit 3; }; echo cleaned\"]\nschedule = \"daily at 05 UTC\"\n",
    )
    .await;
    assert!(scheduler::tick(&app.state).await.expect("tick").is_empty());
    app.clock.set(DAY0 + 5 * HOUR + 1000);
    let mut queued = scheduler::tick(&app.state).await.expect("tick");
    queued.retain(|q| q.ends_with(":task"));
    queued.sort();
    assert_eq!(queued, vec!["cleanup:task", "optimize:task"]);
    assert!(
        scheduler::tick(&app.state).await.expect("tick").is_empty(),
        "not twice for one slot"
    );
    let mut results = Vec::new();
    while let worker::Outcome::Ran(job) = worker::try_execute_next(&app.state).await.expect("step")
    {
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
        if job.kind == runbook_store::JobKind::Task {
            results.push(job.result.expect("result"));
        }
    }
    assert_eq!(results.len(), 2);
    let optimize = results
        .iter()
        .find(|r| r["task"] == "optimize")
        .expect("optimize ran");
    assert_eq!(optimize["optimize"]["backup"]["reason"], "pre-optimize");
    let cleanup = results
        .iter()
        .find(|r| r["task"] == "cleanup")
        .expect("cleanup ran");
    assert_eq!(cleanup["exit_code"], 0);
    assert!(
        cleanup["output"]
            .as_str()
            .expect("output")
            .contains("cleaned")
    );

    // Next day the command fails: the job fails with its exit code and last line, and the
    // alert fires; the day after it passes and the alert resolves.
    std::fs::write(app.root.join("fail"), b"").expect("write");
    app.clock.set(DAY0 + 29 * HOUR + 1000);
    let queued = scheduler::tick(&app.state).await.expect("tick");
    assert_eq!(queued.iter().filter(|q| q.ends_with(":task")).count(), 2);
    let mut failed = None;
    while let worker::Outcome::Ran(job) = worker::try_execute_next(&app.state).await.expect("step")
    {
        if job.target == "cleanup" {
            failed = Some(job);
        }
    }
    let failed = failed.expect("cleanup ran");
    assert_eq!(failed.state, JobState::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("exited with 3: disk full")),
        "{:?}",
        failed.error
    );
    let firing = app.state.store.firing_alerts().await.expect("alerts");
    assert!(
        firing
            .iter()
            .any(|a| a.rule == "task.failed" && a.subject == "cleanup"),
        "{firing:?}"
    );
    std::fs::remove_file(app.root.join("fail")).expect("rm");
    app.clock.set(DAY0 + 53 * HOUR + 1000);
    scheduler::tick(&app.state).await.expect("tick");
    while let worker::Outcome::Ran(_) = worker::try_execute_next(&app.state).await.expect("step") {}
    let firing = app.state.store.firing_alerts().await.expect("alerts");
    assert!(
        !firing.iter().any(|a| a.rule == "task.failed"),
        "{firing:?}"
    );
    app.stop().await;
}
