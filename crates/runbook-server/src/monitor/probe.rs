//! Running one probe: an HTTP request checked against its conditions, a TCP connect, a
//! database `SELECT 1` or a Redis `PING`, each within the probe's timeout.

use std::time::{Duration, Instant};

use runbook_config::{
    DbUrl,
    monitor::{Condition, Field, Op, Probe, ProbeCheck, Value},
};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::notify::one_line;

/// A probe's result: passed or why not, and how long it took.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub ok: bool,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// A prometheus probe's sums, one per condition term.
    pub sums: Vec<f64>,
}

/// The HTTP client probes share: TLS details kept (for `cert_days`), no cookies.
pub(crate) fn client() -> http_client::Client {
    http_client::Client::builder()
        .tls_info(true)
        .user_agent(concat!("runbook-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Runs `probe` once.
pub(crate) async fn run(probe: &Probe, http: &http_client::Client) -> Outcome {
    let started = Instant::now();
    let result = tokio::time::timeout(probe.timeout, check(probe, http, started)).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (error, sums) = match result {
        Ok(Ok(sums)) => (None, sums),
        Ok(Err(e)) => (Some(e), Vec::new()),
        Err(_) => (
            Some(format!(
                "no answer within the timeout of {}",
                humantime::format_duration(probe.timeout)
            )),
            Vec::new(),
        ),
    };
    Outcome {
        ok: error.is_none(),
        duration_ms,
        error,
        sums,
    }
}

async fn check(
    probe: &Probe,
    http: &http_client::Client,
    started: Instant,
) -> Result<Vec<f64>, String> {
    match &probe.check {
        ProbeCheck::Prometheus { url } => {
            let resp = http
                .get(url)
                .header("accept", "text/plain; version=0.0.4")
                .timeout(probe.timeout)
                .send()
                .await
                .map_err(|e| one_line(&e))?;
            if !resp.status().is_success() {
                return Err(format!("{url} answered {}", resp.status()));
            }
            let text = resp.text().await.map_err(|e| one_line(&e))?;
            let samples = super::prom::parse(&text).map_err(|e| format!("{url}: {e}"))?;
            Ok(super::prom::sums(&samples, &probe.series))
        }
        ProbeCheck::Http {
            url,
            method,
            headers,
            body,
        } => {
            let method = http_client::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("bad method {method:?}"))?;
            let mut req = http.request(method, url).timeout(probe.timeout);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(b) = body {
                req = req.body(b.clone());
            }
            let resp = req.send().await.map_err(|e| one_line(&e))?;
            let status = resp.status().as_u16();
            let cert_days = resp
                .extensions()
                .get::<http_client::tls::TlsInfo>()
                .and_then(|t| t.peer_certificate())
                .and_then(super::cert::not_after)
                .map(|at| (at - jiff::Timestamp::now().as_second()) as f64 / 86_400.0);
            let text = resp.text().await.map_err(|e| one_line(&e))?;
            #[allow(clippy::cast_precision_loss)]
            let response = Response {
                status,
                millis: started.elapsed().as_secs_f64() * 1000.0,
                body: text,
                cert_days,
            };
            if probe.expect.is_empty() && !(200..400).contains(&status) {
                return Err(format!("answered {status}"));
            }
            for c in &probe.expect {
                response.meets(c)?;
            }
            Ok(Vec::new())
        }
        ProbeCheck::Tcp { address } => tokio::net::TcpStream::connect(address)
            .await
            .map(|_| Vec::new())
            .map_err(|e| format!("cannot connect to {address}: {e}")),
        ProbeCheck::Postgres(url) | ProbeCheck::Mariadb(url) => {
            runbook_store::Store::ping_database(&connect_url(url))
                .await
                .map(|()| Vec::new())
                .map_err(|e| format!("{}: {e}", url.without_password()))
        }
        ProbeCheck::Redis { address, password } => redis_ping(address, password.as_ref())
            .await
            .map(|()| Vec::new()),
    }
}

/// What an HTTP probe (or smoke check) got back.
pub(crate) struct Response {
    pub status: u16,
    pub millis: f64,
    pub body: String,
    pub cert_days: Option<f64>,
}

impl Response {
    /// Ok when `c` holds; else says what was found.
    pub(crate) fn meets(&self, c: &Condition) -> Result<(), String> {
        let found = match &c.field {
            Field::Status => serde_json::Value::from(self.status),
            Field::ResponseTime => serde_json::Value::from(self.millis.round()),
            Field::Body => serde_json::Value::from(self.body.as_str()),
            Field::CertDays => match self.cert_days {
                Some(d) => serde_json::Value::from(d.floor()),
                None => return Err(format!("{}: no TLS certificate (not https?)", c.text)),
            },
            Field::Json(path) => {
                let doc: serde_json::Value = serde_json::from_str(&self.body)
                    .map_err(|_| format!("{}: the body is not JSON", c.text))?;
                path.iter()
                    .try_fold(&doc, |v, k| match v {
                        serde_json::Value::Array(a) => {
                            k.parse::<usize>().ok().and_then(|i| a.get(i))
                        }
                        _ => v.get(k),
                    })
                    .cloned()
                    .unwrap_or(serde_json::Value::Null)
            }
        };
        if holds(&found, c.op, &c.value) {
            Ok(())
        } else {
            let shown = match (&c.field, &found) {
                (Field::Body, _) => format!("a body of {} bytes", self.body.len()),
                (Field::ResponseTime, v) => format!("{v} ms"),
                (_, v) => v.to_string(),
            };
            Err(format!("{} failed: got {shown}", c.text))
        }
    }
}

/// Whether `found OP want`.
fn holds(found: &serde_json::Value, op: Op, want: &Value) -> bool {
    use serde_json::Value as J;
    match (found, want) {
        (J::Number(n), Value::Number(w)) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            match op {
                Op::Eq => (n - w).abs() < f64::EPSILON,
                Op::Ne => (n - w).abs() >= f64::EPSILON,
                Op::Lt => n < *w,
                Op::Le => n <= *w,
                Op::Gt => n > *w,
                Op::Ge => n >= *w,
                Op::Contains => false,
            }
        }
        (J::String(s), Value::Text(w)) => match op {
            Op::Eq => s == w,
            Op::Ne => s != w,
            Op::Contains => s.contains(w.as_str()),
            Op::Lt => s < w,
            Op::Le => s <= w,
            Op::Gt => s > w,
            Op::Ge => s >= w,
        },
        (J::Bool(b), Value::Bool(w)) => match op {
            Op::Eq => b == w,
            Op::Ne => b != w,
            _ => false,
        },
        (J::Null, Value::Null) => op == Op::Eq,
        (_, _) => op == Op::Ne,
    }
}

/// The URL sqlx connects with, the password put back (percent-encoded).
fn connect_url(url: &DbUrl) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let auth = match url.password() {
        Some(p) => format!("{}:{}@", enc(&url.user), enc(p)),
        None if url.user.is_empty() => String::new(),
        None => format!("{}@", enc(&url.user)),
    };
    let port = url.port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{auth}{}{port}/{}", url.scheme, url.host, url.database)
}

