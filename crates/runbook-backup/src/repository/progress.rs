//! Progress bars for long repository work: shown on a terminal, silent when piped.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustic_core::{Progress, ProgressBars, ProgressType, RusticProgress};

/// Whether progress should be drawn: only when stderr is a terminal.
pub(crate) fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Bars;

impl ProgressBars for Bars {
    fn progress(&self, kind: ProgressType, prefix: &str) -> Progress {
        let template = match kind {
            ProgressType::Spinner => "{spinner} {prefix:20} {elapsed}",
            ProgressType::Counter => "{spinner} {prefix:20} {bar:30} {pos}/{len} {elapsed}",
            ProgressType::Bytes => {
                "{spinner} {prefix:20} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            }
        };
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(prefix.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::new(Bar(bar))
    }
}

#[derive(Debug)]
struct Bar(ProgressBar);

impl RusticProgress for Bar {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
    fn set_title(&self, title: &str) {
        self.0.set_prefix(title.to_string());
    }
    fn inc(&self, inc: u64) {
        self.0.inc(inc);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// What a repository operation of a target reports, for `serve`'s job pages: the step, how
/// far it is, and out of how much (when known).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Live {
    /// The step (rustic's title: "backing up…", "reading index…", "restoring…").
    pub step: String,
    /// Done so far (bytes, or items).
    pub done: u64,
    /// Out of (when known).
    pub total: Option<u64>,
    /// Whether `done` and `total` are bytes.
    pub bytes: bool,
}

static LIVE: std::sync::LazyLock<std::sync::Mutex<std::collections::BTreeMap<String, Live>>> =
    std::sync::LazyLock::new(Default::default);

fn with_live(target: &str, f: impl FnOnce(&mut Live)) {
    let mut all = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(all.entry(target.to_string()).or_default());
}

/// The latest progress of `target`'s repository work in this process.
#[must_use]
pub fn live(target: &str) -> Option<Live> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(target)
        .cloned()
}

/// Progress kept in memory per target (not drawn): for `serve`.
#[derive(Debug, Clone)]
pub(crate) struct Track(pub(crate) String);

impl ProgressBars for Track {
    fn progress(&self, kind: ProgressType, prefix: &str) -> Progress {
        let bytes = matches!(kind, ProgressType::Bytes);
        with_live(&self.0, |l| {
            *l = Live {
                step: prefix.to_string(),
                done: 0,
                total: None,
                bytes,
            };
        });
        Progress::new(Tracked(self.0.clone()))
    }
}

#[derive(Debug)]
struct Tracked(String);

impl RusticProgress for Tracked {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        with_live(&self.0, |l| l.total = Some(len));
    }
    fn set_title(&self, title: &str) {
        with_live(&self.0, |l| l.step = title.to_string());
    }
    fn inc(&self, inc: u64) {
        with_live(&self.0, |l| l.done = l.done.saturating_add(inc));
    }
    fn finish(&self) {
        with_live(&self.0, |l| {
            if let Some(t) = l.total {
                l.done = t;
            }
        });
    }
}
