//! Retention keeps exactly what the rule says, on real repositories with fabricated snapshot
//! times (the snapshot time is an input, so no clock is waited on).

use std::path::Path;

use jiff::Timestamp;
use runbook_backup::{BackupRequest, Engine};
use runbook_config::Config;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// Twelve snapshots: 03:00 on each of 2026-11-16 ..= 2026-11-25, and 04:00, 05:00 on the 25th.
fn history() -> Vec<Timestamp> {
    let mut times: Vec<Timestamp> = (16..=25)
        .map(|d| ts(&format!("2026-11-{d}T03:00:00Z")))
        .collect();
    times.push(ts("2026-11-25T04:00:00Z"));
    times.push(ts("2026-11-25T05:00:00Z"));
    times
}

fn engine(dir: &Path) -> Engine {
    let db = dir.join("app.db");
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("schema");
    let text = r#"
[targets.counts]
kind = "sqlite"
path = "app.db"
keep = { last = 2, daily = 3, weekly = 2 }
[targets.recent]
kind = "sqlite"
path = "app.db"
keep = { within = "2d" }
[targets.forever]
kind = "sqlite"
path = "app.db"
"#;
    let file = dir.join("runbook.toml");
    std::fs::write(&file, text).expect("config");
    std::fs::create_dir_all(dir.join("runbook-data")).expect("data");
    std::fs::write(dir.join("runbook-data/repo.key"), "pw\n").expect("key");
    Engine::new(Config::load(&file).expect("config"))
}

fn kept_times(engine: &Engine, target: &str) -> Vec<Timestamp> {
    engine
        .snapshots(target)
        .expect("snapshots")
        .iter()
        .map(|s| s.time)
        .collect()
}

fn backfill(engine: &Engine, target: &str) {
    for t in history() {
        let req = BackupRequest {
            reason: "test".into(),
            time: Some(t),
            keep_forever: false,
        };
        engine.backup(target, &req).expect("backup");
    }
}

#[test]
fn count_rules_keep_last_daily_and_weekly_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    backfill(&engine, "counts");
    let now = ts("2026-11-25T12:00:00Z");

    let plan = engine.forget("counts", now, true).expect("dry run");
    assert_eq!(plan.remove.len(), 7);
    assert_eq!(
        kept_times(&engine, "counts").len(),
        12,
        "dry run removes nothing"
    );

    engine.forget("counts", now, false).expect("forget");
    // last 2: 25th 05:00 and 04:00; daily 3: days 25 (05:00), 24, 23;
    // weekly 2: ISO week of the 23rd (05:00 on the 25th) and week of the 16th (the 22nd).
    let expected: Vec<Timestamp> = [
        "2026-11-22T03:00:00Z",
        "2026-11-23T03:00:00Z",
        "2026-11-24T03:00:00Z",
        "2026-11-25T04:00:00Z",
        "2026-11-25T05:00:00Z",
    ]
    .iter()
    .map(|s| ts(s))
    .collect();
    assert_eq!(kept_times(&engine, "counts"), expected);
    engine
        .check("counts", Some(100.0))
        .expect("check after prune");
}

#[test]
fn within_keeps_everything_younger_than_the_span_before_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    backfill(&engine, "recent");
    engine
        .forget("recent", ts("2026-11-25T12:00:00Z"), false)
        .expect("forget");
    let expected: Vec<Timestamp> = [
        "2026-11-24T03:00:00Z",
        "2026-11-25T03:00:00Z",
        "2026-11-25T04:00:00Z",
        "2026-11-25T05:00:00Z",
    ]
    .iter()
    .map(|s| ts(s))
    .collect();
    assert_eq!(kept_times(&engine, "recent"), expected);
}

#[test]
fn no_keep_rule_removes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    engine
        .backup("forever", &BackupRequest::default())
        .expect("backup");
    let plan = engine
        .forget("forever", Timestamp::now(), false)
        .expect("forget");
    assert!(plan.remove.is_empty());
    assert_eq!(kept_times(&engine, "forever").len(), 1);
}

/// Regression: snapshots dated ahead (a clock that was ahead, then set right) took the keep
/// rule's places, so each new backup, older by its date, was removed as soon as it was made
/// and the earlier ones with it. Now they are kept outside the rule, and the rule applies to
/// the others as if they were not there.
#[test]
fn snapshots_dated_ahead_neither_take_the_rule_s_places_nor_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    backfill(&engine, "counts");
    let ahead: Vec<Timestamp> = (20..=22)
        .map(|d| ts(&format!("2027-11-{d}T03:00:00Z")))
        .collect();
    for t in &ahead {
        let req = BackupRequest {
            reason: "test".into(),
            time: Some(*t),
            keep_forever: false,
        };
        engine.backup("counts", &req).expect("backup");
    }
    // The backup of the day, once the clock is right, with its retention.
    let now = ts("2026-11-25T12:00:00Z");
    let req = BackupRequest {
        reason: "test".into(),
        time: Some(now),
        keep_forever: false,
    };
    let (_, plan, _) = engine
        .backup_and_retain("counts", &req, now)
        .expect("backup");
    let removed: Vec<Timestamp> = plan.remove.iter().map(|s| s.time).collect();
    assert_eq!(removed.len(), 8, "{removed:?}");
    // As without them (last 2, daily 3, weekly 2), with the new one in the place of 05:00 on
    // the 25th, and the three ahead.
    let mut expected: Vec<Timestamp> = [
        "2026-11-22T03:00:00Z",
        "2026-11-23T03:00:00Z",
        "2026-11-24T03:00:00Z",
        "2026-11-25T05:00:00Z",
        "2026-11-25T12:00:00Z",
    ]
    .iter()
    .map(|s| ts(s))
    .collect();
    expected.extend(&ahead);
    assert_eq!(kept_times(&engine, "counts"), expected);
    let reasons: Vec<&str> = plan
        .keep
        .iter()
        .filter(|(s, _)| s.time > now)
        .flat_map(|(_, r)| r.iter().map(String::as_str))
        .collect();
    assert_eq!(reasons, ["dated after now"; 3]);
}
