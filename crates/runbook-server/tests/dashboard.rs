//! The dashboard in a real browser: Debian's headless Chromium through chromedriver, against
//! the real server with its worker running, a real SQLite target and repository.

mod common;

use common::{webdriver::Browser, *};
use reqwest::StatusCode;

const FAILING_DRILL: &str = "[targets.app-db.drill]\n[[targets.app-db.drill.checks]]\nsql = \"select count(*) > 1000 from items\"\n";

async fn sign_in(b: &Browser, app: &App, key: &str) {
    b.go(&app.url("/login")).await;
    b.type_into("#key", key).await;
    b.click("#sign-in").await;
    assert!(
        b.wait_for("table.targets", 10).await,
        "signed in: {}",
        b.url().await
    );
}

async fn sign_out(b: &Browser, app: &App) {
    b.click("#sign-out").await;
    assert!(b.wait_for("#sign-in", 10).await, "signed out");
    b.go(&app.url("/")).await;
    assert!(
        b.wait_for("#sign-in", 10).await,
        "the session is over: / asks to sign in again"
    );
}

/// Where the README's screenshots come from: `RUNBOOK_UPDATE_SCREENSHOTS=1` writes them into
/// `docs/screenshots/`, otherwise they go to the test's temporary directory.
fn shot(app: &App, name: &str) -> std::path::PathBuf {
    if std::env::var("RUNBOOK_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../docs/screenshots/{name}.png"))
    } else {
        app.root.join(format!("{name}.png"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_its_actions_a_backup_ends_in_the_list_and_a_failed_drill_is_critical() {
    let app = spawn_with(no_limit(), true, FAILING_DRILL).await;
    let b = Browser::start().await;

    // Not signed in: the sign-in form, with the strict policy.
    let r = reqwest::get(app.url("/")).await.expect("get");
    assert!(r.url().path().ends_with("/login"), "{}", r.url());
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    // readonly: sees, may not act.
    sign_in(&b, &app, &app.keys.readonly).await;
    b.go(&app.url("/targets/app-db")).await;
    b.find("#snapshots-h").await;
    for action in ["#backup-now", "#run-drill", "#restore"] {
        assert!(!b.exists(action).await, "readonly sees no {action}");
    }
    let session = b
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "runbook_session")
        .expect("cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert_eq!(
        b.script("return document.cookie + '|' + window.localStorage.length")
            .await,
        "|0",
        "the key is nowhere the page's script can read"
    );
    sign_out(&b, &app).await;

    // operator: back up now and run a drill; no restore.
    sign_in(&b, &app, &app.keys.operator).await;
    b.go(&app.url("/targets/app-db")).await;
    assert!(b.exists("#backup-now").await && b.exists("#run-drill").await);
    assert!(!b.exists("#restore").await, "operator may not restore");
    b.click("#backup-now").await;
    assert!(b.wait_for("[data-job]", 10).await, "the job page");
    assert!(
        b.wait_for("[data-state='succeeded']", 60).await,
        "the page follows the job to its end: {}",
        b.text("[data-job]").await
    );
    b.click("#to-target").await;
    b.find("table.snapshots tbody tr").await;
    assert_eq!(
        b.all("table.snapshots tbody tr").await.len(),
        1,
        "the new snapshot is listed"
    );
    assert!(
        b.text("table.snapshots").await.contains("dashboard"),
        "its reason"
    );
    b.screenshot(&shot(&app, "target")).await;

    // The drill fails its check: the target turns critical, the check named.
    b.click("#run-drill").await;
    assert!(
        b.wait_for("[data-state='failed']", 60).await,
        "{}",
        b.text("[data-job]").await
    );
    b.go(&app.url("/")).await;
    let row = b.text("tr[data-target='app-db']").await;
    assert!(row.contains("critical"), "{row}");
    assert!(
        row.contains("select count(*) > 1000 from items"),
        "the failed check is named: {row}"
    );
    b.screenshot(&shot(&app, "overview")).await;

    // The lists: jobs, the ops log (verified, filterable), the monitor.
    b.click("nav.main a[href='/jobs']").await;
    assert!(b.wait_for("table.jobs", 10).await);
    assert_eq!(
        b.all("table.jobs tbody tr").await.len(),
        2,
        "the backup and the drill"
    );
    b.click("nav.main a[href='/oplog']").await;
    assert!(b.wait_for("table.oplog", 10).await);
    assert!(b.text("main").await.contains("hash chain intact"));
    let all = b.all("table.oplog tbody tr").await.len();
    b.type_into("#q", "drill.run").await;
    b.click("form.filter button").await;
    for _ in 0..100 {
        if b.url().await.contains("q=drill.run") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(b.wait_for("table.oplog", 10).await);
    let rows = b.all("table.oplog tbody tr").await.len();
    assert!(rows >= 1 && rows < all, "filtered: {rows} of {all}");
    assert!(b.text("table.oplog tbody").await.contains("drill.run"));
    b.click("nav.main a[href='/monitor']").await;
    assert!(b.wait_for("table.alerts", 10).await);
    assert!(b.text("table.alerts").await.contains("drill.failed"));

    // A forged POST with the session cookie but without (or with a wrong) CSRF token.
    let cookie = b
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "runbook_session")
        .expect("cookie");
    let jar = format!(
        "runbook_session={}",
        cookie["value"].as_str().expect("value")
    );
    let before = app
        .state
        .store
        .jobs(Some("app-db"), 100)
        .await
        .expect("jobs")
        .len();
    for body in ["", "csrf=forged"] {
        let r = reqwest::Client::new()
            .post(app.url("/targets/app-db/backup"))
            .header("cookie", &jar)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "forged {body:?}");
    }
    assert_eq!(
        app.state
            .store
            .jobs(Some("app-db"), 100)
            .await
            .expect("jobs")
            .len(),
        before,
        "nothing queued"
    );
    sign_out(&b, &app).await;

    // owner: restore is offered, with what it replaces.
    sign_in(&b, &app, &app.keys.owner).await;
    b.go(&app.url("/targets/app-db")).await;
    assert!(b.exists("#backup-now").await && b.exists("#run-drill").await);
    b.click("#restore").await;
    let warning = b.text("details.restore").await;
    assert!(
        warning.contains("app.db") && warning.contains("pre-restore snapshot"),
        "{warning}"
    );

    let errors: Vec<_> = b
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_the_dashboard_needs_a_session() {
    let app = spawn(no_limit(), false).await;
    let r = reqwest::Client::new()
        .post(app.url("/login"))
        .form(&[("key", "rbk_not-a-key")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/targets/app-db"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");
    app.stop().await;
}

/// A process's state letter and parent from `/proc/<pid>/stat` ("pid (comm) state ppid ...";
/// comm may hold spaces and parentheses, so the fields are read after the last ')').
fn state_and_parent(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.to_string();
    Some((state, fields.next()?.parse().ok()?))
}

/// Whether `pid` runs (a zombie has exited).
fn alive(pid: u32) -> bool {
    state_and_parent(pid).is_some_and(|(state, _)| state != "Z")
}

/// The running processes whose parent is `pid`.
fn live_children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            state_and_parent(child).is_some_and(|(state, parent)| state != "Z" && parent == pid)
        })
        .collect()
}

/// A browser test leaves no Chromium behind: killing chromedriver alone would leave the
/// browser it started running (reparented to init) after the suite, on CI's machine too.
#[tokio::test]
async fn a_dropped_browser_leaves_no_chromium_running() {
    let b = Browser::start().await;
    b.go("about:blank").await;
    let driver = b.driver_pid();
    let browsers = live_children(driver);
    assert!(!browsers.is_empty(), "chromedriver {driver} runs a browser");
    drop(b);
    let mut left = browsers.clone();
    for _ in 0..100 {
        left.retain(|&pid| alive(pid));
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "browser processes {left:?} (of {browsers:?}) outlived their chromedriver by 10 s"
    );
}
