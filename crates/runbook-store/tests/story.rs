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
            .find_key(&k.secret)
            .await
            .expect("find")
            .map(|k| k.role),
        Some(Role::Operator)
    );
    assert!(store.find_key("rbk_nope").await.expect("find").is_none());
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
    assert!(store.find_key(&k.secret).await.expect("find").is_none());
    assert!(
        store.revoke_key(&k.key.id, 6).await.is_err(),
        "revoking twice is an error"
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
            .find_key("bootstrap-secret")
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
