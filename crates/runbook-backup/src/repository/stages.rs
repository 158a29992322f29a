//! Where a backup's `store` phase goes. The pipeline runs its stages side by side on every
//! core, so each is counted in thread-seconds: the time threads spent in it, summed. `source`
//! is the time spent waiting for the source's bytes (the dump tool's pipe, the database file,
//! the files), `chunk` the time spent cutting, hashing, compressing and encrypting them, and
//! `upload` the time spent writing packs and index files to the repository. Waiting on
//! another stage (a full queue, an empty one) is in none of them: a stage near the `store`
//! phase's wall time is what held the backup up.

use std::{
    collections::BTreeMap,
    io::Read,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// One stage of a backup's pipeline.
#[derive(Clone, Copy)]
pub(super) enum Stage {
    Source,
    Chunk,
    Upload,
}

impl Stage {
    const ALL: [Self; 3] = [Self::Source, Self::Chunk, Self::Upload];

    fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Chunk => "chunk",
            Self::Upload => "upload",
        }
    }
}

/// Nanoseconds spent in each stage, added to by every thread of a backup.
#[derive(Default)]
pub(super) struct Stages([AtomicU64; 3]);

impl Stages {
    pub(super) fn add(&self, stage: Stage, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.0[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Runs `f`, counting the time it takes as `stage`.
    pub(super) fn time<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.add(stage, started.elapsed());
        out
    }

    /// The seconds of each stage, by name.
    pub(super) fn seconds(&self) -> BTreeMap<String, f64> {
        Stage::ALL
            .iter()
            .map(|&s| {
                let nanos = self.0[s as usize].load(Ordering::Relaxed);
                (
                    s.name().to_string(),
                    Duration::from_nanos(nanos).as_secs_f64(),
                )
            })
            .collect()
    }
}

/// A source that counts the time its reads take.
pub(super) struct Timed<R> {
    inner: R,
    spent: Duration,
}

impl<R> Timed<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            spent: Duration::ZERO,
        }
    }

    /// The time its reads have taken so far.
    pub(super) fn spent(&self) -> Duration {
        self.spent
    }
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let started = Instant::now();
        let read = self.inner.read(buf);
        self.spent += started.elapsed();
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_keeps_its_own_time_and_a_reader_counts_only_its_reads() {
        let stages = Stages::default();
        stages.add(Stage::Source, Duration::from_millis(1500));
        stages.add(Stage::Upload, Duration::from_millis(250));
        stages.add(Stage::Upload, Duration::from_millis(250));
        let s = stages.seconds();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["chunk", "source", "upload"]);
        assert!((s["source"] - 1.5).abs() < 1e-9, "{s:?}");
        assert!((s["upload"] - 0.5).abs() < 1e-9, "{s:?}");
        assert!(s["chunk"].abs() < 1e-9, "{s:?}");

        /// A source that takes 20 ms for each read.
        struct Slow(u8);
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                if self.0 == 0 || buf.is_empty() {
                    return Ok(0);
                }
                self.0 -= 1;
                buf[0] = self.0;
                Ok(1)
            }
        }
        let mut timed = Timed::new(Slow(3));
        let mut all = Vec::new();
        timed.read_to_end(&mut all).expect("read");
        assert_eq!(all, [2, 1, 0]);
        // Four reads (the last finds the end), 20 ms or more each.
        assert!(
            timed.spent() >= Duration::from_millis(80),
            "{:?}",
            timed.spent()
        );
    }
}
