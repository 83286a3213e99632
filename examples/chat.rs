//! A line-based chat room: what one client types, every other client sees.
//! Shows per-connection state, state shared through the factory, timers
//! (idle timeout and a periodic "who's here" line), broadcast with
//! [`Context::write_to`], and a backpressure policy for slow readers.
//!
//! ```text
//! cargo run --example chat                  # listens on 127.0.0.1:7001
//! nc 127.0.0.1 7001                         # in two terminals; type lines
//! ```
//! Commands: `/nick NAME`, `/who`, `/quit`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::{ConnId, Disconnect, PeerInfo, Protocol, Reactor, TimerId, Transport};

/// A client that says nothing for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A line longer than this is refused: a client cannot make us buffer
/// without bound by never sending a newline.
const MAX_LINE: usize = 1024;
/// A member whose unread backlog exceeds this misses messages (counted)
/// rather than making the server buffer without bound.
const MAX_BACKLOG: usize = 256 * 1024;

/// The room: members by connection, shared by all connections.
#[derive(Default)]
struct Room {
    members: BTreeMap<ConnId, String>,
    dropped: u64,
}

impl Room {
    fn broadcast(&mut self, t: &mut Transport<'_>, from: ConnId, line: &str) {
        for &id in self.members.keys() {
            if id == from {
                continue;
            }
            if t.buffered_len_of(id).unwrap_or(0) > MAX_BACKLOG {
                self.dropped += 1;
                continue;
            }
            t.write_to(id, line.as_bytes());
        }
    }
}

struct Chatter {
    room: Rc<RefCell<Room>>,
    line: Vec<u8>,
    idle: Option<TimerId>,
}

impl Chatter {
    fn handle_line(&mut self, t: &mut Transport<'_>, line: &str) {
        let me = t.id();
        let mut room = self.room.borrow_mut();
        let nick = room.members.get(&me).cloned().unwrap_or_default();
        if let Some(new) = line.strip_prefix("/nick ") {
            let new: String = new
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(32)
                .collect();
            room.broadcast(t, me, &format!("* {nick} is now {new}\n"));
            room.members.insert(me, new);
        } else if line == "/who" {
            let names: Vec<&str> = room.members.values().map(String::as_str).collect();
            t.write(format!("* here: {}\n", names.join(", ")).as_bytes());
        } else if line == "/quit" {
            t.write(b"* bye\n");
            t.close();
        } else if !line.is_empty() {
            let clean: String = line.chars().filter(|c| !c.is_control()).collect();
            room.broadcast(t, me, &format!("<{nick}> {clean}\n"));
        }
    }
}

impl Protocol for Chatter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let nick = format!("guest{}", t.id());
        t.write(format!("* welcome, {nick}. /nick NAME, /who, /quit\n").as_bytes());
        let me = t.id();
        let mut room = self.room.borrow_mut();
        room.broadcast(t, me, &format!("* {nick} joined\n"));
        room.members.insert(me, nick);
        self.idle = Some(t.call_later(IDLE_TIMEOUT));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if let Some(old) = self.idle.replace(t.call_later(IDLE_TIMEOUT)) {
            t.cancel(old);
        }
        for &b in data.iter() {
            if b == b'\n' {
                let raw = std::mem::take(&mut self.line);
                let text = String::from_utf8_lossy(&raw);
                self.handle_line(t, text.trim_end_matches('\r'));
            } else if self.line.len() >= MAX_LINE {
                t.write(b"* line too long\n");
                t.close();
                return;
            } else {
                self.line.push(b);
            }
        }
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, _timer: TimerId) {
        t.write(b"* idle too long, bye\n");
        t.close();
    }

    fn shutting_down(&mut self, t: &mut Transport<'_>) {
        t.write(b"* server shutting down\n");
        t.close();
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, _reason: &Disconnect) {
        let me = t.id();
        let mut room = self.room.borrow_mut();
        if let Some(nick) = room.members.remove(&me) {
            room.broadcast(t, me, &format!("* {nick} left\n"));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7001".into())
        .parse()?;
    let room = Rc::new(RefCell::new(Room::default()));
    let mut reactor = Reactor::new()?;
    let shared = Rc::clone(&room);
    let id = reactor.listen(addr, move |_: &PeerInfo| {
        Box::new(Chatter {
            room: Rc::clone(&shared),
            line: Vec::new(),
            idle: None,
        }) as Box<dyn Protocol>
    })?;
    // A looping call: report the room's size every minute.
    reactor.schedule_every(Duration::from_secs(60), move |_ctx, _id| {
        let room = room.borrow();
        log::info!(
            "{} members, {} messages dropped for slow readers",
            room.members.len(),
            room.dropped
        );
    });
    eprintln!(
        "chat listening on {}",
        reactor.local_addr(id).ok_or("no address")?
    );
    reactor.stop_on_signals()?;
    reactor.run()?;
    Ok(())
}
