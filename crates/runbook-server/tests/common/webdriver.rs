//! A small W3C WebDriver client over reqwest, driving Debian's `chromedriver` and headless
//! `chromium` (installed by the README's test command).

use std::time::Duration;

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one headless Chromium session; both end when dropped.
pub struct Browser {
    driver: runbook_testkit::KillOnDrop,
    port: u16,
    /// `/session/<id>`.
    session: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    /// Ends the session before chromedriver is killed (its field drops after this): ending
    /// it is what makes chromedriver close the Chromium it started, which killing
    /// chromedriver alone leaves running, reparented to init, after the tests are over.
    fn drop(&mut self) {
        end_session(self.port, &self.session);
    }
}

/// `DELETE /session/<id>` over a plain socket, waiting for the answer (chromedriver answers
/// once the browser has quit). Blocking: `Drop` cannot await, and a test's runtime thread
/// may block for a moment.
fn end_session(port: u16, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "DELETE {session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(request.as_bytes()).is_ok() {
        let _ = s.read_to_end(&mut Vec::new());
    }
}

impl Browser {
    pub async fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; the README test command installs it)");
        let driver = runbook_testkit::KillOnDrop(child);
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if http.get(format!("{root}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a session: {v}"))
            .to_string();
        Self {
            driver,
            port,
            session: format!("/session/{id}"),
            http,
        }
    }

    /// chromedriver's process id (the browser it starts is its child).
    pub fn driver_pid(&self) -> u32 {
        self.driver.0.id()
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}{}{path}", self.port, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        v["value"].clone()
    }

    pub async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every element matching `css`.
    pub async fn all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    /// The one element matching `css` (waits up to 10 s for it).
    pub async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css} on {}", self.url().await);
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits up to `secs` for `css` to exist.
    pub async fn wait_for(&self, css: &str, secs: u64) -> bool {
        for _ in 0..secs * 10 {
            if self.exists(css).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn cookies(&self) -> Vec<Value> {
        self.call(reqwest::Method::GET, "/cookie", None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    /// The browser console's entries since the last call.
    pub async fn console(&self) -> Vec<Value> {
        self.call(
            reqwest::Method::POST,
            "/se/log",
            Some(json!({"type": "browser"})),
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    pub async fn screenshot(&self, to: &std::path::Path) {
        use base64::Engine as _;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("png"))
            .expect("base64");
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).expect("dir");
        }
        std::fs::write(to, png).expect("write screenshot");
    }
}
