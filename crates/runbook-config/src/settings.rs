//! `serve`'s settings from the environment, with the seeds' variable names and defaults. All
//! configuration is read in this crate: the file (`raw.rs`), the `BACKUP_*` variables
//! (`env.rs`) and these.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

/// Bootstrap owner keys shorter than this are refused: a guessable owner key is worse than none.
pub const MIN_OWNER_KEY_CHARS: usize = 32;

/// How `serve` listens and guards the API.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address; default `127.0.0.1:9000`, `PORT` overrides the port,
    /// `RUNBOOK_LISTEN` the whole address.
    pub listen: SocketAddr,
    /// `SECURITY_AUTH_ENABLED` (default on).
    pub auth_enabled: bool,
    /// `SECURITY_OWNER_KEYS`: comma-separated bootstrap owner keys.
    pub owner_keys: Vec<String>,
    /// `SECURITY_CORS_ORIGINS`: exact allow-list.
    pub cors_origins: Vec<String>,
    /// `SECURITY_RATE_LIMIT_ENABLED` (default on).
    pub rate_limit_enabled: bool,
    /// `SECURITY_RATE_LIMIT_MAX` (default 500).
    pub rate_limit_max: u32,
    /// `SECURITY_RATE_LIMIT_WINDOW` (default 15 minutes; seconds or a duration like `15m`).
    pub rate_limit_window: Duration,
    /// `SECURITY_TRUSTED_PROXIES`: addresses whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// `RUNBOOK_SHUTDOWN_GRACE` (default 30s): how long a running job may finish at shutdown.
    pub shutdown_grace: Duration,
    /// `RUNBOOK_VERIFY_DAYS` (default 30, `0` off): every day at 04:00 UTC each target's
    /// repository reads back one slice of its packs, so every pack is read once in this many
    /// days.
    pub verify_days: u32,
    /// `ALERT_WEBHOOK_URL`: where alert notifications are POSTed (Standard Webhooks); unset: none.
    pub alert_webhook_url: Option<String>,
    /// `ALERT_WEBHOOK_SECRET`: the `whsec_…` key that signs them.
    pub alert_webhook_secret: Option<secrecy::SecretString>,
    /// `SMTP_HOST` and the other `SMTP_*` variables: alert e-mail; unset: none.
    pub smtp: Option<Smtp>,
    /// `RUNBOOK_PUBLIC_URL`: where people reach this server (links in alert notices).
    pub public_url: Option<String>,
    /// `RUNBOOK_WEBHOOK_SECRET`: the `whsec_…` key inbound events (`POST /api/events`) must be
    /// signed with; unset: events need only an operator key.
    pub webhook_secret: Option<secrecy::SecretString>,
    /// `RUNBOOK_REDIS_URL` (`redis://[:password@]host:port[/db]`): the rate limit is counted in
    /// Redis, shared by every instance; unset: each instance counts on its own.
    pub redis_url: Option<secrecy::SecretString>,
    /// `RUNBOOK_REDIS_PREFIX` (default `runbook`): the start of every key runbook writes in
    /// Redis, so several installations can share one server.
    pub redis_prefix: String,
}

/// Alert e-mail through an SMTP server, as the seeds configure it.
#[derive(Debug, Clone)]
pub struct Smtp {
    /// `SMTP_HOST`.
    pub host: String,
    /// `SMTP_PORT` (default 587): 465 is implicit TLS (SSL), 587 requires STARTTLS, any other
    /// port uses STARTTLS when the server offers it.
    pub port: u16,
    /// `SMTP_USER` (optional).
    pub user: Option<String>,
    /// `SMTP_PASS`.
    pub pass: Option<secrecy::SecretString>,
    /// `SMTP_FROM` (default `SMTP_USER`).
    pub from: String,
    /// `ALERT_EMAIL_TO`, comma-separated (default `SMTP_FROM`).
    pub to: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            auth_enabled: true,
            owner_keys: Vec::new(),
            cors_origins: Vec::new(),
            rate_limit_enabled: true,
            rate_limit_max: 500,
            rate_limit_window: Duration::from_secs(15 * 60),
            trusted_proxies: Vec::new(),
            body_limit: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            verify_days: 30,
            alert_webhook_url: None,
            alert_webhook_secret: None,
            smtp: None,
            public_url: None,
            webhook_secret: None,
            redis_url: None,
            redis_prefix: "runbook".into(),
        }
    }
}