/// `AUTH` (when a password is given) and `PING`, in Redis's own protocol.
async fn redis_ping(address: &str, password: Option<&SecretString>) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let mut stream = BufReader::new(stream);
    let ask = |parts: Vec<&str>| {
        let mut cmd = format!("*{}\r\n", parts.len());
        for p in parts {
            cmd.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
        cmd
    };
    let mut cmds = Vec::new();
    if let Some(p) = password {
        cmds.push((ask(vec!["AUTH", p.expose_secret()]), "+OK"));
    }
    cmds.push((ask(vec!["PING"]), "+PONG"));
    for (cmd, want) in cmds {
        stream
            .get_mut()
            .write_all(cmd.as_bytes())
            .await
            .map_err(|e| format!("redis {address}: {e}"))?;
        let mut line = String::new();
        stream
            .read_line(&mut line)
            .await
            .map_err(|e| format!("redis {address}: {e}"))?;
        if line.trim_end() != want {
            return Err(format!("redis {address} answered {:?}", line.trim_end()));
        }
    }
    Ok(())
}

/// Time between checks, as ms.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            millis: 120.0,
            body: body.into(),
            cert_days: None,
        }
    }

    #[test]
    fn conditions_hold_or_say_what_was_found() {
        let r = resp(
            200,
            r#"{"status":"ready","workerLagMs":1000,"items":[{"ok":true}]}"#,
        );
        for ok in [
            "status == 200",
            r#"json.status == "ready""#,
            "json.workerLagMs < 900000",
            "response_time < 500ms",
            "json.items.0.ok == true",
            r#"body contains "ready""#,
            "json.missing == null",
        ] {
            r.meets(&Condition::parse(ok).expect(ok)).expect(ok);
        }
        let e = r
            .meets(&Condition::parse("json.workerLagMs < 500").expect("c"))
            .expect_err("fails");
        assert!(e.contains("got 1000"), "{e}");
        let e = r
            .meets(&Condition::parse("cert_days > 14").expect("c"))
            .expect_err("no tls");
        assert!(e.contains("no TLS certificate"), "{e}");
        let e = resp(503, "down")
            .meets(&Condition::parse(r#"json.status == "ready""#).expect("c"))
            .expect_err("not json");
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn database_urls_get_their_password_back_encoded() {
        let u = DbUrl::parse("postgres://app:p@ss/w@db:5433/app").expect("url");
        assert_eq!(connect_url(&u), "postgres://app:p%40ss%2Fw@db:5433/app");
    }
}
