//! Per-client fixed-window rate limit (in memory; a shared Redis limiter comes with scaling out).

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Duration};

/// Counts requests per IP in fixed windows.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    max: u32,
    window_ms: i64,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl RateLimiter {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok(())` if `ip` may make a request at `now_ms`, else the seconds until it may.
    pub(crate) fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        let window = now_ms - now_ms.rem_euclid(self.window_ms);
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
            let wait_ms = window + self.window_ms - now_ms;
            return Err(u64::try_from(wait_ms.max(1000) / 1000).unwrap_or(1));
        }
        slot.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_and_resets_next_window() {
        let rl = RateLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(rl.check(ip, 0).is_ok());
        assert!(rl.check(ip, 1).is_ok());
        assert_eq!(rl.check(ip, 30_000), Err(30));
        assert!(
            rl.check([10, 0, 0, 2].into(), 30_000).is_ok(),
            "other clients unaffected"
        );
        assert!(rl.check(ip, 60_000).is_ok(), "new window");
    }
}
