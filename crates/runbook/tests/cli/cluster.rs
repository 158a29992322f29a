//! Three `runbook serve` processes on one PostgreSQL state store (and Redis): 200 queued jobs
//! each run once, a leader killed with -9 is replaced within the stated bound (lease 30 s +
//! renewal 10 s), a backup whose instance is killed is taken over once, and the ops log, the
//! replay cache and the rate limit are shared.

use std::time::{Duration, Instant};

use crate::{
    helpers::{Workspace, make_db},
    serve::{Serve, http, serve_with, wait_for},
};

fn cluster_view(s: &Serve) -> Option<serde_json::Value> {
    let (code, body) = http(&s.addr, "GET", "/api/cluster", None);
    (code == 200).then(|| serde_json::from_str(&body).expect("json"))
}

#[test]
fn three_serve_processes_share_the_jobs_and_replace_a_killed_leader() {
    const TARGETS: usize = 8;
    const JOBS: usize = 200;
    let db = runbook_testkit::PgDb::create("serve_cluster");
    let mut config = String::new();
    for i in 0..TARGETS {
        config.push_str(&format!(
            "[targets.t{i}]\nkind = \"sqlite\"\npath = \"t{i}.db\"\n\n"
        ));
    }
    let ws = Workspace::new(&config);
    for i in 0..TARGETS {
        make_db(&ws.path(&format!("t{i}.db")), 20);
    }
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
    let env = [("RUNBOOK_STATE_URL", url.as_str())];
    // One first (it applies the schema), then two more.
    let mut nodes = vec![serve_with(&ws, &env)];
    nodes.push(serve_with(&ws, &env));
    nodes.push(serve_with(&ws, &env));

    // 200 backups, queued through all three.
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let (code, body) = http(
            &nodes[i % 3].addr,
            "POST",
            "/api/backups/run",
            Some(&format!(
                r#"{{"target":"t{}","reason":"cluster"}}"#,
                i % TARGETS
            )),
        );
        assert_eq!(code, 202, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        ids.push(v["job_id"].as_str().expect("id").to_string());
    }
    wait_for("every job to finish", 600, || {
        let (_, body) = http(&nodes[0].addr, "GET", "/api/jobs", None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array().is_some_and(|jobs| {
            jobs.len() == JOBS
                && jobs
                    .iter()
                    .all(|j| j["state"] != "queued" && j["state"] != "running")
        })
    });
    let (_, body) = http(&nodes[1].addr, "GET", "/api/jobs", None);
    let jobs: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    for j in &jobs {
        assert_eq!(j["state"], "succeeded", "{j}");
        assert_eq!(j["attempts"], 1, "ran once: {j}");
    }
    assert_eq!(jobs.len(), JOBS);
    for i in 0..TARGETS {
        assert_eq!(
            ws.snapshot_ids(&format!("t{i}")).len(),
            JOBS / TARGETS,
            "every backup of t{i} once, none twice"
        );
    }

    // One leader; kill it with -9; a survivor leads within lease + renewal (40 s).
    let views: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| cluster_view(n).expect("cluster"))
        .collect();
    let leader = views[0]["leader"].as_str().expect("a leader").to_string();
    assert!(views.iter().all(|v| v["leader"] == leader.as_str()));
    assert_eq!(views[0]["instances"].as_array().map(Vec::len), Some(3));
    let dead = views
        .iter()
        .position(|v| v["instance"] == leader.as_str())
        .expect("the leader is one of them");
    let mut killed = nodes.remove(dead);
    killed.child.kill().expect("kill -9");
    killed.child.wait().expect("wait");
    let started = Instant::now();
    wait_for("a new leader", 60, || {
        nodes.iter().all(|n| {
            cluster_view(n)
                .and_then(|v| v["leader"].as_str().map(str::to_string))
                .is_some_and(|l| l != leader)
        })
    });
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(45),
        "replaced within the lease and a renewal: {took:?}"
    );
    for mut n in nodes {
        n.child.kill().expect("stop");
        n.child.wait().expect("wait");
    }
}

