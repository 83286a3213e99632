//! The server under attack: the real `torsion` with Gemini, HTTP and
//! HTTPS/WSS on free ports of 127.0.0.1, started one way for every case
//! ([`start_target`] with a [`Launch`]: configuration file, flags, files
//! prepared beforehand, descriptor limit).

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use super::probe::{probe_rounds, ALL};
use super::resources::Resources;
use crate::server_support::{command, Server, TempDir};

/// The three listeners of a default server, bound to free ports.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Gemini over TLS.
    pub gemini: SocketAddr,
    /// The HTTP → HTTPS redirect listener.
    pub http: SocketAddr,
    /// HTTPS + WSS (the status page and the WebSocket endpoints).
    pub https: SocketAddr,
}

/// One of the three listeners, for attacks that go to several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Gemini over TLS.
    Gemini,
    /// The HTTP redirect listener (plain TCP).
    Http,
    /// HTTPS + WSS.
    Https,
}

impl Listener {
    /// Every listener, in a fixed order (attacker `n` goes to `ALL[n % 3]`).
    pub const ALL: [Listener; 3] = [Listener::Gemini, Listener::Http, Listener::Https];
}

impl Ports {
    /// Where `listener` is.
    pub fn of(&self, listener: Listener) -> SocketAddr {
        match listener {
            Listener::Gemini => self.gemini,
            Listener::Http => self.http,
            Listener::Https => self.https,
        }
    }
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

/// How a case starts its server, beyond the three listeners on free ports.
/// `Launch::default()` is the server as shipped.
#[derive(Default)]
pub struct Launch<'a> {
    /// A configuration file, written to `torsion.toml` in the server's
    /// directory and passed with `--config` (flags override it); none when
    /// empty.
    pub config: &'a str,
    /// More flags (e.g. `--dir capsule`, `--ws-max-message`).
    pub args: &'a [&'a str],
    /// Runs on the server's directory before the start (a capsule, CGI
    /// scripts).
    pub prepare: Option<&'a dyn Fn(&Path)>,
    /// The server's soft and hard `RLIMIT_NOFILE`, as `ulimit -n N` before
    /// `exec`; `None`: this process's (raised to its hard limit).
    pub nofile: Option<u64>,
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

/// Makes `cmd` start with soft and hard `RLIMIT_NOFILE` set to `n`.
fn limit_nofile(cmd: &mut std::process::Command, n: u64) {
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

/// Starts `torsion` as `launch` says, with Gemini, HTTP and HTTPS/WSS on
/// free ports on 127.0.0.1 and its state in a fresh temp dir named after
/// `name`. This process's descriptor limit is raised first, so a case's
/// attack sockets fit. With `HOSTILE_RUST_LOG` set (e.g. `debug`), the
/// server logs with that filter instead of `info`, for investigating a
/// failure (several cases print the tail of its log when they fail).
pub fn start_target(name: &str, launch: Launch<'_>) -> Target {
    raise_nofile();
    let dir = TempDir::new(name);
    if let Some(prepare) = launch.prepare {
        prepare(dir.path());
    }
    let mut args = vec!["--port", "0", "--http-port", "0", "--ws-port", "0"];
    if !launch.config.is_empty() {
        std::fs::write(dir.path().join("torsion.toml"), launch.config).expect("torsion.toml");
        args.extend_from_slice(&["--config", "torsion.toml"]);
    }
    args.extend_from_slice(launch.args);
    let mut cmd = command(&dir, &args);
    if let Some(n) = launch.nofile {
        limit_nofile(&mut cmd, n);
    }
    if let Ok(filter) = std::env::var("HOSTILE_RUST_LOG") {
        cmd.env("RUST_LOG", filter);
    }
    let server = Server::start(cmd, 3);
    let ports = Ports {
        gemini: server.addr("gemini"),
        http: server.addr("http"),
        https: server.addr("https"),
    };
    Target { server, ports, dir }
}

/// Probes every listener three times (the first TLS handshakes and the
/// page cache settle), asserting each was prompt.
pub fn warm_up(target: &Target) {
    probe_rounds(&target.ports, &ALL, 3).assert_prompt("warm-up", 9);
}

/// [`start_target`], [`warm_up`], and the footprint then: the baseline the
/// case compares with after its attack.
pub fn start_warm(name: &str, launch: Launch<'_>) -> (Target, Resources) {
    let target = start_target(name, launch);
    warm_up(&target);
    let baseline = Resources::of(target.server.pid());
    (target, baseline)
}
