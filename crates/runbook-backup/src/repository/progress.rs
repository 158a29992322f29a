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
