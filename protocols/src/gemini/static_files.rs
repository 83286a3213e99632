//! Serving a directory: files (streamed), index files, listings, MIME types.
//!
//! **No way out of the root.** A path is first reduced to safe segments
//! ([`safe_segments`]: no `..` in any spelling, no `\`, NUL, control
//! characters or dotfiles other than `/.well-known/`), then joined to the
//! canonical root. If no component on the way is a symlink (checked with
//! `lstat`, one per component), the joined path is canonical and inside
//! the root by construction; otherwise it is resolved with `canonicalize`
//! and must still be inside the canonical root, so a symlink pointing
//! outside (to `/etc`, to a secret next to the root) is refused with `51`
//! like a missing file. The check is done again on the index file a
//! directory serves.
//!
//! Only regular files are opened: a FIFO or device under the root is not
//! served (opening a FIFO would block the loop).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use super::app::{Body, Handler, Request, Response};
use super::config::{GeminiConfigError, Root, VirtualHost, MAX_LISTING_ENTRIES};
use super::path::{safe_segments, SafePath};
use super::response::MAX_META;
use super::status::Status;
use crate::open_file::open_regular;

/// MIME type of `text/gemini` documents.
pub const GEMINI_MIME: &str = "text/gemini";

/// MIME type when the extension says nothing.
pub const FALLBACK_MIME: &str = "application/octet-stream";

/// The MIME type for a file name: `.gmi`/`.gemini` are `text/gemini`, other
/// extensions as `mime_guess` knows them, anything else
/// `application/octet-stream`.
pub fn mime_for(name: &str) -> Cow<'static, str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if ext.eq_ignore_ascii_case("gmi") || ext.eq_ignore_ascii_case("gemini") {
        return Cow::Borrowed(GEMINI_MIME);
    }
    if ext.is_empty() {
        return Cow::Borrowed(FALLBACK_MIME);
    }
    match mime_guess::from_ext(ext).first_raw() {
        Some(mime) => Cow::Borrowed(mime),
        None => Cow::Borrowed(FALLBACK_MIME),
    }
}

/// `mime` with `; lang=xx` added when it is `text/gemini` and a language is
/// configured.
pub fn with_lang(mime: Cow<'static, str>, lang: Option<&str>) -> Cow<'static, str> {
    match lang {
        Some(lang) if mime.starts_with(GEMINI_MIME) => Cow::Owned(format!("{mime}; lang={lang}")),
        _ => mime,
    }
}

/// What looking a relative path up under the root found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// It exists inside the root: its canonical path and metadata.
    Found(PathBuf, Metadata),
    /// Nothing there (or a name the file system refuses, or a symlink loop).
    Missing,
    /// It resolves outside the root (a symlink escape).
    Escapes,
    /// The file system said no (permissions): a configuration problem.
    Denied(io::Error),
    /// Another I/O error.
    Failed(io::Error),
}

/// Resolves `root/rel` (root canonical) and checks it stays inside `root`.
pub(crate) fn lookup(root: &Path, rel: &Path) -> Lookup {
    match lookup_plain(root, rel) {
        Some(found) => found,
        None => lookup_canonical(root, rel),
    }
}

/// The common case, without `canonicalize`: when `rel` has only plain
/// components and none of them is a symlink, `root/rel` is already
/// canonical (the root is), so it is inside the root by construction. One
/// `lstat` per component of `rel`, where `canonicalize` makes a `readlink`
/// for every component of the whole path and then a `stat` (for `/` and
/// its index file: 2 system calls instead of 10). `None` when a component
/// is a symlink, or `rel` is not plain: resolve it the careful way.
fn lookup_plain(root: &Path, rel: &Path) -> Option<Lookup> {
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let mut path = root.to_path_buf();
    let mut meta = None;
    for component in rel.components() {
        path.push(component);
        // Every component is checked, not only the last: `lstat` of `a/b`
        // would follow a symlink `a` without saying so. The first symlink
        // or error ends the walk.
        let m = fs::symlink_metadata(&path);
        let plain = matches!(&m, Ok(m) if !m.file_type().is_symlink());
        meta = Some(m);
        if !plain {
            break;
        }
    }
    // An empty `rel` is the root itself.
    match meta.unwrap_or_else(|| fs::symlink_metadata(&path)) {
        Ok(m) if m.file_type().is_symlink() => None,
        Ok(m) => Some(Lookup::Found(path, m)),
        Err(e) => Some(lookup_error(e)),
    }
}

