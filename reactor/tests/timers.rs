//! Timers: deadline order, cancellation (including from inside callbacks),
//! repeating timers, timers dying with their connection, and 10,000 timers.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Rng;
use torsion_reactor::{Disconnect, Protocol, ReactorConfig, TimerId, Transport};

const WAIT: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Schedules one-shot timers out of order and reports the order they fire.
struct Order {
    delays: Vec<u64>,
    labels: HashMap<TimerId, u64>,
    fired: Vec<u64>,
    report: Sender<Vec<u64>>,
}

impl Protocol for Order {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        for &d in &self.delays {
            let id = t.call_later(ms(d));
            self.labels.insert(id, d);
        }
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}

    fn timer_fired(&mut self, _t: &mut Transport<'_>, timer: TimerId) {
        self.fired.push(self.labels[&timer]);
        if self.fired.len() == self.delays.len() {
            let _ = self.report.send(self.fired.clone());
        }
    }
}

#[test]
fn connection_timers_fire_in_deadline_order() {
    let (tx, rx) = mpsc::channel();
    let (addr, running) = common::start_tcp(move |_| Order {
        delays: vec![50, 10, 40, 20, 30, 5, 45],
        labels: HashMap::new(),
        fired: Vec::new(),
        report: tx.clone(),
    });
    let _client = common::connect(addr);
    let fired = rx.recv_timeout(WAIT).expect("timers did not all fire");
    assert_eq!(fired, vec![5, 10, 20, 30, 40, 45, 50]);
    running.stop();
}

#[test]
fn reactor_timers_fire_in_deadline_order_and_can_stop_the_loop() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = Arc::clone(&order);
    let started = Instant::now();
    let ((), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            for d in [40u64, 10, 30, 20] {
                let o = Arc::clone(&o2);
                r.schedule(ms(d), move |_ctx, _id| o.lock().unwrap().push(d));
            }
            // Scheduled last but due first: order is by deadline only.
            let o = Arc::clone(&o2);
            r.schedule(ms(1), move |_ctx, _id| o.lock().unwrap().push(1));
            r.schedule(ms(60), |ctx, _id| ctx.stop());
        },
        |r, ()| r.timer_count(),
    );
    // The last timer stops the loop: run() returns by itself.
    let left = running.join();
    assert_eq!(*order.lock().unwrap(), vec![1, 10, 20, 30, 40]);
    assert_eq!(left, 0, "timers left after all fired");
    assert!(started.elapsed() >= ms(60));
}

/// What the cancellation protocol observed, sent when its final timer fires.
#[derive(Debug, Default)]
struct CancelReport {
    x_fired: bool,
    y_fired: bool,
    y_cancel_ok: bool,
    z_fired: bool,
    z_first_cancel: bool,
    z_second_cancel: bool,
    pair_fired: usize,
    pair_cancel_ok: bool,
    repeat_ids: Vec<TimerId>,
    repeat_cancel_ok: bool,
    cancel_fired_x: bool,
}

#[derive(Default)]
struct Cancels {
    x: Option<TimerId>,
    y: Option<TimerId>,
    z: Option<TimerId>,
    pair: Vec<TimerId>,
    repeat: Option<TimerId>,
    last: Option<TimerId>,
    r: CancelReport,
    report: Option<Sender<CancelReport>>,
}

impl Protocol for Cancels {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        // X cancels Y from inside its own callback.
        self.x = Some(t.call_later(ms(20)));
        self.y = Some(t.call_later(ms(60)));
        // Z is cancelled at once; a second cancel reports it is gone.
        let z = t.call_later(ms(1));
        self.z = Some(z);
        self.r.z_first_cancel = t.cancel(z);
        self.r.z_second_cancel = t.cancel(z);
        // Two timers due at the same instant (same turn): whichever fires
        // first cancels the other, which must then not fire.
        self.pair = vec![t.call_later(ms(15)), t.call_later(ms(15))];
        // A repeating timer that cancels itself on its third firing.
        self.repeat = Some(t.call_every(ms(5)));
        // The report, once the others are done (see `timer_fired`).
        self.last = Some(t.call_later(ms(150)));
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}

    fn timer_fired(&mut self, t: &mut Transport<'_>, timer: TimerId) {
        let id = Some(timer);
        if id == self.x {
            self.r.x_fired = true;
            self.r.y_cancel_ok = self.y.is_some_and(|y| t.cancel(y));
        } else if id == self.y {
            self.r.y_fired = true;
        } else if id == self.z {
            self.r.z_fired = true;
        } else if self.pair.contains(&timer) {
            self.r.pair_fired += 1;
            let other = self.pair.iter().copied().find(|&p| p != timer);
            if let Some(other) = other {
                self.r.pair_cancel_ok = t.cancel(other);
            }
        } else if id == self.repeat {
            self.r.repeat_ids.push(timer);
            if self.r.repeat_ids.len() == 3 {
                self.r.repeat_cancel_ok = t.cancel(timer);
            }
        } else if id == self.last {
            self.r.cancel_fired_x |= self.x.is_some_and(|x| t.cancel(x));
            if self.r.repeat_ids.len() < 3 {
                // The loop stalled before it ran (missed ticks of a
                // repeating timer are skipped, so it has not fired three
                // times yet): report a while after it has.
                self.last = Some(t.call_later(ms(50)));
            } else if let Some(tx) = self.report.take() {
                let _ = tx.send(std::mem::take(&mut self.r));
            }
        } else {
            panic!("unknown timer {timer:?} fired");
        }
    }
}

