//! Pitfalls other servers fell into (DESIGN.md): TCP urgent data must not
//! spin the loop, idle connections must cost no CPU (also half-closed ones
//! and ones whose reading is paused with data waiting, which a
//! level-triggered loop would hear about forever), and writable interest
//! must be armed only while output is queued.
//!
//! CPU is measured on the reactor's own thread (`/proc/self/task/<tid>`),
//! so other tests running in this process do not disturb the figure. The
//! poller registrations are read from the kernel (`/proc/self/fdinfo` of
//! the epoll descriptor), not from the reactor's own bookkeeping.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use torsion_reactor::{Protocol, Transport};

const EPOLLOUT: u32 = 0x004;

/// CPU ticks the reactor thread used during `window`.
fn reactor_ticks_over(tid: i32, window: Duration) -> u64 {
    let before = common::thread_cpu_ticks(tid);
    std::thread::sleep(window);
    common::thread_cpu_ticks(tid) - before
}

/// At most 10% of one core: an idle loop uses ~0, a spinning one ~100%.
fn idle_budget(window: Duration) -> u64 {
    (common::clk_tck() * window.as_millis() as u64 / 1000 / 10).max(2)
}

/// Echo, except that `F` makes it queue 32 MiB (a flood for a client that
/// does not read).
struct EchoOrFlood;

impl Protocol for EchoOrFlood {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if data == b"F" {
            t.write(&vec![b'f'; 32 << 20]);
        } else {
            t.write(data);
        }
    }
}

/// `127.0.0.1:port` as it appears in /proc/net/tcp.
fn proc_net_addr(a: std::net::SocketAddr) -> String {
    match a {
        std::net::SocketAddr::V4(v4) => {
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(v4.ip().octets()),
                v4.port()
            )
        }
        std::net::SocketAddr::V6(_) => panic!("IPv4 only"),
    }
}

/// The descriptor numbers (in this process) of the server side of each
/// client connection: the socket whose local address is the client's peer
/// and whose remote address is the client's local address.
fn server_fds(clients: &[TcpStream]) -> Vec<i32> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let mut inode_of: HashMap<(String, String), String> = HashMap::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 {
            inode_of.insert((f[1].to_string(), f[2].to_string()), f[9].to_string());
        }
    }
    let mut fd_of: HashMap<String, i32> = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .flatten()
    {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
            if let Ok(fd) = entry.file_name().to_string_lossy().parse() {
                fd_of.insert(inode.to_string(), fd);
            }
        }
    }
    clients
        .iter()
        .map(|c| {
            let key = (
                proc_net_addr(c.peer_addr().unwrap()),
                proc_net_addr(c.local_addr().unwrap()),
            );
            let inode = inode_of.get(&key).expect("server socket in /proc/net/tcp");
            *fd_of
                .get(inode)
                .expect("server socket among our descriptors")
        })
        .collect()
}

/// Every registration of every epoll instance in this process:
/// target fd -> event mask (as the kernel holds it).
fn epoll_registrations() -> HashMap<i32, u32> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .flatten()
    {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().contains("eventpoll") {
            continue;
        }
        let info = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        for line in text.lines() {
            // "tfd:        9 events:       19 data: ..."
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&"tfd:") && f.get(2) == Some(&"events:") {
                let fd = f[1].parse().unwrap_or(-1);
                let mask = u32::from_str_radix(f[3], 16).unwrap_or(0);
                out.insert(fd, mask);
            }
        }
    }
    out
}

/// Sends `data` with `MSG_OOB` (its last byte becomes TCP urgent data).
fn send_oob(c: &TcpStream, data: &[u8]) {
    // SAFETY: send on a connected socket we own, with a valid buffer.
    let sent = unsafe {
        libc::send(
            c.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_OOB,
        )
    };
    assert_eq!(
        sent,
        data.len() as isize,
        "send(MSG_OOB): {}",
        std::io::Error::last_os_error()
    );
}

/// Connects `n` clients to `addr` and does one echo round trip on each,
/// so every server socket has written something.
fn echoed_clients(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = common::connect(addr);
        let msg = format!("{:06}", i);
        common::send(&mut c, msg.as_bytes());
        assert_eq!(common::read_n(&mut c, 6).unwrap(), msg.as_bytes());
        clients.push(c);
    }
    clients
}

#[test]
fn tcp_urgent_data_does_not_spin_the_loop() {
    let (addr, running) = common::start_tcp(|_| EchoOrFlood);
    let mut c = common::connect(addr);
    common::send(&mut c, b"a");
    assert_eq!(common::read_n(&mut c, 1).unwrap(), b"a");
    // Urgent data after normal data ("x" is in the stream, "y" is the
    // urgent byte), then a lone urgent byte; then the client goes idle.
    send_oob(&c, b"xy");
    assert_eq!(common::read_n(&mut c, 1).unwrap(), b"x");
    send_oob(&c, b"!");
    let window = Duration::from_secs(1);
    let used = reactor_ticks_over(running.tid, window);
    assert!(
        used <= idle_budget(window),
        "reactor used {used} ticks in {window:?} after urgent data (spinning)"
    );
    // The connection still works (the urgent byte is not part of the stream).
    common::send(&mut c, b"ping");
    assert_eq!(common::read_n(&mut c, 4).unwrap(), b"ping");
    running.stop();
}

