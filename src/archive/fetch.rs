//! Many archive calls at once: a restore's download of a backup's files and
//! of the log, where one call at a time would leave the network idle while
//! each answer is opened and written.
//!
//! Archive calls block (the trait is synchronous), so each runs on a worker
//! thread of its own; the work is handed out by index, and results that the
//! caller needs in order are delivered in order, with at most `window`
//! fetched ahead of the one being consumed (memory stays bounded by the
//! window, not by the history).

use std::collections::BTreeMap;
use std::sync::mpsc;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// Runs `work` on every item, `threads` at a time, in no particular order.
/// Stops handing out items at the first error, which it returns.
pub(crate) fn parallel<T: Sync>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    in_order(items, threads, items.len().max(1), &work, |_, ()| Ok(true))
}

/// Fetches items with `fetch`, `threads` at a time and at most `window`
/// ahead of the consumer, and hands each result to `consume` in the items'
/// order, until `consume` returns `false` (no more items are fetched) or
/// one of them fails (that error is returned; fetches already running end
/// and are dropped).
pub(crate) fn in_order<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    window: usize,
    fetch: impl Fn(&T) -> Result<R> + Sync,
    mut consume: impl FnMut(usize, R) -> Result<bool>,
) -> Result<()> {
    assert!(threads >= 1 && window >= 1, "at least one of each");
    struct Claims {
        /// The next item to hand out.
        next: usize,
        /// Items consumed: those at or past `consumed + window` wait.
        consumed: usize,
        stop: bool,
    }
    let claims = Mutex::new(Claims {
        next: 0,
        consumed: 0,
        stop: false,
    });
    let moved = Condvar::new();
    let claim = || {
        let mut c = claims.lock();
        loop {
            if c.stop || c.next >= items.len() {
                return None;
            }
            if c.next < c.consumed + window {
                c.next += 1;
                return Some(c.next - 1);
            }
            moved.wait(&mut c);
        }
    };
    let finish = || {
        claims.lock().stop = true;
        moved.notify_all();
    };
    std::thread::scope(|scope| {
        let (sender, results) = mpsc::channel::<(usize, Result<R>)>();
        for _ in 0..threads.min(items.len()) {
            let sender = sender.clone();
            let (claim, fetch) = (&claim, &fetch);
            scope.spawn(move || {
                while let Some(i) = claim() {
                    if sender.send((i, fetch(&items[i]))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut ready: BTreeMap<usize, Result<R>> = BTreeMap::new();
        let outcome = (|| {
            for next in 0..items.len() {
                let result = loop {
                    if let Some(result) = ready.remove(&next) {
                        break result;
                    }
                    let (i, result) = results.recv().map_err(|_| {
                        Error::Store("a fetch worker stopped before its item".into())
                    })?;
                    ready.insert(i, result);
                };
                let go_on = consume(next, result?)?;
                claims.lock().consumed = next + 1;
                moved.notify_all();
                if !go_on {
                    break;
                }
            }
            Ok(())
        })();
        finish();
        drop(results);
        outcome
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn results_arrive_in_order_and_stay_within_the_window() {
        let items: Vec<usize> = (0..200).collect();
        let consumed = AtomicUsize::new(0);
        let mut seen = Vec::new();
        in_order(
            &items,
            4,
            8,
            |&i| {
                // Never more than the window ahead of the consumer.
                assert!(
                    i < consumed.load(Ordering::SeqCst) + 8,
                    "item {i} fetched too early"
                );
                std::thread::sleep(std::time::Duration::from_micros((i % 7) as u64 * 50));
                Ok(i * 2)
            },
            |i, r| {
                assert_eq!(r, i * 2);
                seen.push(i);
                consumed.store(i + 1, Ordering::SeqCst);
                Ok(true)
            },
        )
        .unwrap();
        assert_eq!(seen, items);
    }

    #[test]
    fn the_consumer_stops_it_and_the_first_error_ends_it() {
        let items: Vec<usize> = (0..100).collect();
        let fetched = AtomicUsize::new(0);
        let mut seen = 0;
        in_order(
            &items,
            3,
            4,
            |&i| {
                fetched.fetch_add(1, Ordering::SeqCst);
                Ok(i)
            },
            |i, _| {
                seen += 1;
                Ok(i < 10)
            },
        )
        .unwrap();
        assert_eq!(seen, 11);
        assert!(fetched.load(Ordering::SeqCst) <= 11 + 4, "stopped fetching");
        let failed = in_order(
            &items,
            3,
            4,
            |&i| {
                if i == 17 {
                    Err(Error::InvalidArgument("planted"))
                } else {
                    Ok(i)
                }
            },
            |_, _| Ok(true),
        );
        assert!(matches!(failed, Err(Error::InvalidArgument("planted"))));
        let done = AtomicUsize::new(0);
        parallel(&items, 4, |_| {
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(done.load(Ordering::SeqCst), items.len());
    }
}