#[test]
fn cancelled_timers_never_fire() {
    let (tx, rx) = mpsc::channel();
    let (addr, running) = common::start_tcp(move |_| Cancels {
        report: Some(tx.clone()),
        ..Cancels::default()
    });
    let _client = common::connect(addr);
    let r = rx.recv_timeout(WAIT).expect("final timer did not fire");
    assert!(r.x_fired);
    assert!(r.y_cancel_ok, "cancel of a pending timer returned false");
    assert!(!r.y_fired, "timer cancelled from another callback fired");
    assert!(r.z_first_cancel);
    assert!(!r.z_second_cancel, "second cancel of a timer returned true");
    assert!(!r.z_fired, "cancelled timer fired");
    assert_eq!(r.pair_fired, 1, "both same-turn timers fired");
    assert!(r.pair_cancel_ok);
    assert_eq!(
        r.repeat_ids.len(),
        3,
        "repeating timer fired {:?}",
        r.repeat_ids
    );
    assert!(
        r.repeat_ids.windows(2).all(|w| w[0] == w[1]),
        "call_every changed its id"
    );
    assert!(
        r.repeat_cancel_ok,
        "a repeating timer could not cancel itself"
    );
    assert!(!r.cancel_fired_x, "cancel of a fired timer returned true");
    running.stop();
}

#[test]
fn reactor_repeating_timer_cancels_itself() {
    let fired = Arc::new(Mutex::new(Vec::new()));
    let f2 = Arc::clone(&fired);
    let ((), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            let f = Arc::clone(&f2);
            r.schedule_every(ms(3), move |ctx, id| {
                let mut v = f.lock().unwrap();
                v.push(id);
                if v.len() == 4 {
                    assert!(ctx.cancel(id));
                    assert!(!ctx.cancel(id));
                    // Stop only after several more periods: a cancelled
                    // timer that still fired would do so first (due
                    // earlier, so first even if the loop stalls).
                    ctx.schedule(ms(50), |ctx, _| ctx.stop());
                }
            });
        },
        |r, ()| r.timer_count(),
    );
    // The fourth firing stops the loop (through the timer it schedules):
    // run() returns by itself, however late the loop got going.
    let left = running.join();
    let fired = fired.lock().unwrap();
    assert_eq!(fired.len(), 4, "fired {} times", fired.len());
    assert!(fired.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(left, 0);
}

/// Starts many timers (one repeating fast), then the client closes.
struct Doomed {
    lost: bool,
    fired_after_lost: Arc<AtomicBool>,
    fired: Arc<AtomicUsize>,
    lost_tx: Sender<()>,
}

impl Protocol for Doomed {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        for i in 0..100 {
            t.call_later(Duration::from_secs(30) + ms(i));
        }
        t.call_every(ms(1));
        t.write(b"ready");
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}

    fn timer_fired(&mut self, _t: &mut Transport<'_>, _timer: TimerId) {
        self.fired.fetch_add(1, Ordering::AcqRel);
        if self.lost {
            self.fired_after_lost.store(true, Ordering::Release);
        }
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, _reason: &Disconnect) {
        self.lost = true;
        let _ = self.lost_tx.send(());
    }
}

