//! A guestbook capsule built on torsion's Gemini application API.
//!
//! `/` shows the entries; `/sign` asks for a client certificate (`60`),
//! then for a message (`10`), then signs the entry with the certificate's
//! common name and redirects back to `/`.
//!
//! ```text
//! cargo run --example guestbook            # gemini://localhost:1965/
//! cargo run --example guestbook -- 1966    # another port
//! ```
//!
//! A self-signed certificate for `localhost` is generated into a temporary
//! state directory on first start and reused after. The application is the
//! [`app`] function; the rest is wiring, the same for any capsule.

use std::cell::RefCell;
use std::rc::Rc;

use torsion_protocols::gemini::{
    AppRequest, GeminiConfig, GeminiFactory, Response, Root, Router, VirtualHost,
};

/// Entries kept; the oldest go first, so the page stays small.
pub const MAX_ENTRIES: usize = 100;

/// Characters kept of a message (the request line already bounds it to 1024
/// bytes; a guestbook line should be shorter).
pub const MAX_MESSAGE: usize = 200;

/// The guestbook's state: shared by every connection through an `Rc` (one
/// thread, so a `RefCell` and no lock).
#[derive(Debug, Default)]
pub struct Guestbook {
    entries: RefCell<Vec<(String, String)>>,
}

/// Text safe inside one gemtext line: control characters (a decoded `%0A`
/// would start a new line, perhaps a link) become spaces.
fn one_line(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Guestbook {
    /// The entries, oldest first, as (name, message).
    pub fn entries(&self) -> Vec<(String, String)> {
        self.entries.borrow().clone()
    }

    fn page(&self) -> Response {
        let mut text = String::from(
            "# Guestbook\n\n=> /sign Sign the guestbook (with a client certificate)\n\n",
        );
        let entries = self.entries.borrow();
        if entries.is_empty() {
            text.push_str("Nobody has signed yet.\n");
        }
        for (name, message) in entries.iter().rev() {
            text.push_str(&format!("* {name}: {message}\n"));
        }
        Response::gemtext(text)
    }

    fn sign(&self, request: &AppRequest) -> Response {
        let Some(cert) = request.client_cert() else {
            return Response::certificate_required("Sign with a client certificate");
        };
        let message = match request.input() {
            Some(m) if !m.trim().is_empty() => one_line(m.trim(), MAX_MESSAGE),
            _ => return Response::input("Your message for the guestbook"),
        };
        let name = match cert.common_name.as_str() {
            "" => "anonymous".to_string(),
            cn => one_line(cn, 64),
        };
        {
            let mut entries = self.entries.borrow_mut();
            entries.push((name, message));
            if entries.len() > MAX_ENTRIES {
                entries.remove(0);
            }
        }
        let mut back = request.url().clone();
        back.set_path("/");
        back.set_query(None);
        Response::redirect(back.to_string())
    }
}

/// The guestbook application: two routes over `book`.
pub fn app(book: Rc<Guestbook>) -> Router {
    let for_page = book.clone();
    Router::new()
        .exact("/", move |_: &AppRequest| for_page.page())
        .exact("/sign", move |request: &AppRequest| book.sign(request))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use torsion_reactor::tls::{CertSource, CertStore, ServerTlsConfig};
    use torsion_reactor::{ListenOptions, Reactor};

    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse()?,
        None => 1965,
    };
    let state_dir = std::env::temp_dir().join("torsion-guestbook");
    let certs = CertStore::new();
    let fingerprint = certs.add_default(
        &["localhost"],
        CertSource::Generated {
            state_dir: state_dir.clone(),
            hostnames: vec!["localhost".into()],
        },
    )?;
    let tls = ServerTlsConfig::builder(certs).build()?;

    // The virtual host names what is served; the application decides how.
    let config = GeminiConfig::single(VirtualHost::new("localhost", Root::Embedded));
    let factory = GeminiFactory::with_handler(config, port, app(Rc::default()))?;
    let mut reactor = Reactor::new()?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    reactor.listen_with(
        addr,
        factory,
        ListenOptions {
            tls: Some(tls),
            ..Default::default()
        },
    )?;
    println!("guestbook on gemini://localhost:{port}/");
    println!("certificate {fingerprint} in {}", state_dir.display());
    reactor.stop_on_signals()?;
    reactor.run()?;
    Ok(())
}
