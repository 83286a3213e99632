//! What `/proc` says about a process: its resident memory and descriptors
//! before and after an attack ([`Resources`]), its CPU use (a spinning
//! loop shows), its state, its sockets, and the kernel's queues of one TCP
//! connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
                eprintln!("footprint: baseline {baseline:?}, after {now:?}");
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

/// The fields of `/proc/PID/stat` after the command name, so that `[0]` is
/// the state (field 3 of proc(5)), `[1]` the parent, `[2]` the process
/// group, `[11]` and `[12]` utime and stime. `None` when the process is
/// gone. The command name may hold spaces and parentheses: the fields are
/// counted after its last `)`.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time (user + system) process `pid` has used so far (clock-tick
/// resolution, 10 ms on Linux). Zero when the process is gone.
pub fn cpu_time(pid: u32) -> Duration {
    let fields = stat_fields(pid).unwrap_or_default();
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
    stat_fields(pid)
        .and_then(|f| f.first().and_then(|s| s.chars().next()))
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
