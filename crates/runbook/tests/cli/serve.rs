//! `runbook serve` as a process: SIGTERM, and kill -9 in the middle of a job.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::{Workspace, noise};

pub const KEY: &str = "rbk_test_owner_key_0123456789abcdef0123456789abcdef";

pub struct Serve {
    pub child: Child,
    pub addr: String,
    /// Every line the server wrote to stderr (its JSON log).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn serve(ws: &Workspace) -> Serve {
    serve_with(ws, &[])
}

/// `runbook serve` with more environment variables.
pub fn serve_with(ws: &Workspace, env: &[(&str, &str)]) -> Serve {
    let mut child = ws
        .command(&["serve"])
        .env("PORT", "0")
        .env("SECURITY_OWNER_KEYS", KEY)
        // These tests poll jobs for as long as a loaded machine needs; a test of the limit
        // turns it on through `env`.
        .env("SECURITY_RATE_LIMIT_ENABLED", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("line");
        if let Some(rest) = line.strip_prefix("runbook: listening on http://") {
            break rest.trim().to_string();
        }
    };
    assert!(!addr.contains(KEY));
    // Keep draining the JSON log so the server never blocks on a full pipe.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().expect("log").push(line);
        }
    });
    Serve { child, addr, log }
}

/// Minimal HTTP/1.1 client: returns (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nx-runbook-api-key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp[9..12].parse().expect("status");
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn job(addr: &str, id: &str) -> serde_json::Value {
    let (code, body) = http(addr, "GET", &format!("/api/jobs/{id}"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The environment of process `pid`, as `NAME=value` strings.
fn environ_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("environ")
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn runbook_runs_with_glibcs_mmap_threshold_held_unless_the_operator_set_tunables() {
    let ws = Workspace::new(crate::helpers::files_config());
    // An empty value counts as the operator's: it is kept, and runbook runs once.
    let mut s = serve_with(&ws, &[("GLIBC_TUNABLES", "")]);
    let env = environ_of(s.child.id());
    assert_eq!(http(&s.addr, "GET", "/healthz", None).0, 200);
    assert!(env.contains(&"GLIBC_TUNABLES=".to_string()), "{env:?}");
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Unset: the process the test started (the same pid after runbook re-executes itself)
    // serves with the threshold held, so that glibc does not raise it (main.rs).
    let mut s = serve(&ws);
    let env = environ_of(s.child.id());
    assert_eq!(http(&s.addr, "GET", "/healthz", None).0, 200);
    assert!(
        env.contains(&"GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072".to_string()),
        "{env:?}"
    );
    let _ = s.child.kill();
    let _ = s.child.wait();

    // The operator's own tunables stand as they are.
    let mut s = serve_with(&ws, &[("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")]);
    let env = environ_of(s.child.id());
    assert!(
        env.contains(&"GLIBC_TUNABLES=glibc.malloc.arena_max=2".to_string()),
        "{env:?}"
    );
    let _ = s.child.kill();
    let _ = s.child.wait();
}

/// SIGTERM to `child`, a process this test started, by its pid (kill(2)).
fn terminate(child: &Child) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child's pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill(2)");
}

/// A SIGTERM the moment serve says it listens (systemd stopping a service that has just
/// started) still stops it cleanly: the handler is in place before the listener.
#[test]
fn sigterm_the_moment_serve_listens_still_exits_zero() {
    let ws = Workspace::new(crate::helpers::files_config());
    for _ in 0..5 {
        let mut s = serve(&ws);
        terminate(&s.child);
        let status = s.child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "{status}");
    }
}

#[test]
fn sigterm_stops_serve_with_exit_zero() {
    let ws = Workspace::new(crate::helpers::files_config());
    let mut s = serve(&ws);
    assert_eq!(http(&s.addr, "GET", "/healthz", None).0, 200);
    terminate(&s.child);
    let status = s.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(200));
    let log = s.log.lock().expect("log").clone();
    let request = log
        .iter()
        .find(|l| l.contains("\"route\":\"/healthz\""))
        .expect("one JSON line per request");
    let v: serde_json::Value = serde_json::from_str(request).expect("JSON line");
    for field in [
        "ts",
        "level",
        "route",
        "method",
        "status",
        "ms",
        "request_id",
    ] {
        assert!(v.get(field).is_some(), "{field} missing in {request}");
    }
    assert!(
        log.iter().all(|l| !l.contains(KEY)),
        "the API key never appears in the log"
    );
}

