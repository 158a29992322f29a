//! `runbook smoke`: a release's smoke checks, run once against a base URL with the probe
//! conditions, a table for people and JUnit XML for CI.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use runbook_config::smoke::{SmokeCheck, SmokeSuite};

use crate::monitor::probe::Response;

/// The seeds' standard endpoints, checked when no suite is configured.
const STANDARD: [&str; 4] = ["/healthz", "/readyz", "/health/live", "/health/ready"];

/// One check's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Case {
    /// The check.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// Not applicable (a standard endpoint that does not exist).
    pub skipped: bool,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// How long it took.
    pub millis: f64,
    /// Why it failed (or was skipped), in one line.
    pub message: String,
}

/// A suite's run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The suite (`standard` without one).
    pub suite: String,
    /// The base URL.
    pub base_url: String,
    /// Each check.
    pub cases: Vec<Case>,
    /// Wall time.
    pub seconds: f64,
}

impl Report {
    /// Every check passed (or was skipped), and at least one passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.ok || c.skipped) && self.cases.iter().any(|c| c.ok)
    }

    /// The report as JUnit XML (one testsuite, a testcase per check).
    #[must_use]
    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let failures = self.cases.iter().filter(|c| !c.ok && !c.skipped).count();
        let skipped = self.cases.iter().filter(|c| c.skipped).count();
        let mut x = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"runbook smoke\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
            self.cases.len(),
            self.seconds,
            esc(&self.suite),
            self.cases.len(),
            self.seconds
        );
        for c in &self.cases {
            x.push_str(&format!(
                "    <testcase classname=\"smoke.{}\" name=\"{}\" time=\"{:.3}\"",
                esc(&self.suite),
                esc(&c.name),
                c.millis / 1000.0
            ));
            if c.ok {
                x.push_str("/>\n");
            } else if c.skipped {
                x.push_str(&format!(
                    "><skipped message=\"{}\"/></testcase>\n",
                    esc(&c.message)
                ));
            } else {
                x.push_str(&format!(
                    "><failure message=\"{}\" type=\"smoke\">{}</failure></testcase>\n",
                    esc(&c.message),
                    esc(&c.message)
                ));
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

fn client(timeout: Duration) -> http_client::Client {
    http_client::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("runbook-smoke/", env!("CARGO_PKG_VERSION")))
        .redirect(http_client::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// `${name}` from what earlier checks captured, `${env.NAME}` from the environment.
fn fill(text: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            return Err(format!("unclosed ${{ in {text:?}"));
        };
        let name = &rest[i + 2..i + j];
        let value = match name.strip_prefix("env.") {
            Some(var) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} is not set"))?,
            None => vars
                .get(name)
                .cloned()
                .ok_or_else(|| format!("${{{name}}} was not captured by an earlier check"))?,
        };
        out.push_str(&value);
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

async fn one(
    http: &http_client::Client,
    base: &str,
    check: &SmokeCheck,
    vars: &mut HashMap<String, String>,
) -> Case {
    let started = Instant::now();
    let mut case = Case {
        name: check.name.clone(),
        ok: false,
        skipped: false,
        status: None,
        millis: 0.0,
        message: String::new(),
    };
    let outcome: Result<(), String> = async {
        let method = http_client::Method::from_bytes(check.method.as_bytes())
            .map_err(|_| format!("bad method {:?}", check.method))?;
        let mut req = http.request(method, join(base, &fill(&check.path, vars)?));
        for (k, v) in &check.headers {
            req = req.header(k, fill(v, vars)?);
        }
        if let Some(b) = &check.body {
            req = req.body(fill(b, vars)?);
        }
        let resp = req.send().await.map_err(|e| format!("no answer: {e}"))?;
        let status = resp.status().as_u16();
        case.status = Some(status);
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        let response = Response {
            status,
            millis: started.elapsed().as_secs_f64() * 1000.0,
            body,
            cert_days: None,
        };
        if check.expect.is_empty() && !(200..300).contains(&status) {
            return Err(format!("answered {status}, expected 2xx"));
        }
        for c in &check.expect {
            response.meets(c)?;
        }
        for (var, from) in &check.capture {
            let value = if let Some(h) = from.strip_prefix("header.") {
                headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            } else {
                let path = from.trim_start_matches("json.");
                serde_json::from_str::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|doc| path.split('.').try_fold(doc, |v, k| v.get(k).cloned()))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            };
            let value =
                value.ok_or_else(|| format!("capture {var}: {from} is not in the answer"))?;
            vars.insert(var.clone(), value);
        }
        Ok(())
    }
    .await;
    case.millis = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(()) => case.ok = true,
        Err(e) => case.message = e,
    }
    case
}

/// Runs `suite` against `base`, each check in order.
pub async fn run_suite(base: &str, suite: &SmokeSuite, timeout: Duration) -> Report {
    let started = Instant::now();
    let http = client(timeout);
    let mut vars = HashMap::new();
    let mut cases = Vec::new();
    for check in &suite.checks {
        cases.push(one(&http, base, check, &mut vars).await);
    }
    Report {
        suite: suite.name.clone(),
        base_url: base.to_string(),
        cases,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The seeds' standard endpoints: each that exists (not 404) must answer 2xx, and at least one
/// must exist.
pub async fn run_standard(base: &str, timeout: Duration) -> Report {
    let started = Instant::now();
    let http = client(timeout);
    let mut cases = Vec::new();
    for path in STANDARD {
        let t = Instant::now();
        let (status, message) = match http.get(join(base, path)).send().await {
            Ok(r) => (Some(r.status().as_u16()), String::new()),
            Err(e) => (None, format!("no answer: {e}")),
        };
        let (ok, skipped, message) = match status {
            Some(404) => (false, true, "not there (404): skipped".to_string()),
            Some(s) if (200..300).contains(&s) => (true, false, String::new()),
            Some(s) => (false, false, format!("answered {s}, expected 2xx")),
            None => (false, false, message),
        };
        cases.push(Case {
            name: format!("GET {path}"),
            ok,
            skipped,
            status,
            millis: t.elapsed().as_secs_f64() * 1000.0,
            message,
        });
    }
    if cases.iter().all(|c| c.skipped) {
        cases.push(Case {
            name: "a standard health endpoint exists".into(),
            ok: false,
            skipped: false,
            status: None,
            millis: 0.0,
            message: format!("none of {} answered (all 404)", STANDARD.join(", ")),
        });
    }
    Report {
        suite: "standard".into(),
        base_url: base.to_string(),
        cases,
        seconds: started.elapsed().as_secs_f64(),
    }
}