/// The instance running a backup is killed with -9: another instance takes the job over once
/// its lease runs out, one snapshot results, and the repository checks clean.
#[test]
fn a_backup_whose_instance_is_killed_is_taken_over_by_another() {
    let db = runbook_testkit::PgDb::create("serve_takeover");
    let ws = Workspace::new(crate::helpers::files_config());
    std::fs::create_dir_all(ws.path("src")).expect("mkdir");
    std::fs::write(ws.path("src/big.bin"), crate::helpers::noise(300 << 20, 33)).expect("write");
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
    let env = [("RUNBOOK_STATE_URL", url.as_str())];
    let mut a = serve_with(&ws, &env);
    let (code, body) = http(
        &a.addr,
        "POST",
        "/api/backups/run",
        Some(r#"{"target":"files","reason":"takeover"}"#),
    );
    assert_eq!(code, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = v["job_id"].as_str().expect("id").to_string();
    let job = |s: &Serve| -> serde_json::Value {
        let (_, body) = http(&s.addr, "GET", &format!("/api/jobs/{id}"), None);
        serde_json::from_str(&body).expect("json")
    };
    let data = ws.repo("files").join("data");
    wait_for("a to be writing the backup", 120, || {
        job(&a)["state"] == "running"
            && std::fs::read_dir(&data)
                .map(|d| d.count() > 0)
                .unwrap_or(false)
    });
    // b starts while a's lease holds: it leaves the job alone.
    let mut b = serve_with(&ws, &env);
    assert_eq!(job(&b)["state"], "running");
    a.child.kill().expect("kill -9");
    a.child.wait().expect("wait");
    wait_for("b to take the job over and finish it", 300, || {
        let j = job(&b);
        j["state"] != "running" && j["state"] != "queued"
    });
    let j = job(&b);
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(j["attempts"], 2, "taken over once");
    b.child.kill().expect("stop");
    b.child.wait().expect("wait");
    assert_eq!(
        ws.snapshot_ids("files").len(),
        1,
        "one snapshot, no partial one"
    );
    ws.run(&["check", "files", "--read-data", "100"]).ok();
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A signed `POST /api/events` with `id` to `s`: the status.
fn send_event(s: &Serve, id: &str) -> u16 {
    let body = format!(r#"{{"type":"deploy","subject":"api","message":"release {id}"}}"#);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let ts = i64::try_from(ts).expect("seconds fit");
    let sig = runbook_server::notify::sign(SECRET, id, ts, &body).expect("sign");
    let mut conn = std::net::TcpStream::connect(&s.addr).expect("connect");
    use std::io::{Read, Write};
    write!(
        conn,
        "POST /api/events HTTP/1.1\r\nHost: {a}\r\nx-runbook-api-key: {k}\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\nContent-Type: application/json\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{body}",
        a = s.addr,
        k = crate::serve::KEY,
        n = body.len()
    )
    .expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line")
}

/// Three `serve` processes on one PostgreSQL state store and one Redis: 300 signed events sent
/// at once across them become 300 entries of one verified chain; an event id accepted by one
/// instance is a replay to the other two; and the rate limit is one count across the three —
/// the requests they accept together are exactly the limit.
#[test]
fn three_serve_processes_share_one_chain_the_replay_cache_and_the_rate_limit() {
    const LIMIT: usize = 400;
    let db = runbook_testkit::PgDb::create("serve_shared");
    let ws = Workspace::new(&crate::helpers::sqlite_config("app.db"));
    make_db(&ws.path("app.db"), 5);
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
    let prefix = format!("runbook-test-{}:", db.0);
    let limit = LIMIT.to_string();
    let env = [
        ("RUNBOOK_STATE_URL", url.as_str()),
        ("RUNBOOK_REDIS_URL", "redis://127.0.0.1:6379"),
        ("RUNBOOK_REDIS_PREFIX", prefix.as_str()),
        ("RUNBOOK_WEBHOOK_SECRET", SECRET),
        ("SECURITY_RATE_LIMIT_ENABLED", "1"),
        ("SECURITY_RATE_LIMIT_MAX", limit.as_str()),
        ("SECURITY_RATE_LIMIT_WINDOW", "1h"),
    ];
    let hour = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            / 3600
    };
    let started_in = hour();
    let nodes = vec![
        serve_with(&ws, &env),
        serve_with(&ws, &env),
        serve_with(&ws, &env),
    ];

    // 300 events from 30 threads at once, spread over the three instances.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|t| {
                let nodes = &nodes;
                scope.spawn(move || {
                    (0..10)
                        .map(|i| {
                            let n = t * 10 + i;
                            send_event(&nodes[n % 3], &format!("evt-{n}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(statuses.iter().all(|&c| c == 202), "{statuses:?}");

    // evt-0 went to the first instance: the other two refuse it.
    assert_eq!(send_event(&nodes[1], "evt-0"), 409);
    assert_eq!(send_event(&nodes[2], "evt-0"), 409);

    // One chain: 300 events recorded, verified end to end.
    let oplog = ws
        .command(&["oplog", "--json", "--limit", "1000"])
        .env("RUNBOOK_STATE_URL", &url)
        .output()
        .expect("oplog");
    assert!(oplog.status.success());
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&oplog.stdout).expect("json");
    let recorded = entries
        .iter()
        .filter(|e| e["action"] == "event.deploy" && e["outcome"] == "recorded")
        .count();
    assert_eq!(recorded, 300);
    let verify = ws
        .command(&["oplog", "verify"])
        .env("RUNBOOK_STATE_URL", &url)
        .output()
        .expect("verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The rate limit: 302 requests so far; keep asking round robin until every instance
    // has answered 429. Together they accept exactly the limit, not three times it.
    let mut accepted = 302;
    let mut refused = [false; 3];
    let mut i = 0;
    while !refused.iter().all(|r| *r) && i < 3 * LIMIT {
        let (code, _) = http(&nodes[i % 3].addr, "GET", "/api/cluster", None);
        if code == 429 {
            refused[i % 3] = true;
        } else {
            assert_eq!(code, 200);
            accepted += 1;
        }
        i += 1;
    }
    assert!(refused.iter().all(|r| *r), "every instance refuses");
    if hour() == started_in {
        assert_eq!(accepted, LIMIT, "one count across the three instances");
    } else {
        // The one-hour window turned during the test: two windows' worth at most.
        assert!(accepted <= 2 * LIMIT, "{accepted}");
    }
    for mut n in nodes {
        n.child.kill().expect("stop");
        n.child.wait().expect("wait");
    }
}
