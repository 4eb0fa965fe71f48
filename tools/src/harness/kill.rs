//! The kill schedule: when to kill the child, by the clock or by what it
//! reports; and the plumbing that reads its output.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;
use strongroom::{Clock, SystemClock};

use super::protocol::{Signal, signal_of};
use super::report::Stats;

/// When to kill the child.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KillPlan {
    /// This long after the spawn: during start-up and recovery, often.
    AfterSpawn(Duration),
    /// This long after the child reports it opened the database.
    AfterOpen(Duration),
    /// This long (often 0) after the child reports the `nth` call of its
    /// admin thread: a shred or a cancel is then under way, most likely.
    InAdminCall { nth: u32, delay: Duration },
    /// This long after the deadline of the first short seal the child makes:
    /// the child's maintenance (every 200 ms) then destroys and reclaims it.
    PastDeadline { delay: Duration },
}

/// Longest wait for the event a plan waits for; then the child is killed
/// anyway.
const KILL_WAIT_MAX: Duration = Duration::from_millis(1500);

/// Seals with a deadline further than this are long ones: not waited for.
const SHORT_SEAL_MAX: Duration = Duration::from_secs(1);

impl KillPlan {
    /// Most kills land within a tenth of a second of the open, so that a
    /// kill point is cheap; some later, past the background maintenance's
    /// first ticks (every 200 ms: checkpoints that remove segments, due
    /// shreds, re-encryption passes), and one in twenty past the shipping
    /// lag the archive check allows.
    pub fn random(rng: &mut StdRng) -> KillPlan {
        let ms = |rng: &mut StdRng, range| Duration::from_millis(rng.random_range(range));
        match rng.random_range(0..20) {
            0..2 => KillPlan::AfterSpawn(ms(rng, 0..=40)),
            2..9 => KillPlan::AfterOpen(ms(rng, 0..=100)),
            9..10 => KillPlan::AfterOpen(ms(rng, 100..=450)),
            // Past the shipping lag the check allows: acknowledged writes
            // must be in the archive by then.
            10..11 => KillPlan::AfterOpen(ms(rng, 1300..=2000)),
            11..17 => KillPlan::InAdminCall {
                nth: rng.random_range(1..=6),
                delay: if rng.random_bool(0.3) {
                    Duration::ZERO
                } else {
                    Duration::from_micros(rng.random_range(0..=3000))
                },
            },
            _ => KillPlan::PastDeadline {
                delay: ms(rng, 0..=150),
            },
        }
    }

    /// Returns when the child is to be killed.
    pub fn wait(self, heard: &mpsc::Receiver<Signal>, stats: &mut Stats) {
        let give_up = Instant::now() + KILL_WAIT_MAX;
        let next = || heard.recv_timeout(give_up.saturating_duration_since(Instant::now()));
        match self {
            KillPlan::AfterSpawn(delay) => {
                stats.kills_at_spawn += 1;
                std::thread::sleep(delay);
                return;
            }
            KillPlan::AfterOpen(delay) => {
                while let Ok(signal) = next() {
                    if let Signal::Opened = signal {
                        std::thread::sleep(delay);
                        stats.kills_after_open += 1;
                        return;
                    }
                }
            }
            KillPlan::InAdminCall { nth, delay } => {
                let mut seen = 0;
                while let Ok(signal) = next() {
                    if let Signal::AdminCall = signal {
                        seen += 1;
                        if seen == nth {
                            // Spin: a sleep would not be this precise.
                            let until = Instant::now() + delay;
                            while Instant::now() < until {
                                std::hint::spin_loop();
                            }
                            stats.kills_in_admin_calls += 1;
                            return;
                        }
                    }
                }
            }
            KillPlan::PastDeadline { delay } => {
                while let Ok(signal) = next() {
                    if let Signal::Sealed { deadline_us } = signal {
                        let wait_us = deadline_us.saturating_sub(SystemClock.now_us());
                        if wait_us > SHORT_SEAL_MAX.as_micros() as u64 {
                            continue;
                        }
                        std::thread::sleep(Duration::from_micros(wait_us) + delay);
                        stats.kills_past_deadline += 1;
                        return;
                    }
                }
            }
        }
        stats.kills_given_up += 1;
    }
}

/// Reads the child's stdout line by line as it comes, telling `signals` what
/// the kill schedule waits for; returns all it read.
pub(crate) fn watch(
    from: impl Read + Send + 'static,
    signals: mpsc::Sender<Signal>,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut bytes = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            // A read error just ends the transcript early; what was read
            // counts.
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => bytes.extend_from_slice(&line),
            }
            if let Some(signal) = signal_of(&String::from_utf8_lossy(&line)) {
                // The parent may have stopped listening: that is fine.
                let _ = signals.send(signal);
            }
        }
        bytes
    })
}

pub(crate) fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error just ends the transcript early; what was read counts.
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

/// The last lines of a child's stderr.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// File names of the log's segments.
pub(crate) fn segments(db_dir: &Path) -> Vec<PathBuf> {
    let wal = db_dir.join(strongroom::format::WAL_DIR);
    let Ok(entries) = std::fs::read_dir(&wal) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|name| {
            name.to_str()
                .is_some_and(|n| n.ends_with(strongroom::format::SEGMENT_SUFFIX))
        })
        .collect()
}
