//! Who may do what: the API key (hashed, looked up in the state store), its role against the
//! role the request needs, and the rate limit per client. Secrets are never logged.

use axum::{
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use runbook_store::Role;

use crate::{AppState, error::AppError};

/// Who is calling, as handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// For the ops log: `key:<id>:<name>` or `anonymous` when auth is off.
    pub actor: String,
    /// The key's role; `None` when auth is off (everything is allowed) or on public paths.
    pub role: Option<Role>,
}

pub(crate) const PUBLIC: [&str; 4] = ["/healthz", "/health/live", "/readyz", "/health/ready"];

/// Paths anyone may call: load balancers' health probes, and heartbeat pings, which carry
/// their own unguessable key.
pub(crate) fn is_public(path: &str) -> bool {
    PUBLIC.contains(&path) || path.starts_with("/ping/")
}

/// The role a request needs.
pub(crate) fn required_role(method: &Method, path: &str) -> Role {
    if path == "/api/secrets" {
        Role::Owner
    } else if method == Method::GET || method == Method::HEAD {
        Role::Readonly
    } else if matches!(
        path,
        "/api/backups/run" | "/api/drills/run" | "/api/silences" | "/api/events"
    ) {
        Role::Operator
    } else {
        Role::Owner
    }
}

fn key_from(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get("x-runbook-api-key")
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.trim().to_string());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string())
}

pub(crate) async fn authorize(
    state: &AppState,
    ip: std::net::IpAddr,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Caller, Response> {
    // Load balancers probe the health endpoints constantly; they are cheap and never limited.
    // Heartbeat pings carry their own unguessable key and come from every cron job.
    let public = is_public(path);
    // The dashboard signs in by session (its handlers check it); only its sign-in form, the
    // one place a key is guessed, counts against the rate limit.
    let ui = crate::ui::is_ui_path(path);
    let limited = !public && (!ui || (path == "/login" && method == Method::POST));
    if state.settings.rate_limit_enabled
        && limited
        && let Err(retry) = state.limiter.check(ip, state.clock.now_ms()).await
    {
        state.metrics.rate_limited();
        let mut resp =
            AppError::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded").into_response();
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(resp);
    }
    if public || ui {
        return Ok(Caller {
            actor: "anonymous".into(),
            role: None,
        });
    }
    if !state.settings.auth_enabled {
        return Ok(Caller {
            actor: "anonymous (auth disabled)".into(),
            role: None,
        });
    }
    let Some(secret) = key_from(headers) else {
        return Err(unauthorized(
            "missing API key: send x-runbook-api-key or Authorization: Bearer",
        ));
    };
    let key = match state.store.find_key(&secret, state.clock.now_ms()).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err(unauthorized("unknown or revoked API key")),
        Err(e) => return Err(AppError::internal(e).into_response()),
    };
    if let Err(e) = state.store.key_used(&key, state.clock.now_ms()).await {
        tracing::warn!(error = %e, "cannot record when a key was last used");
    }
    let needed = required_role(method, path);
    if key.role < needed {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!(
                "role {} may not do this; it needs {}",
                key.role.as_str(),
                needed.as_str()
            ),
        )
        .into_response());
    }
    Ok(Caller {
        actor: format!("key:{}:{}", key.id, key.name),
        role: Some(key.role),
    })
}

fn unauthorized(msg: &str) -> Response {
    let mut resp = AppError::new(StatusCode::UNAUTHORIZED, msg).into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_method_and_path() {
        for (method, path, role) in [
            (Method::GET, "/api/targets", Role::Readonly),
            (Method::HEAD, "/metrics", Role::Readonly),
            (Method::POST, "/api/backups/run", Role::Operator),
            (Method::POST, "/api/drills/run", Role::Operator),
            (Method::POST, "/api/silences", Role::Operator),
            (Method::POST, "/api/events", Role::Operator),
            (Method::GET, "/api/secrets", Role::Owner),
            (Method::POST, "/api/backups/restore", Role::Owner),
            (Method::POST, "/api/anything-else", Role::Owner),
            (Method::DELETE, "/api/targets", Role::Owner),
        ] {
            assert_eq!(required_role(&method, path), role, "{method} {path}");
        }
        assert_eq!(
            crate::middleware::route_label("/api/jobs/abc123"),
            "/api/jobs/{id}"
        );
        assert_eq!(crate::middleware::route_label("/api/jobs"), "/api/jobs");
    }
}