#[test]
fn oversized_body_is_refused() {
    let ws = Workspace::new(crate::helpers::files_config());
    let mut s = serve(&ws);
    let big = format!(
        "{{\"target\":\"files\",\"reason\":\"{}\"}}",
        "x".repeat(200_000)
    );
    let (code, _) = http(&s.addr, "POST", "/api/backups/run", Some(&big));
    assert_eq!(code, 413);
    s.child.kill().expect("stop");
    s.child.wait().expect("wait");
}

#[test]
fn job_killed_mid_run_is_interrupted_and_retried_after_restart() {
    let ws = Workspace::new(crate::helpers::files_config());
    std::fs::create_dir_all(ws.path("src")).expect("mkdir");
    std::fs::write(ws.path("src/big.bin"), noise(300 << 20, 21)).expect("write");
    let mut s = serve(&ws);
    let (code, body) = http(
        &s.addr,
        "POST",
        "/api/backups/run",
        Some(r#"{"target":"files","reason":"crash-test"}"#),
    );
    assert_eq!(code, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = v["job_id"].as_str().expect("id").to_string();
    let data = ws.repo("files").join("data");
    wait_for("the backup to be writing", 120, || {
        job(&s.addr, &id)["state"] == "running"
            && std::fs::read_dir(&data)
                .map(|d| d.count() > 0)
                .unwrap_or(false)
    });
    s.child.kill().expect("kill -9");
    s.child.wait().expect("wait");

    let mut s = serve(&ws);
    wait_for("the retried job to finish", 240, || {
        let j = job(&s.addr, &id);
        j["state"] != "running" && j["state"] != "queued"
    });
    let j = job(&s.addr, &id);
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(j["attempts"], 2);
    s.child.kill().expect("stop");
    s.child.wait().expect("wait");
    assert_eq!(
        ws.snapshot_ids("files").len(),
        1,
        "one snapshot: no partial one from the killed run"
    );
    ws.run(&["check", "files"]).ok();
    let log = ws.run(&["oplog", "--json"]).ok();
    assert!(log.stdout.contains("job.retry"), "{}", log.stdout);
}

#[test]
fn serve_logs_source_files_left_out_of_a_snapshot() {
    let ws = Workspace::new(
        "[targets.files]\nkind = \"files\"\npaths = [\"src\", \"/proc/self/mem\"]\n",
    );
    std::fs::create_dir_all(ws.path("src")).expect("mkdir");
    std::fs::write(ws.path("src/a.txt"), b"a").expect("write");
    let mut s = serve(&ws);
    let (code, body) = http(
        &s.addr,
        "POST",
        "/api/backups/run",
        Some(r#"{"target":"files"}"#),
    );
    assert_eq!(code, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = v["job_id"].as_str().expect("id").to_string();
    wait_for("the backup", 60, || {
        job(&s.addr, &id)["state"] == "succeeded"
    });
    wait_for("the warning in the log", 10, || {
        s.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains("left out of the snapshot") && l.starts_with('{'))
    });
    s.child.kill().expect("stop");
    s.child.wait().expect("wait");
}

/// A 500's log line carries the request id the client sent, so an operator can find it.
#[test]
fn a_500_is_logged_with_its_request_id() {
    let ws = Workspace::new(&crate::helpers::sqlite_config("app.db"));
    crate::helpers::make_db(&ws.path("app.db"), 5);
    let mut s = serve(&ws);
    // The state store loses a table under the running server.
    let conn = rusqlite::Connection::open(ws.path("runbook-data/state.db")).expect("state");
    conn.execute_batch("DROP TABLE jobs").expect("drop");
    drop(conn);
    let mut tcp = TcpStream::connect(&s.addr).expect("connect");
    write!(
        tcp,
        "GET /api/jobs HTTP/1.1\r\nHost: {}\r\nx-runbook-api-key: {KEY}\r\nX-Request-Id: trace-me-500\r\nConnection: close\r\n\r\n",
        s.addr
    )
    .expect("send");
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
    assert!(
        !resp.contains("no such table"),
        "the cause stays in the log: {resp}"
    );
    wait_for("the error in the log", 10, || {
        s.log.lock().expect("log").iter().any(|l| {
            l.contains("internal error")
                && l.contains("no such table")
                && l.contains("trace-me-500")
        })
    });
    s.child.kill().expect("stop");
    let _ = s.child.wait();
}

/// `/metrics` is read by Prometheus's own linter (`promtool check metrics`, Debian's
/// `prometheus`) without a complaint, after a backup, a failed job and a rate-limited request.
#[test]
fn promtool_accepts_the_metrics() {
    let ws = Workspace::new(&crate::helpers::sqlite_config("app.db"));
    crate::helpers::make_db(&ws.path("app.db"), 5);
    let mut s = serve(&ws);
    let (code, body) = http(
        &s.addr,
        "POST",
        "/api/backups/run",
        Some("{\"target\":\"db\"}"),
    );
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for("the backup", 60, || {
        job(&s.addr, &id)["state"] == "succeeded"
    });
    let (code, metrics) = http(&s.addr, "GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("runbook_backup_duration_seconds_bucket"),
        "{metrics}"
    );
    let (ok, said) = promtool(&metrics);
    assert!(ok, "promtool: {said}\n{metrics}");
    // The linter does catch a bad exposition: the same counters without their HELP text.
    let broken: String = metrics
        .lines()
        .filter(|l| !l.starts_with("# HELP runbook_jobs_total"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!promtool(&broken).0);
    s.child.kill().expect("stop");
    let _ = s.child.wait();
}

/// `promtool check metrics` on `exposition`: whether it passed, and what it said.
fn promtool(exposition: &str) -> (bool, String) {
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (the README test command installs it)");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("feed");
    let out = lint.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Runs schemathesis (PyPI) against the live server with `schema` (a URL or a file), bounded.
fn schemathesis(ws: &Workspace, addr: &str, schema: &str) -> std::process::Output {
    std::process::Command::new("st")
        // Its cache (`.schemathesis/`) goes into the test's own directory.
        .current_dir(ws.path(""))
        .args(["run", schema, "--url", &format!("http://{addr}")])
        .args(["-H", &format!("x-runbook-api-key: {KEY}")])
        // Restore bodies are valid or not by the target's kind (`into` for databases, `to`
        // otherwise): a 400 there is the documented answer, not a rejected valid request.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "15", "--seed", "1", "--no-color"])
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis is installed (the README test command installs it)")
}

/// schemathesis holds the server to its OpenAPI document: every answer's status, content type
/// and body conform, no request makes a 500. And it does catch a server that breaks its
/// document: the same run against a document that promises something else fails.
#[test]
fn the_server_keeps_to_its_openapi_document() {
    let ws = Workspace::new(&crate::helpers::sqlite_config("app.db"));
    crate::helpers::make_db(&ws.path("app.db"), 5);
    let mut s = serve(&ws);
    let doc = format!("http://{}/api/openapi.json", s.addr);
    let run = schemathesis(&ws, &s.addr, &doc);
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let (_, text) = http(&s.addr, "GET", "/api/openapi.json", None);
    // The document is generated from the handlers' types; `runbook openapi` prints the same.
    let printed = ws.run(&["openapi"]).ok();
    assert_eq!(printed.stdout.trim_end(), text.trim_end());
    // A generated type that lies (a target's `stale` is a boolean) is caught.
    let mut wrong: serde_json::Value = serde_json::from_str(&text).expect("json");
    let stale = &mut wrong["components"]["schemas"]["TargetView"]["properties"]["stale"];
    assert_eq!(stale["type"], "boolean", "{stale}");
    *stale = serde_json::json!({"type": "string"});
    let file = ws.path("wrong-openapi.json");
    std::fs::write(&file, wrong.to_string()).expect("write");
    let caught = schemathesis(&ws, &s.addr, file.to_str().expect("utf8"));
    assert!(!caught.status.success(), "a broken promise is caught");
    s.child.kill().expect("stop");
    let _ = s.child.wait();
}
