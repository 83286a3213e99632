//! What every attack case needs: the real binary with all three listeners
//! on free ports, a well-behaved client that keeps measuring how promptly
//! it is served while the attack runs ([`Prober`]), the server's resident
//! memory and open descriptors before and after ([`Resources`]), attackers
//! on many loopback addresses ([`connect_from`]), and one lock so the cases
//! run one at a time (each one loads the machine on its own).

#![allow(dead_code)] // Each case file uses a different part.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::server_support::{command, tls_connect, Server, TempDir};

/// The promptness every case asserts for the well-behaved client: its 99th
/// percentile, during and after the attack (issue 10).
pub const P99_BUDGET: Duration = Duration::from_millis(200);

/// How long one probe may take before it counts as a failure rather than
/// a slow success.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Pause between two probes of one kind: frequent enough for a p99 over a
/// few seconds of attack, rare enough not to be a load of its own.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(40);

/// Attacks run one at a time: each would distort the others' timings.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Raises this process's soft descriptor limit to its hard limit (children,
/// the server among them, inherit it), so thousands of attack sockets fit.
/// Returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// The three listeners of a default server, bound to free ports.
pub struct Ports {
    /// Gemini over TLS.
    pub gemini: SocketAddr,
    /// The HTTP → HTTPS redirect listener.
    pub http: SocketAddr,
    /// HTTPS + WSS (the status page and the WebSocket endpoints).
    pub https: SocketAddr,
}

/// A running `torsion` with all three listeners, plus its temp directory.
pub struct Target {
    /// The process (killed on drop).
    pub server: Server,
    /// Where each listener is.
    pub ports: Ports,
    /// Its working directory (state, capsule); removed on drop.
    pub dir: TempDir,
}

/// Starts `torsion` with Gemini, HTTP and HTTPS/WSS on free ports on
/// 127.0.0.1, state and capsule in a fresh temp dir, plus `extra` flags
/// (e.g. `--dir`, `--rate-limit`). `prepare` runs on the directory before
/// the start (to write a capsule or CGI scripts into it).
pub fn start_target(name: &str, extra: &[&str], prepare: impl FnOnce(&TempDir)) -> Target {
    let dir = TempDir::new(name);
    prepare(&dir);
    let mut args = vec!["--port", "0", "--http-port", "0", "--ws-port", "0"];
    args.extend_from_slice(extra);
    let server = Server::start(command(&dir, &args), 3);
    let ports = Ports {
        gemini: server.addr("gemini"),
        http: server.addr("http"),
        https: server.addr("https"),
    };
    Target { server, ports, dir }
}

/// A well-behaved client's view of one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A fresh TLS connection, `gemini://localhost/`, the whole reply read;
    /// success is a `20` header.
    Gemini,
    /// A fresh TCP connection, `GET /`, a `301` read.
    Http,
    /// A fresh TLS connection, a WebSocket upgrade to `/echo`, one text
    /// message echoed.
    Wss,
}

/// One probe, timed. `Err` when it failed or took longer than
/// [`PROBE_TIMEOUT`].
pub fn probe_once(kind: Probe, ports: &Ports) -> Result<Duration, String> {
    let start = Instant::now();
    let outcome = match kind {
        Probe::Gemini => probe_gemini(ports.gemini),
        Probe::Http => probe_http(ports.http),
        Probe::Wss => probe_wss(ports.https),
    };
    let took = start.elapsed();
    match outcome {
        Ok(()) if took <= PROBE_TIMEOUT => Ok(took),
        Ok(()) => Err(format!("{kind:?}: took {took:?}")),
        Err(e) => Err(format!("{kind:?}: {e} after {took:?}")),
    }
}

fn probe_gemini(addr: SocketAddr) -> io::Result<()> {
    let tcp = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT))?;
    tcp.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn = rustls::ClientConnection::new(crate::server_support::tls_client(&[]), name)
        .map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"gemini://localhost/\r\n")?;
    tls.flush()?;
    let mut reply = Vec::new();
    match tls.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    if reply.starts_with(b"20 ") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "reply {:?}",
            String::from_utf8_lossy(reply.get(..reply.len().min(60)).unwrap_or(&[]))
        )))
    }
}