/// `root/rel` resolved with `canonicalize`, which follows every symlink;
/// the result must still be inside the root.
fn lookup_canonical(root: &Path, rel: &Path) -> Lookup {
    let joined = root.join(rel);
    let canonical = match fs::canonicalize(&joined) {
        Ok(p) => p,
        Err(e) => return lookup_error(e),
    };
    if !canonical.starts_with(root) {
        return Lookup::Escapes;
    }
    match fs::metadata(&canonical) {
        Ok(meta) => Lookup::Found(canonical, meta),
        Err(e) => lookup_error(e),
    }
}

fn lookup_error(e: io::Error) -> Lookup {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidInput => {
            Lookup::Missing
        }
        io::ErrorKind::PermissionDenied => Lookup::Denied(e),
        // ELOOP (symlink loop) and ENAMETOOLONG: nothing servable there.
        _ if matches!(e.raw_os_error(), Some(40 | 36)) => Lookup::Missing,
        _ => Lookup::Failed(e),
    }
}

/// The answer for a lookup that found nothing servable, with a log line
/// where an operator should know.
pub(crate) fn refusal(lookup: &Lookup, request: &Request) -> Response {
    match lookup {
        Lookup::Found(..) | Lookup::Missing => Response::not_found(),
        Lookup::Escapes => {
            log::info!(
                "gemini: {} resolves outside the root; refused",
                super::log::escape_for_log(request.path().as_bytes())
            );
            Response::not_found()
        }
        Lookup::Denied(e) => {
            log::warn!(
                "gemini: {} is not readable: {e}",
                super::log::escape_for_log(request.path().as_bytes())
            );
            Response::new(Status::PermanentFailure, "Not readable")
        }
        Lookup::Failed(e) => {
            log::warn!(
                "gemini: {} could not be read: {e}",
                super::log::escape_for_log(request.path().as_bytes())
            );
            Response::new(Status::TemporaryFailure, "Temporary failure")
        }
    }
}

/// A handler serving a directory (Jetforce's static part of
/// `StaticDirectoryApplication`).
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// Canonical root.
    root: PathBuf,
    index_file: String,
    default_lang: Option<String>,
    listings: bool,
}

impl StaticFiles {
    /// Serves `vhost`'s directory with its index file, language and listing
    /// settings. Fails when the directory cannot be resolved, or when the
    /// host serves the embedded capsule.
    pub fn new(vhost: &VirtualHost) -> Result<Self, GeminiConfigError> {
        let Root::Dir(dir) = &vhost.root else {
            return Err(GeminiConfigError::Root {
                path: PathBuf::new(),
                error: io::Error::new(io::ErrorKind::InvalidInput, "embedded capsule"),
            });
        };
        let mut files = StaticFiles::with_root(dir).map_err(|error| GeminiConfigError::Root {
            path: dir.clone(),
            error,
        })?;
        files.index_file = vhost.index_file.clone();
        files.default_lang = vhost.default_lang.clone();
        files.listings = vhost.listings;
        Ok(files)
    }

    /// Serves `root` with the defaults (`index.gmi`, listings, no language).
    pub fn with_root(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = fs::canonicalize(root.as_ref())?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "served root is not a directory",
            ));
        }
        Ok(StaticFiles {
            root,
            index_file: super::config::DEFAULT_INDEX_FILE.to_string(),
            default_lang: None,
            listings: true,
        })
    }

    /// The canonical directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file_response(&self, path: &Path, name: &str, request: &Request) -> Response {
        // Checked again on the open file, opened so that nothing can block:
        // what was looked up may have been swapped for a FIFO since.
        let file = match open_regular(path) {
            Ok((f, _)) => f,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Response::not_found(),
            Err(e) => return refusal(&lookup_error(e), request),
        };
        let mime = with_lang(mime_for(name), self.default_lang.as_deref());
        Response::success(mime, Body::from(file))
    }

    fn directory_response(&self, dir: &Path, safe: &SafePath, request: &Request) -> Response {
        let index = safe.as_path().join(&self.index_file);
        match lookup(&self.root, &index) {
            Lookup::Found(path, meta) if meta.is_file() => {
                return self.file_response(&path, &self.index_file, request)
            }
            Lookup::Found(..) | Lookup::Missing => {}
            other => return refusal(&other, request),
        }
        if !self.listings {
            return Response::not_found();
        }
        match listing(dir, safe) {
            Ok(text) => Response::success(
                with_lang(Cow::Borrowed(GEMINI_MIME), self.default_lang.as_deref()),
                text,
            ),
            Err(e) => refusal(&lookup_error(e), request),
        }
    }
}

