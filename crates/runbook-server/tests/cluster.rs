//! Several instances on one PostgreSQL state store: each job runs once, one leader at a time
//! with a fail-over bounded by the lease, and a dead instance's job re-queued once. Three
//! instances run in this process, each with its own connection pool, its own id, and the
//! clock the test drives.

mod common;

use std::sync::Arc;

use common::{DAY0, make_db};
use runbook_backup::Engine;
use runbook_config::Config;
use runbook_server::{
    AppState, Clock, ManualClock, Settings,
    cluster::{self, LEASE_MS, RENEW_MS},
    worker,
};
use runbook_store::{JobKind, JobState, NewJob, Store};
use runbook_testkit::PgDb;

struct Cluster {
    _dir: tempfile::TempDir,
    _db: PgDb,
    clock: ManualClock,
    nodes: Vec<AppState>,
}

/// `n` instances on one fresh PostgreSQL database, ten sqlite targets `t0`…`t9`.
async fn cluster(tag: &str, n: usize) -> Cluster {
    cluster_with(tag, n, || Settings {
        verify_days: 0,
        ..Settings::default()
    })
    .await
}

/// An instance's HTTP API on a free port (API only: the test drives the rest).
struct Served {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start(state: &AppState) -> Self {
        let server = runbook_server::Server::bind(state.clone())
            .await
            .expect("bind")
            .api_only();
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            handle,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.handle.await;
    }
}

/// Every instance's API, and an operator key.
async fn serve_all(c: &Cluster) -> (String, Vec<Served>) {
    let key = c.nodes[0]
        .store
        .create_key("op", runbook_store::Role::Operator, DAY0)
        .await
        .expect("key")
        .secret;
    let mut served = Vec::new();
    for n in &c.nodes {
        served.push(Served::start(n).await);
    }
    (key, served)
}

async fn cluster_with(tag: &str, n: usize, settings: impl Fn() -> Settings) -> Cluster {
    let db = PgDb::create(tag);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut config = format!(
        "[state]\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n\n",
        db.0
    );
    for i in 0..10 {
        make_db(&root.join(format!("t{i}.db")), 3);
        config.push_str(&format!(
            "[targets.t{i}]\nkind = \"sqlite\"\npath = \"t{i}.db\"\n\n"
        ));
    }
    std::fs::write(root.join("runbook.toml"), config).expect("config");
    std::fs::create_dir_all(root.join("runbook-data")).expect("data");
    std::fs::write(root.join("runbook-data/repo.key"), "pw\n").expect("key");
    let config = Config::load(&root.join("runbook.toml")).expect("config");
    let clock = ManualClock::at(DAY0);
    let mut nodes = Vec::new();
    for _ in 0..n {
        let store = Store::open(&config.state_url).await.expect("store");
        let mut settings = settings();
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        nodes.push(
            AppState::new(
                Engine::new(config.clone()),
                store,
                settings,
                Arc::new(clock.clone()),
            )
            .await
            .expect("state"),
        );
    }
    Cluster {
        _dir: dir,
        _db: db,
        clock,
        nodes,
    }
}

