//! Gemini over real TLS sockets: every malformed request is `59`, requests
//! for other schemes, hosts and ports are `53`, the accept gate's polite
//! refusal is `44 <seconds>`, a silent client is closed at the request
//! deadline, and the embedded capsule is served.

mod gemini_common;

use std::io::Write;
use std::time::{Duration, Instant};

use gemini_common::*;
use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};

fn files_server(dir: &TempDir, state: &TempDir) -> Server {
    let mut vhost = VirtualHost::new("localhost", Root::Dir(dir.path().to_path_buf()));
    vhost.cgi_dir = None;
    let mut config = GeminiConfig::single(vhost);
    config.request_timeout = Duration::from_millis(500);
    Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        GeminiFactory::new(config, 0).unwrap()
    })
}

#[test]
fn every_malformed_request_is_59() {
    let dir = TempDir::new("err59");
    let state = TempDir::new("err59-state");
    dir.write("index.gmi", "# home\n");
    let server = files_server(&dir, &state);
    let port = server.port();

    let too_long = format!("gemini://localhost/{}\r\n", "a".repeat(1024));
    let no_crlf_within_limit = format!("gemini://localhost/{}", "b".repeat(1100));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("too long", too_long.into_bytes()),
        (
            "no CR LF within the limit",
            no_crlf_within_limit.into_bytes(),
        ),
        ("bare LF", b"gemini://localhost/\n".to_vec()),
        (
            "leading BOM",
            b"\xEF\xBB\xBFgemini://localhost/\r\n".to_vec(),
        ),
        ("not UTF-8", b"gemini://localhost/\xff\xfe\r\n".to_vec()),
        ("relative URL", b"/index.gmi\r\n".to_vec()),
        ("relative URL without slash", b"index.gmi\r\n".to_vec()),
        ("userinfo", b"gemini://user@localhost/\r\n".to_vec()),
        ("empty userinfo", b"gemini://@localhost/\r\n".to_vec()),
        ("empty request", b"\r\n".to_vec()),
        ("fragment", b"gemini://localhost/#frag\r\n".to_vec()),
        ("space", b"gemini://localhost/a b\r\n".to_vec()),
        ("control character", b"gemini://localhost/\x07\r\n".to_vec()),
        ("stray CR", b"gemini://localhost/\r\r\n".to_vec()),
        ("no host", b"gemini:///index.gmi\r\n".to_vec()),
        ("bad port", b"gemini://localhost:99999/\r\n".to_vec()),
        (
            "bad percent in path",
            b"gemini://localhost/%zz\r\n".to_vec(),
        ),
    ];
    for (what, line) in cases {
        let answer = Answer::parse(request_raw(server.addr, &line));
        assert_eq!(answer.status, 59, "{what}: {:?}", answer.meta);
        assert!(!answer.meta.is_empty(), "{what}: a reason is given");
        assert!(answer.body.is_empty(), "{what}: no body");
    }
    // The right request still works on the same server.
    let ok = get(server.addr, &format!("gemini://localhost:{port}/"));
    assert_eq!((ok.status, ok.text().as_str()), (20, "# home\n"));
}

#[test]
fn other_schemes_hosts_and_ports_are_53() {
    let dir = TempDir::new("err53");
    let state = TempDir::new("err53-state");
    dir.write("index.gmi", "# home\n");
    let server = files_server(&dir, &state);
    let port = server.port();
    let other_port = if port == 65535 { 1 } else { port + 1 };
    for url in [
        "https://localhost/".to_string(),
        "gopher://localhost/".to_string(),
        "gemini://example.com/".to_string(),
        "gemini://localhost.example.com/".to_string(),
        "gemini://127.0.0.1/".to_string(),
        "gemini://[::1]/".to_string(),
        format!("gemini://localhost:{other_port}/"),
        "gemini://localhost:1965/".to_string(),
    ] {
        let answer = get(server.addr, &url);
        assert_eq!(answer.status, 53, "{url}: {:?}", answer.meta);
    }
    // Host comparison is case-insensitive, ignores a trailing dot and
    // percent-encoding; the port may be left out or named.
    for url in [
        "gemini://localhost/".to_string(),
        "gemini://LocalHost./".to_string(),
        "GEMINI://LOCALHOST/".to_string(),
        "gemini://%6cocalhost/".to_string(),
        format!("gemini://localhost:{port}/"),
        "gemini://localhost".to_string(),
    ] {
        let answer = get(server.addr, &url);
        assert_eq!(answer.status, 20, "{url}: {:?}", answer.meta);
    }
}