impl Handler for StaticFiles {
    fn handle(&self, request: &Request) -> Response {
        let safe = match safe_segments(request.path()) {
            Ok(safe) => safe,
            Err(e) => {
                log::debug!(
                    "gemini: refused path {}: {e}",
                    super::log::escape_for_log(request.path().as_bytes())
                );
                return Response::new(e.status(), e.reason());
            }
        };
        let (path, meta) = match lookup(&self.root, safe.as_path()) {
            Lookup::Found(path, meta) => (path, meta),
            other => return refusal(&other, request),
        };
        if meta.is_dir() {
            if !safe.is_directory_form() {
                let mut url = request.url().clone();
                let with_slash = format!("{}/", request.path());
                url.set_path(&with_slash);
                let target = url.to_string();
                // A request at the 1,024-byte limit (or one whose path the
                // URL serialiser percent-encodes) can make a redirect that
                // no header may carry: say so to the client instead of
                // failing the response with 42.
                if target.len() > MAX_META {
                    return Response::new(Status::BadRequest, "URL too long to redirect");
                }
                return Response::redirect_permanent(target);
            }
            return self.directory_response(&path, &safe, request);
        }
        if !meta.is_file() {
            return Response::not_found();
        }
        let name = safe.segments().last().unwrap_or("");
        self.file_response(&path, name, request)
    }
}

/// Bytes that stay as they are in a link: RFC 3986 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `segment` percent-encoded (everything but unreserved bytes).
fn push_encoded(out: &mut String, segment: &str) {
    for &b in segment.as_bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Appends `name` for display on a link line: control characters (which a
/// file name may hold, and which would start a new gemtext line) become
/// U+FFFD.
fn push_display(out: &mut String, name: &str) {
    out.extend(
        name.chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c }),
    );
}

/// Whether a directory entry can be requested at all: names the path rules
/// would refuse (dotfiles, `\`, control characters) are not listed.
fn listable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
}