fn leaders(c: &Cluster) -> Vec<String> {
    c.nodes
        .iter()
        .filter(|n| n.instance.is_leader())
        .map(|n| n.instance.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_jobs_on_three_instances_each_run_exactly_once() {
    let c = cluster("cluster_jobs", 3).await;
    for i in 0..200 {
        c.nodes[0]
            .store
            .enqueue(
                NewJob {
                    kind: JobKind::Verify,
                    target: format!("t{}", i % 10),
                    params: serde_json::json!({ "n": 1, "of": 30 }),
                    requested_by: "test".into(),
                },
                DAY0,
            )
            .await
            .expect("enqueue");
    }
    // The three workers race for the queue.
    let mut handles = Vec::new();
    for node in &c.nodes {
        let node = node.clone();
        handles.push(tokio::spawn(async move {
            let mut ran = Vec::new();
            let mut idle = 0;
            while idle < 3 {
                match worker::try_execute_next(&node).await.expect("step") {
                    worker::Outcome::Ran(job) => {
                        idle = 0;
                        ran.push(job.id.clone());
                    }
                    worker::Outcome::Idle => {
                        idle += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                }
            }
            ran
        }));
    }
    let mut all = Vec::new();
    let mut per_node = Vec::new();
    for h in handles {
        let ran = h.await.expect("worker");
        per_node.push(ran.len());
        all.extend(ran);
    }
    let before = all.len();
    all.sort();
    all.dedup();
    assert_eq!(before, 200, "200 runs in all: {per_node:?}");
    assert_eq!(all.len(), 200, "no job ran twice");
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "the work was shared: {per_node:?}"
    );
    let jobs = c.nodes[1].store.jobs(None, 1000).await.expect("jobs");
    assert_eq!(jobs.len(), 200);
    assert!(
        jobs.iter()
            .all(|j| j.state == JobState::Succeeded && j.attempts == 1),
        "every job succeeded at its first attempt"
    );
    // One ops-log chain, every finish in it once, written by three instances.
    let chain = c.nodes[2].store.verify_oplog().await.expect("read");
    assert!(chain.is_ok(), "one intact chain: {chain:?}");
    let log = c.nodes[0].store.oplog(1000).await.expect("log");
    assert_eq!(
        log.iter().filter(|e| e.action == "verify.finished").count(),
        200,
        "every finish in the log once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_dead_leader_is_replaced_within_the_lease() {
    let c = cluster("cluster_leader", 3).await;
    for n in &c.nodes {
        cluster::step(n).await.expect("step");
    }
    let first = leaders(&c);
    assert_eq!(first.len(), 1, "exactly one leader: {first:?}");
    // Renewals keep it.
    for _ in 0..5 {
        c.clock.advance(RENEW_MS);
        for n in &c.nodes {
            cluster::step(n).await.expect("step");
        }
        assert_eq!(leaders(&c), first, "the same leader while it renews");
    }
    let view = cluster::view(&c.nodes[2]).await.expect("view");
    assert_eq!(view.leader.as_deref(), Some(first[0].as_str()));
    assert_eq!(view.instances.len(), 3);

    // The leader dies (no more renewals). Within the lease nobody takes over; right after
    // it, the next step of a survivor does.
    let dead = c
        .nodes
        .iter()
        .position(|n| n.instance.is_leader())
        .expect("leader");
    let survivors: Vec<&AppState> = c
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != dead)
        .map(|(_, n)| n)
        .collect();
    c.clock.advance(LEASE_MS - RENEW_MS);
    for n in &survivors {
        assert!(
            !cluster::step(n).await.expect("step"),
            "the lease still holds"
        );
    }
    c.clock.advance(RENEW_MS + 1);
    let mut took = 0;
    for n in &survivors {
        if cluster::step(n).await.expect("step") {
            took += 1;
        }
    }
    assert_eq!(took, 1, "exactly one survivor took over");
    let new_leader = survivors
        .iter()
        .find(|n| n.instance.is_leader())
        .expect("a leader")
        .instance
        .id
        .clone();
    assert_ne!(new_leader, first[0]);
    assert_eq!(
        cluster::view(&c.nodes[dead]).await.expect("view").leader,
        Some(new_leader),
        "every instance sees the new leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instances_job_is_retried_once_after_its_lease_and_not_before() {
    let c = cluster("cluster_lease", 2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    a.store
        .enqueue(
            NewJob {
                kind: JobKind::Verify,
                target: "t1".into(),
                params: serde_json::json!({ "n": 1, "of": 30 }),
                requested_by: "test".into(),
            },
            DAY0,
        )
        .await
        .expect("enqueue");
    // A claims it and dies before finishing.
    let job = a
        .store
        .claim_leased(DAY0, &a.instance.id, DAY0 + LEASE_MS)
        .await
        .expect("claim")
        .expect("a job");
    // B restarts meanwhile, and steps: the job's lease holds, so it is A's.
    cluster::step(b).await.expect("step");
    assert!(matches!(
        worker::try_execute_next(b).await.expect("step"),
        worker::Outcome::Idle
    ));
    assert_eq!(
        b.store.job(&job.id).await.expect("job").state,
        JobState::Running
    );
    // A's lease runs out: B re-queues the job once and runs it.
    c.clock.set(DAY0 + LEASE_MS + 1);
    cluster::step(b).await.expect("step");
    let worker::Outcome::Ran(done) = worker::try_execute_next(b).await.expect("step") else {
        panic!("the job was re-queued");
    };
    assert_eq!(done.id, job.id);
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempts, 2);
    let log = b.store.oplog(100).await.expect("log");
    assert!(
        log.iter()
            .any(|e| e.action == "job.retry" && e.outcome == "interrupted"),
        "the retry is in the ops log"
    );
}

/// With `RUNBOOK_REDIS_URL`, two instances share one count per client; with Redis gone, each
/// counts on its own (requests still served) and `/api/health` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_shared_through_redis_and_redis_down_is_stated() {
    use reqwest::{Method, StatusCode};
    let prefix = format!("rbt-{}", runbook_store::random_token(6));
    let settings = |url: &str| Settings {
        rate_limit_max: 3,
        rate_limit_window: std::time::Duration::from_secs(60),
        redis_url: Some(url.to_string().into()),
        redis_prefix: prefix.clone(),
        ..Settings::default()
    };
    let a = common::spawn(settings("redis://127.0.0.1:6379/"), false).await;
    let b = common::spawn(settings("redis://127.0.0.1:6379/"), false).await;
    let get = |app: &common::App| {
        let key = app.keys.readonly.clone();
        let url = app.url("/api/targets");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-runbook-api-key", key)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    // The health check first (a request: it counts too).
    let health = a
        .call(Method::GET, "/api/health", Some(&a.keys.readonly), None)
        .await
        .text()
        .await
        .expect("body");
    assert!(health.contains("shared by every instance"), "{health}");
    // 3 allowed in all, whichever instance answers: the health check, then two more.
    assert_eq!(get(&b).await, StatusCode::OK);
    assert_eq!(get(&a).await, StatusCode::OK);
    assert_eq!(
        get(&b).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the fourth, on the other instance"
    );
    assert_eq!(get(&a).await, StatusCode::TOO_MANY_REQUESTS);

    // Redis unreachable: served, counted per instance, and health warns.
    let c = common::spawn(settings("redis://127.0.0.1:1/"), false).await;
    let health: serde_json::Value = c
        .call(Method::GET, "/api/health", Some(&c.keys.readonly), None)
        .await
        .json()
        .await
        .expect("json");
    let redis = health["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|x| x["name"] == "redis")
        .expect("a redis check")
        .clone();
    assert_eq!(redis["status"], "warn", "{redis}");
    assert!(
        redis["message"]
            .as_str()
            .expect("message")
            .contains("per instance"),
        "{redis}"
    );
    for _ in 0..2 {
        assert_eq!(get(&c).await, StatusCode::OK);
    }
    assert_eq!(
        get(&c).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the local count still limits"
    );
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// A backup one instance finishes shows in `GET /api/backups` on another at once, though the
/// other had the (empty) list cached moments before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_by_one_instance_is_listed_by_another_at_once() {
    let c = cluster("cluster_cache", 2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    assert!(cluster::step(a).await.expect("step"), "a leads");
    assert!(!cluster::step(b).await.expect("step"));
    let key = b
        .store
        .create_key("r", runbook_store::Role::Readonly, DAY0)
        .await
        .expect("key")
        .secret;
    let served = Served::start(b).await;
    let addr = served.addr;
    let list = || async {
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("http://{addr}/api/backups?target=t3"))
            .header("x-runbook-api-key", &key)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        v.as_array().map_or(0, Vec::len)
    };
    assert_eq!(list().await, 0, "nothing yet, and now cached on b");
    a.store
        .enqueue(
            NewJob {
                kind: JobKind::Backup,
                target: "t3".into(),
                params: serde_json::json!({ "reason": "test" }),
                requested_by: "test".into(),
            },
            DAY0,
        )
        .await
        .expect("enqueue");
    let worker::Outcome::Ran(job) = worker::try_execute_next(a).await.expect("step") else {
        panic!("a job was queued");
    };
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(
        list().await,
        1,
        "b lists a's backup without waiting for its cache"
    );
    // b's metrics: two instances, and b does not lead (a stepped first).
    let metrics = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header("x-runbook-api-key", &key)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("runbook_cluster_instances 2"), "{metrics}");
    assert!(metrics.contains("runbook_cluster_leader 0"), "{metrics}");
    served.stop().await;
}

/// A simulated day on three instances: whoever leads runs the scheduler; each hourly slot
/// queues one backup per target, also across a leader's death (the missed slot once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_once_per_slot_for_a_day_across_a_leader_change() {
    let c = cluster("cluster_day", 3).await;
    // The config's targets have no schedule; give the scheduler one through a fresh config.
    let dir = c.nodes[0]
        .engine
        .config()
        .file
        .parent()
        .expect("dir")
        .to_path_buf();
    let mut text = std::fs::read_to_string(dir.join("runbook.toml")).expect("config");
    text = text.replace(
        "path = \"t0.db\"\n",
        "path = \"t0.db\"\nschedule = \"hourly\"\n",
    );
    text = text.replace(
        "path = \"t1.db\"\n",
        "path = \"t1.db\"\nschedule = \"hourly\"\n",
    );
    std::fs::write(dir.join("runbook.toml"), text).expect("config");
    let config = Config::load(&dir.join("runbook.toml")).expect("config");
    let mut nodes = Vec::new();
    for n in &c.nodes {
        nodes.push(
            AppState::new(
                Engine::new(config.clone()),
                n.store.clone(),
                Settings {
                    verify_days: 0,
                    ..Settings::default()
                },
                Arc::new(c.clock.clone()),
            )
            .await
            .expect("state"),
        );
    }
    let mut alive = [true, true, true];
    let mut dead_leader = None;
    // Every 5 minutes for a day (and a minute more).
    for step in 0..=(24 * 12) {
        c.clock.set(DAY0 + step * 300_000 + 60_000);
        if step == 107 {
            // The leader dies at 08:56, just before the 09:00 slot.
            let i = nodes
                .iter()
                .position(|n| n.instance.is_leader())
                .expect("a leader");
            alive[i] = false;
            dead_leader = Some(i);
        }
        for (i, n) in nodes.iter().enumerate() {
            if alive[i] && cluster::step(n).await.expect("step") {
                runbook_server::scheduler::tick(n).await.expect("tick");
            }
        }
        let leading = nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| alive[*i] && n.instance.is_leader())
            .count();
        assert!(leading <= 1, "never two leaders (step {step})");
        // The queued jobs are done (the worker's part is tested above): a slot whose job is
        // still waiting adds none, so each slot must be seen on its own.
        while let Some(job) = nodes[0]
            .store
            .claim_next(c.clock.now_ms())
            .await
            .expect("claim")
        {
            nodes[0]
                .store
                .finish(&job.id, JobState::Succeeded, None, None, c.clock.now_ms())
                .await
                .expect("finish");
        }
    }
    assert!(dead_leader.is_some());
    let jobs = nodes[0].store.jobs(None, 1000).await.expect("jobs");
    for t in ["t0", "t1"] {
        let n = jobs
            .iter()
            .filter(|j| j.target == t && j.kind == JobKind::Backup)
            .count();
        // The first sight of a schedule (00:01) only starts counting; then one job per
        // hourly slot, 01:00 to 24:00 — the 09:00 slot by the new leader, once.
        assert_eq!(n, 24, "{t}: one job per slot, none lost or doubled");
    }
}

/// Instances started at the same moment on a fresh database: one migrates, the others wait
/// for it; all open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_migrate_once() {
    let db = PgDb::create("cluster_migrate");
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Store::open(&url).await.map(|_| ()) })
        })
        .collect();
    for h in handles {
        h.await
            .expect("task")
            .expect("every instance opens the store");
    }
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An inbound event accepted by one instance is a replay to every other: the ids seen are in
/// the shared state store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_id_seen_by_one_instance_is_refused_by_another() {
    use reqwest::StatusCode;
    let c = cluster_with("cluster_replay", 3, || Settings {
        rate_limit_enabled: false,
        webhook_secret: Some(SECRET.to_string().into()),
        ..Settings::default()
    })
    .await;
    let (key, served) = serve_all(&c).await;
    let body = r#"{"type":"deploy","subject":"api","message":"v2 to production"}"#;
    let ts = DAY0 / 1000;
    let send = |to: &Served, id: &str| {
        let sig = runbook_server::notify::sign(SECRET, id, ts, body).expect("sign");
        let req = reqwest::Client::new()
            .post(to.url("/api/events"))
            .header("x-runbook-api-key", &key)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body);
        async move { req.send().await.expect("send").status() }
    };
    assert_eq!(send(&served[0], "msg_a").await, StatusCode::ACCEPTED);
    assert_eq!(
        send(&served[1], "msg_a").await,
        StatusCode::CONFLICT,
        "replayed on b"
    );
    assert_eq!(
        send(&served[2], "msg_a").await,
        StatusCode::CONFLICT,
        "replayed on c"
    );
    assert_eq!(
        send(&served[2], "msg_b").await,
        StatusCode::ACCEPTED,
        "a new id"
    );
    for s in served {
        s.stop().await;
    }
}

