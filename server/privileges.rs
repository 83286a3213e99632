//! Dropping root (`--user`, `--group`): after every listener is bound and
//! every certificate read, the whole process — every thread — becomes an
//! unprivileged user before it serves a single request.
//!
//! glibc's `setuid`/`setgid`/`setgroups` wrappers change the credentials of
//! *every* thread of the process (the raw syscalls change only the calling
//! thread on Linux), so the drop happens once, from the main thread, while
//! the worker threads wait at the start barrier; [`verify_all_threads`]
//! then reads `/proc/self/task/*/status` and refuses to continue if any
//! thread kept other credentials.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::path::Path;

/// Largest buffer offered to `getpwnam_r`/`getgrnam_r`: entries longer than
/// this (a group with thousands of members) are a misconfiguration, not
/// something to allocate without bound for.
pub const MAX_NSS_BUFFER: usize = 1 << 20;

/// First buffer size for the `get*nam_r` calls (doubled on `ERANGE`).
const FIRST_NSS_BUFFER: usize = 1024;

/// Who the process becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The user to become; `None` with only `--group`: keep the user id.
    pub uid: Option<libc::uid_t>,
    /// The group to become (`--group`, else the user's primary group).
    pub gid: libc::gid_t,
    /// For messages: `nobody:nogroup`.
    pub label: String,
}

/// Why the identity could not be resolved or assumed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// `--user NAME`: no such user (and not a number).
    UnknownUser(String),
    /// `--group NAME`: no such group (and not a number).
    UnknownGroup(String),
    /// The user or group database could not be read.
    Lookup(String, io::Error),
    /// Switching needs root, and this process is not root.
    NotRoot(String),
    /// A `setgroups`/`setgid`/`setuid` call failed.
    Switch(&'static str, io::Error),
    /// After the switch, some thread (or the saved set-user-ID) still has
    /// other credentials, or root could be regained: serving would be
    /// unsafe.
    Incomplete(String),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::UnknownUser(u) => write!(f, "--user {u:?}: no such user"),
            PrivilegeError::UnknownGroup(g) => write!(f, "--group {g:?}: no such group"),
            PrivilegeError::Lookup(name, e) => write!(f, "looking up {name:?}: {e}"),
            PrivilegeError::NotRoot(target) => write!(
                f,
                "cannot switch to {target}: not running as root (drop --user/--group, or start as root)"
            ),
            PrivilegeError::Switch(call, e) => write!(f, "dropping privileges: {call}: {e}"),
            PrivilegeError::Incomplete(why) => write!(f, "dropping privileges: {why}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// Resolves `--user`/`--group` (names, or numeric ids). `Ok(None)` when
/// neither is given.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Target>, PrivilegeError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let user_ids = match user {
        Some(name) => Some(match lookup_user(name)? {
            Some(ids) => ids,
            None => match name.parse::<libc::uid_t>() {
                // A numeric id without a passwd entry: its group is the
                // same number unless --group says otherwise.
                Ok(uid) => (uid, uid),
                Err(_) => return Err(PrivilegeError::UnknownUser(name.to_string())),
            },
        }),
        None => None,
    };
    let gid = match group {
        Some(name) => match lookup_group(name)? {
            Some(gid) => gid,
            None => name
                .parse::<libc::gid_t>()
                .map_err(|_| PrivilegeError::UnknownGroup(name.to_string()))?,
        },
        // Without --group: the user's primary group (user is Some here).
        None => user_ids.map(|(_, g)| g).unwrap_or_else(current_gid),
    };
    let label = format!(
        "{}:{}",
        user.map(str::to_string)
            .unwrap_or_else(|| current_uid().to_string()),
        group.map(str::to_string).unwrap_or_else(|| gid.to_string())
    );
    Ok(Some(Target {
        uid: user_ids.map(|(u, _)| u),
        gid,
        label,
    }))
}

fn current_uid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn current_gid() -> libc::gid_t {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// True when the process runs with root's effective user id.
pub fn running_as_root() -> bool {
    current_uid() == 0
}

/// Calls a `get*nam_r` function with a growing buffer. `call` returns the
/// function's result code and whether an entry was found.
fn with_nss_buffer<T>(
    name: &str,
    mut call: impl FnMut(&CStr, &mut [libc::c_char]) -> (libc::c_int, Option<T>),
) -> Result<Option<T>, PrivilegeError> {
    let cname = CString::new(name).map_err(|_| {
        PrivilegeError::Lookup(
            name.to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"),
        )
    })?;
    let mut buf: Vec<libc::c_char> = vec![0; FIRST_NSS_BUFFER];
    loop {
        let (rc, found) = call(&cname, &mut buf);
        match rc {
            0 => return Ok(found),
            libc::ERANGE if buf.len() < MAX_NSS_BUFFER => {
                let bigger = buf.len().saturating_mul(2).min(MAX_NSS_BUFFER);
                buf.resize(bigger, 0);
            }
            // "Not found" is reported as 0 with a null result by glibc, but
            // POSIX allows these too.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => {
                return Err(PrivilegeError::Lookup(
                    name.to_string(),
                    io::Error::from_raw_os_error(e),
                ))
            }
        }
    }
}

