//! `tcp://`: connect-only (connect, count, close) or echo (`--size` bytes
//! ping-pong, `--pipeline` messages in flight, every echoed byte checked).

use std::rc::Rc;

use torsion_reactor::Transport;

use super::run::ErrorKind;
use super::worker::{Mode, Ops};

/// The bytes of an echo message: a repeating alphabet, so a shifted or
/// mixed-up echo is caught.
pub fn pattern(size: usize) -> Rc<[u8]> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Connect-only: an operation is one connection established.
#[derive(Debug, Default)]
pub struct TcpConnect;

impl Mode for TcpConnect {
    fn connected(&mut self, _t: &mut Transport<'_>, ops: &mut Ops) {
        ops.complete(None);
    }
    fn ready(&self) -> bool {
        false
    }
    fn send(&mut self, _t: &mut Transport<'_>) {}
    fn received(
        &mut self,
        _t: &mut Transport<'_>,
        _ops: &mut Ops,
        _data: &mut [u8],
    ) -> Result<(), ErrorKind> {
        Ok(())
    }
    fn eof(&mut self, _ops: &mut Ops) -> Result<(), ErrorKind> {
        Ok(())
    }
    fn reset(&mut self) {}
    fn take(&mut self) -> Self {
        TcpConnect
    }
}

/// Echo: an operation is one message written and read back whole.
#[derive(Debug)]
pub struct TcpEcho {
    payload: Rc<[u8]>,
    /// Bytes of the current echo received so far.
    got: usize,
}

impl TcpEcho {
    /// An echo client sending `payload` (shared by every worker).
    pub fn new(payload: Rc<[u8]>) -> Self {
        TcpEcho { payload, got: 0 }
    }
}

/// Checks echoed bytes against the message: consumes `data`, advancing
/// `got` (the position in the message) and calling `done` for each whole
/// message. Fails at the first byte that differs.
pub fn check_echo(
    payload: &[u8],
    got: &mut usize,
    mut data: &[u8],
    mut done: impl FnMut() -> bool,
) -> Result<(), ErrorKind> {
    while !data.is_empty() {
        let want = payload.get(*got..).unwrap_or_default();
        let take = want.len().min(data.len());
        let (chunk, rest) = data.split_at(take);
        if want.get(..take) != Some(chunk) || take == 0 {
            return Err(ErrorKind::BadResponse);
        }
        *got += take;
        data = rest;
        if *got == payload.len() {
            *got = 0;
            if !done() {
                // A whole message nobody was waiting for.
                return Err(ErrorKind::BadResponse);
            }
        }
    }
    Ok(())
}

impl Mode for TcpEcho {
    fn send(&mut self, t: &mut Transport<'_>) {
        t.write(&self.payload);
    }
    fn received(
        &mut self,
        _t: &mut Transport<'_>,
        ops: &mut Ops,
        data: &mut [u8],
    ) -> Result<(), ErrorKind> {
        check_echo(&self.payload, &mut self.got, data, || {
            let busy = ops.busy();
            ops.complete(None);
            busy
        })
    }
    fn eof(&mut self, _ops: &mut Ops) -> Result<(), ErrorKind> {
        Ok(())
    }
    fn reset(&mut self) {
        self.got = 0;
    }
    fn take(&mut self) -> Self {
        TcpEcho::new(Rc::clone(&self.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(payload: &[u8], pieces: &[&[u8]]) -> (Result<(), ErrorKind>, usize) {
        let mut got = 0;
        let mut n = 0;
        for p in pieces {
            let r = check_echo(payload, &mut got, p, || {
                n += 1;
                true
            });
            if r.is_err() {
                return (r, n);
            }
        }
        (Ok(()), n)
    }

    #[test]
    fn whole_split_and_merged_echoes() {
        let p = pattern(5);
        assert_eq!(&*p, b"abcde");
        assert_eq!(run(&p, &[b"abcde"]), (Ok(()), 1));
        assert_eq!(run(&p, &[b"abcdeabcdeab"]), (Ok(()), 2));
        let stream = b"abcdeabcdeabcde";
        let singles: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&p, &singles), (Ok(()), 3));
        assert_eq!(run(&p, &[b"ab", b"cdeab", b"cde"]), (Ok(()), 2));
    }

    #[test]
    fn a_wrong_byte_is_caught_where_it_is() {
        let p = pattern(5);
        assert_eq!(run(&p, &[b"abXde"]).0, Err(ErrorKind::BadResponse));
        assert_eq!(
            run(&p, &[b"abcde", b"abcdX"]),
            (Err(ErrorKind::BadResponse), 1)
        );
    }

    #[test]
    fn an_unasked_echo_is_an_error() {
        let p = pattern(3);
        let mut got = 0;
        assert_eq!(
            check_echo(&p, &mut got, b"abc", || false),
            Err(ErrorKind::BadResponse)
        );
    }
}
