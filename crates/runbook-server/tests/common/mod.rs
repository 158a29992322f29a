//! What the server's integration tests share: the real server on a random port with a real
//! SQLite state store, a real repository and a hand-driven clock, and the webhook receiver.
//! (Each test file uses a part of it.)
#![allow(dead_code)]

pub mod webdriver;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use reqwest::{Client, Method};
use runbook_backup::Engine;
use runbook_config::Config;
use runbook_server::{AppState, ManualClock, Server, Settings};
use runbook_store::{JobState, Role, Store};

/// 2026-11-25T00:00:00Z in ms.
pub const DAY0: i64 = 1_795_564_800_000;
pub const HOUR: i64 = 3_600_000;

pub struct App {
    pub _dir: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub addr: SocketAddr,
    pub state: AppState,
    pub clock: ManualClock,
    pub keys: Keys,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct Keys {
    pub owner: String,
    pub operator: String,
    pub readonly: String,
}

pub fn make_db(path: &Path, rows: i64) {
    let conn = rusqlite::Connection::open(path).expect("db");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, v TEXT); DELETE FROM items;",
    )
    .expect("schema");
    for i in 0..rows {
        conn.execute("INSERT INTO items (v) VALUES (?1)", [format!("row {i}")])
            .expect("insert");
    }
}

pub fn count(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("db");
    conn.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("count")
}

pub async fn spawn(settings: Settings, run_background: bool) -> App {
    spawn_with(settings, run_background, "").await
}

/// `extra` is appended to the config (more tables for `app-db`).
pub async fn spawn_with(settings: Settings, run_background: bool, extra: &str) -> App {
    spawn_in(
        tempfile::tempdir().expect("tempdir"),
        settings,
        run_background,
        extra,
    )
    .await
}

/// As [`spawn_with`], in `dir` (which may already hold files the config names).
pub async fn spawn_in(
    dir: tempfile::TempDir,
    settings: Settings,
    run_background: bool,
    extra: &str,
) -> App {
    let root = dir.path().to_path_buf();
    make_db(&root.join("app.db"), 10);
    std::fs::write(
        root.join("runbook.toml"),
        format!("[targets.app-db]\nkind = \"sqlite\"\npath = \"app.db\"\nschedule = \"daily at 03 UTC\"\nkeep = {{ last = 10 }}\n{extra}"),
    )
    .expect("config");
    std::fs::create_dir_all(root.join("runbook-data")).expect("data");
    std::fs::write(root.join("runbook-data/repo.key"), "pw\n").expect("key");
    start(dir, root, settings, run_background).await
}

pub async fn start(
    dir: tempfile::TempDir,
    root: std::path::PathBuf,
    settings: Settings,
    run_background: bool,
) -> App {
    let config = Config::load(&root.join("runbook.toml")).expect("config");
    let store = Store::open(&config.state_url).await.expect("store");
    let clock = ManualClock::at(DAY0);
    let mut settings = settings;
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.shutdown_grace = Duration::from_secs(5);
    let state = AppState::new(
        Engine::new(config),
        store.clone(),
        settings,
        Arc::new(clock.clone()),
    )
    .await
    .expect("state");
    let keys = Keys {
        owner: store
            .create_key("o", Role::Owner, DAY0)
            .await
            .expect("k")
            .secret,
        operator: store
            .create_key("d", Role::Operator, DAY0)
            .await
            .expect("k")
            .secret,
        readonly: store
            .create_key("r", Role::Readonly, DAY0)
            .await
            .expect("k")
            .secret,
    };
    let server = Server::bind(state.clone()).await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = if run_background {
        Some(tokio::spawn(server.run(async move {
            let _ = rx.await;
        })))
    } else {
        // API only: tests drive the scheduler and worker steps themselves.
        Some(tokio::spawn(server.api_only().run(async move {
            let _ = rx.await;
        })))
    };
    App {
        _dir: dir,
        root,
        addr,
        state,
        clock,
        keys,
        stop: Some(tx),
        handle,
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = Client::new().request(method, self.url(path));
        if let Some(k) = key {
            req = req.header("x-runbook-api-key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    /// `POST /api/backups/run` for `app-db` with `key`.
    pub async fn run_backup(&self, key: &str) -> reqwest::Response {
        self.call(
            Method::POST,
            "/api/backups/run",
            Some(key),
            Some(serde_json::json!({"target": "app-db"})),
        )
        .await
    }

    pub async fn stop(mut self) -> (tempfile::TempDir, std::path::PathBuf) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        (self._dir, self.root)
    }

    pub async fn wait_job(&self, id: &str) -> runbook_store::Job {
        for _ in 0..600 {
            let job = self.state.store.job(id).await.expect("job");
            if !matches!(job.state, JobState::Queued | JobState::Running) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }
}

pub fn no_limit() -> Settings {
    Settings {
        rate_limit_enabled: false,
        ..Settings::default()
    }
}

/// The alert webhook receiver (`tests/helpers/webhook_receiver.py`), killed when dropped.
pub struct Receiver {
    pub _child: runbook_testkit::KillOnDrop,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Receiver {
    pub fn start(secret: &str) -> Self {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/helpers/webhook_receiver.py"
            ))
            .arg(dir.path())
            .arg(secret)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 (the README test command installs it and standardwebhooks)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the receiver printed its port, got {line:?} (is standardwebhooks installed?)")
        });
        Self {
            _child: runbook_testkit::KillOnDrop(child),
            dir,
            port,
        }
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    pub fn set_down(&self, down: bool) {
        let flag = self.dir.path().join("down");
        if down {
            std::fs::write(flag, b"").expect("flag");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }
}

/// `POST /api/backups/run` for `app-db`, then one worker step: the finished job.
pub async fn backup_job(app: &App) -> runbook_store::Job {
    app.call(
        Method::POST,
        "/api/backups/run",
        Some(&app.keys.operator),
        Some(serde_json::json!({"target": "app-db"})),
    )
    .await;
    let runbook_server::worker::Outcome::Ran(job) =
        runbook_server::worker::try_execute_next(&app.state)
            .await
            .expect("step")
    else {
        panic!("queued");
    };
    *job
}
