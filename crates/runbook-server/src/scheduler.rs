//! The scheduler: turns each target's backup and drill schedules into queued jobs. [`tick`] is one
//! step at the clock's time; a slot missed while the service was down runs once at the next
//! tick (several missed slots collapse into one run).

use chrono::{DateTime, Utc};
use runbook_config::Schedule;
use runbook_store::{JobKind, NewJob};

use crate::AppState;

/// Applies the seeds' `BACKUP_*` variables (now in `runbook-config`, applied for every command).
pub use runbook_config::apply_seed_env;

/// The first slot of `schedule` strictly after `after_ms`.
#[must_use]
pub fn next_after(schedule: &Schedule, after_ms: i64) -> Option<i64> {
    let after: DateTime<Utc> = DateTime::from_timestamp_millis(after_ms)?;
    schedule
        .cron()
        .find_next_occurrence(&after, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Enqueues a backup for every target whose backup slot has come, a drill for every target
/// whose drill slot has come, and each task whose slot has come. Returns what was queued
/// (`target`, `target:drill`, `target:verify`, `task:task`).
///
/// # Errors
/// State store errors.
pub async fn tick(state: &AppState) -> Result<Vec<String>, runbook_store::Error> {
    let now = state.clock.now_ms();
    let mut queued = Vec::new();
    for target in state.engine.config().targets.values() {
        if let Some(schedule) = &target.schedule
            && due(state, &target.name, JobKind::Backup, schedule, now).await?
        {
            queued.push(target.name.clone());
        }
        if let Some(schedule) = target.drill.as_ref().and_then(|d| d.schedule.as_ref())
            && due(state, &target.name, JobKind::Drill, schedule, now).await?
        {
            queued.push(format!("{}:drill", target.name));
        }
        if state.settings.verify_days > 0
            && due(
                state,
                &target.name,
                JobKind::Verify,
                &verify_schedule(),
                now,
            )
            .await?
        {
            queued.push(format!("{}:verify", target.name));
        }
    }
    for task in state.engine.config().tasks.values() {
        if let Some(schedule) = &task.schedule
            && due(state, &task.name, JobKind::Task, schedule, now).await?
        {
            queued.push(format!("{}:task", task.name));
        }
    }
    Ok(queued)
}

/// The rolling verification's daily slot (after the seeds' default 03:00 backups).
fn verify_schedule() -> Schedule {
    // A constant that parses: the "daily at H UTC" form is tested with the config.
    Schedule::parse("daily at 04 UTC").unwrap_or_else(|e| unreachable!("{e}"))
}

/// Which slice of `days` a verification at `now_ms` reads: one per day, round and round.
#[must_use]
pub fn verify_slice(now_ms: i64, days: u32) -> u32 {
    let day = u32::try_from(
        now_ms
            .div_euclid(86_400_000)
            .rem_euclid(i64::from(days.max(1))),
    )
    .unwrap_or(0);
    day + 1
}

/// Enqueues a `kind` job for `target` when its slot has come; true when it did.
async fn due(
    state: &AppState,
    target: &str,
    kind: JobKind,
    schedule: &Schedule,
    now: i64,
) -> Result<bool, runbook_store::Error> {
    // Backups keep the plain target name as their key (state written by earlier versions).
    let key = if kind == JobKind::Backup {
        target.to_string()
    } else {
        format!("{target}:{kind}")
    };
    let Some(last) = state.store.last_scheduled(&key).await? else {
        // First sight of this schedule: start counting from now.
        state.store.set_last_scheduled(&key, now).await?;
        return Ok(false);
    };
    if next_after(schedule, last).is_none_or(|next| next > now) {
        return Ok(false);
    }
    state.store.set_last_scheduled(&key, now).await?;
    if state.store.has_active(target, kind).await? {
        return Ok(false);
    }
    state
        .store
        .enqueue_audited(
            NewJob {
                kind,
                target: target.to_string(),
                params: if kind == JobKind::Verify {
                    let of = state.settings.verify_days;
                    serde_json::json!({ "reason": "schedule", "n": verify_slice(now, of), "of": of })
                } else {
                    serde_json::json!({ "reason": "schedule" })
                },
                requested_by: "schedule".into(),
            },
            "schedule",
            &format!("{kind}.run"),
            now,
        )
        .await?;
    Ok(true)
}

/// A target is stale when the slot after the one following its last success has passed (one
/// missed run is tolerated), or when it has a schedule and has never succeeded.
#[must_use]
pub fn is_stale(schedule: &Schedule, last_success_ms: Option<i64>, now_ms: i64) -> bool {
    match last_success_ms {
        None => true,
        Some(at) => next_after(schedule, at)
            .and_then(|n| next_after(schedule, n))
            .is_some_and(|deadline| deadline <= now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25T00:00:00Z.
    const DAY0: i64 = 1_795_564_800_000;
    const HOUR: i64 = 3_600_000;

    fn daily_3() -> Schedule {
        Schedule::parse("daily at 03 UTC").expect("schedule")
    }

    #[test]
    fn next_after_is_the_first_slot_strictly_later() {
        let s = daily_3();
        assert_eq!(next_after(&s, DAY0), Some(DAY0 + 3 * HOUR));
        assert_eq!(
            next_after(&s, DAY0 + 3 * HOUR),
            Some(DAY0 + 27 * HOUR),
            "a slot is not after itself"
        );
        let weekly = Schedule::parse("0 5 * * 1").expect("cron");
        // 2026-11-25 is a Wednesday: the next Monday 05:00 is 2026-11-30.
        assert_eq!(next_after(&weekly, DAY0), Some(DAY0 + (5 * 24 + 5) * HOUR));
    }

    #[test]
    fn one_missed_slot_is_tolerated_two_are_stale() {
        let s = daily_3();
        let last = Some(DAY0 + 3 * HOUR);
        assert!(
            !is_stale(&s, last, DAY0 + 26 * HOUR),
            "before the next slot"
        );
        assert!(!is_stale(&s, last, DAY0 + 28 * HOUR), "one slot missed");
        assert!(is_stale(&s, last, DAY0 + 52 * HOUR), "two slots missed");
        assert!(is_stale(&s, None, DAY0), "never succeeded");
    }

    #[test]
    fn verify_slices_cover_every_day() {
        let days = 30;
        let mut seen: Vec<u32> = (0..30)
            .map(|d| verify_slice(DAY0 + d * 24 * HOUR, days))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (1..=30).collect::<Vec<_>>());
    }
}
