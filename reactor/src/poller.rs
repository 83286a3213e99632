//! Readiness from epoll: the one thing the loop waits on.
//!
//! A thin layer over `rustix`'s safe epoll calls, shaped like the `polling`
//! crate the reactor first ran on, minus the work that crate's `wait` does
//! on every call whether or not anything needs it: it re-arms a timerfd
//! for the timeout (`timerfd_settime` + `epoll_ctl`) and drains and re-arms
//! its wake-up eventfd (`read` + `epoll_ctl`), four system calls beside the
//! `epoll_wait` itself. With one wakeup per connection or two, as under a
//! connection-per-request load, that was a quarter of the server's system
//! calls (BENCHMARKS.md, "Readiness"). Here a wait is one `epoll_pwait`
//! (its timeout rounded up to the millisecond, so a timer never fires
//! early), and the wake-up eventfd is edge-triggered, so waking costs one
//! `write` on the waking side and nothing on the loop's.
//!
//! Interest is reported as `polling` reports it: "readable" is `EPOLLIN`
//! (or hang-up or error, which a read turns into EOF or the error), and
//! "writable" is `EPOLLOUT` (or hang-up or error). `EPOLLPRI` is never asked
//! for: TCP urgent data would report it on every wait without a read ever
//! clearing it.
//!
//! Every registered descriptor is deleted before it is closed: closing
//! alone does not unregister it while another process shares the open file
//! (a child forked by another worker thread, until it execs), and its
//! events would arrive under a key that may by then name another
//! connection.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};

/// The key the wake-up eventfd is registered under; never a real source's
/// (the reactor's keys are a slab index shifted left by two bits).
const WAKER_KEY: u64 = u64::MAX;

/// The longest single wait: a timer further away is waited for in steps
/// (the loop re-computes the timeout after every wakeup).
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How a registration behaves after it reports an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reported on every wait while the condition holds (sockets, listeners).
    Level,
    /// Reported once, then disarmed until modified again (pipes).
    Oneshot,
}

/// Interest to register, or readiness reported by [`Poller::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The caller's key for the source.
    pub key: usize,
    /// Interest in, or readiness for, reading (a hang-up or error counts:
    /// a read reports it).
    pub readable: bool,
    /// Interest in, or readiness for, writing (a hang-up or error counts).
    pub writable: bool,
    /// `EPOLLHUP`: both directions are shut.
    hup: bool,
    /// `EPOLLERR`: the socket has a pending error.
    err: bool,
}

impl Event {
    /// Interest in `readable` and `writable` readiness for `key`.
    pub fn new(key: usize, readable: bool, writable: bool) -> Event {
        Event {
            key,
            readable,
            writable,
            hup: false,
            err: false,
        }
    }

    /// Interest in readability only.
    pub fn readable(key: usize) -> Event {
        Event::new(key, true, false)
    }

    /// No interest: the source stays registered but reports nothing except
    /// (for sockets) hang-ups and errors.
    pub fn none(key: usize) -> Event {
        Event::new(key, false, false)
    }

    /// The peer hung up: both directions are shut (`EPOLLHUP`).
    pub fn is_hup(&self) -> bool {
        self.hup
    }

    /// The socket has a pending error (`EPOLLERR`).
    pub fn is_err(&self) -> bool {
        self.err
    }

    /// What epoll is told for this interest: the key, and the flags.
    fn registration(&self, mode: Mode) -> (EventData, EventFlags) {
        let mut flags = match mode {
            Mode::Level => EventFlags::empty(),
            Mode::Oneshot => EventFlags::ONESHOT,
        };
        if self.readable {
            flags |= EventFlags::IN;
        }
        if self.writable {
            flags |= EventFlags::OUT;
        }
        (EventData::new_u64(self.key as u64), flags)
    }

    fn from_epoll(ev: &epoll::Event) -> Event {
        let flags = ev.flags;
        let fault = EventFlags::HUP | EventFlags::ERR;
        Event {
            key: ev.data.u64() as usize,
            readable: flags.intersects(EventFlags::IN | fault),
            writable: flags.intersects(EventFlags::OUT | fault),
            hup: flags.contains(EventFlags::HUP),
            err: flags.contains(EventFlags::ERR),
        }
    }
}

/// Readiness reported by one [`Poller::wait`].
pub(crate) struct Events {
    list: Vec<epoll::Event>,
}

impl Events {
    /// Room for `capacity` events per wait.
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity.max(1)),
        }
    }

    /// The last wait's events, wake-ups left out.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.list
            .iter()
            .filter(|ev| ev.data.u64() != WAKER_KEY)
            .map(Event::from_epoll)
    }
}

/// An epoll instance and the eventfd that wakes it from other threads.
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
    waker: OwnedFd,
}

impl Poller {
    /// A new epoll instance with its wake-up eventfd registered.
    pub fn new() -> io::Result<Poller> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let waker = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        // Edge-triggered: every write to the eventfd is a new edge and
        // wakes the wait, so the loop never has to read it to re-arm it.
        epoll::add(
            &epoll,
            &waker,
            EventData::new_u64(WAKER_KEY),
            EventFlags::IN | EventFlags::ET,
        )?;
        Ok(Poller { epoll, waker })
    }

    /// Registers `source` with `interest`.
    pub fn add(&self, source: impl AsFd, interest: Event, mode: Mode) -> io::Result<()> {
        let (data, flags) = interest.registration(mode);
        Ok(epoll::add(&self.epoll, source, data, flags)?)
    }

    /// Replaces the interest of a registered `source` (and re-arms a
    /// oneshot registration).
    pub fn modify(&self, source: impl AsFd, interest: Event, mode: Mode) -> io::Result<()> {
        let (data, flags) = interest.registration(mode);
        Ok(epoll::modify(&self.epoll, source, data, flags)?)
    }

    /// Unregisters `source`; call it before closing the descriptor.
    pub fn delete(&self, source: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.epoll, source)?;
        Ok(())
    }

    /// Waits until something is ready, [`Poller::notify`] is called, or
    /// `timeout` passes (`None`: no limit), and puts what is ready in
    /// `events`. One `epoll_pwait`; `EINTR` is returned as `Interrupted`.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.list.clear();
        let timeout = timeout.map(|t| {
            let t = t.min(MAX_WAIT);
            Timespec {
                tv_sec: t.as_secs() as _,
                tv_nsec: t.subsec_nanos() as _,
            }
        });
        epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut events.list),
            timeout.as_ref(),
        )?;
        Ok(())
    }

    /// Wakes the current or the next [`Poller::wait`]; callable from any
    /// thread.
    pub fn notify(&self) -> io::Result<()> {
        match rustix::io::write(&self.waker, &1u64.to_ne_bytes()) {
            Ok(_) => Ok(()),
            // The counter is at its maximum (after 2^64 - 2 wake-ups
            // nobody read): it is readable already, but a write must
            // succeed to make a new edge. Empty it and write again.
            Err(rustix::io::Errno::AGAIN) => {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&self.waker, &mut buf);
                rustix::io::write(&self.waker, &1u64.to_ne_bytes())?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
