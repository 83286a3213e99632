//! A small capsule built into the binary: what torsion is, how to serve your
//! own directory, which listeners run. Served when no `--dir` was given and
//! the default directory does not exist, so a bare `torsion` shows
//! something real.

use std::borrow::Cow;

use super::app::{Body, Handler, Request, Response};
use super::static_files::{with_lang, GEMINI_MIME};

/// The pages, by file name; the first is the index.
pub const PAGES: &[(&str, &str)] = &[
    ("index.gmi", include_str!("index.gmi")),
    ("serving.gmi", include_str!("serving.gmi")),
    ("listeners.gmi", include_str!("listeners.gmi")),
];

/// A handler serving [`PAGES`]: `/` and `/index.gmi` give the index,
/// `/<name>` a page, anything else `51`.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedCapsule {
    lang: Option<String>,
}

impl EmbeddedCapsule {
    /// The capsule, with `; lang=xx` on its pages when `lang` is set.
    pub fn new(lang: Option<String>) -> Self {
        EmbeddedCapsule { lang }
    }
}

impl Handler for EmbeddedCapsule {
    fn handle(&self, request: &Request) -> Response {
        let name = match request.path() {
            "/" => "index.gmi",
            path => path.strip_prefix('/').unwrap_or(path),
        };
        match PAGES.iter().find(|(page, _)| *page == name) {
            Some((_, text)) => Response::success(
                with_lang(Cow::Borrowed(GEMINI_MIME), self.lang.as_deref()),
                Body::from(*text),
            ),
            None => Response::not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::Status;
    use torsion_reactor::PeerAddr;

    fn get(path: &str) -> Response {
        let req = Request::parse(
            &format!("gemini://localhost{path}"),
            PeerAddr::Tcp("127.0.0.1:1".parse().unwrap()),
        )
        .unwrap();
        EmbeddedCapsule::new(Some("en".into())).handle(&req)
    }

    #[test]
    fn serves_index_pages_and_not_found() {
        let r = get("/");
        assert_eq!(r.status(), Some(Status::Success));
        assert_eq!(r.meta(), Some("text/gemini; lang=en"));
        match r.body() {
            Some(Body::Bytes(b)) => assert!(b.starts_with(b"# torsion")),
            other => panic!("unexpected body {other:?}"),
        }
        assert_eq!(get("/serving.gmi").status(), Some(Status::Success));
        assert_eq!(get("/listeners.gmi").status(), Some(Status::Success));
        assert_eq!(get("/nope.gmi").status(), Some(Status::NotFound));
        assert_eq!(get("/../index.gmi").status(), Some(Status::Success));
    }

    #[test]
    fn index_links_to_every_page() {
        let index = PAGES[0].1;
        for (name, _) in &PAGES[1..] {
            assert!(index.contains(&format!("=> {name}")), "{name} not linked");
        }
    }
}
