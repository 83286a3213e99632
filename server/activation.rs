//! systemd socket activation: listening sockets inherited as file
//! descriptors 3, 4, … when `LISTEN_PID` is our pid and `LISTEN_FDS` says
//! how many (`sd_listen_fds(3)`), so torsion can serve ports 80, 443 and
//! 1965 without ever holding root.
//!
//! Each planned listener takes the inherited sockets meant for it: first
//! the ones named after its scheme (`FileDescriptorName=gemini`, `http`,
//! `https`, `ws`, `echo`) on its port, then ones with an unknown name on its
//! port, then any named after its scheme whatever their port. A planned
//! listener no inherited socket matches is bound as usual. The variables
//! are removed from the environment, so CGI scripts never see them, and
//! the descriptors are marked close-on-exec.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};

/// The first inherited descriptor (after stdin, stdout, stderr).
pub const LISTEN_FDS_START: RawFd = 3;

/// Most inherited sockets accepted: a socket unit lists a handful; a huge
/// `LISTEN_FDS` is a mistake, and we would claim descriptors we do not own.
pub const MAX_LISTEN_FDS: usize = 64;

/// The scheme names a socket may carry (`FileDescriptorName=`).
pub const SCHEMES: &[&str] = &["gemini", "http", "https", "ws", "echo"];

/// What the `LISTEN_*` variables said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenEnv {
    /// How many descriptors, from [`LISTEN_FDS_START`].
    pub count: usize,
    /// One name per descriptor (`None` when `LISTEN_FDNAMES` was absent or
    /// did not have one name per descriptor).
    pub names: Vec<Option<String>>,
}

/// Why the inherited sockets cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_FDS` is not a number.
    BadCount(String),
    /// `LISTEN_FDS` is larger than [`MAX_LISTEN_FDS`].
    TooMany(usize),
    /// `LISTEN_PID` is not a number.
    BadPid(String),
    /// An inherited descriptor is not a listening TCP socket (a Unix or
    /// datagram socket, or `Accept=yes` in the socket unit).
    NotTcpListener {
        /// The descriptor.
        fd: RawFd,
        /// What is wrong with it.
        why: String,
    },
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationError::BadCount(v) => write!(f, "LISTEN_FDS={v:?} is not a number"),
            ActivationError::TooMany(n) => write!(
                f,
                "LISTEN_FDS={n}: more than {MAX_LISTEN_FDS} inherited sockets"
            ),
            ActivationError::BadPid(v) => write!(f, "LISTEN_PID={v:?} is not a number"),
            ActivationError::NotTcpListener { fd, why } => write!(
                f,
                "inherited fd {fd} is not a listening TCP socket ({why}); the socket unit needs ListenStream= and Accept=no"
            ),
        }
    }
}

impl std::error::Error for ActivationError {}

/// Interprets the variables. `Ok(None)`: no activation for this process
/// (variables absent, `LISTEN_PID` another process's, or zero sockets).
pub fn parse_env(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> Result<Option<ListenEnv>, ActivationError> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| ActivationError::BadPid(pid.to_string()))?;
    if pid != our_pid {
        return Ok(None);
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| ActivationError::BadCount(fds.to_string()))?;
    if count > MAX_LISTEN_FDS {
        return Err(ActivationError::TooMany(count));
    }
    if count == 0 {
        return Ok(None);
    }
    let split: Vec<Option<String>> = names
        .map(|n| n.split(':').map(|s| Some(s.to_string())).collect())
        .unwrap_or_default();
    let names = if split.len() == count {
        split
    } else {
        vec![None; count]
    };
    Ok(Some(ListenEnv { count, names }))
}

/// One inherited listening socket.
#[derive(Debug)]
pub struct Inherited {
    /// Its `FileDescriptorName=`, if systemd passed one.
    pub name: Option<String>,
    /// Its bound address.
    pub addr: SocketAddr,
    /// The socket; `None` once a listener took it.
    listener: Option<TcpListener>,
}

impl Inherited {
    fn named(&self, scheme: &str) -> bool {
        self.name.as_deref() == Some(scheme)
    }

