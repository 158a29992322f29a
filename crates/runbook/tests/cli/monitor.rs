//! The monitor from the command line: `config check` explains a rule or condition it cannot
//! read, `runbook status` shows what is watched, `runbook notify test` sends a notice.

use std::io::BufRead;

use crate::helpers::*;

#[test]
fn config_check_explains_a_rule_or_condition_it_cannot_read() {
    let bad_rule = format!(
        "{}[probes.api]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/ready\"\n[alerts.api-down]\nwhen = \"probe.api is sad for 3m\"\n",
        sqlite_config("app.db")
    );
    Workspace::new(&bad_rule)
        .run(&["config", "check", "--offline"])
        .fails_with(&["alerts.api-down.when", "probe.NAME failing for 3m"]);
    let bad_condition = format!(
        "{}[probes.api]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/ready\"\nexpect = [\"status == 200\", \"latency < 5\"]\n",
        sqlite_config("app.db")
    );
    Workspace::new(&bad_condition)
        .run(&["config", "check", "--offline"])
        .fails_with(&["probes.api.expect[1]", "latency", "json.PATH"]);
    let unknown = format!(
        "{}[alerts.x]\nwhen = \"heartbeat.nightly down\"\n",
        sqlite_config("app.db")
    );
    Workspace::new(&unknown)
        .run(&["config", "check", "--offline"])
        .fails_with(&["alerts.x.when", "heartbeat.nightly is not configured"]);
}

#[test]
fn status_shows_heartbeats_and_probes_and_notify_test_reaches_the_receiver() {
    let config = format!(
        "{}[heartbeats.nightly]\nperiod = \"1d\"\n[probes.api]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
        sqlite_config("app.db")
    );
    let ws = Workspace::new(&config);
    make_db(&ws.path("app.db"), 3);
    let run = ws.run(&["status"]);
    assert!(run.stdout.contains("nightly"), "{}", run.stdout);
    assert!(run.stdout.contains("not checked yet"), "{}", run.stdout);
    let json = ws.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["heartbeats"][0]["status"], "new");
    assert_eq!(v["probes"][0]["status"], "pending");

    // The webhook receiver checks the signature with the standardwebhooks package.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../runbook-server/tests/helpers/webhook_receiver.py"
        ))
        .arg(dir.path())
        .arg(secret)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    let _receiver = runbook_testkit::KillOnDrop(child);
    let url = format!("http://127.0.0.1:{}/hook", line.trim());
    let sent = output(
        ws.command(&["notify", "test", "webhook"])
            .env("ALERT_WEBHOOK_URL", &url)
            .env("ALERT_WEBHOOK_SECRET", secret)
            .output()
            .expect("run"),
    )
    .ok();
    assert!(
        sent.stdout.contains("sent a test notice"),
        "{}",
        sent.stdout
    );
    let got = std::fs::read_to_string(dir.path().join("received.jsonl")).expect("received");
    let got: serde_json::Value =
        serde_json::from_str(got.lines().next().expect("one")).expect("json");
    assert_eq!(got["verified"], true, "{got}");
    assert_eq!(got["payload"]["type"], "alert.test");
    output(
        ws.command(&["notify", "test", "pager"])
            .env("ALERT_WEBHOOK_URL", &url)
            .output()
            .expect("run"),
    )
    .fails_with(&["no notifier named \"pager\"", "webhook"]);
}