/// The uid and primary gid of user `name`, if it exists.
fn lookup_user(name: &str) -> Result<Option<(libc::uid_t, libc::gid_t)>, PrivilegeError> {
    with_nss_buffer(name, |cname, buf| {
        // SAFETY: an all-zero `passwd` is a valid value (null pointers,
        // zero ids); getpwnam_r fills it in.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the
        // buffer's true length; the strings it points into are not used
        // after `buf` is reused.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        let found = (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid));
        (rc, found)
    })
}

/// The gid of group `name`, if it exists.
fn lookup_group(name: &str) -> Result<Option<libc::gid_t>, PrivilegeError> {
    with_nss_buffer(name, |cname, buf| {
        // SAFETY: an all-zero `group` is a valid value; getgrnam_r fills it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in lookup_user.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        let found = (rc == 0 && !result.is_null()).then_some(grp.gr_gid);
        (rc, found)
    })
}

fn last_os_error(call: &'static str) -> PrivilegeError {
    PrivilegeError::Switch(call, io::Error::last_os_error())
}

/// Becomes `target`, for every thread: clears the supplementary groups,
/// sets the group, then the user (real, effective and saved ids), then
/// checks that root cannot be regained and that every thread changed.
/// Returns how many threads were checked.
pub fn drop_to(target: &Target) -> Result<usize, PrivilegeError> {
    let already = target.uid.is_none_or(|u| u == current_uid()) && target.gid == current_gid();
    if !running_as_root() {
        if already {
            // Started as that user already (e.g. systemd's User=): nothing
            // to drop.
            return Ok(0);
        }
        return Err(PrivilegeError::NotRoot(target.label.clone()));
    }
    // SAFETY: setgroups(0, NULL) clears the supplementary groups; glibc's
    // wrapper applies it to every thread.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(last_os_error("setgroups"));
    }
    // SAFETY: plain syscall wrapper; as root it sets the real, effective
    // and saved group ids of every thread (glibc broadcasts setxid calls).
    if unsafe { libc::setgid(target.gid) } != 0 {
        return Err(last_os_error("setgid"));
    }
    if let Some(uid) = target.uid {
        // SAFETY: as setgid, for the user ids. Must come last: after it,
        // the process may no longer change its groups.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(last_os_error("setuid"));
        }
    }
    let uid = target.uid.unwrap_or_else(current_uid);
    if uid != 0 {
        // SAFETY: plain syscall wrapper. It must fail now; if it succeeds
        // the saved set-user-ID still held root.
        if unsafe { libc::setuid(0) } == 0 {
            return Err(PrivilegeError::Incomplete(
                "root could be regained after setuid".into(),
            ));
        }
    }
    verify_all_threads(uid, target.gid)
}

/// Checks `/proc/self/task/*/status`: every thread's real, effective,
/// saved and filesystem ids are `uid`/`gid` and it has no supplementary
/// groups. Returns how many threads were checked (0 without `/proc`).
pub fn verify_all_threads(uid: libc::uid_t, gid: libc::gid_t) -> Result<usize, PrivilegeError> {
    let tasks = match std::fs::read_dir("/proc/self/task") {
        Ok(t) => t,
        // Not Linux, or /proc not mounted: the syscalls' results stand.
        Err(_) => return Ok(0),
    };
    let mut checked = 0usize;
    for task in tasks.flatten() {
        let path = task.path().join("status");
        let Ok(text) = std::fs::read_to_string(&path) else {
            // The thread exited between the listing and the read.
            continue;
        };
        let ids = StatusIds::parse(&text).ok_or_else(|| {
            PrivilegeError::Incomplete(format!("cannot read ids from {}", path.display()))
        })?;
        if !ids.all_are(uid, gid) {
            return Err(PrivilegeError::Incomplete(format!(
                "thread {} still has {ids:?} (wanted uid {uid}, gid {gid})",
                task.file_name().to_string_lossy()
            )));
        }
        checked = checked.saturating_add(1);
    }
    Ok(checked)
}

/// The credentials in one `/proc/<pid>/task/<tid>/status` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusIds {
    /// Real, effective, saved and filesystem user ids.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem group ids.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl StatusIds {
    /// Reads the `Uid:`, `Gid:` and `Groups:` lines; `None` if either id
    /// line is missing or malformed.
    pub fn parse(text: &str) -> Option<StatusIds> {
        let mut uid = None;
        let mut gid = None;
        let mut groups = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("Uid:") {
                uid = four_ids(rest);
            } else if let Some(rest) = line.strip_prefix("Gid:") {
                gid = four_ids(rest);
            } else if let Some(rest) = line.strip_prefix("Groups:") {
                groups = rest
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .ok()?;
            }
        }
        Some(StatusIds {
            uid: uid?,
            gid: gid?,
            groups,
        })
    }

    /// True when every user id is `uid`, every group id `gid`, and no
    /// supplementary group other than `gid` remains.
    pub fn all_are(&self, uid: u32, gid: u32) -> bool {
        self.uid.iter().all(|u| *u == uid)
            && self.gid.iter().all(|g| *g == gid)
            && self.groups.iter().all(|g| *g == gid)
    }
}

