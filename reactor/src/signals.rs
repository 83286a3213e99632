//! Signals delivered into the poller: signal-hook writes a byte to a
//! self-pipe from the handler and sets a flag; the loop sees the pipe become
//! readable and acts on the flags, never inside the handler.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::SigId;

/// The signals a reactor listens to and the pipe that wakes it.
pub(crate) struct SignalPipe {
    pub read: UnixStream,
    write: UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
    ids: Vec<SigId>,
}

impl SignalPipe {
    pub fn new() -> io::Result<Self> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(SignalPipe {
            read,
            write,
            flags: Vec::new(),
            ids: Vec::new(),
        })
    }

    /// Starts watching `signal` (idempotent).
    pub fn watch(&mut self, signal: i32) -> io::Result<()> {
        if self.flags.iter().any(|(s, _)| *s == signal) {
            return Ok(());
        }
        let flag = Arc::new(AtomicBool::new(false));
        let id1 = signal_hook::flag::register(signal, Arc::clone(&flag))?;
        let id2 = signal_hook::low_level::pipe::register(signal, self.write.try_clone()?)?;
        self.ids.push(id1);
        self.ids.push(id2);
        self.flags.push((signal, flag));
        Ok(())
    }

    /// Empties the pipe and returns the signals that arrived since the last
    /// call, each once.
    pub fn drain(&mut self) -> Vec<i32> {
        let mut buf = [0u8; 64];
        loop {
            match (&self.read).read(&mut buf) {
                Ok(n) if n > 0 => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
