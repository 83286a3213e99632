//! Turning a request's raw path into file-system-relative segments that
//! cannot leave the served directory.
//!
//! The url crate already removes literal and `%2e`-spelled dot segments from
//! request URLs, but this module does not rely on that: it is the last line
//! before a path meets the file system, so it assumes nothing about its input.
//!
//! Rules, in the order they are applied to each segment:
//!
//! 1. The path is split on `/` *before* decoding, and each segment is
//!    percent-decoded exactly once, so `%2F` is a character of a name (and is
//!    then refused), never a separator, and `%252e` stays the literal `%2e`.
//! 2. A decoded segment containing `/` or `\` is refused (no name served
//!    contains them, and `\` is a separator elsewhere).
//! 3. NUL and every other control character is refused, and so is invalid
//!    UTF-8, which also catches overlong encodings such as `%c0%ae`.
//! 4. `.` and `..` are refused, however spelled; so is every other segment
//!    starting with `.` (dotfiles), except a first segment `.well-known`.
//! 5. An empty segment inside the path (`/a//b`) is refused rather than
//!    collapsed, so each file has exactly one URL. A trailing `/` is kept as
//!    [`SafePath::is_directory_form`].
//!
//! Each [`PathError`] says which status to answer: 59 when the bytes are
//! malformed, 51 when they are well-formed but name nothing this server will
//! serve (so a probe for `..` or `.git` learns no more than "not found").

use std::fmt;
use std::path::Path;

use super::percent;
use super::status::Status;

/// The one dotted first segment served: RFC 8615 well-known URIs.
const WELL_KNOWN: &str = ".well-known";

/// A request path proven safe to join to a served directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SafePath {
    /// The decoded segments joined with `/`; empty for the root. No segment
    /// is empty, `.`, `..`, or contains `/`, `\`, NUL or a control character.
    relative: String,
    /// Whether the raw path ended in `/`.
    directory: bool,
}

impl SafePath {
    /// The decoded segments, in order; none for the root.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.relative
            .split('/')
            .filter(|segment| !segment.is_empty())
    }

    /// The decoded relative path, segments joined with `/`; empty for the
    /// root.
    pub fn as_str(&self) -> &str {
        &self.relative
    }

    /// The relative path, ready for `served_dir.join(..)`.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.relative)
    }

    /// Whether this is the root of the served directory (`/` or empty).
    pub fn is_root(&self) -> bool {
        self.relative.is_empty()
    }

    /// Whether the raw path ended in `/`, naming a directory. True for `/`,
    /// false for the empty path (a server may redirect that to `/`).
    pub fn is_directory_form(&self) -> bool {
        self.directory
    }
}

/// Why a raw path cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Not empty and not starting with `/`. Status 59.
    NotAbsolute,
    /// A `%` not followed by two hex digits. Status 59.
    InvalidPercentEncoding,
    /// A segment that decodes to invalid UTF-8 (including overlong forms
    /// such as `%c0%ae`). Status 59.
    NotUtf8,
    /// A segment that decodes to NUL or another control character. Status 59.
    ControlCharacter,
    /// A segment containing `\`, written raw or as `%5c`. Status 51.
    Backslash,
    /// A segment containing `/` once decoded (`%2f`). Status 51.
    EncodedSlash,
    /// A `.` or `..` segment, in any spelling. Status 51.
    DotSegment,
    /// A segment starting with `.` other than a leading `.well-known`.
    /// Status 51.
    Dotfile,
    /// An empty segment inside the path (`//`). Status 51.
    EmptySegment,
}

impl PathError {
    /// The status to answer with: 59 for malformed bytes, 51 for names that
    /// are well-formed but not served.
    pub fn status(&self) -> Status {
        match self {
            PathError::NotAbsolute
            | PathError::InvalidPercentEncoding
            | PathError::NotUtf8
            | PathError::ControlCharacter => Status::BadRequest,
            PathError::Backslash
            | PathError::EncodedSlash
            | PathError::DotSegment
            | PathError::Dotfile
            | PathError::EmptySegment => Status::NotFound,
        }
    }

    /// A short, fixed explanation, safe to send as the response meta. The
    /// 51 cases all read "Not found", to tell a prober nothing more.
    pub fn reason(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "Path must start with /",
            PathError::InvalidPercentEncoding => "Bad percent-encoding in path",
            PathError::NotUtf8 => "Path is not UTF-8",
            PathError::ControlCharacter => "Control character in path",
            PathError::Backslash
            | PathError::EncodedSlash
            | PathError::DotSegment
            | PathError::Dotfile
            | PathError::EmptySegment => "Not found",
        }
    }
}