/// `runbook smoke` against a real server (`runbook serve` itself): the standard endpoints
/// pass; a suite with a captured value passes; a wrong JSON field fails naming the condition;
/// the JUnit XML is read by `junitparser` (PyPI), as CI tools read it.
#[test]
fn smoke_checks_pass_fail_naming_the_condition_and_write_junit() {
    let config = format!(
        r#"{}
[smoke.release]
[[smoke.release.checks]]
name = "live"
path = "/healthz"
expect = ["status == 200", "json.status == \"live\""]
capture = {{ state = "json.status" }}
[[smoke.release.checks]]
name = "the same, through the captured value"
path = "/health/${{state}}"
[smoke.broken]
[[smoke.broken.checks]]
path = "/healthz"
expect = ["json.status == \"dead\""]
"#,
        sqlite_config("app.db")
    );
    let ws = Workspace::new(&config);
    make_db(&ws.path("app.db"), 3);
    ws.run(&["backup", "db"]).ok();
    let mut s = crate::serve::serve(&ws);
    let base = format!("http://{}", s.addr);

    let standard = ws
        .run(&[
            "smoke",
            "--base-url",
            &base,
            "--suite",
            "release",
            "--junit",
            "ok.xml",
        ])
        .ok();
    assert!(
        standard
            .stdout
            .contains("the same, through the captured value"),
        "{}",
        standard.stdout
    );
    let broken = ws.run(&[
        "smoke",
        "--base-url",
        &base,
        "--suite",
        "broken",
        "--junit",
        "bad.xml",
    ]);
    assert_eq!(broken.code, 1, "{}", broken.stdout);
    assert!(
        broken
            .stdout
            .contains("json.status == \"dead\" failed: got \"live\""),
        "{}",
        broken.stdout
    );
    let no_suite = ws.run(&["smoke", "--base-url", &base, "--suite", "nope"]);
    no_suite.fails_with(&["no suite named \"nope\"", "broken, release"]);

    // JUnit as CI reads it.
    let read = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys; from junitparser import JUnitXml\n\
             for f in sys.argv[1:]:\n\
             \x20   x = JUnitXml.fromfile(f)\n\
             \x20   cases = [c for s in x for c in s]\n\
             \x20   print(f, len(cases), sum(1 for c in cases if not c.is_passed and not c.is_skipped))",
        )
        .arg(ws.path("ok.xml"))
        .arg(ws.path("bad.xml"))
        .output()
        .expect("python3 with junitparser (the README test command installs it)");
    let said = String::from_utf8_lossy(&read.stdout).to_string();
    assert!(
        read.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[0].ends_with(" 2 0"), "{said}");
    assert!(lines[1].ends_with(" 1 1"), "{said}");

    // Two suites and none named: the seeds' standard endpoints, all of which serve has.
    let standard = ws.run(&["smoke", "--base-url", &base]).ok();
    for path in ["/healthz", "/readyz", "/health/live", "/health/ready"] {
        assert!(standard.stdout.contains(path), "{}", standard.stdout);
    }
    let log = ws.run(&["oplog", "--json"]).ok();
    assert!(log.stdout.contains("smoke.run"), "recorded in the ops log");
    s.child.kill().expect("stop");
    let _ = s.child.wait();

    // Nothing there: the standard endpoints all answer nothing, and that fails.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let none = Workspace::new(&sqlite_config("app.db"));
    let run = none.run(&[
        "smoke",
        "--base-url",
        &format!("http://127.0.0.1:{closed}"),
        "--timeout",
        "2",
    ]);
    assert_eq!(run.code, 1, "{}", run.stdout);
}

