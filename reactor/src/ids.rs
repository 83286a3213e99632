//! Small copyable handles that name things owned by a reactor.

use std::fmt;

/// Names one connection of a reactor, for [`Context::write_to`](crate::Context::write_to)
/// and friends.
///
/// The id carries a generation, so an id kept after its connection closed
/// never addresses a newer connection that happens to reuse the same slot:
/// operations on a stale id are refused, not misdirected.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.key, self.gen)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.key, self.gen)
    }
}

/// Names one listening socket of a reactor (returned by
/// [`Reactor::listen`](crate::Reactor::listen)). Listener ids are never reused
/// within one reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub(crate) u32);

impl ListenerId {
    /// The listener's index in the order listeners were created, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Names a timer created by [`Transport::call_later`](crate::Transport::call_later),
/// [`Transport::call_every`](crate::Transport::call_every) or
/// [`Context::schedule`](crate::Context::schedule); pass it to `cancel`.
///
/// A repeating timer keeps its id for all of its firings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

/// Names a child process started with [`Transport::spawn`](crate::Transport::spawn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

/// Which pipe of a child process some output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildStream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}