/// Names the rule, for logs (unlike [`PathError::reason`]).
impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "path does not start with /",
            PathError::InvalidPercentEncoding => "bad percent-encoding in path",
            PathError::NotUtf8 => "path segment is not UTF-8 once decoded",
            PathError::ControlCharacter => "control character in path segment",
            PathError::Backslash => "backslash in path segment",
            PathError::EncodedSlash => "encoded slash in path segment",
            PathError::DotSegment => "dot segment in path",
            PathError::Dotfile => "dotfile in path",
            PathError::EmptySegment => "empty segment in path",
        })
    }
}

impl std::error::Error for PathError {}

/// Checks and decodes a raw, percent-encoded URL path (as from
/// [`Request::path`](super::request::Request::path)) into a [`SafePath`].
pub fn safe_segments(raw_path: &str) -> Result<SafePath, PathError> {
    if raw_path.is_empty() {
        return Ok(SafePath::default());
    }
    let rest = raw_path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut relative = String::with_capacity(rest.len());
    let mut directory = false;
    // One buffer for every segment's decoding: one allocation per path.
    let mut scratch = Vec::new();
    let mut raw_segments = rest.split('/').peekable();
    let mut first = true;
    while let Some(raw) = raw_segments.next() {
        if raw.is_empty() {
            if raw_segments.peek().is_none() {
                directory = true;
                break;
            }
            return Err(PathError::EmptySegment);
        }
        let segment = decode_segment(raw, &mut scratch)?;
        check_name(segment, first)?;
        if !first {
            relative.push('/');
        }
        relative.push_str(segment);
        first = false;
    }
    Ok(SafePath {
        relative,
        directory,
    })
}

/// Percent-decodes one segment into `scratch` and checks its characters.
fn decode_segment<'s>(raw: &str, scratch: &'s mut Vec<u8>) -> Result<&'s str, PathError> {
    scratch.clear();
    percent::decode_into(raw.as_bytes(), scratch).map_err(|_| PathError::InvalidPercentEncoding)?;
    let segment = std::str::from_utf8(scratch).map_err(|_| PathError::NotUtf8)?;
    if segment.contains('/') {
        return Err(PathError::EncodedSlash);
    }
    if segment.contains('\\') {
        return Err(PathError::Backslash);
    }
    if segment.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(segment)
}