#[test]
fn secrets_are_listed_without_values_and_a_rotation_is_recorded() {
    let ws = Workspace::new(&format!(
        "{}[secrets.r2-keys]\nmax_age = \"90d\"\nnotes = \"rotate in the Cloudflare dashboard\"\n[secrets.session]\nenv = \"RUNBOOK_TEST_SESSION_SECRET\"\n",
        sqlite_config("app.db")
    ));
    let list = output(
        ws.command(&["secrets", "list", "--json"])
            .env("RUNBOOK_TEST_SESSION_SECRET", "hunter2-value")
            .output()
            .expect("run"),
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    assert_eq!(v[0]["name"], "r2-keys");
    assert_eq!(v[0]["status"], "ok");
    assert_eq!(v[1]["watching"], "env RUNBOOK_TEST_SESSION_SECRET");
    assert!(!list.stdout.contains("hunter2"), "never the value");
    ws.run(&["secrets", "rotated", "r2-keys"]).ok();
    ws.run(&["secrets", "rotated", "nope"])
        .fails_with(&["no secret named \"nope\"", "r2-keys, session"]);
    let log = ws.run(&["oplog", "--json"]).ok();
    assert!(log.stdout.contains("secret.rotated"));
    let config_bad = Workspace::new(&format!(
        "{}[secrets.x]\nenv = \"not a variable name!\"\n",
        sqlite_config("app.db")
    ));
    config_bad
        .run(&["config", "check", "--offline"])
        .fails_with(&["secrets.x.env", "never the secret"]);
}

/// The rendered runbook names each target's restore command, and that command restores.
#[test]
fn the_rendered_runbook_has_a_restore_command_that_restores() {
    let ws = Workspace::new(&format!(
        "{}[secrets.r2-keys]\nnotes = \"rotate quarterly\"\n[probes.api]\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n[alerts.api-down]\nwhen = \"probe.api failing for 3m\"\n",
        sqlite_config("app.db")
    ));
    make_db(&ws.path("app.db"), 7);
    ws.run(&["backup", "db"]).ok();
    let report = ws.run(&["report", "runbook"]).ok().stdout;
    for needle in [
        "### db",
        "keeps the last 2 snapshots",
        "`probe.api failing for 3m`",
        "r2-keys",
        "rotate quarterly",
    ] {
        assert!(report.contains(needle), "{needle:?} in:\n{report}");
    }
    let command = report
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("runbook --config") && l.contains(" restore db "))
        .expect("a restore command for db")
        .to_string();
    // The same runbook as one HTML page: headings, tables and the command, escaped.
    let html = ws
        .run(&["report", "runbook", "--format", "html"])
        .ok()
        .stdout;
    assert!(html.starts_with("<!doctype html>"), "{html}");
    for needle in ["<h3>db</h3>", "<h2>Backups</h2>", "rotate quarterly"] {
        assert!(html.contains(needle), "{needle:?} in:\n{html}");
    }
    assert!(
        html.contains(
            &command
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        ),
        "the restore command in:\n{html}"
    );
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    ws.run(&args).ok();
    let to = args[args.iter().position(|a| *a == "--to").expect("--to") + 1];
    assert_eq!(
        count(std::path::Path::new(to), "SELECT count(*) FROM items"),
        7,
        "the printed command restores"
    );
}

/// `runbook keys rotate`: a successor with the same role, the old key working until the
/// overlap ends (as the running server sees it), both recorded in the ops log.
#[test]
fn a_rotated_key_has_a_successor_and_the_old_one_works_until_the_overlap_ends() {
    let ws = Workspace::new(&sqlite_config("app.db"));
    let created = ws
        .run(&[
            "keys", "create", "--role", "operator", "--name", "deploy", "--json",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&created.stdout).expect("json");
    let (id, old) = (
        v["key"]["id"].as_str().expect("id").to_string(),
        v["secret"].as_str().expect("secret").to_string(),
    );
    let rotated = ws
        .run(&["keys", "rotate", &id, "--overlap", "1h", "--json"])
        .ok();
    let r: serde_json::Value = serde_json::from_str(&rotated.stdout).expect("json");
    let new = r["secret"].as_str().expect("secret").to_string();
    assert_ne!(new, old);
    assert_eq!(r["key"]["role"], "operator");
    let list = ws.run(&["keys", "list"]).ok();
    assert!(list.stdout.contains("active until"), "{}", list.stdout);
    // The server takes both keys during the overlap.
    let mut s = crate::serve::serve(&ws);
    for key in [&old, &new] {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&s.addr).expect("connect");
        write!(
            c,
            "GET /api/targets HTTP/1.1\r\nHost: x\r\nx-runbook-api-key: {key}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut resp = String::new();
        c.read_to_string(&mut resp).expect("read");
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "{}",
            resp.lines().next().unwrap_or("")
        );
    }
    s.child.kill().expect("stop");
    let _ = s.child.wait();
    // With no overlap, the old key stops at once.
    ws.run(&[
        "keys",
        "rotate",
        r["key"]["id"].as_str().expect("id"),
        "--overlap",
        "0",
    ])
    .ok();
    ws.run(&["keys", "rotate", "nope"]).fails_with(&["nope"]);
    let log = ws.run(&["oplog", "--json"]).ok();
    assert!(log.stdout.contains("key.rotate"));
}