/// A text/gemini listing of `dir`, whose URL path is `safe` (sorted by name,
/// directories marked with `/`, links percent-encoded, at most
/// [`MAX_LISTING_ENTRIES`]).
fn listing(dir: &Path, safe: &SafePath) -> io::Result<String> {
    let mut entries: Vec<(String, bool)> = Vec::new();
    let mut truncated = false;
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !listable(&name) {
            continue;
        }
        if entries.len() >= MAX_LISTING_ENTRIES {
            truncated = true;
            break;
        }
        // Follows symlinks, so a link to a directory is shown as one.
        let is_dir = fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        entries.push((name, is_dir));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let mut base = String::from("/");
    for segment in safe.segments() {
        push_encoded(&mut base, segment);
        base.push('/');
    }
    let mut out = String::with_capacity(64 + entries.len() * 48);
    out.push_str("# Index of /");
    for segment in safe.segments() {
        push_display(&mut out, segment);
        out.push('/');
    }
    out.push_str("\n\n");
    if !safe.is_root() {
        out.push_str("=> ../ ../\n");
    }
    for (name, is_dir) in &entries {
        out.push_str("=> ");
        out.push_str(&base);
        push_encoded(&mut out, name);
        if *is_dir {
            out.push('/');
        }
        out.push(' ');
        push_display(&mut out, name);
        if *is_dir {
            out.push('/');
        }
        out.push('\n');
    }
    if truncated {
        let _ = writeln!(out, "\n(listing cut at {MAX_LISTING_ENTRIES} entries)");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// outside/{secret.txt, root/{sub/page.gmi, alias -> sub, out -> ..}}
    fn tree(name: &str) -> (PathBuf, PathBuf) {
        let outside =
            std::env::temp_dir().join(format!("torsion-lookup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&outside);
        fs::create_dir_all(outside.join("root/sub")).unwrap();
        fs::write(outside.join("secret.txt"), "secret").unwrap();
        fs::write(outside.join("root/sub/page.gmi"), "# page").unwrap();
        symlink("sub", outside.join("root/alias")).unwrap();
        symlink("..", outside.join("root/out")).unwrap();
        let root = fs::canonicalize(outside.join("root")).unwrap();
        (outside, root)
    }

    #[test]
    fn plain_paths_are_found_without_canonicalize() {
        let (outside, root) = tree("plain");
        let found = lookup_plain(&root, Path::new("sub/page.gmi"));
        assert!(
            matches!(&found, Some(Lookup::Found(p, m)) if *p == root.join("sub/page.gmi") && m.is_file()),
            "{found:?}"
        );
        assert!(matches!(
            lookup_plain(&root, Path::new("")),
            Some(Lookup::Found(p, m)) if p == root && m.is_dir()
        ));
        assert!(matches!(
            lookup_plain(&root, Path::new("sub/missing.gmi")),
            Some(Lookup::Missing)
        ));
        // A file used as a directory: ENOTDIR, missing.
        assert!(matches!(
            lookup_plain(&root, Path::new("sub/page.gmi/x")),
            Some(Lookup::Missing)
        ));
        fs::remove_dir_all(outside).unwrap();
    }

    #[test]
    fn a_symlink_anywhere_on_the_way_takes_the_careful_path() {
        let (outside, root) = tree("symlinks");
        // Not decided by the fast path, whether the symlink is the last
        // component or one on the way ...
        assert!(lookup_plain(&root, Path::new("alias")).is_none());
        assert!(lookup_plain(&root, Path::new("alias/page.gmi")).is_none());
        assert!(lookup_plain(&root, Path::new("out/secret.txt")).is_none());
        assert!(lookup_plain(&root, Path::new("../secret.txt")).is_none());
        // ... but by canonicalize: inside the root is found at its real
        // path, outside is an escape.
        assert!(matches!(
            lookup(&root, Path::new("alias/page.gmi")),
            Lookup::Found(p, _) if p == root.join("sub/page.gmi")
        ));
        assert!(matches!(
            lookup(&root, Path::new("out/secret.txt")),
            Lookup::Escapes
        ));
        fs::remove_dir_all(outside).unwrap();
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_for("a.gmi"), "text/gemini");
        assert_eq!(mime_for("A.GEMINI"), "text/gemini");
        assert_eq!(mime_for("x.txt"), "text/plain");
        assert_eq!(mime_for("x.png"), "image/png");
        assert_eq!(mime_for("x.unknownext"), "application/octet-stream");
        assert_eq!(mime_for("Makefile"), "application/octet-stream");
        assert_eq!(mime_for("trailingdot."), "application/octet-stream");
    }

    #[test]
    fn lang_only_for_gemtext() {
        assert_eq!(
            with_lang(Cow::Borrowed("text/gemini"), Some("fr")),
            "text/gemini; lang=fr"
        );
        assert_eq!(
            with_lang(Cow::Borrowed("text/plain"), Some("fr")),
            "text/plain"
        );
        assert_eq!(with_lang(Cow::Borrowed("text/gemini"), None), "text/gemini");
    }

    #[test]
    fn encoding_and_display() {
        let mut s = String::new();
        push_encoded(&mut s, "a b#?%:é");
        assert_eq!(s, "a%20b%23%3F%25%3A%C3%A9");
        let mut d = String::new();
        push_display(&mut d, "x\ny\r=> z");
        assert_eq!(d, "x\u{FFFD}y\u{FFFD}=> z");
        assert!(!listable(".git"));
        assert!(!listable("a\\b"));
        assert!(!listable("a\nb"));
        assert!(listable("a b"));
    }
}
