//! The application API over real TLS sockets, through the guestbook example
//! (`examples/guestbook.rs`, compiled here as a module): input (`10`), a
//! client certificate required (`60`), a redirect, state shared between
//! connections; plus routes composed in front of the static files, and a
//! body stream pulled as the client drains.

mod gemini_common;

#[allow(dead_code)]
#[path = "../../examples/guestbook.rs"]
mod guestbook;

use std::cell::Cell;
use std::rc::Rc;

use gemini_common::*;
use torsion_protocols::gemini::{
    AppRequest, Body, GeminiConfig, GeminiFactory, Response, Root, Router, StaticFiles, VirtualHost,
};

#[test]
fn guestbook_asks_for_a_certificate_then_input_and_signs_with_the_cn() {
    let state = TempDir::new("guestbook-state");
    let server = Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        let config = GeminiConfig::single(VirtualHost::new("localhost", Root::Embedded));
        GeminiFactory::with_handler(config, 0, guestbook::app(Rc::default())).unwrap()
    });
    let alice = Identity::generate("alice");

    let page = get(server.addr, "gemini://localhost/");
    assert_eq!(page.status, 20);
    assert!(page.text().contains("Nobody has signed yet."));

    let a = get(server.addr, "gemini://localhost/sign?hello");
    assert_eq!(
        (a.status, a.meta.as_str()),
        (60, "Sign with a client certificate")
    );

    let a = get_with(server.addr, "gemini://localhost/sign", Some(&alice));
    assert_eq!(
        (a.status, a.meta.as_str()),
        (10, "Your message for the guestbook")
    );

    // A decoded %0A must not start a new gemtext line.
    let a = get_with(
        server.addr,
        "gemini://localhost/sign?hello%20w%C3%B6rld%0A%3D%3E%20gemini://evil/",
        Some(&alice),
    );
    assert_eq!((a.status, a.meta.as_str()), (30, "gemini://localhost/"));

    let bob = Identity::generate("bob");
    let a = get_with(server.addr, "gemini://localhost/sign?second", Some(&bob));
    assert_eq!(a.status, 30);

    let page = get(server.addr, "gemini://localhost/").text();
    assert!(
        page.ends_with("* bob: second\n* alice: hello wörld => gemini://evil/\n"),
        "{page}"
    );
    assert!(!page.lines().any(|l| l.starts_with("=> gemini://evil")));
    assert_eq!(get(server.addr, "gemini://localhost/other").status, 51);
}

#[test]
fn routes_first_then_static_files_and_streams() {
    let dir = TempDir::new("compose");
    let state = TempDir::new("compose-state");
    dir.write("index.gmi", "# static index\n");
    dir.write("hello", "static hello");
    let root = dir.path().to_path_buf();
    let server = Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        let vhost = VirtualHost::new("localhost", Root::Dir(root));
        let files = StaticFiles::new(&vhost).unwrap();
        let app = Router::new()
            .exact("/hello", |_: &AppRequest| Response::gemtext("route hello"))
            .pattern("/users/{name}/posts/{*rest}", |r: &AppRequest| {
                Response::success(
                    "text/plain",
                    format!(
                        "{} [{}]",
                        r.capture("name").unwrap(),
                        r.capture("rest").unwrap()
                    ),
                )
            })
            .unwrap()
            .exact("/count", |_: &AppRequest| {
                // A body produced step by step: ten lines, one per call.
                let n = Rc::new(Cell::new(0));
                Response::success(
                    "text/plain",
                    Body::from_fn(move |out: &mut Vec<u8>, _max| {
                        if n.get() < 10 {
                            out.extend_from_slice(format!("line {}\n", n.get()).as_bytes());
                            n.set(n.get() + 1);
                        }
                        Ok(())
                    }),
                )
            })
            .exact("/peer", |r: &AppRequest| {
                let tls = r.tls().unwrap();
                Response::success(
                    "text/plain",
                    format!("{} {} {}", r.peer().ip().unwrap(), tls.version, r.port()),
                )
            })
            .exact("/bad", |_: &AppRequest| Response::redirect("line\r\nbreak"))
            .fallback(files);
        GeminiFactory::with_handler(GeminiConfig::single(vhost_for_factory()), 0, app).unwrap()
    });
    assert_eq!(
        get(server.addr, "gemini://localhost/hello").text(),
        "route hello"
    );
    assert_eq!(
        get(server.addr, "gemini://localhost/").text(),
        "# static index\n"
    );
    assert_eq!(
        get(server.addr, "gemini://localhost/users/%C3%A9/posts/2024/x").text(),
        "é [2024/x]"
    );
    let lines: String = (0..10).map(|i| format!("line {i}\n")).collect();
    assert_eq!(get(server.addr, "gemini://localhost/count").text(), lines);
    assert_eq!(
        get(server.addr, "gemini://localhost/peer").text(),
        format!("127.0.0.1 TLSv1.3 {}", server.port())
    );
    // An application's invalid header never reaches the client as such.
    let bad = get(server.addr, "gemini://localhost/bad");
    assert_eq!(
        (bad.status, bad.raw.as_slice()),
        (42, &b"42 Application error\r\n"[..])
    );
    assert_eq!(get(server.addr, "gemini://localhost/nothing").status, 51);
}

fn vhost_for_factory() -> VirtualHost {
    VirtualHost::new("localhost", Root::Embedded)
}
