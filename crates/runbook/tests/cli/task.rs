//! `runbook task`: `sqlite-optimize` under a writer that keeps writing, and command tasks with
//! their exit codes and timeouts.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::helpers::*;

#[test]
fn sqlite_optimize_runs_under_a_concurrent_writer_and_keeps_every_row() {
    let ws = Workspace::new(&format!(
        "{}\n[tasks.optimize]\nkind = \"sqlite-optimize\"\ntarget = \"db\"\nvacuum_free_percent = 10\n",
        sqlite_config("app.db")
    ));
    let db = ws.path("app.db");
    make_db(&db, 6000);
    // Most rows gone: free pages for VACUUM to return.
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute("DELETE FROM items WHERE id > 1000", [])
        .expect("delete");
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .expect("checkpoint");
    drop(conn);

    // The application keeps writing the whole time, with the busy timeout apps use.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).expect("open");
            conn.busy_timeout(Duration::from_secs(30)).expect("timeout");
            let mut written = 0_i64;
            while !stop.load(Ordering::Relaxed) || written < 50 {
                conn.execute("INSERT INTO items (body) VALUES ('during')", [])
                    .expect("the writer is never refused");
                written += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            written
        })
    };
    let run = ws.run(&["task", "run", "optimize", "--json"]).ok();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["optimize"]["vacuumed"], true, "{v}");
    assert!(
        v["optimize"]["bytes_after"].as_u64() < v["optimize"]["bytes_before"].as_u64(),
        "{v}"
    );
    assert_eq!(v["optimize"]["backup"]["reason"], "pre-optimize");
    assert_eq!(
        count(&db, "SELECT count(*) FROM items"),
        1000 + written,
        "every row kept, the writer's too"
    );
    let conn = rusqlite::Connection::open(&db).expect("open");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(ok, "ok");
    // The backup taken first restores the database as it was before.
    let pre = v["optimize"]["backup"]["id"].as_str().expect("id");
    ws.run(&["restore", "db", "--snapshot", pre, "--to", "before.db"])
        .ok();
    assert!(count(&ws.path("before.db"), "SELECT count(*) FROM items") >= 1000);
    // Below the threshold: no VACUUM.
    let again = ws.run(&["task", "run", "optimize", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&again.stdout).expect("json");
    assert_eq!(v["optimize"]["vacuumed"], false, "{v}");
    let log = ws.run(&["oplog", "--json"]).ok().stdout;
    assert!(log.contains("task.run"), "{log}");
}

#[test]
fn command_tasks_report_exit_codes_and_are_stopped_at_their_timeout() {
    let ws = Workspace::new(&format!(
        "{}\n[tasks.ok]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo swept\"]\n\n[tasks.broken]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo working; echo disk full >&2; exit 3\"]\n\n[tasks.slow]\nkind = \"command\"\ncommand = [\"sleep\", \"30\"]\ntimeout = \"1s\"\n",
        sqlite_config("app.db")
    ));
    let run = ws.run(&["task", "run", "ok", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["exit_code"], 0);
    assert!(v["output"].as_str().expect("output").contains("swept"));
    ws.run(&["task", "run", "broken"])
        .fails_with(&["task `broken`", "exited with 3", "disk full"]);
    let started = std::time::Instant::now();
    ws.run(&["task", "run", "slow"])
        .fails_with(&["task `slow`", "timeout of 1s", "stopped"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped, not waited for"
    );
    ws.run(&["task", "run", "nope"])
        .fails_with(&["no task named `nope`", "broken, ok, slow"]);
    let list = ws.run(&["task", "list"]).ok().stdout;
    assert!(
        list.contains("slow") && list.contains("on demand"),
        "{list}"
    );
}

#[test]
fn task_mistakes_are_one_clear_line() {
    for (table, needles) in [
        (
            "[tasks.t]\nkind = \"sqlite-optimize\"\ntarget = \"nope\"\n",
            vec!["tasks.t.target", "no target named `nope`"],
        ),
        (
            "[tasks.t]\nkind = \"command\"\ncommand = []\n",
            vec!["tasks.t.command", "program"],
        ),
        (
            "[tasks.t]\nkind = \"cron\"\n",
            vec!["tasks.t.kind", "sqlite-optimize"],
        ),
        (
            "[tasks.t]\nkind = \"command\"\ncommand = [\"true\"]\nschedule = \"sometimes\"\n",
            vec!["tasks.t.schedule"],
        ),
    ] {
        let ws = Workspace::new(&format!("{}\n{table}", sqlite_config("app.db")));
        ws.run(&["config", "check", "--offline"])
            .fails_with(&needles);
    }
}