#[test]
fn ip_literal_is_served_only_when_configured() {
    let dir = TempDir::new("ip");
    let state = TempDir::new("ip-state");
    dir.write("index.gmi", "# ip\n");
    let mut vhost = VirtualHost::new("localhost", Root::Dir(dir.path().to_path_buf()));
    vhost.hostnames.push("127.0.0.1".into());
    let server = Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        GeminiFactory::new(GeminiConfig::single(vhost), 0).unwrap()
    });
    assert_eq!(get(server.addr, "gemini://127.0.0.1/").status, 20);
    assert_eq!(get(server.addr, "gemini://127.0.0.2/").status, 53);
}

#[test]
fn refused_client_gets_44_with_integer_seconds() {
    let dir = TempDir::new("err44");
    let state = TempDir::new("err44-state");
    dir.write("index.gmi", "# home\n");
    let root = dir.path().to_path_buf();
    let server = Server::start_with(
        Options {
            tls: server_tls(state.path(), &["localhost"], &[]),
            refuse: Some(Duration::from_millis(29_300)),
        },
        move || {
            GeminiFactory::new(
                GeminiConfig::single(VirtualHost::new("localhost", Root::Dir(root))),
                0,
            )
            .unwrap()
        },
    );
    let answer = get(server.addr, "gemini://localhost/");
    assert_eq!(answer.status, 44);
    assert_eq!(answer.meta, "30", "seconds, rounded up, as an integer");
    assert!(answer.body.is_empty());
}

#[test]
fn silent_client_is_closed_at_the_request_deadline() {
    let dir = TempDir::new("deadline");
    let state = TempDir::new("deadline-state");
    let server = files_server(&dir, &state);
    let start = Instant::now();
    let mut tls = connect(server.addr, "localhost", client_config(None));
    let (data, _) = read_all(&mut tls);
    let waited = start.elapsed();
    assert!(data.is_empty(), "no answer to a request never sent");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );

    // A client trickling a partial line is closed at the same deadline.
    let start = Instant::now();
    let mut tls = connect(server.addr, "localhost", client_config(None));
    tls.write_all(b"gemini://local").unwrap();
    tls.flush().unwrap();
    let (data, _) = read_all(&mut tls);
    assert!(data.is_empty());
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn request_split_across_writes_is_served() {
    let dir = TempDir::new("split");
    let state = TempDir::new("split-state");
    dir.write("index.gmi", "# split\n");
    let server = files_server(&dir, &state);
    let mut tls = connect(server.addr, "localhost", client_config(None));
    for piece in [&b"gemini://lo"[..], b"calhost/", b"\r", b"\n"] {
        tls.write_all(piece).unwrap();
        tls.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = Answer::parse(read_all(&mut tls).0);
    assert_eq!((answer.status, answer.text().as_str()), (20, "# split\n"));
}

#[test]
fn embedded_capsule_is_served_without_a_directory() {
    let state = TempDir::new("capsule-state");
    let server = Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        GeminiFactory::new(
            GeminiConfig::single(VirtualHost::new("localhost", Root::Embedded)),
            0,
        )
        .unwrap()
    });
    let index = get(server.addr, "gemini://localhost/");
    assert_eq!((index.status, index.meta.as_str()), (20, "text/gemini"));
    let text = index.text();
    assert!(text.starts_with("# torsion"), "{text}");
    assert!(text.contains("--dir"));
    let page = get(server.addr, "gemini://localhost/serving.gmi");
    assert_eq!(page.status, 20);
    assert_eq!(get(server.addr, "gemini://localhost/nope").status, 51);
}
