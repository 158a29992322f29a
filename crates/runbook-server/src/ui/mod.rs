//! The dashboard at `/`: server-rendered HTML (maud escapes every value), one stylesheet and
//! one small script, all inside the binary. Sign-in with an API key opens a session held in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` when `RUNBOOK_PUBLIC_URL` is https); every
//! form carries the session's CSRF token; the page shows what the key's role may see and offers
//! only the actions it may take. Strict Content-Security-Policy: no inline script or style.

mod actions;
mod charts;
mod lists;
mod pages;

use axum::{
    Form, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::{DOCTYPE, Markup, html};
use runbook_store::{Role, Session};
use serde::Deserialize;

use crate::{AppState, error::AppError};

/// The session cookie.
const COOKIE: &str = "runbook_session";
/// A session ends after this long unused.
const TTL_MS: i64 = 8 * 3_600_000;
/// The dashboard's Content-Security-Policy: only its own script, style and forms.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Whether `path` is the dashboard's (signed in by session, not by API key).
pub(crate) fn is_ui_path(path: &str) -> bool {
    path == "/"
        || path == "/favicon.ico"
        || path == "/login"
        || path == "/jobs"
        || path == "/oplog"
        || path == "/monitor"
        || path == "/logout"
        || ["/ui/", "/targets/", "/jobs/"]
            .iter()
            .any(|p| path.starts_with(p))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/targets/{name}", get(pages::target))
        .route("/targets/{name}/backup", post(actions::backup))
        .route("/targets/{name}/drill", post(actions::drill))
        .route("/targets/{name}/restore", post(actions::restore))
        .route("/jobs", get(lists::jobs))
        .route("/jobs/{id}", get(actions::job))
        .route("/oplog", get(lists::oplog))
        .route("/monitor", get(lists::monitor))
        .route("/ui/jobs/{id}", get(actions::job_json))
        .route("/ui/app.css", get(css))
        .route("/ui/app.js", get(js))
        .route("/ui/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

/// Who is looking: the session and its cookie token.
pub(crate) struct Viewer {
    pub session: Session,
}

impl Viewer {
    pub(crate) fn may(&self, role: Role) -> bool {
        self.session.role >= role
    }

    /// The ops-log actor, as for the API.
    pub(crate) fn actor(&self) -> String {
        format!(
            "key:{}:{} (dashboard)",
            self.session.key_id, self.session.key_name
        )
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The signed-in viewer, if any.
pub(crate) async fn viewer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Viewer>, AppError> {
    let Some(token) = cookie_token(headers) else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    Ok(state
        .store
        .session(&token, now, TTL_MS)
        .await?
        .map(|session| Viewer { session }))
}

/// The viewer, or a redirect to the sign-in page.
pub(crate) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Viewer, Response> {
    match viewer(state, headers).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(e.into_response()),
    }
}

/// The refusal of a POST whose CSRF token is not the session's, or whose role is too low.
pub(crate) fn refused(v: &Viewer, csrf: &str, role: Role) -> Option<Response> {
    let a = v.session.csrf.as_bytes();
    let b = csrf.as_bytes();
    // Compared in constant time.
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if !same {
        return Some(page_status(
            StatusCode::FORBIDDEN,
            "Refused",
            Some(v),
            html! { p { "This form is stale or did not come from this page (CSRF token missing or wrong). Reload the page and try again." } },
        ));
    }
    if !v.may(role) {
        return Some(page_status(
            StatusCode::FORBIDDEN,
            "Not allowed",
            Some(v),
            html! { p { "Your key's role (" (v.session.role.as_str()) ") may not do this; it needs " (role.as_str()) "." } },
        ));
    }
    None
}

/// A status as a coloured word: ok (also up, passed, …), warn (late, running, …), critical.
pub(crate) fn badge(status: &str) -> Markup {
    let class = match status {
        "ok" | "up" | "succeeded" | "passed" | "resolved" => "ok",
        "warn" | "late" | "queued" | "running" | "new" | "pending" => "warn",
        _ => "critical",
    };
    html! { span class={"badge " (class)} { (status) } }
}

/// A full page with the dashboard's headers.
pub(crate) fn page(title: &str, v: Option<&Viewer>, body: Markup) -> Response {
    page_status(StatusCode::OK, title, v, body)
}

pub(crate) fn page_status(
    code: StatusCode,
    title: &str,
    v: Option<&Viewer>,
    body: Markup,
) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · runbook" }
                link rel="stylesheet" href="/ui/app.css";
                link rel="icon" href="/ui/icon.svg" type="image/svg+xml";
                script src="/ui/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "runbook" }
                    @if let Some(v) = v {
                        nav.main aria-label="sections" {
                            a href="/" { "Overview" }
                            a href="/jobs" { "Jobs" }
                            a href="/monitor" { "Monitor" }
                            a href="/oplog" { "Ops log" }
                        }
                        span.who { "Signed in as " strong { (v.session.key_name) } " (" (v.session.role.as_str()) ")" }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(v.session.csrf);
                            button type="submit" id="sign-out" { "Sign out" }
                        }
                    }
                }
                main id="main" { h1 { (title) } (body) }
            }
        }
    };
    let mut resp = (code, axum::response::Html(doc.into_string())).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if matches!(viewer(&state, &headers).await, Ok(Some(_))) {
        return Redirect::to("/").into_response();
    }
    login_form(StatusCode::OK, None)
}

fn login_form(code: StatusCode, error: Option<&str>) -> Response {
    page_status(
        code,
        "Sign in",
        None,
        html! {
            form.card method="post" action="/login" {
                @if let Some(e) = error { p.error role="alert" { (e) } }
                label for="key" { "API key" }
                input id="key" name="key" type="password" autocomplete="current-password" required;
                p.hint { "A key from " code { "runbook keys create" } ". It is sent once and never shown; the session lasts 8 hours of use." }
                button type="submit" id="sign-in" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

async fn login(State(state): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let now = state.clock.now_ms();
    let key = match state.store.find_key(f.key.trim(), now).await {
        Ok(Some(k)) => k,
        Ok(None) => {
            return login_form(
                StatusCode::UNAUTHORIZED,
                Some("Unknown or revoked API key."),
            );
        }
        Err(e) => return AppError::internal(e).into_response(),
    };
    let token = match state.store.create_session(&key.id, now, TTL_MS).await {
        Ok(t) => t,
        Err(e) => return AppError::internal(e).into_response(),
    };
    let _ = state
        .audit(
            &format!("key:{}:{}", key.id, key.name),
            "dashboard.sign-in",
            "-",
            "ok",
            String::new(),
        )
        .await;
    let secure = state
        .settings
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        TTL_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let v = match signed_in(&state, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(r) = refused(&v, &f.csrf, Role::Readonly) {
        return r;
    }
    if let Some(token) = cookie_token(&headers) {
        let _ = state.store.end_session(&token, state.clock.now_ms()).await;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("runbook_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

async fn icon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("assets/icon.svg"),
    )
}
