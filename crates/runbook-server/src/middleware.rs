//! What every request passes through: the client's address (X-Forwarded-For only from trusted
//! proxies), a request id and a span carrying it, authorization (`auth.rs`), security headers,
//! metrics and one JSON log line per request.

use std::{net::SocketAddr, time::Instant};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

use crate::{AppState, auth::authorize};

/// Route label for metrics and logs (ids folded so label sets stay small).
pub(crate) fn route_label(path: &str) -> String {
    // Ids and ping keys never become labels: folded, so label sets stay small and `/metrics`
    // never shows a heartbeat's secret key.
    for (prefix, label) in [
        ("/api/jobs/", "/api/jobs/{id}"),
        ("/ping/", "/ping/{key}"),
        ("/targets/", "/targets/{name}"),
        ("/jobs/", "/jobs/{id}"),
        ("/ui/jobs/", "/ui/jobs/{id}"),
    ] {
        if path.starts_with(prefix) {
            return label.into();
        }
    }
    path.to_string()
}

/// The client's address. Behind trusted proxies, `X-Forwarded-For` is read from the right:
/// each trusted proxy appended the address it received from, so the rightmost entry that is
/// not a trusted proxy is the client as the first trusted hop saw it. Entries to its left were
/// written by the client and are never believed.
fn client_ip(
    trusted: &[std::net::IpAddr],
    peer: SocketAddr,
    headers: &HeaderMap,
) -> std::net::IpAddr {
    let mut ip = peer.ip();
    if !trusted.contains(&ip) {
        return ip;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(addr) if trusted.contains(&addr) => ip = addr,
            Ok(addr) => return addr,
            // Garbage where an address should be: stop at the last hop we could trust.
            Err(_) => return ip,
        }
    }
    ip
}

pub(crate) async fn guard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.is_ascii())
        .map_or_else(new_request_id, str::to_string);
    let ip = client_ip(&state.settings.trusted_proxies, peer, req.headers());

    // Every log line written while handling the request (a 500's cause included) carries the
    // request id that the client sent or was given in `X-Request-Id`.
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = async {
        match authorize(&state, ip, &method, &path, req.headers()).await {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                next.run(req).await
            }
            Err(resp) => resp,
        }
    }
    .instrument(span)
    .await;

    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        // The dashboard's pages set their own Content-Security-Policy.
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    let status = response.status().as_u16();
    let route = route_label(&path);
    state.metrics.request(&route, method.as_str(), status);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let ts = jiff::Timestamp::now();
    tracing::info!(ts = %ts, route = %route, method = %method, status, ms, request_id = %request_id, "request");
    response
}

fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().expect("ip")
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        h
    }

    #[test]
    fn client_ip_takes_the_rightmost_untrusted_hop() {
        let proxy: SocketAddr = "10.0.0.1:443".parse().expect("addr");
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        // The client wrote 1.1.1.1 itself; the proxy appended the real peer 203.0.113.9.
        assert_eq!(
            client_ip(&trusted, proxy, &xff("1.1.1.1, 203.0.113.9")),
            ip("203.0.113.9")
        );
        // Two trusted hops: skip both.
        assert_eq!(
            client_ip(&trusted, proxy, &xff("6.6.6.6, 203.0.113.9, 10.0.0.2")),
            ip("203.0.113.9")
        );
        // Garbage: the last trusted hop.
        assert_eq!(
            client_ip(&trusted, proxy, &xff("nonsense, 10.0.0.2")),
            ip("10.0.0.2")
        );
        // Not from a trusted proxy: the header is ignored.
        let direct: SocketAddr = "198.51.100.7:5000".parse().expect("addr");
        assert_eq!(
            client_ip(&trusted, direct, &xff("1.1.1.1")),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(&trusted, proxy, &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }
}
