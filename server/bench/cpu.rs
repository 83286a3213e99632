//! CPU time of this process and of the server under test, from
//! `/proc/<pid>/stat` (utime + stime, all threads), and finding the server's
//! pid from the port it listens on (`/proc/net/tcp*` + `/proc/*/fd`).
//!
//! Reading `/proc` is a few system calls: done at the start and end of the
//! measured window only, never per operation.

use std::fs;
use std::time::Duration;

/// CPU time (user + system) a process has used so far; `None` when it is
/// gone or `/proc` is not readable.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    read_cpu(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system) this process has used so far.
pub fn self_cpu() -> Option<Duration> {
    read_cpu("/proc/self/stat")
}

fn read_cpu(path: &str) -> Option<Duration> {
    let text = fs::read_to_string(path).ok()?;
    let ticks = stat_cpu_ticks(&text)?;
    let hz = clock_ticks();
    Some(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.
/// The command name (field 2) may hold spaces and parentheses, so fields
/// are counted from the last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After ')': state is field 3; utime and stime are fields 14 and 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, almost always 100).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads system settings.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The socket inodes listening on `port` in the text of `/proc/net/tcp` or
/// `/proc/net/tcp6`.
pub fn listening_inodes(net_tcp: &str, port: u16) -> Vec<u64> {
    /// The `st` value of a listening socket.
    const TCP_LISTEN: &str = "0A";
    net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let (_, port_hex) = local.rsplit_once(':')?;
            let p = u16::from_str_radix(port_hex, 16).ok()?;
            if p != port || *f.get(3)? != TCP_LISTEN {
                return None;
            }
            f.get(9)?.parse().ok().filter(|&inode| inode != 0)
        })
        .collect()
}

/// The pid of the process (other than this one) holding a socket listening
/// on TCP `port`, found through `/proc`. `None` when there is none, or when
/// its descriptors are not readable (another user's process).
pub fn find_listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let me = std::process::id();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let stat =
            "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 1 0 100 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(287));
        assert_eq!(stat_cpu_ticks("garbage"), None);
        assert_eq!(stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn reads_our_own_cpu() {
        let a = self_cpu().unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(self_cpu().unwrap() >= a);
        assert!(process_cpu(std::process::id()).is_some());
    }

    #[test]
    fn finds_listening_inodes_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n\
   1: 0100007F:1B58 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1\n\
   2: 00000000:07AD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 7000), vec![4242]);
        assert_eq!(listening_inodes(table, 1965), vec![99]);
        assert!(listening_inodes(table, 80).is_empty());
        assert!(listening_inodes("", 80).is_empty());
    }

    #[test]
    fn finds_no_pid_for_an_unused_port() {
        // Port 1 is privileged and essentially never listened on in tests.
        assert_eq!(find_listener_pid(1), None);
    }
}
