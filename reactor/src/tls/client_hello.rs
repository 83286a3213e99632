//! The server name (SNI) a client asks for, read from its ClientHello before
//! rustls sees it. rustls's unbuffered server connection keeps the name to
//! itself (no `server_name()` accessor), so the session reads it from the
//! bytes on their way in: the ClientHello is plaintext, and rustls coalesces
//! handshake fragments in place, so this must run on the untouched bytes.

use rustls::pki_types::ServerName;

/// Largest TLS plaintext record payload (RFC 8446 §5.1): a longer
/// handshake record is malformed and left for rustls to refuse.
pub const MAX_RECORD_PAYLOAD: usize = 16_384;

/// Largest ClientHello this scanner waits for; rustls refuses longer
/// handshake messages (its `MAX_HANDSHAKE_SIZE`), so waiting for more
/// would only hold bytes rustls is going to reject anyway.
pub const MAX_CLIENT_HELLO: usize = 0xffff;

/// Most records a ClientHello may be split over for its name to be read
/// (tools that split it to dodge filters use a handful): bounds the work
/// of re-scanning as fragments trickle in. Beyond it the name is unknown,
/// the handshake goes on.
pub const MAX_CLIENT_HELLO_RECORDS: usize = 64;

/// Record header: type, version, length.
const RECORD_HEADER: usize = 5;
/// Handshake header: type, 24-bit length.
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

/// Outcome of scanning the start of a connection's ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniScan {
    /// The bytes so far are a prefix of a ClientHello: wait for more.
    Partial,
    /// Scanning is over: the lower-cased DNS name the client sent, or
    /// `None` when it sent none, sent an IP address, or the bytes are not a
    /// well-formed ClientHello (rustls then refuses the handshake itself).
    Done(Option<Box<str>>),
}

/// Scans `buf`, the first bytes a client sent, for the server name in its
/// ClientHello. Gives the same answer as rustls's own parser for every
/// ClientHello rustls accepts: a `host_name` entry that is a valid DNS name,
/// lower-cased; IP literals count as no name.
///
/// Cheap to call again as more bytes arrive: until the ClientHello is
/// complete it only walks record headers (at most
/// [`MAX_CLIENT_HELLO_RECORDS`]), and it parses the message once.
pub fn scan_sni(buf: &[u8]) -> SniScan {
    let mut header = [0u8; HANDSHAKE_HEADER];
    let mut have = 0usize; // handshake bytes seen so far
    let mut need = None; // handshake message length, once known
    let mut records = 0usize;
    let mut rest = buf;
    while need.is_none_or(|n| have < n) {
        let (payload, len) = match record(rest) {
            None => return partial_or_bad(rest),
            Some(Err(())) => return SniScan::Done(None),
            Some(Ok(r)) => r,
        };
        records += 1;
        if records > MAX_CLIENT_HELLO_RECORDS {
            return SniScan::Done(None);
        }
        for (slot, &b) in header.iter_mut().skip(have).zip(payload) {
            *slot = b;
        }
        have = have.saturating_add(payload.len());
        rest = rest.get(len..).unwrap_or_default();
        if need.is_none() && have >= HANDSHAKE_HEADER {
            let [kind, len @ ..] = header;
            let body_len = u24(&len);
            if kind != HANDSHAKE_CLIENT_HELLO || body_len > MAX_CLIENT_HELLO {
                return SniScan::Done(None);
            }
            need = Some(HANDSHAKE_HEADER + body_len);
        }
    }
    let end = need.unwrap_or_default();
    if records == 1 {
        // The usual case: the whole ClientHello in one record.
        let body = buf.get(RECORD_HEADER + HANDSHAKE_HEADER..RECORD_HEADER + end);
        return SniScan::Done(body.and_then(sni_of));
    }
    let mut msg = Vec::with_capacity(have);
    let mut rest = buf;
    while let Some(Ok((payload, len))) = record(rest) {
        msg.extend_from_slice(payload);
        rest = rest.get(len..).unwrap_or_default();
        if msg.len() >= end {
            break;
        }
    }
    SniScan::Done(msg.get(HANDSHAKE_HEADER..end).and_then(sni_of))
}

/// `Partial` when `buf` is a prefix of a handshake record.
fn partial_or_bad(buf: &[u8]) -> SniScan {
    match buf.first() {
        None | Some(&CONTENT_HANDSHAKE) => SniScan::Partial,
        Some(_) => SniScan::Done(None),
    }
}

/// The first record of `buf`: `None` when incomplete, `Err` when it is not
/// a plausible handshake record, else its payload and total length.
#[allow(clippy::type_complexity)]
fn record(buf: &[u8]) -> Option<Result<(&[u8], usize), ()>> {
    let &[kind, _, _, hi, lo] = buf.first_chunk::<RECORD_HEADER>()?;
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if kind != CONTENT_HANDSHAKE || len == 0 || len > MAX_RECORD_PAYLOAD {
        return Some(Err(()));
    }
    let payload = buf.get(RECORD_HEADER..RECORD_HEADER + len)?;
    Some(Ok((payload, RECORD_HEADER + len)))
}

fn u24(b: &[u8]) -> usize {
    b.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
}

