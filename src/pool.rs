//! A pool of worker threads for work that spreads over the cores: opening a
//! scan's batches ahead of it, syncing many keyring files at once.
//!
//! Threads start at the first job (a database that never needs them starts
//! none) and are joined when the pool drops. A job is a closure; whoever
//! submits it arranges how its result comes back. If no thread can be
//! started, [`Pool::submit`] hands the job back, for the caller to run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

/// Work for a pool thread.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

pub(crate) struct Pool {
    name: &'static str,
    size: usize,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// A pool of up to `size` threads named `{name}-{i}` (0: none, every
    /// job is handed back).
    pub(crate) fn new(name: &'static str, size: usize) -> Pool {
        Pool {
            name,
            size,
            shared: Arc::default(),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Queues `job` for a pool thread; hands it back if the pool has none.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        if !self.started() {
            return Err(job);
        }
        self.shared.queue.lock().jobs.push_back(job);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Whether threads run, starting them at the first call.
    fn started(&self) -> bool {
        let mut threads = self.threads.lock();
        if !threads.is_empty() || self.size == 0 {
            return !threads.is_empty();
        }
        for i in 0..self.size {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || work(&shared));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => tracing::warn!(pool = self.name, error = %e, "cannot start a thread"),
            }
        }
        !threads.is_empty()
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.queue.lock();
            loop {
                if queue.stopping {
                    return;
                }
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                shared.wake.wait(&mut queue);
            }
        };
        job();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.queue.lock().stopping = true;
        self.shared.wake.notify_all();
        for handle in self.threads.get_mut().drain(..) {
            let _ = handle.join();
        }
    }
}