#[test]
fn a_thousand_idle_connections_cost_no_cpu() {
    let (addr, running) = common::start_tcp(|_| EchoOrFlood);
    let clients = echoed_clients(addr, 1000);
    let window = Duration::from_secs(1);
    let used = reactor_ticks_over(running.tid, window);
    assert!(
        used <= idle_budget(window),
        "reactor used {used} ticks in {window:?} with 1000 idle connections"
    );
    // And none of them holds writable interest.
    let regs = epoll_registrations();
    let armed = server_fds(&clients)
        .into_iter()
        .filter(|fd| regs.get(fd).is_some_and(|m| m & EPOLLOUT != 0))
        .count();
    assert_eq!(armed, 0, "{armed} idle connections have writable interest");
    running.stop();
}

#[test]
fn write_interest_is_armed_only_while_output_is_queued() {
    let (addr, running) = common::start_tcp(|_| EchoOrFlood);
    let mut clients = echoed_clients(addr, 3);
    let fds = server_fds(&clients);
    let regs = epoll_registrations();
    for fd in &fds {
        let mask = regs.get(fd).copied().expect("server socket registered");
        assert_eq!(mask & EPOLLOUT, 0, "idle connection armed for writing");
    }
    // Client 0 asks for a flood and does not read: the server's queue
    // fills and writable interest must now be armed (this also shows the
    // probe can see it).
    common::send(&mut clients[0], b"F");
    let armed = common::wait_until(Duration::from_secs(5), || {
        epoll_registrations()
            .get(&fds[0])
            .is_some_and(|m| m & EPOLLOUT != 0)
    });
    assert!(armed, "queued output without writable interest");
    let regs = epoll_registrations();
    assert_eq!(regs[&fds[1]] & EPOLLOUT, 0);
    assert_eq!(regs[&fds[2]] & EPOLLOUT, 0);
    // Waiting for the reader costs nothing either.
    let window = Duration::from_millis(500);
    let used = reactor_ticks_over(running.tid, window);
    assert!(
        used <= idle_budget(window),
        "{used} ticks while blocked on a reader"
    );
    // Drain the flood; once it is sent, writable interest goes away.
    let mut c = clients.remove(0);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut left = 32usize << 20;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = std::io::Read::read(&mut c, &mut buf[..left.min(1 << 20)]).unwrap();
        assert!(n > 0, "EOF before the flood was read");
        left -= n;
    }
    let disarmed = common::wait_until(Duration::from_secs(5), || {
        epoll_registrations()
            .get(&fds[0])
            .is_some_and(|m| m & EPOLLOUT == 0)
    });
    assert!(
        disarmed,
        "writable interest still armed after the queue emptied"
    );
    c.write_all(b"x").unwrap();
    assert_eq!(common::read_n(&mut c, 1).unwrap(), b"x");
    running.stop();
}

/// Keeps a half-closed connection open (does not close on the peer's EOF)
/// and pauses reading after the first data.
struct Stubborn {
    pause: bool,
}

impl Protocol for Stubborn {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        t.write(data);
        if self.pause {
            t.pause_reading();
        }
    }

    fn eof_received(&mut self, _t: &mut Transport<'_>) {
        // Stay open: the other direction still works.
    }
}

#[test]
fn a_half_closed_connection_left_open_costs_no_cpu() {
    let (addr, running) = common::start_tcp(|_| Stubborn { pause: false });
    let mut c = common::connect(addr);
    common::send(&mut c, b"bye");
    assert_eq!(common::read_n(&mut c, 3).unwrap(), b"bye");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let window = Duration::from_secs(1);
    let used = reactor_ticks_over(running.tid, window);
    assert!(
        used <= idle_budget(window),
        "reactor used {used} ticks in {window:?} on a half-closed connection"
    );
    // Still open: no EOF arrived at the client.
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        std::io::Read::read(&mut c, &mut b).is_err(),
        "server closed"
    );
    running.stop();
}

#[test]
fn paused_reading_with_data_waiting_costs_no_cpu() {
    let (addr, running) = common::start_tcp(|_| Stubborn { pause: true });
    let mut c = common::connect(addr);
    common::send(&mut c, b"1");
    assert_eq!(common::read_n(&mut c, 1).unwrap(), b"1");
    // Data the paused protocol will not read, plus urgent data and EOF.
    common::send(&mut c, b"waiting in the kernel");
    send_oob(&c, b"!");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let window = Duration::from_secs(1);
    let used = reactor_ticks_over(running.tid, window);
    assert!(
        used <= idle_budget(window),
        "reactor used {used} ticks in {window:?} with reading paused"
    );
    running.stop();
}
