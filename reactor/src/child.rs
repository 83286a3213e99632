//! Child processes (Twisted's `spawnProcess`): stdout and stderr are
//! non-blocking pipes in the same poller; exits are noticed through SIGCHLD
//! and reaped with `waitpid(WNOHANG)`, so the loop never blocks on a child
//! and no zombie is left behind.

use std::process::{Child, ChildStderr, ChildStdout, ExitStatus};

/// One child process. Invariant: a pipe is `Some` exactly while it is
/// registered with the poller; the entry is removed once the child has been
/// reaped and both pipes are closed.
pub(crate) struct ChildEntry {
    pub child: Child,
    pub gen: u32,
    /// The owning connection's key, or `timers::NIL` once it has closed.
    pub owner: u32,
    pub owner_gen: u32,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    pub status: Option<ExitStatus>,
    /// Pipes are not re-armed while the owner's output is above the high
    /// water mark; set when that happened, cleared when they are re-armed.
    pub paused: bool,
}

impl ChildEntry {
    pub fn finished(&self) -> bool {
        self.status.is_some() && self.stdout.is_none() && self.stderr.is_none()
    }
}
