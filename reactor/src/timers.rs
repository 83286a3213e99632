//! The timer queue: monotonic deadlines in an ordered set, entries in a slab.
//!
//! Creating and cancelling a timer are O(log n). Timers owned by a
//! connection are threaded on an intrusive list from the connection, so
//! closing a connection cancels all of its timers without a scan and no
//! stale timer can outlive (or misfire into) its connection.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::ids::TimerId;
use crate::transport::Context;

/// Marks "no entry" in the intrusive per-connection timer list.
pub(crate) const NIL: u32 = u32::MAX;

/// A reactor-wide timer callback (see [`Context::schedule`]).
pub(crate) type TimerCallback = Box<dyn FnMut(&mut Context<'_>, TimerId)>;

/// What a timer does when it fires.
pub(crate) enum TimerKind {
    /// Calls the owning connection's `timer_fired`.
    User,
    /// Fails a connection still connecting.
    ConnectTimeout,
    /// Aborts a connection whose `close()` could not flush in time. For
    /// `close_lingering(drain)` it carries `drain`: once the output is
    /// flushed, the timer is replaced by a [`TimerKind::LingerDrain`] that
    /// far away.
    CloseLinger(Option<Duration>),
    /// Ends a lingering close whose peer did not send EOF in time: all
    /// output was sent, so this is a clean close.
    LingerDrain,
    /// Fails an accepted TLS connection still handshaking.
    Handshake,
    /// Closes a connection still waiting for its PROXY protocol header.
    ProxyDeadline,
    /// Runs a reactor-wide callback. `None` while the callback is running.
    Global(Option<TimerCallback>),
    /// Resumes a listener paused after `EMFILE`.
    ResumeListener(u32),
    /// The graceful-shutdown deadline.
    ShutdownDeadline,
}

/// One timer. Invariant: an entry is in `Timers::order` exactly when it is
/// in `Timers::entries`, under the key `(deadline, seq, slab key)`.
pub(crate) struct TimerEntry {
    pub deadline: Instant,
    seq: u64,
    pub gen: u32,
    /// The owning connection's slab key, or `NIL` for reactor-wide timers.
    pub owner: u32,
    /// The owning connection's generation (meaningless when `owner == NIL`).
    pub owner_gen: u32,
    pub kind: TimerKind,
    /// Set for repeating timers: re-armed this long after each deadline.
    pub interval: Option<Duration>,
    prev: u32,
    next: u32,
}

/// All timers of one reactor.
#[derive(Default)]
pub(crate) struct Timers {
    entries: Slab<TimerEntry>,
    order: BTreeSet<(Instant, u64, u32)>,
    seq: u64,
    gen: u32,
}

/// A timer taken off the queue because its deadline passed.
pub(crate) struct Fired {
    pub id: TimerId,
    pub owner: u32,
    pub owner_gen: u32,
    pub kind: TimerKind,
    /// True when the entry stays scheduled (repeating timer): the caller
    /// must hand a `Global` callback back with [`Timers::restore_callback`].
    pub repeating: bool,
    /// The entry's (prev, next) links in its owner's list, for `unlink_fired`.
    links: (u32, u32),
}

impl Timers {
    /// Number of scheduled timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Schedules a timer. `head` is the owning connection's list head (or a
    /// dummy for reactor-wide timers) and is updated.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        deadline: Instant,
        interval: Option<Duration>,
        owner: u32,
        owner_gen: u32,
        kind: TimerKind,
        head: &mut u32,
    ) -> TimerId {
        self.seq += 1;
        self.gen = self.gen.wrapping_add(1);
        let entry = TimerEntry {
            deadline,
            seq: self.seq,
            gen: self.gen,
            owner,
            owner_gen,
            kind,
            interval,
            prev: NIL,
            next: if owner == NIL { NIL } else { *head },
        };
        let key = self.entries.insert(entry) as u32;
        if owner != NIL {
            if let Some(old_head) = self.entries.get_mut(*head as usize) {
                old_head.prev = key;
            }
            *head = key;
        }
        self.order.insert((deadline, self.seq, key));
        TimerId { key, gen: self.gen }
    }

    /// The entry for a live id.
    pub fn get(&self, id: TimerId) -> Option<&TimerEntry> {
        self.entries
            .get(id.key as usize)
            .filter(|e| e.gen == id.gen)
    }

    /// Cancels a timer; returns its entry if it was scheduled. The caller
    /// passes the owner's list head so it can be unlinked.
    pub fn remove(&mut self, id: TimerId, head: &mut u32) -> Option<TimerEntry> {
        let entry = self.get(id)?;
        let (prev, next, deadline, seq) = (entry.prev, entry.next, entry.deadline, entry.seq);
        let owned = entry.owner != NIL;
        self.order.remove(&(deadline, seq, id.key));
        if owned {
            self.unlink(id.key, prev, next, head);
        }
        Some(self.entries.remove(id.key as usize))
    }

    fn unlink(&mut self, key: u32, prev: u32, next: u32, head: &mut u32) {
        if let Some(p) = self.entries.get_mut(prev as usize) {
            p.next = next;
        }
        if let Some(n) = self.entries.get_mut(next as usize) {
            n.prev = prev;
        }
        if *head == key {
            *head = next;
        }
    }

    /// Cancels every timer on a connection's list.
    pub fn remove_all(&mut self, head: &mut u32) {
        let mut key = *head;
        while key != NIL {
            let Some(entry) = self.entries.try_remove(key as usize) else {
                break;
            };
            self.order.remove(&(entry.deadline, entry.seq, key));
            key = entry.next;
        }
        *head = NIL;
    }

    /// The earliest deadline, if any timer is scheduled.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.first().map(|(d, _, _)| *d)
    }

    /// The sequence number the next timer will get: timers created from now
    /// on are not fired by a batch that started before them (so a timer that
    /// re-schedules itself for "now" cannot loop forever).
    pub fn watermark(&self) -> u64 {
        self.seq
    }

    /// Takes the earliest timer due at `now` that was created at or before
    /// `watermark`. Repeating timers are re-armed in place. A one-shot timer
    /// owned by a connection leaves the slab but is still linked into its
    /// owner's list: the caller must call [`Timers::unlink_fired`] with the
    /// owner's list head (if the owner is still alive).
    pub fn pop_due(&mut self, now: Instant, watermark: u64) -> Option<Fired> {
        let &(deadline, seq, key) = self.order.first()?;
        if deadline > now || seq > watermark {
            return None;
        }
        self.order.pop_first();
        let entry = self.entries.get_mut(key as usize)?;
        let id = TimerId {
            key,
            gen: entry.gen,
        };
        if let Some(interval) = entry.interval {
            // Skip missed ticks instead of firing a burst to catch up.
            let mut next = deadline + interval;
            if next <= now {
                next = now + interval;
            }
            self.seq += 1;
            entry.deadline = next;
            entry.seq = self.seq;
            let kind = match &mut entry.kind {
                TimerKind::Global(cb) => TimerKind::Global(cb.take()),
                _ => TimerKind::User,
            };
            self.order.insert((next, self.seq, key));
            return Some(Fired {
                id,
                owner: entry.owner,
                owner_gen: entry.owner_gen,
                kind,
                repeating: true,
                links: (NIL, NIL),
            });
        }
        let entry = self.entries.remove(key as usize);
        Some(Fired {
            id,
            owner: entry.owner,
            owner_gen: entry.owner_gen,
            kind: entry.kind,
            repeating: false,
            links: (entry.prev, entry.next),
        })
    }

    /// Unlinks a fired one-shot timer from its owner's list.
    pub fn unlink_fired(&mut self, fired: &Fired, head: &mut u32) {
        if !fired.repeating && fired.owner != NIL {
            self.unlink(fired.id.key, fired.links.0, fired.links.1, head);
        }
    }

    /// Gives a repeating global timer its callback back after it ran.
    pub fn restore_callback(&mut self, id: TimerId, cb: TimerCallback) {
        if let Some(entry) = self.entries.get_mut(id.key as usize) {
            if entry.gen == id.gen {
                if let TimerKind::Global(slot) = &mut entry.kind {
                    *slot = Some(cb);
                }
            }
        }
    }
}