/// 300 mutations at once, spread over three instances: 300 entries in one verified chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mutations_on_three_instances_leave_one_chain() {
    use reqwest::StatusCode;
    let c = cluster_with("cluster_chain", 3, || Settings {
        rate_limit_enabled: false,
        ..Settings::default()
    })
    .await;
    let (key, served) = serve_all(&c).await;
    let client = reqwest::Client::new();
    let mut requests = Vec::new();
    for i in 0..300 {
        let req = client
            .post(served[i % 3].url("/api/backups/run"))
            .header("x-runbook-api-key", &key)
            .header("content-type", "application/json")
            .body(format!(r#"{{"target":"t{}","reason":"chain"}}"#, i % 10));
        requests.push(tokio::spawn(async move {
            req.send().await.expect("send").status()
        }));
    }
    for r in requests {
        assert_eq!(r.await.expect("task"), StatusCode::ACCEPTED);
    }
    let log = c.nodes[1].store.oplog(10_000).await.expect("log");
    assert_eq!(
        log.iter().filter(|e| e.action == "backup.run").count(),
        300,
        "every mutation in the log once"
    );
    let chain = c.nodes[2].store.verify_oplog().await.expect("read");
    assert!(chain.is_ok(), "one intact chain: {chain:?}");
    for s in served {
        s.stop().await;
    }
}

/// Measurement, not a check (`bench/cluster.sh` runs it): trivial jobs claimed and finished
/// per second through the state store by 1, 2 and 3 instances, each with its own pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: bench/cluster.sh"]
async fn job_throughput() {
    const JOBS: usize = 2000;
    for n in 1..=3 {
        let db = PgDb::create(&format!("cluster_bench{n}"));
        let url = format!("postgres://postgres@127.0.0.1:5432/{}", db.0);
        let first = Store::open(&url).await.expect("store");
        for i in 0..JOBS {
            first
                .enqueue(
                    NewJob {
                        kind: JobKind::Verify,
                        target: format!("t{}", i % 50),
                        params: serde_json::json!({}),
                        requested_by: "bench".into(),
                    },
                    DAY0,
                )
                .await
                .expect("enqueue");
        }
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for k in 0..n {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let store = Store::open(&url).await.expect("store");
                let me = format!("bench-{k}");
                let mut done = 0_usize;
                while let Some(job) = store
                    .claim_leased(DAY0, &me, DAY0 + LEASE_MS)
                    .await
                    .expect("claim")
                {
                    store
                        .finish(&job.id, JobState::Succeeded, None, None, DAY0)
                        .await
                        .expect("finish");
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(total, JOBS);
        #[allow(clippy::cast_precision_loss)]
        let rate = JOBS as f64 / secs;
        println!("| {n} | {JOBS} | {secs:.2} | {rate:.0} |");
    }
}
