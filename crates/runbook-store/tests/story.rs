//! One story, run against both engines: the embedded SQLite file and the PostgreSQL server on
//! this machine (a fresh, uniquely named database, dropped afterwards).

use runbook_store::{JobState, NewEntry, NewJob, Role, Store};
use sqlx::{AnyPool, Executor};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn job(target: &str) -> NewJob {
    NewJob {
        kind: "backup".into(),
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
        store.has_active("a", "backup").await.expect("active"),
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
            .last_finished("a", "backup", JobState::Succeeded)
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

#[tokio::test]
async fn story_on_postgres() {
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(PG_ADMIN)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (the test command starts it)");
    let name = format!("runbook_test_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&admin)
    .await
    .expect("drop");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create");
    story(&format!("postgres://postgres@127.0.0.1:5432/{name}")).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .expect("drop");
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