    /// A name that is no scheme (systemd's default is the unit's name).
    fn unnamed(&self) -> bool {
        !self.name.as_deref().is_some_and(|n| SCHEMES.contains(&n))
    }
}

/// The sockets this process inherited, handed out to planned listeners.
#[derive(Debug, Default)]
pub struct InheritedSockets {
    sockets: Vec<Inherited>,
}

impl InheritedSockets {
    /// Sockets from already-open listeners (tests).
    #[cfg(test)]
    pub fn from_listeners(list: Vec<(Option<String>, TcpListener)>) -> std::io::Result<Self> {
        let mut sockets = Vec::with_capacity(list.len());
        for (name, listener) in list {
            sockets.push(Inherited {
                name,
                addr: listener.local_addr()?,
                listener: Some(listener),
            });
        }
        Ok(InheritedSockets { sockets })
    }

    /// True when nothing was inherited.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Takes the sockets for a listener of `scheme` planned on `port` (see
    /// the module docs for the order). Empty: bind as usual.
    pub fn take_for(&mut self, scheme: &str, port: u16) -> Vec<TcpListener> {
        let mut chosen = self.matching(|s| s.named(scheme) && s.addr.port() == port);
        if chosen.is_empty() {
            chosen = self.matching(|s| s.unnamed() && s.addr.port() == port);
        }
        if chosen.is_empty() {
            // Named for this scheme on another port (ListenStream=443 for
            // the HTTPS listener planned on 8443): the first such port, and
            // every socket of that scheme on it (IPv4 and IPv6 halves).
            let first_port = self
                .sockets
                .iter()
                .find(|s| s.listener.is_some() && s.named(scheme))
                .map(|s| s.addr.port());
            if let Some(p) = first_port {
                chosen = self.matching(|s| s.named(scheme) && s.addr.port() == p);
            }
        }
        chosen
            .into_iter()
            .filter_map(|i| self.sockets.get_mut(i).and_then(|s| s.listener.take()))
            .collect()
    }

    /// Indices of the sockets not yet taken that satisfy `rule`.
    fn matching(&self, rule: impl Fn(&Inherited) -> bool) -> Vec<usize> {
        self.sockets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.listener.is_some() && rule(s))
            .map(|(i, _)| i)
            .collect()
    }

    /// The sockets no listener took (to warn about; they are closed when
    /// this is dropped).
    pub fn leftovers(&self) -> impl Iterator<Item = &Inherited> {
        self.sockets.iter().filter(|s| s.listener.is_some())
    }
}