/// Applies the dot rules to one decoded segment.
fn check_name(segment: &str, first: bool) -> Result<(), PathError> {
    if segment == "." || segment == ".." {
        return Err(PathError::DotSegment);
    }
    if segment.starts_with('.') && !(first && segment == WELL_KNOWN) {
        return Err(PathError::Dotfile);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::request::{parse_request, Parsed};

    fn ok(raw: &str) -> SafePath {
        safe_segments(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
    }

    fn segments(raw: &str) -> Vec<String> {
        ok(raw).segments().map(str::to_owned).collect()
    }

    #[test]
    fn plain_paths() {
        let path = ok("/docs/intro.gmi");
        assert_eq!(segments("/docs/intro.gmi"), ["docs", "intro.gmi"]);
        assert_eq!(path.as_str(), "docs/intro.gmi");
        assert_eq!(path.as_path(), Path::new("docs/intro.gmi"));
        assert!(!path.is_directory_form());
        assert!(!path.is_root());
    }

    #[test]
    fn root_and_directory_form() {
        let root = ok("/");
        assert!(root.is_root() && root.is_directory_form());
        assert_eq!(root.segments().count(), 0);
        assert_eq!(root.as_path(), Path::new(""));

        let empty = ok("");
        assert!(empty.is_root() && !empty.is_directory_form());

        let dir = ok("/docs/sub/");
        assert!(dir.is_directory_form());
        assert_eq!(dir.as_str(), "docs/sub");
    }

    #[test]
    fn decodes_each_segment_once() {
        assert_eq!(segments("/a%20b/caf%C3%A9"), ["a b", "café"]);
        assert_eq!(segments("/100%25/x%3Fy"), ["100%", "x?y"]);
        assert_eq!(segments("/%7euser/"), ["~user"]);
    }

    #[test]
    fn well_known_is_the_only_dotted_first_segment() {
        assert_eq!(
            segments("/.well-known/acme-challenge/tok"),
            [".well-known", "acme-challenge", "tok"]
        );
        assert_eq!(segments("/%2ewell-known/x"), [".well-known", "x"]);
        for raw in [
            "/.git/config",
            "/.htaccess",
            "/a/.well-known/x",
            "/.well-known/.secret",
            "/.Well-Known/x",
            "/...",
            "/%2e%2E%2e",
            "/.%20",
        ] {
            assert_eq!(safe_segments(raw), Err(PathError::Dotfile), "{raw}");
        }
    }

    #[test]
    fn traversal_encodings_are_refused() {
        let cases = [
            ("/../etc/passwd", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/../", PathError::DotSegment),
            ("/a/../../etc", PathError::DotSegment),
            ("/./etc", PathError::DotSegment),
            ("/%2e/etc", PathError::DotSegment),
            ("/%2e%2e/etc/passwd", PathError::DotSegment),
            ("/%2E%2E/etc/passwd", PathError::DotSegment),
            ("/%2E./etc", PathError::DotSegment),
            ("/.%2e/etc", PathError::DotSegment),
            ("/.well-known/../../etc", PathError::DotSegment),
            ("/..%2fetc/passwd", PathError::EncodedSlash),
            ("/a/%2e%2e%2f%2e%2e/etc", PathError::EncodedSlash),
            ("/%2Fetc/passwd", PathError::EncodedSlash),
            ("/..\\etc", PathError::Backslash),
            ("/%2e%2e%5cetc", PathError::Backslash),
            ("/a%5C..%5C..%5Cetc", PathError::Backslash),
            ("/%c0%ae%c0%ae/etc", PathError::NotUtf8),
            ("/%e0%80%ae%e0%80%ae/etc", PathError::NotUtf8),
            ("/%c0%af/etc", PathError::NotUtf8),
            ("/..%00/etc", PathError::ControlCharacter),
            ("/index.gmi%00.txt", PathError::ControlCharacter),
            ("/%uff0e%uff0e/etc", PathError::InvalidPercentEncoding),
            ("/%%32%65/etc", PathError::InvalidPercentEncoding),
            ("//etc/passwd", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("etc/passwd", PathError::NotAbsolute),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_segments(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn double_encoding_stays_literal() {
        // `%252e%252e` decodes once to the harmless name `%2e%2e`, which must
        // not be decoded again into `..`.
        assert_eq!(segments("/%252e%252e/etc"), ["%2e%2e", "etc"]);
        assert_eq!(segments("/%252f"), ["%2f"]);
    }

    #[test]
    fn look_alike_dots_are_ordinary_names() {
        // U+FF0E FULLWIDTH FULL STOP is not `.` to any file system.
        assert_eq!(segments("/%EF%BC%8E%EF%BC%8E"), ["．．"]);
        assert_eq!(segments("/a..b/c."), ["a..b", "c."]);
    }

    #[test]
    fn other_control_and_encoding_errors() {
        let cases = [
            ("/a%0ab", PathError::ControlCharacter),
            ("/a%0db", PathError::ControlCharacter),
            ("/a%7fb", PathError::ControlCharacter),
            ("/a%c2%85b", PathError::ControlCharacter),
            ("/a%ffb", PathError::NotUtf8),
            ("/a%", PathError::InvalidPercentEncoding),
            ("/a%2", PathError::InvalidPercentEncoding),
            ("/a%zz", PathError::InvalidPercentEncoding),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_segments(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(PathError::DotSegment.status(), Status::NotFound);
        assert_eq!(PathError::Dotfile.status(), Status::NotFound);
        assert_eq!(PathError::EncodedSlash.status(), Status::NotFound);
        assert_eq!(PathError::Backslash.status(), Status::NotFound);
        assert_eq!(PathError::EmptySegment.status(), Status::NotFound);
        assert_eq!(PathError::NotUtf8.status(), Status::BadRequest);
        assert_eq!(PathError::ControlCharacter.status(), Status::BadRequest);
        assert_eq!(
            PathError::InvalidPercentEncoding.status(),
            Status::BadRequest
        );
        assert_eq!(PathError::NotAbsolute.status(), Status::BadRequest);
        assert_eq!(PathError::Dotfile.reason(), "Not found");
    }

    #[test]
    fn works_on_paths_from_real_requests() {
        let path_of = |line: &[u8]| match parse_request(line).unwrap() {
            Parsed::Complete { request, .. } => safe_segments(request.path()),
            Parsed::Partial => panic!("partial"),
        };
        // The url crate already resolves these; the result must still be safe.
        assert_eq!(
            path_of(b"gemini://h/a/../../etc/x\r\n").unwrap().as_str(),
            "etc/x"
        );
        assert_eq!(path_of(b"gemini://h/%2e%2e/x\r\n").unwrap().as_str(), "x");
        assert!(path_of(b"gemini://h\r\n").unwrap().is_directory_form());
        assert_eq!(
            path_of(b"gemini://h/%2e%2e%2fx\r\n"),
            Err(PathError::EncodedSlash)
        );
        assert_eq!(
            path_of(b"gemini://h/a\\..\\x\r\n"),
            Err(PathError::Backslash)
        );
        assert_eq!(
            path_of(b"gemini://h/%c0%ae%c0%ae/x\r\n"),
            Err(PathError::NotUtf8)
        );
    }
}
