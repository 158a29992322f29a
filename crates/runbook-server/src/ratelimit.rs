//! Per-client fixed-window rate limit: counted in Redis when `RUNBOOK_REDIS_URL` is set, so
//! every instance shares one count per client (a client cannot get N × the limit by spreading
//! its requests); in memory otherwise.
//!
//! When Redis does not answer (within `REDIS_TIMEOUT`), each instance counts on its own until
//! Redis is back: the limit still holds per instance, requests are not refused for Redis's sake,
//! and `/api/health` warns (`redis`). That is the documented choice: an outage of a shared
//! counter must not take the API down with it.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;

/// How long a Redis command may take before the local count is used instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How soon a failed connection is tried again.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);

/// Counts requests per IP in fixed windows.
pub(crate) struct RateLimiter {
    max: u32,
    window_ms: i64,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
    redis: Option<SharedCount>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("max", &self.max)
            .field("shared", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

/// The Redis side: one connection (re-made when lost) and the last failure, for health.
struct SharedCount {
    /// `RUNBOOK_REDIS_PREFIX`.
    prefix: String,
    client: Option<redis::Client>,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    next_try: Mutex<Option<Instant>>,
    /// The last failure, until a command succeeds again.
    down: Mutex<Option<String>>,
}

impl RateLimiter {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            seen: Mutex::new(HashMap::new()),
            redis: None,
        }
    }

    /// Counts in Redis at `url` (the connection is made on first use). A URL the client cannot
    /// use leaves the count local and says so in health (the URL is never echoed: it may hold
    /// a password).
    pub(crate) fn shared(mut self, url: &secrecy::SecretString, prefix: &str) -> Self {
        let client = redis::Client::open(url.expose_secret()).ok();
        let down = client
            .is_none()
            .then(|| "RUNBOOK_REDIS_URL is not a URL the Redis client accepts".to_string());
        self.redis = Some(SharedCount {
            prefix: prefix.to_string(),
            client,
            conn: tokio::sync::Mutex::new(None),
            next_try: Mutex::new(None),
            down: Mutex::new(down),
        });
        self
    }

    /// `None` without Redis; else whether Redis answers a `PING` now (`Err(why)`: the count is
    /// local meanwhile).
    pub(crate) async fn shared_state(&self) -> Option<Result<(), String>> {
        let r = self.redis.as_ref()?;
        let answer = async {
            let mut conn = r.connection().await?;
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            tokio::time::timeout(REDIS_TIMEOUT, ping)
                .await
                .map_err(|_| format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()))?
                .map_err(|e| e.to_string())
        }
        .await;
        let mut down = r
            .down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *down = answer.err();
        Some(match down.clone() {
            None => Ok(()),
            Some(why) => Err(why),
        })
    }

    /// `Ok(())` if `ip` may make a request at `now_ms`, else the seconds until it may.
    pub(crate) async fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        let window = now_ms - now_ms.rem_euclid(self.window_ms);
        if let Some(r) = &self.redis {
            match r
                .incr(&format!("{}:rl:{ip}:{window}", r.prefix), self.window_ms)
                .await
            {
                Ok(n) => {
                    return if n > u64::from(self.max) {
                        Err(self.wait(window, now_ms))
                    } else {
                        Ok(())
                    };
                }
                Err(why) => {
                    let mut down = r
                        .down
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if down.is_none() {
                        tracing::warn!(error = %why, "Redis does not answer: the rate limit is counted per instance until it does");
                    }
                    *down = Some(why);
                }
            }
        }
        self.check_local(ip, now_ms, window)
    }

    fn wait(&self, window: i64, now_ms: i64) -> u64 {
        let wait_ms = window + self.window_ms - now_ms;
        u64::try_from(wait_ms.max(1000) / 1000).unwrap_or(1)
    }

    fn check_local(&self, ip: IpAddr, now_ms: i64, window: i64) -> Result<(), u64> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 100_000 {
            seen.retain(|_, (w, _)| *w == window);
        }
        let slot = seen.entry(ip).or_insert((window, 0));
        if slot.0 != window {
            *slot = (window, 0);
        }
        if slot.1 >= self.max {
            return Err(self.wait(window, now_ms));
        }
        slot.1 += 1;
        Ok(())
    }
}

impl SharedCount {
    /// `INCR key` and its expiry (two windows) in one transaction; the count after it.
    async fn incr(&self, key: &str, window_ms: i64) -> Result<u64, String> {
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(key, 1_u64)
            .pexpire(key, 2 * window_ms)
            .ignore();
        let fut = pipe.query_async::<(u64,)>(&mut conn);
        let (n,) = tokio::time::timeout(REDIS_TIMEOUT, fut)
            .await
            .map_err(|_| format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()))?
            .map_err(|e| e.to_string())?;
        *self
            .down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(n)
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        {
            let next = self
                .next_try
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if next.is_some_and(|t| Instant::now() < t) {
                return Err("not connected (retrying every 5 s)".into());
            }
        }
        let Some(client) = self.client.clone() else {
            return Err("RUNBOOK_REDIS_URL is not a URL the Redis client accepts".into());
        };
        let made = tokio::time::timeout(
            REDIS_TIMEOUT * 4,
            redis::aio::ConnectionManager::new(client),
        )
        .await;
        match made {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) => {
                *self
                    .next_try
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + RECONNECT_AFTER);
                Err(format!("cannot connect: {e}"))
            }
            Err(_) => {
                *self
                    .next_try
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + RECONNECT_AFTER);
                Err("cannot connect: no answer".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_max_and_resets_next_window() {
        let rl = RateLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(rl.check(ip, 0).await.is_ok());
        assert!(rl.check(ip, 1).await.is_ok());
        assert_eq!(rl.check(ip, 30_000).await, Err(30));
        assert!(
            rl.check([10, 0, 0, 2].into(), 30_000).await.is_ok(),
            "other clients unaffected"
        );
        assert!(rl.check(ip, 60_000).await.is_ok(), "new window");
    }
}
