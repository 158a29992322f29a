//! One story, run against both engines: the embedded SQLite file and the PostgreSQL server on
//! this machine (a fresh, uniquely named database, dropped afterwards).

use runbook_store::{JobState, NewEntry, NewJob, Role, Store};
use sqlx::{AnyPool, Executor};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn job(target: &str) -> NewJob {
    NewJob {
        kind: runbook_store::JobKind::Backup,
        target: target.into(),
        params: serde_json::json!({"reason": "test"}),
        requested_by: "cli".into(),
    }
}

fn entry(action: &str) -> NewEntry {
    NewEntry {
        actor: "cli".into(),
        action: action.into(),
        target: "db".into(),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

async fn story(url: &str) {
    let store = Store::open(url).await.expect("open");
    // Reopening applies no migration twice.
    let store2 = Store::open(url).await.expect("reopen");
    store2.ping().await.expect("ping");

    // Jobs: FIFO, one running job per target.
    let a1 = store.enqueue(job("a"), 1).await.expect("enqueue");
    let a2 = store.enqueue(job("a"), 2).await.expect("enqueue");
    let b1 = store.enqueue(job("b"), 3).await.expect("enqueue");
    let first = store.claim_next(10).await.expect("claim").expect("a job");
    assert_eq!(first.id, a1.id);
    assert_eq!(first.state, JobState::Running);
    assert_eq!(first.attempts, 1);
    let second = store.claim_next(11).await.expect("claim").expect("a job");
    assert_eq!(second.id, b1.id, "a2 waits while a1 runs");
    assert!(store.claim_next(12).await.expect("claim").is_none());
    let done = store
        .finish(
            &a1.id,
            JobState::Succeeded,
            None,
            Some(&serde_json::json!({"id": "x"})),
            20,
        )
        .await
        .expect("finish");
    assert_eq!(done.result, Some(serde_json::json!({"id": "x"})));
    assert!(
        store
            .has_active("a", runbook_store::JobKind::Backup)
            .await
            .expect("active"),
        "a2 still queued"
    );
    let third = store.claim_next(21).await.expect("claim").expect("a2");
    assert_eq!(third.id, a2.id);

    // A crash: a2 and b1 were running. Both are interrupted and re-queued once.
    let retried = store.recover_interrupted(30).await.expect("recover");
    assert_eq!(retried.len(), 2);
    assert!(retried.iter().all(|j| j.state == JobState::Queued));
    let again = store.claim_next(31).await.expect("claim").expect("retry");
    assert_eq!(again.attempts, 2);
    // Interrupted a second time: stays interrupted.
    let retried = store.recover_interrupted(40).await.expect("recover");
    assert!(
        retried.is_empty(),
        "a job interrupted on its second attempt is not retried again"
    );
    assert_eq!(
        store.job(&again.id).await.expect("job").state,
        JobState::Interrupted
    );
    assert_eq!(
        store
            .last_finished("a", runbook_store::JobKind::Backup, JobState::Succeeded)
            .await
            .expect("last")
            .map(|j| j.id),
        Some(a1.id.clone())
    );

    // Schedule state.
    assert_eq!(store.last_scheduled("a").await.expect("get"), None);
    store.set_last_scheduled("a", 100).await.expect("set");
    store.set_last_scheduled("a", 200).await.expect("set");
    assert_eq!(store.last_scheduled("a").await.expect("get"), Some(200));

    // Keys: hashed, found by secret, revocable.
    assert!(!store.has_owner_key().await.expect("owner"));
    let k = store
        .create_key("ci", Role::Operator, 1)
        .await
        .expect("key");
    assert!(k.secret.starts_with("rbk_") && k.secret.len() > 60);
    assert_eq!(
        store
            .find_key(&k.secret, 2)
            .await
            .expect("find")
            .map(|k| k.role),
        Some(Role::Operator)
    );
    assert!(store.find_key("rbk_nope", 2).await.expect("find").is_none());
    store
        .ensure_key("boot", Role::Owner, "bootstrap-secret", 1)
        .await
        .expect("ensure");
    store
        .ensure_key("boot", Role::Owner, "bootstrap-secret", 2)
        .await
        .expect("idempotent");
    assert!(store.has_owner_key().await.expect("owner"));
    assert_eq!(store.keys().await.expect("keys").len(), 2);
    store.revoke_key(&k.key.id, 5).await.expect("revoke");
    assert!(store.find_key(&k.secret, 5).await.expect("find").is_none());
    assert!(
        store.revoke_key(&k.key.id, 6).await.is_err(),
        "revoking twice is an error"
    );
    // Rotation: a successor at once, the old key until the overlap ends.
    let ops = store
        .create_key("ops", Role::Operator, 10)
        .await
        .expect("key");
    let next = store
        .rotate_key(&ops.key.id, 100, 20)
        .await
        .expect("rotate");
    assert_eq!(
        (next.key.name.as_str(), next.key.role),
        ("ops", Role::Operator)
    );
    assert!(
        store
            .find_key(&ops.secret, 119)
            .await
            .expect("find")
            .is_some(),
        "old key during the overlap"
    );
    assert!(
        store
            .find_key(&ops.secret, 120)
            .await
            .expect("find")
            .is_none(),
        "not after"
    );
    assert!(
        store
            .find_key(&next.secret, 120)
            .await
            .expect("find")
            .is_some()
    );
    assert!(
        store.rotate_key(&ops.key.id, 100, 130).await.is_err(),
        "a revoked key cannot be rotated"
    );
    // Regression: after the bootstrap key was revoked, the next start failed with "UNIQUE
    // constraint failed: api_keys.hash". It starts, and the key stays revoked.
    let boot = store
        .ensure_key("boot", Role::Owner, "bootstrap-secret", 7)
        .await
        .expect("ensure");
    store.revoke_key(&boot.id, 8).await.expect("revoke boot");
    let again = store
        .ensure_key("boot", Role::Owner, "bootstrap-secret", 9)
        .await
        .expect("a revoked bootstrap key does not stop the start");
    assert_eq!(again.id, boot.id);
    assert!(again.revoked_at.is_some());
    assert!(
        store
            .find_key("bootstrap-secret", 1000)
            .await
            .expect("find")
            .is_none()
    );

    // Regression: a drill and a backup queued in the same tick ran in random order, and the
    // drill failed on "no snapshot". Backups go first.
    for t in store.jobs(None, 100).await.expect("jobs") {
        if matches!(t.state, JobState::Queued | JobState::Running) {
            store
                .finish(&t.id, JobState::Succeeded, None, None, 90)
                .await
                .expect("finish");
        }
    }
    let drill = NewJob {
        kind: runbook_store::JobKind::Drill,
        ..job("tick")
    };
    store.enqueue(drill, 95).await.expect("drill");
    let backup = store.enqueue(job("tick"), 95).await.expect("backup");
    let first = store.claim_next(96).await.expect("claim").expect("job");
    assert_eq!(
        first.id, backup.id,
        "the backup of the same tick runs first"
    );

    // Ops log: verifies; each kind of tampering is caught at the first bad entry.
    for (i, action) in ["backup.run", "restore.run", "key.create", "job.finished"]
        .iter()
        .enumerate()
    {
        store
            .append(entry(action), 100 + i64::try_from(i).expect("small"))
            .await
            .expect("append");
    }
    assert_eq!(store.verify_oplog().await.expect("verify"), Ok(4));
    assert_eq!(store.oplog(2).await.expect("list")[0].seq, 4);
    let raw = AnyPool::connect(url).await.expect("raw");

    raw.execute("UPDATE oplog SET outcome = 'failed' WHERE seq = 2")
        .await
        .expect("edit");
    let bad = store
        .verify_oplog()
        .await
        .expect("verify")
        .expect_err("edited");
    assert_eq!(bad.seq, 2);
    assert!(bad.reason.contains("edited"), "{}", bad.reason);
    raw.execute("UPDATE oplog SET outcome = 'ok' WHERE seq = 2")
        .await
        .expect("undo");
    assert!(store.verify_oplog().await.expect("verify").is_ok());

    raw.execute("UPDATE oplog SET seq = 99 WHERE seq = 3")
        .await
        .expect("park");
    raw.execute("UPDATE oplog SET seq = 3 WHERE seq = 4")
        .await
        .expect("swap");
    raw.execute("UPDATE oplog SET seq = 4 WHERE seq = 99")
        .await
        .expect("swap");
    let bad = store
        .verify_oplog()
        .await
        .expect("verify")
        .expect_err("reordered");
    assert_eq!(bad.seq, 3);

    raw.execute("DELETE FROM oplog WHERE seq = 3")
        .await
        .expect("delete");
    let bad = store
        .verify_oplog()
        .await
        .expect("verify")
        .expect_err("deleted");
    assert_eq!(bad.seq, 3);
    assert!(bad.reason.contains("missing"), "{}", bad.reason);
    raw.close().await;
}

#[tokio::test]
async fn story_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    story(&url).await;
}

/// A fresh PostgreSQL database for one test, dropped by [`PgDb::drop_db`].
struct PgDb {
    admin: AnyPool,
    name: String,
}

impl PgDb {
    async fn create(tag: &str) -> Self {
        sqlx::any::install_default_drivers();
        let admin = AnyPool::connect(PG_ADMIN)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (the test command starts it)");
        let name = format!("runbook_test_{tag}_{}", std::process::id());
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .expect("create");
        }
        Self { admin, name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop_db(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .expect("drop");
    }
}

#[tokio::test]
async fn story_on_postgres() {
    let db = PgDb::create("story").await;
    story(&db.url()).await;
    db.drop_db().await;
}

/// Regression: 50 concurrent `POST /api/backups/run` lost 30 ops-log entries ("UNIQUE
/// constraint failed: oplog.seq") while each answered 202. Two stores on one database (two
/// processes or instances) make 200 concurrent mutations: 200 entries, an intact chain.
async fn concurrent_mutations_are_all_audited(url: &str) {
    let stores = [
        Store::open(url).await.expect("open"),
        Store::open(url).await.expect("open"),
    ];
    let mut tasks = Vec::new();
    for i in 0..200_i64 {
        let store = stores[usize::try_from(i % 2).expect("small")].clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 < 2 {
                store.append(entry("key.create"), i).await.map(drop)
            } else {
                store
                    .enqueue_audited(job("t"), "key:1:ops", "backup.run", i)
                    .await
                    .map(drop)
            }
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("every mutation succeeds");
    }
    let log = stores[0].oplog(1000).await.expect("log");
    assert_eq!(log.len(), 200, "one audit entry per mutation");
    assert_eq!(stores[0].verify_oplog().await.expect("verify"), Ok(200));
    let jobs = stores[0].jobs(Some("t"), 1000).await.expect("jobs");
    assert_eq!(jobs.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mutations_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    concurrent_mutations_are_all_audited(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mutations_on_postgres() {
    let db = PgDb::create("concurrent").await;
    concurrent_mutations_are_all_audited(&db.url()).await;
    db.drop_db().await;
}

#[test]
fn urls_are_redacted() {
    assert_eq!(
        runbook_store::redact("postgres://app:s3cret@db:5432/x"),
        "postgres://app:***@db:5432/x"
    );
    assert_eq!(
        runbook_store::redact("sqlite:///tmp/x.db"),
        "sqlite:///tmp/x.db"
    );
}

/// The monitor's tables on one engine: probe results and their rollups (folded into days),
/// buffered heartbeat pings applied in one go, alerts, silences and the replay cache.
async fn monitor_story(url: &str) {
    use runbook_store::{HeartbeatEvent, ProbeResult, Transition};
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let store = Store::open(url).await.expect("open");
    let t0 = 400 * DAY;
    let result = |probe: &str, ok: bool, at: i64, ms: i64| ProbeResult {
        probe: probe.into(),
        ok,
        at,
        duration_ms: ms,
        error: (!ok).then(|| "down".into()),
    };
    store
        .record_probe_results(&[result("api", true, t0, 10), result("db", true, t0, 5)])
        .await
        .expect("record");
    store
        .record_probe_results(&[result("api", false, t0 + 10_000, 30)])
        .await
        .expect("record");
    store
        .record_probe_results(&[result("api", false, t0 + 20_000, 20)])
        .await
        .expect("record");
    let statuses = store.probe_statuses().await.expect("statuses");
    let api = statuses
        .iter()
        .find(|s| s.last.probe == "api")
        .expect("api");
    assert_eq!(
        (api.last.ok, api.since),
        (false, t0 + 10_000),
        "failing since the first failure"
    );
    let hour = store.probe_rollups("api", 0).await.expect("rollups");
    assert_eq!(hour.len(), 1);
    assert_eq!(
        (
            hour[0].checks,
            hour[0].failures,
            hour[0].max_ms,
            hour[0].mean_ms
        ),
        (3, 2, 30, 20)
    );
    // Thirty days on, the hours fold into a day; the probe no longer configured goes.
    store
        .compact_probe_data(t0 + DAY, 0, &["api".to_string()])
        .await
        .expect("compact");
    assert!(
        store
            .probe_rollups("api", 0)
            .await
            .expect("rollups")
            .is_empty()
    );
    assert!(
        store
            .probe_statuses()
            .await
            .expect("s")
            .iter()
            .all(|s| s.last.probe == "api")
    );

    // Pings: a start, a too-fast success, 150 successes, a failure.
    store.heartbeat("job", t0).await.expect("heartbeat");
    let mut events = vec![
        HeartbeatEvent::Start {
            name: "job".into(),
            at: t0,
        },
        HeartbeatEvent::Finish {
            name: "job".into(),
            at: t0 + 500,
            ok: true,
            exit_code: Some(0),
            note: None,
            min_runtime_ms: Some(1000),
        },
    ];
    for i in 1..=150 {
        events.push(HeartbeatEvent::Finish {
            name: "job".into(),
            at: t0 + i * 1000,
            ok: true,
            exit_code: None,
            note: None,
            min_runtime_ms: Some(1000),
        });
    }
    events.push(HeartbeatEvent::Finish {
        name: "job".into(),
        at: t0 + 200_000,
        ok: false,
        exit_code: Some(3),
        note: Some("boom".into()),
        min_runtime_ms: None,
    });
    let runs = store.heartbeat_apply(&events).await.expect("apply");
    assert_eq!(runs.len(), 152);
    assert!(!runs[0].ok, "too fast: {:?}", runs[0].note);
    let row = store.heartbeat("job", t0).await.expect("row");
    assert_eq!(
        (row.last_ok, row.last_fail, row.started_at),
        (Some(t0 + 150_000), Some(t0 + 200_000), None)
    );
    let kept = store.heartbeat_runs("job", 1000).await.expect("runs");
    assert_eq!(kept.len(), 100, "only the newest runs are written");
    assert_eq!(kept[0].exit_code, Some(3));

    // Alerts: fire, a repeat changes nothing, resolve says whether a notice went out.
    assert_eq!(
        store
            .alert_state("r", "s", true, t0, "page", "bad")
            .await
            .expect("a"),
        Some(Transition::Fired)
    );
    assert_eq!(
        store
            .alert_state("r", "s", true, t0 + 1, "page", "worse")
            .await
            .expect("a"),
        None
    );
    store.alert_sent("r", "s", t0 + 1).await.expect("sent");
    assert_eq!(
        store
            .alert_state("r", "s", false, t0 + 60_000, "page", "ok")
            .await
            .expect("a"),
        Some(Transition::Resolved {
            since: t0,
            notified: true
        })
    );
    let listed = store.alerts(10).await.expect("alerts");
    assert_eq!(
        (listed[0].fired_at, listed[0].resolved_at),
        (t0, Some(t0 + 60_000))
    );

    // Silences and the replay cache.
    store
        .add_silence(Some("r"), t0, t0 + HOUR, "maintenance", "key:1:ops", t0)
        .await
        .expect("silence");
    assert_eq!(store.silences(t0 + 1).await.expect("s").len(), 1);
    assert!(
        store.silences(t0 + HOUR).await.expect("s").is_empty(),
        "ended"
    );
    assert!(
        store
            .first_sight("msg_1", t0, t0 - 600_000)
            .await
            .expect("seen")
    );
    assert!(
        !store
            .first_sight("msg_1", t0 + 1, t0 - 600_000)
            .await
            .expect("seen"),
        "replay"
    );
    assert!(
        store
            .first_sight("msg_1", t0 + 700_000, t0 + 100_000)
            .await
            .expect("seen"),
        "forgotten after the window"
    );
    drop(store);
}

#[tokio::test]
async fn monitor_story_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    monitor_story(&format!(
        "sqlite://{}",
        dir.path().join("state.db").display()
    ))
    .await;
}

#[tokio::test]
async fn monitor_story_on_postgres() {
    let db = PgDb::create("monitor").await;
    monitor_story(&db.url()).await;
    db.drop_db().await;
}
