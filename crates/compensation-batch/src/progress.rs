//! Progress of a long job: a bar on a terminal, a log line every few seconds otherwise (a
//! Kubernetes Job's log, a CI log), so an operator always sees it moving.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    bar: ProgressBar,
    done: u64,
    total: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Self {
        // Hidden by indicatif itself when stderr is not a terminal.
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_message(what);
        let now = Instant::now();
        Self {
            what,
            bar,
            done: 0,
            total,
            started: now,
            last_log: now,
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        self.bar.inc(n);
        if self.bar.is_hidden() && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            tracing::info!(
                job = self.what,
                done = self.done,
                total = self.total,
                elapsed_ms = self.started.elapsed().as_millis(),
                "progress"
            );
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
