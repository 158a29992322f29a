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