fn probe_http(addr: SocketAddr) -> io::Result<()> {
    let mut tcp = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT))?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply)?;
    if reply.starts_with(b"HTTP/1.1 301 ") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "reply {:?}",
            String::from_utf8_lossy(reply.get(..reply.len().min(60)).unwrap_or(&[]))
        )))
    }
}

fn probe_wss(addr: SocketAddr) -> io::Result<()> {
    let tcp = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT))?;
    tcp.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(crate::server_support::tls_client(&[b"http/1.1"]), name)
            .map_err(io::Error::other)?;
    let tls = rustls::StreamOwned::new(conn, tcp);
    let url = format!("wss://localhost:{}/echo", addr.port());
    let (mut ws, _) = tungstenite::client(url, tls).map_err(io::Error::other)?;
    ws.send(tungstenite::Message::text("probe"))
        .map_err(io::Error::other)?;
    let back = ws.read().map_err(io::Error::other)?;
    let _ = ws.close(None);
    if back == tungstenite::Message::text("probe") {
        Ok(())
    } else {
        Err(io::Error::other(format!("echo {back:?}")))
    }
}

/// What a [`Prober`] saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Latency of every successful probe.
    pub latencies: Vec<Duration>,
    /// Every failure, with what failed.
    pub failures: Vec<String>,
}

impl Observed {
    /// The `q` quantile (0.0–1.0) of the latencies; zero when none.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    /// Panics unless there were at least `min` probes, none failed, and
    /// the 99th percentile is within [`P99_BUDGET`]; `phase` names when.
    pub fn assert_prompt(&self, phase: &str, min: usize) {
        assert!(
            self.failures.is_empty(),
            "{phase}: {} of {} probes failed: {:#?}",
            self.failures.len(),
            self.failures.len() + self.latencies.len(),
            &self.failures[..self.failures.len().min(10)]
        );
        assert!(
            self.latencies.len() >= min,
            "{phase}: only {} probes completed (want {min})",
            self.latencies.len()
        );
        let p99 = self.quantile(0.99);
        assert!(
            p99 <= P99_BUDGET,
            "{phase}: well-behaved p99 {p99:?} over {P99_BUDGET:?} (p50 {:?}, max {:?}, n {})",
            self.quantile(0.5),
            self.quantile(1.0),
            self.latencies.len()
        );
    }
}

/// A well-behaved client in the background: probes each of `kinds` in
/// turn, every [`PROBE_INTERVAL`], from 127.0.0.1, until stopped.
pub struct Prober {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Observed>>,
}

