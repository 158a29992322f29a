//! Three `runbook serve` processes on one PostgreSQL state store: queued jobs each run once,
//! and a leader killed with -9 is replaced within the stated bound (lease 30 s + renewal 10 s).

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
    let db = runbook_testkit::PgDb::create("serve_cluster");
    let mut config = String::new();
    for i in 0..6 {
        config.push_str(&format!(
            "[targets.t{i}]\nkind = \"sqlite\"\npath = \"t{i}.db\"\n\n"
        ));
    }
    let ws = Workspace::new(&config);
    for i in 0..6 {
        make_db(&ws.path(&format!("t{i}.db")), 20);
    }
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
    let env = [("RUNBOOK_STATE_URL", url.as_str())];
    // One first (it applies the schema), then two more.
    let mut nodes = vec![serve_with(&ws, &env)];
    nodes.push(serve_with(&ws, &env));
    nodes.push(serve_with(&ws, &env));

    // 30 backups, queued through all three.
    let mut ids = Vec::new();
    for i in 0..30 {
        let (code, body) = http(
            &nodes[i % 3].addr,
            "POST",
            "/api/backups/run",
            Some(&format!(r#"{{"target":"t{}","reason":"cluster"}}"#, i % 6)),
        );
        assert_eq!(code, 202, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        ids.push(v["job_id"].as_str().expect("id").to_string());
    }
    wait_for("every job to finish", 300, || {
        let (_, body) = http(&nodes[0].addr, "GET", "/api/jobs", None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array().is_some_and(|jobs| {
            jobs.len() == 30
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
    for i in 0..6 {
        assert_eq!(
            ws.snapshot_ids(&format!("t{i}")).len(),
            5,
            "five backups of t{i}, none twice"
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
