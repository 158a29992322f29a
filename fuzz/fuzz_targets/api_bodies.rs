//! The API's JSON request bodies: arbitrary bytes POSTed with an owner key to every endpoint
//! that takes a body, through the real router on a real SQLite state store. Any answer is fine
//! except a panic or a 500: bad input is a 4xx naming what is wrong.

#![no_main]

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode},
};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    key: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("app.db"), b"").expect("db");
        std::fs::create_dir_all(root.join("src")).expect("src");
        std::fs::write(
            root.join("runbook.toml"),
            "[targets.app-db]\nkind = \"sqlite\"\npath = \"app.db\"\n\
             [targets.docs]\nkind = \"files\"\npaths = [\"src\"]\n\
             [targets.pg]\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1:1/x\"\n",
        )
        .expect("config");
        std::fs::create_dir_all(root.join("runbook-data")).expect("data");
        std::fs::write(root.join("runbook-data/repo.key"), "pw\n").expect("key");
        let config = runbook_config::Config::load(&root.join("runbook.toml")).expect("config");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (router, key) = rt.block_on(async {
            let store = runbook_store::Store::open(&config.state_url)
                .await
                .expect("store");
            let key = store
                .create_key("fuzz", runbook_store::Role::Owner, 0)
                .await
                .expect("key")
                .secret;
            let settings = runbook_server::Settings {
                rate_limit_enabled: false,
                ..runbook_server::Settings::default()
            };
            let state = runbook_server::AppState::new(
                runbook_backup::Engine::new(config),
                store,
                settings,
                Arc::new(runbook_server::SystemClock),
            )
            .await
            .expect("state");
            (runbook_server::router(state), key)
        });
        Fixture {
            rt,
            router,
            key,
            _dir: dir,
        }
    })
}

const PATHS: [&str; 3] = ["/api/backups/run", "/api/drills/run", "/api/backups/restore"];

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let path = PATHS[usize::from(which) % PATHS.len()];
    let mut req = Request::post(path)
        .header("content-type", "application/json")
        .header("x-runbook-api-key", &f.key)
        .body(Body::from(body.to_vec()))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let status = f
        .rt
        .block_on(f.router.clone().oneshot(req))
        .expect("infallible")
        .status();
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{path} answered 500 to {:?}",
        String::from_utf8_lossy(body)
    );
});