fn four_ids(text: &str) -> Option<[u32; 4]> {
    let mut it = text.split_whitespace().map(str::parse::<u32>);
    let ids = [
        it.next()?.ok()?,
        it.next()?.ok()?,
        it.next()?.ok()?,
        it.next()?.ok()?,
    ];
    it.next().is_none().then_some(ids)
}

/// Gives generated certificate files to `target` (without following
/// symbolic links), so that SIGHUP can re-read them after the drop: they
/// were created by root with mode 0600. Files that do not exist are
/// skipped; directories are left alone (the state directory may be shared).
pub fn hand_over(files: &[std::path::PathBuf], target: &Target) -> Result<(), PrivilegeError> {
    for file in files {
        match std::os::unix::fs::lchown(file, target.uid, Some(target.gid)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(PrivilegeError::Switch("chown", annotate(file, e))),
        }
    }
    Ok(())
}

fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\ttorsion\nUmask:\t0022\nState:\tS (sleeping)\n\
        Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n\
        FDSize:\t64\nGroups:\t\nNStgid:\t1\n";

    #[test]
    fn status_ids_parse() {
        let ids = StatusIds::parse(STATUS).unwrap();
        assert_eq!(ids.uid, [65534; 4]);
        assert_eq!(ids.gid, [65534; 4]);
        assert!(ids.groups.is_empty());
        assert!(ids.all_are(65534, 65534));
        assert!(!ids.all_are(0, 65534));
    }

    #[test]
    fn status_ids_catch_a_thread_left_behind() {
        let partial = STATUS.replace("Uid:\t65534\t65534\t65534\t65534", "Uid:\t65534\t0\t0\t0");
        let ids = StatusIds::parse(&partial).unwrap();
        assert!(!ids.all_are(65534, 65534));
        let groups = STATUS.replace("Groups:\t", "Groups:\t0 27");
        let ids = StatusIds::parse(&groups).unwrap();
        assert_eq!(ids.groups, vec![0, 27]);
        assert!(!ids.all_are(65534, 65534));
    }

    #[test]
    fn status_ids_reject_malformed_lines() {
        assert!(StatusIds::parse("Uid:\t1\t2\t3\n").is_none());
        assert!(StatusIds::parse("Uid:\t1\t2\t3\t4\t5\nGid:\t1\t1\t1\t1\n").is_none());
        assert!(StatusIds::parse("Uid:\ta\t2\t3\t4\nGid:\t1\t1\t1\t1\n").is_none());
        assert!(StatusIds::parse("Gid:\t1\t1\t1\t1\n").is_none());
        assert!(StatusIds::parse("").is_none());
    }

    #[test]
    fn the_current_process_matches_its_own_ids() {
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let ids = StatusIds::parse(&text).unwrap();
        assert_eq!(ids.uid[1], uid);
        assert_eq!(ids.gid[1], gid);
    }

    #[test]
    fn resolve_names_and_numbers() {
        assert_eq!(resolve(None, None).unwrap(), None);
        let root = resolve(Some("root"), None).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (Some(0), 0));
        let numeric = resolve(Some("4242424"), Some("4242425")).unwrap().unwrap();
        assert_eq!((numeric.uid, numeric.gid), (Some(4_242_424), 4_242_425));
        let group_only = resolve(None, Some("0")).unwrap().unwrap();
        assert_eq!(group_only.uid, None);
        assert_eq!(group_only.gid, 0);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(
            resolve(Some("no-such-user-torsion-test"), None),
            Err(PrivilegeError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve(None, Some("no-such-group-torsion-test")),
            Err(PrivilegeError::UnknownGroup(_))
        ));
        assert!(matches!(
            resolve(Some("nul\0byte"), None),
            Err(PrivilegeError::Lookup(..))
        ));
    }

    #[test]
    fn dropping_to_oneself_is_a_no_op_when_not_root() {
        if running_as_root() {
            // As root this would really drop: covered by the binary tests.
            return;
        }
        let me = Target {
            uid: Some(current_uid()),
            gid: current_gid(),
            label: "me".into(),
        };
        assert_eq!(drop_to(&me).unwrap(), 0);
        let other = Target {
            uid: Some(current_uid().wrapping_add(1)),
            gid: current_gid(),
            label: "other".into(),
        };
        assert!(matches!(drop_to(&other), Err(PrivilegeError::NotRoot(_))));
    }
}
