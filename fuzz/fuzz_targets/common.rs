//! Helpers shared by the fuzz targets (each target includes this file with
//! `mod common;` and uses only some of it).

#![allow(dead_code)]

/// Splits `data` into a 4-byte control prefix and the payload the parser
/// sees. The prefix lets the fuzzer choose where the payload is cut when it
/// is fed in pieces, so cutting bugs are found by mutation rather than by
/// luck. Inputs shorter than 4 bytes are padded with zeros.
pub fn control<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut ctl = [0u8; N];
    let n = data.len().min(N);
    ctl[..n].copy_from_slice(&data[..n]);
    (ctl, &data[n..])
}

/// Cuts `payload` at two offsets taken from the control bytes (each a
/// little-endian u16, reduced modulo `payload.len() + 1`): three pieces,
/// any of which may be empty.
pub fn three_pieces(ctl: [u8; 4], payload: &[u8]) -> [&[u8]; 3] {
    let len = payload.len();
    let a = usize::from(u16::from_le_bytes([ctl[0], ctl[1]])) % (len + 1);
    let b = usize::from(u16::from_le_bytes([ctl[2], ctl[3]])) % (len + 1);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    [&payload[..lo], &payload[lo..hi], &payload[hi..]]
}

/// Cuts `payload` into pieces whose sizes cycle through `sizes` (a zero
/// size counts as 1), so one input exercises many cut points.
pub fn cycled_pieces<'a>(sizes: &[u8], payload: &'a [u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = payload;
    let mut i = 0;
    while !rest.is_empty() {
        let size = usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(1)).max(1);
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece);
        rest = tail;
        i += 1;
    }
    pieces
}

/// Finds the end of an HTTP-style head (`\r\n\r\n`) and returns what follows
/// it, or `None`.
pub fn after_head(payload: &[u8]) -> Option<&[u8]> {
    payload
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| &payload[i + 4..])
}

/// An HTTP/1.1 response as the encoders write it: status code, header
/// fields, body. Panics (the fuzz failure) if it is not well formed.
pub struct CheckedResponse<'a> {
    pub status: u16,
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub body: &'a [u8],
}

impl<'a> CheckedResponse<'a> {
    /// Parses `out` strictly: `HTTP/1.1 NNN reason CRLF`, fields of
    /// `name: value CRLF` with printable values, an empty line, then a body
    /// whose length is exactly `Content-Length` (or empty when
    /// `head_only`).
    pub fn parse(out: &'a [u8], head_only: bool) -> Self {
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("response head ends with an empty line");
        let head = &out[..end];
        let body = &out[end + 4..];
        let mut lines = head.split(|&b| b == b'\n');
        let status_line = lines.next().expect("a status line");
        let status_line = status_line.strip_suffix(b"\r").expect("CRLF after status");
        assert!(status_line.starts_with(b"HTTP/1.1 "), "{status_line:?}");
        let code = std::str::from_utf8(&status_line[9..12]).expect("ASCII status");
        let status: u16 = code.parse().expect("a three-digit status");
        assert_eq!(status_line.get(12), Some(&b' '));
        let mut headers = Vec::new();
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(
                !line.contains(&b'\r'),
                "bare CR in a response field: {line:?}"
            );
            let colon = line.iter().position(|&b| b == b':').expect("name: value");
            let name = std::str::from_utf8(&line[..colon]).expect("ASCII name");
            let value = line[colon + 1..].strip_prefix(b" ").expect("one space");
            assert!(
                value.iter().all(|&b| (0x20..0x7F).contains(&b)),
                "non-printable byte in {name}: {value:?}"
            );
            headers.push((name, value));
        }
        let response = CheckedResponse {
            status,
            headers,
            body,
        };
        let length: usize = std::str::from_utf8(
            response
                .header("Content-Length")
                .expect("every response has Content-Length"),
        )
        .expect("ASCII length")
        .parse()
        .expect("a decimal length");
        if head_only {
            assert!(body.is_empty(), "HEAD answered with a body");
        } else {
            assert_eq!(length, body.len(), "Content-Length does not match the body");
        }
        response
    }

    /// The value of the only field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v);
        let first = found.next();
        assert!(found.next().is_none(), "{name} appears twice");
        first
    }
}