impl Prober {
    /// Starts probing.
    pub fn start(ports: &Ports, kinds: &[Probe]) -> Prober {
        let ports = Ports {
            gemini: ports.gemini,
            http: ports.http,
            https: ports.https,
        };
        let kinds = kinds.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Observed::default();
            while !flag.load(Ordering::Relaxed) {
                for &kind in &kinds {
                    match probe_once(kind, &ports) {
                        Ok(took) => seen.latencies.push(took),
                        Err(e) => seen.failures.push(e),
                    }
                }
                std::thread::sleep(PROBE_INTERVAL);
            }
            seen
        });
        Prober {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns what it saw.
    pub fn finish(mut self) -> Observed {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("prober thread"))
            .unwrap_or_default()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Probes each of `kinds` `rounds` times in the foreground (after an
/// attack, to show the server is prompt again).
pub fn probe_rounds(ports: &Ports, kinds: &[Probe], rounds: usize) -> Observed {
    let mut seen = Observed::default();
    for _ in 0..rounds {
        for &kind in kinds {
            match probe_once(kind, ports) {
                Ok(took) => seen.latencies.push(took),
                Err(e) => seen.failures.push(e),
            }
        }
    }
    seen
}

/// The server's footprint at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Resources {
    /// Resident memory, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: usize,
}

impl Resources {
    /// Reads `/proc/PID`.
    pub fn of(pid: u32) -> Resources {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        Resources { rss_kib, fds }
    }

    /// Waits (up to `within`) until the server's descriptors are back to
    /// at most `baseline.fds + fd_slack` and its RSS to at most
    /// `baseline.rss_kib + rss_slack_kib`; panics with both readings if not.
    /// Memory freed by the allocator is not always returned to the kernel,
    /// so the RSS slack is the case's honest bound, not zero.
    pub fn assert_back_near(
        pid: u32,
        baseline: Resources,
        fd_slack: usize,
        rss_slack_kib: u64,
        within: Duration,
    ) -> Resources {
        let deadline = Instant::now() + within;
        loop {
            let now = Resources::of(pid);
            let fds_ok = now.fds <= baseline.fds + fd_slack;
            let rss_ok = now.rss_kib <= baseline.rss_kib + rss_slack_kib;
            if fds_ok && rss_ok {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "not back near baseline after {within:?}: baseline {baseline:?}, now {now:?} \
                 (slack {fd_slack} fds, {rss_slack_kib} KiB)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `127.0.0.N`: attackers spread over many loopback addresses, as a botnet
/// would be, so the per-client cap does not turn the attack away before it
/// reaches what the case tests. `n` is taken modulo 250 (2..=251).
pub fn attacker_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 250) as u8))
}

/// A TCP connection to `to` from `from` (port chosen by the kernel).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), PROBE_TIMEOUT)?;
    Ok(socket.into())
}

/// A completed TLS session to `addr` (SNI `localhost`), for attacks that
/// start after the handshake.
pub fn tls_session(
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    tls_connect(addr, "localhost", alpn)
}

// ---------------------------------------------------------------------
// Added for the slow-client and exhaustion cases (general: any case may
// use them).
// ---------------------------------------------------------------------

/// Like [`start_target`], but `adjust` may change the server's command
/// before it starts (its environment, a resource limit with
/// [`limit_nofile`]).
pub fn start_target_with(
    name: &str,
    extra: &[&str],
    prepare: impl FnOnce(&TempDir),
    adjust: impl FnOnce(&mut std::process::Command),
) -> Target {
    let dir = TempDir::new(name);
    prepare(&dir);
    let mut args = vec!["--port", "0", "--http-port", "0", "--ws-port", "0"];
    args.extend_from_slice(extra);
    let mut cmd = command(&dir, &args);
    adjust(&mut cmd);
    let server = Server::start(cmd, 3);
    let ports = Ports {
        gemini: server.addr("gemini"),
        http: server.addr("http"),
        https: server.addr("https"),
    };
    Target { server, ports, dir }
}

/// Makes `cmd` start with soft and hard `RLIMIT_NOFILE` set to `n`, as
/// `ulimit -n N` does in a shell before `exec`.
pub fn limit_nofile(cmd: &mut std::process::Command, n: u64) {
    use std::os::unix::process::CommandExt;
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: the closure runs in the forked child before exec and calls
    // only setrlimit (async-signal-safe) on a struct copied into it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// CPU time (user + system) process `pid` has used so far, from
/// `/proc/PID/stat` (clock-tick resolution, 10 ms on Linux). Zero when the
/// process is gone.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5); field 3 is fields[0].
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_sec)
}

/// The share of one core process `pid` used over the next `window`
/// (0.0–1.0 per core): a spinning loop shows near 1.0.
pub fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_time(pid);
    let start = Instant::now();
    std::thread::sleep(window);
    let used = cpu_time(pid).saturating_sub(before);
    used.as_secs_f64() / start.elapsed().as_secs_f64()
}

/// The state letter of process `pid` (`R`, `S`, `Z`...; `?` when gone).
pub fn process_state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .unwrap_or('?')
}