/// A cursor over a ClientHello body; every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// The DNS name in a ClientHello body, as rustls would record it.
fn sni_of(body: &[u8]) -> Option<Box<str>> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        // rustls takes the first entry and stops at an unknown name type
        // (a second host_name is an error that fails the handshake).
        let mut list = Reader(Reader(data).vec16()?);
        if list.u8()? != NAME_TYPE_HOST {
            return None;
        }
        return match ServerName::try_from(list.vec16()?).ok()? {
            ServerName::DnsName(d) => {
                Some(d.to_lowercase_owned().as_ref().to_owned().into_boxed_str())
            }
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello body with the given extensions block contents.
    fn hello_body(exts: &[u8]) -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend_from_slice(&[7; 32]);
        b.push(0); // session id
        b.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        b.extend_from_slice(&[1, 0]); // null compression
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(exts);
        b
    }

    fn sni_ext(name_type: u8, name: &[u8]) -> Vec<u8> {
        let mut entry = vec![name_type];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    fn handshake_msg(body: &[u8]) -> Vec<u8> {
        let mut m = vec![HANDSHAKE_CLIENT_HELLO, 0];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Wraps `msg` in handshake records of at most `frag` payload bytes.
    fn records(msg: &[u8], frag: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in msg.chunks(frag) {
            out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
            out.extend_from_slice(piece);
        }
        out
    }

    fn done(s: &str) -> SniScan {
        SniScan::Done(Some(s.into()))
    }

    #[test]
    fn finds_the_name_lower_cased() {
        let mut exts = vec![0, 10, 0, 2, 0, 29]; // an unrelated extension first
        exts.extend(sni_ext(0, b"Gemini.Example.ORG"));
        let wire = records(&handshake_msg(&hello_body(&exts)), MAX_RECORD_PAYLOAD);
        assert_eq!(scan_sni(&wire), done("gemini.example.org"));
        // Trailing bytes (the next flight) don't matter.
        let mut more = wire.clone();
        more.extend_from_slice(b"\x17\x03\x03\x00\x10garbage");
        assert_eq!(scan_sni(&more), done("gemini.example.org"));
    }

    #[test]
    fn every_prefix_is_partial_and_fragmenting_changes_nothing() {
        let msg = handshake_msg(&hello_body(&sni_ext(0, b"a.test")));
        for frag in [1, 2, 3, 5, 17, MAX_RECORD_PAYLOAD] {
            let wire = records(&msg, frag);
            for cut in 0..wire.len() {
                assert_eq!(scan_sni(&wire[..cut]), SniScan::Partial, "{frag} {cut}");
            }
            assert_eq!(scan_sni(&wire), done("a.test"), "{frag}");
        }
    }

    #[test]
    fn no_name_ip_names_and_other_types() {
        let cases: [(Vec<u8>, SniScan); 5] = [
            (vec![], SniScan::Done(None)),
            (sni_ext(0, b"192.0.2.1"), SniScan::Done(None)),
            (sni_ext(0, b"bad name!"), SniScan::Done(None)),
            (sni_ext(1, b"a.test"), SniScan::Done(None)),
            (sni_ext(0, b"X.test."), done("x.test")), // as rustls: no trailing dot
        ];
        for (exts, want) in cases {
            let wire = records(&handshake_msg(&hello_body(&exts)), 512);
            assert_eq!(scan_sni(&wire), want, "{exts:?}");
        }
        // No extensions block at all (an SSLv3-style hello).
        let mut body = hello_body(&[]);
        body.truncate(body.len() - 2);
        assert_eq!(
            scan_sni(&records(&handshake_msg(&body), 512)),
            SniScan::Done(None)
        );
    }

    #[test]
    fn too_many_fragments_give_up_on_the_name() {
        let mut exts = sni_ext(0, b"a.test");
        exts.extend_from_slice(&[0, 21, 0, 100]); // padding extension
        exts.extend_from_slice(&[0; 100]);
        let msg = handshake_msg(&hello_body(&exts));
        assert!(msg.len() > MAX_CLIENT_HELLO_RECORDS);
        let wire = records(&msg, 1);
        assert_eq!(
            scan_sni(&wire[..6 * MAX_CLIENT_HELLO_RECORDS]),
            SniScan::Partial
        );
        assert_eq!(scan_sni(&wire), SniScan::Done(None));
        assert_eq!(scan_sni(&records(&msg, 3)), done("a.test"));
    }

    #[test]
    fn garbage_is_done_at_once() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x15\x03\x03\x00\x02\x02\x28",
            b"\x16\x03\x01\x00\x00",
            b"\x16\x03\x01\xff\xff",
            b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
            b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",
        ] {
            assert_eq!(scan_sni(bad), SniScan::Done(None), "{bad:?}");
        }
        // A handshake record then something else while gathering.
        let msg = handshake_msg(&hello_body(&sni_ext(0, b"a.test")));
        let mut wire = records(&msg[..10], 10);
        wire.extend_from_slice(b"\x17\x03\x03\x00\x01x");
        assert_eq!(scan_sni(&wire), SniScan::Done(None));
        // A truncated body inside a complete message is no name, no panic.
        let wire = records(&handshake_msg(&[3, 3, 1]), 512);
        assert_eq!(scan_sni(&wire), SniScan::Done(None));
        assert_eq!(scan_sni(b""), SniScan::Partial);
        assert_eq!(scan_sni(b"\x16\x03"), SniScan::Partial);
    }
}