/// Reads, then removes, the `LISTEN_*` variables and takes the sockets if
/// they are for this process. Call before any other thread starts (the
/// environment is not thread-safe to modify).
pub fn take_from_env() -> Result<InheritedSockets, ActivationError> {
    let var = |k: &str| std::env::var(k).ok();
    let (pid, fds, names) = (var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"));
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
    let Some(env) = parse_env(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )?
    else {
        return Ok(InheritedSockets::default());
    };
    let mut sockets = Vec::with_capacity(env.count);
    for (i, name) in env.names.into_iter().enumerate() {
        let offset = RawFd::try_from(i).map_err(|_| ActivationError::TooMany(env.count))?;
        let fd = LISTEN_FDS_START.saturating_add(offset);
        let listener = adopt_fd(fd)?;
        let addr = listener
            .local_addr()
            .map_err(|e| ActivationError::NotTcpListener {
                fd,
                why: e.to_string(),
            })?;
        sockets.push(Inherited {
            name,
            addr,
            listener: Some(listener),
        });
    }
    Ok(InheritedSockets { sockets })
}

fn sockopt(fd: RawFd, opt: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Checks that `fd` is a listening stream socket of the internet family,
/// marks it close-on-exec and takes ownership of it.
fn adopt_fd(fd: RawFd) -> Result<TcpListener, ActivationError> {
    let bad = |why: String| ActivationError::NotTcpListener { fd, why };
    let kind = sockopt(fd, libc::SO_TYPE).map_err(|e| bad(e.to_string()))?;
    if kind != libc::SOCK_STREAM {
        return Err(bad("not a stream socket".into()));
    }
    let listening = sockopt(fd, libc::SO_ACCEPTCONN).map_err(|e| bad(e.to_string()))?;
    if listening == 0 {
        return Err(bad("not listening".into()));
    }
    let domain = sockopt(fd, libc::SO_DOMAIN).map_err(|e| bad(e.to_string()))?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(bad("not an IPv4 or IPv6 socket".into()));
    }
    // SAFETY: fcntl on a descriptor we just queried; systemd passes them
    // without FD_CLOEXEC, and CGI children must not inherit them.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(bad(std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: systemd handed this open listening socket to this process
    // (LISTEN_PID matched); nothing else in the process owns it, and each
    // descriptor number is taken exactly once.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_foreign_variables_mean_no_activation() {
        assert_eq!(parse_env(None, None, None, 7), Ok(None));
        assert_eq!(parse_env(Some("7"), None, None, 7), Ok(None));
        assert_eq!(parse_env(None, Some("1"), None, 7), Ok(None));
        assert_eq!(parse_env(Some("8"), Some("1"), None, 7), Ok(None));
        assert_eq!(parse_env(Some("7"), Some("0"), None, 7), Ok(None));
    }

    #[test]
    fn our_pid_takes_the_sockets_with_their_names() {
        let env = parse_env(Some("7"), Some("3"), Some("gemini:http:https"), 7)
            .unwrap()
            .unwrap();
        assert_eq!(env.count, 3);
        assert_eq!(env.names[0].as_deref(), Some("gemini"));
        assert_eq!(env.names[2].as_deref(), Some("https"));
        // A name list of the wrong length is ignored, not trusted.
        let env = parse_env(Some("7"), Some("2"), Some("gemini"), 7)
            .unwrap()
            .unwrap();
        assert_eq!(env.names, vec![None, None]);
    }

    #[test]
    fn malformed_variables_are_errors() {
        assert_eq!(
            parse_env(Some("x"), Some("1"), None, 7),
            Err(ActivationError::BadPid("x".into()))
        );
        assert_eq!(
            parse_env(Some("7"), Some("-1"), None, 7),
            Err(ActivationError::BadCount("-1".into()))
        );
        assert_eq!(
            parse_env(Some("7"), Some("100000"), None, 7),
            Err(ActivationError::TooMany(100_000))
        );
    }

    fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").unwrap()
    }

    #[test]
    fn listeners_match_by_name_then_port() {
        let a = listener();
        let b = listener();
        let c = listener();
        let (pa, pb, pc) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        );
        let mut set = InheritedSockets::from_listeners(vec![
            (Some("gemini".into()), a),
            (Some("torsion.socket".into()), b),
            (Some("https".into()), c),
        ])
        .unwrap();
        // Unnamed socket on the planned port.
        let got = set.take_for("http", pb);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].local_addr().unwrap().port(), pb);
        // A named socket is not taken by another scheme on its port.
        assert!(set.take_for("echo", pa).is_empty());
        // Named for the scheme, on another port than planned.
        let got = set.take_for("https", 8443);
        assert_eq!(got[0].local_addr().unwrap().port(), pc);
        assert_eq!(set.leftovers().count(), 1);
        let got = set.take_for("gemini", 1965);
        assert_eq!(got[0].local_addr().unwrap().port(), pa);
        assert_eq!(set.leftovers().count(), 0);
        // Taken sockets are not handed out twice.
        assert!(set.take_for("gemini", pa).is_empty());
    }

    #[test]
    fn every_socket_of_a_scheme_on_one_port_goes_together() {
        let a = listener();
        let port = a.local_addr().unwrap().port();
        let b = TcpListener::bind(("::1", port)).or_else(|_| TcpListener::bind("127.0.0.2:0"));
        let Ok(b) = b else { return };
        let same_port = b.local_addr().unwrap().port() == port;
        let mut set = InheritedSockets::from_listeners(vec![
            (Some("gemini".into()), a),
            (Some("gemini".into()), b),
        ])
        .unwrap();
        let got = set.take_for("gemini", 1);
        assert_eq!(got.len(), if same_port { 2 } else { 1 });
    }
}