#[test]
fn timers_die_with_their_connection() {
    let (lost_tx, lost_rx) = mpsc::channel();
    let after_lost = Arc::new(AtomicBool::new(false));
    let fired = Arc::new(AtomicUsize::new(0));
    let (a2, f2) = (Arc::clone(&after_lost), Arc::clone(&fired));
    let (addr, running) = common::start(
        ReactorConfig::default(),
        move |r| {
            let id = r
                .listen(
                    common::localhost0(),
                    move |_: &torsion_reactor::PeerInfo| {
                        Box::new(Doomed {
                            lost: false,
                            fired_after_lost: Arc::clone(&a2),
                            fired: Arc::clone(&f2),
                            lost_tx: lost_tx.clone(),
                        }) as Box<dyn Protocol>
                    },
                )
                .unwrap();
            common::tcp_addr(r, id)
        },
        |r, _| r.timer_count(),
    );
    let mut client = common::connect(addr);
    assert_eq!(common::read_n(&mut client, 5).unwrap(), b"ready");
    // Let the repeating timer fire a few times before closing.
    assert!(common::wait_until(WAIT, || fired.load(Ordering::Acquire) >= 3));
    drop(client);
    lost_rx
        .recv_timeout(WAIT)
        .expect("connection_lost not called");
    // Past several periods of the 1 ms repeating timer.
    std::thread::sleep(ms(30));
    let left = running.stop();
    assert_eq!(left, 0, "timers outlived their connection");
    assert!(!after_lost.load(Ordering::Acquire));
}

const MANY: usize = 10_000;

/// What the 10,000-timer protocol observed.
#[derive(Debug)]
struct ManyReport {
    setup: Duration,
    cancel_failures: usize,
    fired: Vec<usize>,
}

struct Many {
    delays: Vec<u64>,
    ids: HashMap<TimerId, usize>,
    last: Option<TimerId>,
    setup: Duration,
    cancel_failures: usize,
    fired: Vec<usize>,
    report: Option<Sender<ManyReport>>,
}

impl Protocol for Many {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let started = Instant::now();
        let mut created = Vec::with_capacity(MANY);
        for (i, &d) in self.delays.iter().enumerate() {
            let id = t.call_later(ms(d));
            created.push(id);
            self.ids.insert(id, i);
        }
        for (i, id) in created.iter().enumerate() {
            if i % 2 == 1 && !t.cancel(*id) {
                self.cancel_failures += 1;
            }
        }
        self.setup = started.elapsed();
        let max = self.delays.iter().copied().max().unwrap_or(0);
        self.last = Some(t.call_later(ms(max + 50)));
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}

    fn timer_fired(&mut self, _t: &mut Transport<'_>, timer: TimerId) {
        if Some(timer) == self.last {
            if let Some(tx) = self.report.take() {
                let _ = tx.send(ManyReport {
                    setup: self.setup,
                    cancel_failures: self.cancel_failures,
                    fired: std::mem::take(&mut self.fired),
                });
            }
            return;
        }
        self.fired
            .push(self.ids.get(&timer).copied().unwrap_or(usize::MAX));
    }
}

#[test]
fn ten_thousand_timers_half_cancelled() {
    let mut rng = Rng::new(7);
    let delays: Vec<u64> = (0..MANY).map(|_| rng.range(1, 300) as u64).collect();
    let d2 = delays.clone();
    let (tx, rx) = mpsc::channel();
    let ((addr, _), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            let id = r
                .listen(
                    common::localhost0(),
                    move |_: &torsion_reactor::PeerInfo| {
                        Box::new(Many {
                            delays: d2.clone(),
                            ids: HashMap::with_capacity(MANY),
                            last: None,
                            setup: Duration::ZERO,
                            cancel_failures: 0,
                            fired: Vec::with_capacity(MANY),
                            report: Some(tx.clone()),
                        }) as Box<dyn Protocol>
                    },
                )
                .unwrap();
            (common::tcp_addr(r, id), id)
        },
        |r, _| r.timer_count(),
    );
    let client = common::connect(addr);
    let report = rx.recv_timeout(WAIT).expect("final timer did not fire");
    assert_eq!(report.cancel_failures, 0);
    assert_eq!(report.fired.len(), MANY / 2, "wrong number of timers fired");
    let mut seen = vec![false; MANY];
    for &i in &report.fired {
        assert!(i < MANY, "unknown timer fired");
        assert_eq!(i % 2, 0, "cancelled timer {i} fired");
        assert!(!seen[i], "timer {i} fired twice");
        seen[i] = true;
    }
    let fired_delays: Vec<u64> = report.fired.iter().map(|&i| delays[i]).collect();
    if let Some(w) = fired_delays.windows(2).position(|w| w[0] > w[1]) {
        panic!(
            "out of order at {w}: {} ms fired before {} ms",
            fired_delays[w],
            fired_delays[w + 1]
        );
    }
    // Creating 10,000 timers and cancelling 5,000 is cheap (unoptimised
    // build on a shared machine: a generous bound).
    assert!(
        report.setup < ms(500),
        "10,000 timers took {:?}",
        report.setup
    );
    drop(client);
    let left = running.stop();
    assert_eq!(left, 0);
}
