//! Heartbeats as healthchecks.io defines them: `new` until the first ping, `up` while pings
//! come on time, `late` once the expected time has passed (within the grace time), `down`
//! after the grace time, after a failed run, or when a started run overruns `max_runtime`.

use runbook_config::monitor::{Expected, Heartbeat};
use runbook_store::HeartbeatRow;
use serde::Serialize;

/// A heartbeat's state at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Status {
    /// `new`, `up`, `late` or `down`.
    pub state: &'static str,
    /// When it went down (for `down … for DUR` rules).
    pub down_since: Option<i64>,
    /// When the next ping is expected.
    pub next_due: Option<i64>,
    /// Why, in words.
    pub reason: String,
    /// A run has started and not finished.
    pub running: bool,
}

/// The state of `hb` at `now`, from what was stored.
pub(crate) fn status(hb: &Heartbeat, row: &HeartbeatRow, now: i64) -> Status {
    let running = row.started_at.is_some();
    let mk = |state, down_since, next_due, reason: String| Status {
        state,
        down_since,
        next_due,
        reason,
        running,
    };
    if let (Some(start), Some(max)) = (row.started_at, hb.max_runtime) {
        let deadline = start + super::probe::ms(max);
        if now > deadline {
            return mk(
                "down",
                Some(deadline),
                None,
                format!(
                    "started and did not finish within max_runtime {}",
                    humantime::format_duration(max)
                ),
            );
        }
    }
    if let Some(fail) = row.last_fail
        && row.last_ok.is_none_or(|ok| fail > ok)
    {
        return mk("down", Some(fail), None, "the last run failed".into());
    }
    let Some(last_ok) = row.last_ok else {
        return mk("new", None, None, "no ping yet".into());
    };
    let due = match &hb.expect {
        Expected::Period(p) => Some(last_ok + super::probe::ms(*p)),
        Expected::Schedule(s) => crate::scheduler::next_after(s, last_ok),
    };
    let Some(due) = due else {
        return mk(
            "up",
            None,
            None,
            "pinged; the schedule has no later time".into(),
        );
    };
    let grace = super::probe::ms(hb.grace);
    if now <= due {
        mk("up", None, Some(due), "pinged on time".into())
    } else if now <= due + grace {
        mk(
            "late",
            None,
            Some(due),
            "the expected ping is late (within the grace time)".into(),
        )
    } else {
        mk(
            "down",
            Some(due + grace),
            Some(due),
            "no ping since the expected time and the grace time".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn new_up_late_down_up_as_healthchecks_does() {
        let hb = Heartbeat {
            name: "job".into(),
            expect: Expected::Period(Duration::from_secs(3600)),
            grace: Duration::from_secs(600),
            max_runtime: Some(Duration::from_secs(300)),
            min_runtime: None,
        };
        let mut row = HeartbeatRow {
            name: "job".into(),
            ping_key: "k".into(),
            created_at: 0,
            started_at: None,
            last_ok: None,
            last_fail: None,
        };
        assert_eq!(status(&hb, &row, 10 * 60 * MIN).state, "new");
        row.last_ok = Some(0);
        assert_eq!(status(&hb, &row, 60 * MIN).state, "up");
        assert_eq!(status(&hb, &row, 60 * MIN + 1).state, "late");
        let down = status(&hb, &row, 70 * MIN + 1);
        assert_eq!((down.state, down.down_since), ("down", Some(70 * MIN)));
        row.last_ok = Some(71 * MIN);
        assert_eq!(status(&hb, &row, 72 * MIN).state, "up");
        row.started_at = Some(72 * MIN);
        assert_eq!(status(&hb, &row, 77 * MIN).state, "up");
        assert_eq!(status(&hb, &row, 77 * MIN + 1).state, "down", "overran");
        row.started_at = None;
        row.last_fail = Some(78 * MIN);
        assert_eq!(status(&hb, &row, 78 * MIN).state, "down");
    }
}