/// Sockets process `pid` holds open (its descriptors that are sockets:
/// listeners plus connections).
pub fn socket_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| l.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Reads (and drops) whatever `sock` has waiting without blocking; true
/// once the peer has closed: end of file, or a reset. The socket must be
/// non-blocking.
pub fn drained_to_close(mut sock: &TcpStream) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// Waits up to `within` for `poll(2)` readiness (input, hang-up or error)
/// on any of `socks` whose entry in `open` is true; returns the indexes
/// that are ready. Used to notice a server's closes without a thread per
/// socket.
pub fn poll_ready(socks: &[TcpStream], open: &[bool], within: Duration) -> Vec<usize> {
    use std::os::fd::AsRawFd;
    let mut index = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    for (i, s) in socks.iter().enumerate() {
        if open.get(i).copied().unwrap_or(false) {
            index.push(i);
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            });
        }
    }
    if fds.is_empty() {
        return Vec::new();
    }
    let ms = libc::c_int::try_from(within.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return Vec::new();
    }
    fds.iter()
        .zip(index)
        .filter(|(f, _)| f.revents != 0)
        .map(|(_, i)| i)
        .collect()
}

/// Waits up to `within` until the server has closed every one of `socks`
/// (made non-blocking here), dropping whatever it sends first (a TLS alert,
/// an error answer). Returns, per socket, when its close was seen; `None`
/// for those still open at the end.
pub fn wait_closed(socks: &[TcpStream], within: Duration) -> Vec<Option<Instant>> {
    let deadline = Instant::now() + within;
    let mut closed: Vec<Option<Instant>> = vec![None; socks.len()];
    for s in socks {
        let _ = s.set_nonblocking(true);
    }
    // At least one look, even with no time to wait.
    loop {
        let open: Vec<bool> = closed.iter().map(Option::is_none).collect();
        if !open.contains(&true) {
            return closed;
        }
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        for i in poll_ready(socks, &open, wait) {
            if drained_to_close(&socks[i]) {
                closed[i] = Some(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            return closed;
        }
    }
}

/// The bytes of a real TLS ClientHello (SNI `localhost`, ALPN `alpn`), as
/// the first flight of a client: for attackers that send part of one, or
/// all of it and then nothing.
pub fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let mut conn = rustls::ClientConnection::new(crate::server_support::tls_client(alpn), name)
        .expect("TLS client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("ClientHello");
    }
    out
}

/// Lines of the server's log so far that contain every one of `needles`.
pub fn count_lines(server: &Server, needles: &[&str]) -> usize {
    server
        .lines()
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// One JSON snapshot from the status endpoint (`wss://…/status`) of the
/// HTTPS listener at `https`: the server's counters (see the README's
/// status page; the history message sent first is skipped). Panics if none
/// arrives within [`PROBE_TIMEOUT`].
pub fn status_json(https: SocketAddr) -> String {
    let tcp = TcpStream::connect_timeout(&https, PROBE_TIMEOUT).expect("connect /status");
    tcp.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(PROBE_TIMEOUT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(crate::server_support::tls_client(&[b"http/1.1"]), name)
            .unwrap();
    let tls = rustls::StreamOwned::new(conn, tcp);
    let url = format!("wss://localhost:{}/status", https.port());
    let (mut ws, _) = tungstenite::client(url, tls).expect("/status handshake");
    loop {
        match ws.read().expect("/status snapshot") {
            tungstenite::Message::Text(t) if t.as_str().contains("\"protocols\"") => {
                let _ = ws.close(None);
                return t.as_str().to_owned();
            }
            _ => continue,
        }
    }
}

/// The number after `"key":` in `json`, searched from the first occurrence
/// of `after` (e.g. `"name":"gemini"` to read that protocol's line).
/// `None` when absent.
pub fn json_count(json: &str, after: &str, key: &str) -> Option<u64> {
    let from = json.find(after)?;
    let rest = json.get(from..)?;
    let needle = format!("\"{key}\":");
    let at = rest.find(&needle)? + needle.len();
    let digits: String = rest
        .get(at..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl Prober {
    /// Like [`Prober::start`], pausing `interval` between rounds instead of
    /// [`PROBE_INTERVAL`]: for cases where the well-behaved client must
    /// stay under a rate limit of its own.
    pub fn start_every(ports: &Ports, kinds: &[Probe], interval: Duration) -> Prober {
        let ports = Ports {
            gemini: ports.gemini,
            http: ports.http,
            https: ports.https,
        };
        let kinds = kinds.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Observed::default();
            while !flag.load(Ordering::Relaxed) {
                for &kind in &kinds {
                    match probe_once(kind, &ports) {
                        Ok(took) => seen.latencies.push(took),
                        Err(e) => seen.failures.push(e),
                    }
                }
                std::thread::sleep(interval);
            }
            seen
        });
        Prober {
            stop,
            thread: Some(thread),
        }
    }
}

/// The kernel's send and receive queues (bytes not yet acknowledged by the
/// peer, bytes not yet read by the owner) of the IPv4 TCP socket whose
/// local address is `local` and peer `remote`, from `/proc/net/tcp`.
/// `None` when there is no such socket. Read on the server's side, a
/// non-empty receive queue that stays so means the server is not reading.
pub fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    fn hex(addr: SocketAddr) -> Option<String> {
        match addr {
            SocketAddr::V4(a) => Some(format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(a.ip().octets()),
                a.port()
            )),
            SocketAddr::V6(_) => None,
        }
    }
    let (local, remote) = (hex(local)?, hex(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&local.as_str()) || f.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = f.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// Like [`probe_once`], but the client waits up to `timeout` for each step
/// instead of [`PROBE_TIMEOUT`], and any duration counts as success: for a
/// client that arrives while the server cannot take it yet and is meant to
/// be served once it can. `Err` says what failed.
pub fn probe_waiting(kind: Probe, ports: &Ports, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let outcome = (|| -> io::Result<bool> {
        let (addr, alpn): (SocketAddr, &[&[u8]]) = match kind {
            Probe::Gemini => (ports.gemini, &[]),
            Probe::Http => (ports.http, &[]),
            Probe::Wss => (ports.https, &[b"http/1.1"]),
        };
        let tcp = TcpStream::connect_timeout(&addr, timeout)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        if kind == Probe::Http {
            let mut tcp = tcp;
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut reply = Vec::new();
            tcp.read_to_end(&mut reply)?;
            return Ok(reply.starts_with(b"HTTP/1.1 301 "));
        }
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
        let conn = rustls::ClientConnection::new(crate::server_support::tls_client(alpn), name)
            .map_err(io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        if kind == Probe::Gemini {
            tls.write_all(b"gemini://localhost/\r\n")?;
            let mut reply = Vec::new();
            match tls.read_to_end(&mut reply) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(e),
            }
            return Ok(reply.starts_with(b"20 "));
        }
        let url = format!("wss://localhost:{}/echo", addr.port());
        let (mut ws, _) = tungstenite::client(url, tls).map_err(io::Error::other)?;
        ws.send(tungstenite::Message::text("probe"))
            .map_err(io::Error::other)?;
        let back = ws.read().map_err(io::Error::other)?;
        let _ = ws.close(None);
        Ok(back == tungstenite::Message::text("probe"))
    })();
    let took = start.elapsed();
    match outcome {
        Ok(true) => Ok(took),
        Ok(false) => Err(format!("{kind:?}: unexpected reply after {took:?}")),
        Err(e) => Err(format!("{kind:?}: {e} after {took:?}")),
    }
}

/// Polls `value` every 100 ms until it has not changed for `quiet` (or
/// `within` passes); returns the last value. For "the server stopped making
/// progress" (stopped answering, stopped accepting) without a fixed sleep.
pub fn settled(mut value: impl FnMut() -> usize, quiet: Duration, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut last = value();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = value();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}
