//! Progress bars for long operations (bytes, rate and time left), on
//! stderr, only when a person is watching: never with `--json` or when
//! stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar per stage of an operation, each replacing the last.
pub struct Bars {
    shown: bool,
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl Bars {
    /// Bars that show unless `quiet` (or stderr is not a terminal).
    pub fn new(quiet: bool) -> Bars {
        Bars {
            shown: !quiet && std::io::stderr().is_terminal(),
            current: Mutex::new(None),
        }
    }

    /// `done` of `total` bytes in stage `stage`.
    pub fn update(&self, stage: &str, done: u64, total: u64) {
        if !self.shown {
            return;
        }
        let mut current = self.current.lock().expect("no panic while drawing");
        if current.as_ref().is_none_or(|(s, _)| s != stage) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(stage.to_owned());
            *current = Some((stage.to_owned(), bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Ends the last bar.
    pub fn finish(&self) {
        if let Some((_, bar)) = self.current.lock().expect("no panic while drawing").take() {
            bar.finish();
        }
    }
}
