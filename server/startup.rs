//! The start barrier between worker threads: every worker opens its
//! listeners, then waits; when all have (or one has failed), the main
//! thread finishes starting up (pid file, privilege drop) and releases them
//! all, or tells them to give up. No worker serves a request before root
//! is dropped, and no listener is bound after it.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// What the workers have said so far.
#[derive(Debug)]
struct State {
    /// `reported[i]`: worker `i` (1-based; index 0 is the main thread and
    /// unused) has opened its listeners or failed to.
    reported: Vec<bool>,
    /// Some worker failed to open its listeners.
    failed: bool,
    /// `Some(true)`: serve; `Some(false)`: start-up failed, stop.
    released: Option<bool>,
}

/// The barrier for `workers` workers (worker 0 runs on the main thread and
/// is the one that releases the others).
#[derive(Debug)]
pub struct Startup {
    state: Mutex<State>,
    changed: Condvar,
}

/// What a worker's start-up ended in.
pub type Outcome<T> = Result<T, Box<dyn std::error::Error>>;

impl Startup {
    /// A barrier for `workers` workers (at least the main thread's).
    pub fn new(workers: usize) -> Self {
        Startup {
            state: Mutex::new(State {
                reported: vec![false; workers.max(1)],
                failed: false,
                released: None,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked while holding the lock left consistent
        // data (plain flags): keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Worker `index` (≥ 1) has opened its listeners (`ok`) or failed to.
    /// Only the first report of a worker counts.
    pub fn report(&self, index: usize, ok: bool) {
        let mut s = self.lock();
        if let Some(slot) = s.reported.get_mut(index) {
            if !*slot {
                *slot = true;
                s.failed |= !ok;
            }
        }
        drop(s);
        self.changed.notify_all();
    }

    /// The main thread: waits until every other worker has reported;
    /// false if one failed.
    fn wait_for_workers(&self) -> bool {
        let mut s = self.lock();
        while s.reported.iter().skip(1).any(|r| !r) {
            s = self.wait(s);
        }
        !s.failed
    }

    /// The main thread: lets the workers serve (`true`) or stop.
    fn release(&self, go: bool) {
        self.lock().released = Some(go);
        self.changed.notify_all();
    }

    /// A worker: waits for the main thread's decision.
    fn wait_release(&self) -> bool {
        let mut s = self.lock();
        loop {
            if let Some(go) = s.released {
                return go;
            }
            s = self.wait(s);
        }
    }

    /// Where worker `index` waits after opening its listeners (`opened`).
    /// The main thread (index 0) waits for the others, runs `ready` (pid
    /// file, privilege drop) if everyone succeeded, and releases them; the
    /// others report and wait. Returns what `opened` held when the process
    /// may serve, else the reason to stop.
    pub fn sync<T>(
        &self,
        index: usize,
        opened: Outcome<T>,
        ready: impl FnOnce() -> Outcome<()>,
    ) -> Outcome<T> {
        if index == 0 {
            let outcome = opened.and_then(|value| {
                if !self.wait_for_workers() {
                    return Err("a worker could not open its listeners".into());
                }
                ready()?;
                Ok(value)
            });
            self.release(outcome.is_ok());
            return outcome;
        }
        self.report(index, opened.is_ok());
        let value = opened?;
        if self.wait_release() {
            Ok(value)
        } else {
            Err("start-up failed in another worker".into())
        }
    }
}

/// Reports worker `index` as failed if it ends (returns early or panics)
/// without having reported, so the main thread never waits forever.
pub struct FailUnlessReported<'a> {
    /// The barrier.
    pub startup: &'a Startup,
    /// The worker.
    pub index: usize,
}

impl Drop for FailUnlessReported<'_> {
    fn drop(&mut self) {
        // A no-op when the worker already reported.
        self.startup.report(self.index, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn run(workers: usize, fail: Option<usize>) -> (Vec<bool>, usize) {
        let startup = Arc::new(Startup::new(workers));
        let readied = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for i in 1..workers {
            let s = Arc::clone(&startup);
            threads.push(std::thread::spawn(move || {
                let _guard = FailUnlessReported {
                    startup: &s,
                    index: i,
                };
                let opened: Outcome<()> = if fail == Some(i) {
                    Err("bind".into())
                } else {
                    Ok(())
                };
                s.sync(i, opened, || unreachable!("only worker 0 readies"))
                    .is_ok()
            }));
        }
        let r = Arc::clone(&readied);
        let opened: Outcome<()> = if fail == Some(0) {
            Err("bind".into())
        } else {
            Ok(())
        };
        let main_ok = startup
            .sync(0, opened, || {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .is_ok();
        let mut results = vec![main_ok];
        results.extend(threads.into_iter().map(|t| t.join().unwrap()));
        (results, readied.load(Ordering::SeqCst))
    }

    #[test]
    fn everyone_opens_then_everyone_serves() {
        assert_eq!(run(1, None), (vec![true], 1));
        assert_eq!(run(4, None), (vec![true; 4], 1));
    }

    #[test]
    fn a_failed_worker_stops_everyone_before_ready() {
        assert_eq!(run(3, Some(2)), (vec![false; 3], 0));
        assert_eq!(run(3, Some(0)), (vec![false; 3], 0));
    }

    #[test]
    fn a_worker_that_dies_before_reporting_does_not_hang_start_up() {
        let startup = Arc::new(Startup::new(2));
        let s = Arc::clone(&startup);
        let t = std::thread::spawn(move || {
            let _guard = FailUnlessReported {
                startup: &s,
                index: 1,
            };
            // Returns without calling sync, as a panic would.
        });
        let ok = startup.sync(0, Ok(()), || Ok(())).is_ok();
        t.join().unwrap();
        assert!(!ok);
    }

    #[test]
    fn a_failing_ready_step_stops_the_workers() {
        let startup = Arc::new(Startup::new(2));
        let s = Arc::clone(&startup);
        let t = std::thread::spawn(move || s.sync(1, Ok(()), || Ok(())).is_ok());
        let ok = startup
            .sync(0, Ok(()), || Err("setuid failed".into()))
            .is_ok();
        assert!(!ok);
        assert!(!t.join().unwrap());
    }
}