impl Settings {
    /// Reads the environment through `get` (so tests need not touch the process environment).
    ///
    /// # Errors
    /// One line naming the variable and what is wrong with it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut s = Self::default();
        let flag = |name: &str, default: bool| crate::env::flag(name, get(name), default);
        let list = |name: &str| -> Vec<String> {
            get(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect()
        };
        if let Some(port) = get("PORT").filter(|p| !p.is_empty()) {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("PORT={port:?}: not a port number"))?;
            s.listen.set_port(port);
        }
        if let Some(addr) = get("RUNBOOK_LISTEN").filter(|p| !p.is_empty()) {
            // `0.0.0.0` alone keeps the port (PORT or 9000); `0.0.0.0:9100` sets both.
            if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<IpAddr>() {
                s.listen.set_ip(ip);
            } else {
                s.listen = addr.parse().map_err(|_| {
                    format!("RUNBOOK_LISTEN={addr:?}: expected an IP address, or IP:PORT")
                })?;
            }
        }
        if let Some(v) = get("RUNBOOK_VERIFY_DAYS").filter(|v| !v.trim().is_empty()) {
            s.verify_days = v
                .trim()
                .parse()
                .ok()
                .filter(|d| *d <= 3650)
                .ok_or_else(|| {
                    format!("RUNBOOK_VERIFY_DAYS={v:?}: expected a number of days (0 turns it off)")
                })?;
        }
        s.alert_webhook_url = http_url(&get, "ALERT_WEBHOOK_URL")?;
        s.alert_webhook_secret = whsec(&get, "ALERT_WEBHOOK_SECRET")?;
        s.smtp = smtp(&get)?;
        s.public_url = http_url(&get, "RUNBOOK_PUBLIC_URL")?;
        s.webhook_secret = whsec(&get, "RUNBOOK_WEBHOOK_SECRET")?;
        if let Some(url) = get("RUNBOOK_REDIS_URL").filter(|v| !v.trim().is_empty()) {
            let url = url.trim().to_string();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(
                    "RUNBOOK_REDIS_URL: expected redis://[:password@]host:port[/db] (or rediss://)"
                        .into(),
                );
            }
            s.redis_url = Some(url.into());
        }
        if let Some(p) = get("RUNBOOK_REDIS_PREFIX").filter(|v| !v.trim().is_empty()) {
            s.redis_prefix = p.trim().to_string();
        }
        s.auth_enabled = flag("SECURITY_AUTH_ENABLED", true)?;
        s.owner_keys = list("SECURITY_OWNER_KEYS");
        if let Some((i, short)) = s
            .owner_keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.chars().count() < MIN_OWNER_KEY_CHARS)
        {
            return Err(format!(
                "SECURITY_OWNER_KEYS: entry {} has {} characters; an owner key needs at least {MIN_OWNER_KEY_CHARS} (make one with `openssl rand -hex 32`, or use `runbook keys create --role owner`)",
                i + 1,
                short.chars().count()
            ));
        }
        s.cors_origins = list("SECURITY_CORS_ORIGINS");
        s.rate_limit_enabled = flag("SECURITY_RATE_LIMIT_ENABLED", true)?;
        if let Some(v) = get("SECURITY_RATE_LIMIT_MAX").filter(|v| !v.is_empty()) {
            s.rate_limit_max = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("SECURITY_RATE_LIMIT_MAX={v:?}: expected a positive number")
            })?;
        }
        if let Some(v) = get("SECURITY_RATE_LIMIT_WINDOW").filter(|v| !v.is_empty()) {
            s.rate_limit_window = duration(&v).ok_or_else(|| {
                format!(
                    "SECURITY_RATE_LIMIT_WINDOW={v:?}: expected seconds or a duration such as 15m"
                )
            })?;
        }
        for p in list("SECURITY_TRUSTED_PROXIES") {
            s.trusted_proxies
                .push(p.parse().map_err(|_| {
                    format!("SECURITY_TRUSTED_PROXIES: {p:?} is not an IP address")
                })?);
        }
        if let Some(v) = get("RUNBOOK_SHUTDOWN_GRACE").filter(|v| !v.is_empty()) {
            s.shutdown_grace = duration(&v).ok_or_else(|| {
                format!("RUNBOOK_SHUTDOWN_GRACE={v:?}: expected a duration such as 30s")
            })?;
        }
        if !s.auth_enabled && !s.listen.ip().is_loopback() {
            return Err(format!(
                "SECURITY_AUTH_ENABLED=0 is allowed only on a loopback listen address, not {}",
                s.listen
            ));
        }
        Ok(s)
    }
}

fn duration(v: &str) -> Option<Duration> {
    crate::parse_duration(v).ok()
}

/// The `SMTP_*` variables, when `SMTP_HOST` is set.
fn smtp(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Smtp>, String> {
    let var = |k: &str| {
        get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(host) = var("SMTP_HOST") else {
        return Ok(None);
    };
    let port = match var("SMTP_PORT") {
        None => 587,
        Some(p) => p.parse().map_err(|_| {
            format!("SMTP_PORT={p:?}: not a port number (465 for SSL, 587 for STARTTLS)")
        })?,
    };
    let user = var("SMTP_USER");
    let from = var("SMTP_FROM")
        .or_else(|| user.clone())
        .ok_or("SMTP_FROM: required with SMTP_HOST (the sender address), or set SMTP_USER")?;
    let to: Vec<String> = var("ALERT_EMAIL_TO")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|| vec![from.clone()]);
    for a in std::iter::once(&from).chain(&to) {
        if !a.contains('@') {
            return Err(format!(
                "{a:?}: not an e-mail address (SMTP_FROM / ALERT_EMAIL_TO)"
            ));
        }
    }
    Ok(Some(Smtp {
        host,
        port,
        user,
        pass: get("SMTP_PASS").filter(|p| !p.is_empty()).map(Into::into),
        from,
        to,
    }))
}

/// An optional `http://` or `https://` URL in `var`.
fn http_url(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<Option<String>, String> {
    let Some(url) = get(var).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let url = url.trim().to_string();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(Some(url))
    } else {
        Err(format!(
            "{var}={url:?}: expected an http:// or https:// URL"
        ))
    }
}

/// An optional Standard Webhooks secret (`whsec_<base64>`) in `var`; never echoed.
fn whsec(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
) -> Result<Option<secrecy::SecretString>, String> {
    let Some(secret) = get(var).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if secret.trim().starts_with("whsec_") {
        Ok(Some(secret.trim().to_string().into()))
    } else {
        Err(format!(
            "{var}: expected a Standard Webhooks secret, whsec_<base64>"
        ))
    }
}
