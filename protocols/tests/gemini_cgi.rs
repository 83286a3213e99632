//! CGI over real TLS sockets: the exact environment with and without a
//! client certificate, SCRIPT_NAME/PATH_INFO, invalid or missing headers
//! (`42` and a log line), the timeout (killed, connection closed), stderr in
//! the log, output streamed as the script writes it, and a large output to
//! a slow reader with a bounded queue.

mod gemini_common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use gemini_common::*;
use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};
use torsion_reactor::tls::info::{cipher_names, version_name};
use torsion_reactor::tls::PeerCertInfo;

// ----- a logger that keeps lines for the assertions ------------------------

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("torsion") || record.target() == "access" {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            LINES.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_boxed_logger(Box::new(Capture)).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// Waits (bounded) for a log line containing every one of `parts`.
fn wait_for_log(parts: &[&str]) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        if let Some(line) = LINES
            .lock()
            .unwrap()
            .iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.clone();
        }
        assert!(Instant::now() < deadline, "no log line with {parts:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ----- fixtures -------------------------------------------------------------

const ENV_SCRIPT: &str = "#!/usr/bin/perl\n\
    print \"20 text/plain\\r\\n\";\n\
    print \"$_=$ENV{$_}\\n\" for sort keys %ENV;\n";

fn cgi_server(dir: &TempDir, state: &TempDir, timeout: Duration) -> Server {
    let vhost = VirtualHost::new("localhost", Root::Dir(dir.path().to_path_buf()));
    let mut config = GeminiConfig::single(vhost);
    config.cgi_timeout = timeout;
    Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        GeminiFactory::new(config, 0).unwrap()
    })
}

fn parse_env(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Requests `url` and returns the answer with the session's cipher and
/// version names as the server reports them.
fn get_env(server: &Server, url: &str, identity: Option<&Identity>) -> (Answer, String, String) {
    let mut tls = connect(server.addr, "localhost", client_config(identity));
    let suite = tls.conn.negotiated_cipher_suite().unwrap().suite();
    let version = version_name(tls.conn.protocol_version().unwrap()).to_string();
    tls.write_all(format!("{url}\r\n").as_bytes()).unwrap();
    tls.flush().unwrap();
    let answer = Answer::parse(read_all(&mut tls).0);
    (answer, cipher_names(suite).2.to_string(), version)
}

#[test]
fn environment_is_exact_without_a_client_certificate() {
    let dir = TempDir::new("cgienv");
    let state = TempDir::new("cgienv-state");
    dir.script("cgi-bin/env.pl", ENV_SCRIPT);
    let server = cgi_server(&dir, &state, Duration::from_secs(5));
    let port = server.port();
    let url = format!("gemini://localhost:{port}/cgi-bin/env.pl/extra/p%20ath?q%20x=1");
    let (answer, cipher, version) = get_env(&server, &url, None);
    assert_eq!((answer.status, answer.meta.as_str()), (20, "text/plain"));
    let env = parse_env(&answer.text());
    let mut want: BTreeMap<String, String> = [
        ("GATEWAY_INTERFACE", "GCI/1.1".to_string()),
        ("SERVER_PROTOCOL", "GEMINI".to_string()),
        (
            "SERVER_SOFTWARE",
            format!("torsion/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("GEMINI_URL", url.clone()),
        ("SCRIPT_NAME", "/cgi-bin/env.pl".to_string()),
        ("PATH_INFO", "/extra/p ath".to_string()),
        ("QUERY_STRING", "q%20x=1".to_string()),
        ("SERVER_NAME", "localhost".to_string()),
        ("HOSTNAME", "localhost".to_string()),
        ("SERVER_PORT", port.to_string()),
        ("REMOTE_HOST", "127.0.0.1".to_string()),
        ("REMOTE_ADDR", "127.0.0.1".to_string()),
        ("TLS_CIPHER", cipher),
        ("TLS_VERSION", version),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Ok(path) = std::env::var("PATH") {
        want.insert("PATH".into(), path);
    }
    assert_eq!(env, want);
    assert_eq!(env["TLS_VERSION"], "TLSv1.3");
    assert!(
        env["TLS_CIPHER"].starts_with("TLS_"),
        "{}",
        env["TLS_CIPHER"]
    );
}

#[test]
fn environment_is_exact_with_a_client_certificate() {
    let dir = TempDir::new("cgicert");
    let state = TempDir::new("cgicert-state");
    dir.script("cgi-bin/sub/env.pl", ENV_SCRIPT);
    let server = cgi_server(&dir, &state, Duration::from_secs(5));
    let alice = Identity::generate("alice");
    let url = "gemini://localhost/cgi-bin/sub/env.pl/a/b/";
    let (answer, cipher, version) = get_env(&server, url, Some(&alice));
    assert_eq!(answer.status, 20);
    let env = parse_env(&answer.text());
    let facts = PeerCertInfo::from_der(&alice.chain[0], 0, false).unwrap();
    let mut want: BTreeMap<String, String> = [
        ("GATEWAY_INTERFACE", "GCI/1.1".to_string()),
        ("SERVER_PROTOCOL", "GEMINI".to_string()),
        (
            "SERVER_SOFTWARE",
            format!("torsion/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("GEMINI_URL", url.to_string()),
        ("SCRIPT_NAME", "/cgi-bin/sub/env.pl".to_string()),
        ("PATH_INFO", "/a/b/".to_string()),
        ("QUERY_STRING", String::new()),
        ("SERVER_NAME", "localhost".to_string()),
        ("HOSTNAME", "localhost".to_string()),
        ("SERVER_PORT", server.port().to_string()),
        ("REMOTE_HOST", "127.0.0.1".to_string()),
        ("REMOTE_ADDR", "127.0.0.1".to_string()),
        ("TLS_CIPHER", cipher),
        ("TLS_VERSION", version),
        ("AUTH_TYPE", "CERTIFICATE".to_string()),
        ("REMOTE_USER", "alice".to_string()),
        ("TLS_CLIENT_HASH", facts.hash.clone()),
        ("TLS_CLIENT_NOT_BEFORE", facts.not_before.clone()),
        ("TLS_CLIENT_NOT_AFTER", facts.not_after.clone()),
        ("TLS_CLIENT_SERIAL_NUMBER", facts.serial.clone()),
        ("TLS_CLIENT_AUTHORISED", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Ok(path) = std::env::var("PATH") {
        want.insert("PATH".into(), path);
    }
    assert_eq!(env, want);
    // The formats Jetforce uses.
    assert!(env["TLS_CLIENT_HASH"].starts_with("SHA256:"));
    assert_eq!(env["TLS_CLIENT_HASH"].len(), 7 + 64);
    assert!(env["TLS_CLIENT_NOT_AFTER"].ends_with('Z'));
    assert!(env["TLS_CLIENT_SERIAL_NUMBER"]
        .bytes()
        .all(|b| b.is_ascii_digit()));
}

#[test]
fn script_name_is_found_by_walking_and_plain_files_fall_through() {
    let dir = TempDir::new("cgiwalk");
    let state = TempDir::new("cgiwalk-state");
    dir.script("cgi-bin/env.pl", ENV_SCRIPT);
    dir.write("cgi-bin/readme.txt", "not a script");
    let server = cgi_server(&dir, &state, Duration::from_secs(5));
    let a = get(server.addr, "gemini://localhost/cgi-bin/env.pl");
    let env = parse_env(&a.text());
    assert_eq!(env["SCRIPT_NAME"], "/cgi-bin/env.pl");
    assert_eq!(env["PATH_INFO"], "");
    let a = get(server.addr, "gemini://localhost/cgi-bin/readme.txt");
    assert_eq!((a.status, a.text().as_str()), (20, "not a script"));
    assert_eq!(
        get(server.addr, "gemini://localhost/cgi-bin/nope/x").status,
        51
    );
    // The script's source is never served.
    let a = get(server.addr, "gemini://localhost/cgi-bin/");
    assert!(!a.text().contains("perl"));
}

#[test]
fn bad_or_missing_header_is_42_and_logged() {
    capture_logs();
    let dir = TempDir::new("cgibad");
    let state = TempDir::new("cgibad-state");
    dir.script("cgi-bin/words.sh", "#!/bin/sh\necho hello world\n");
    dir.script("cgi-bin/silent.sh", "#!/bin/sh\nexit 0\n");
    dir.script(
        "cgi-bin/barelf.sh",
        "#!/bin/sh\nprintf '20 text/plain\\nbody'\n",
    );
    dir.script("cgi-bin/unknown.sh", "#!/bin/sh\nprintf '99 what\\r\\n'\n");
    dir.script("cgi-bin/partial.sh", "#!/bin/sh\nprintf '20 text/pl'\n");
    dir.script(
        "cgi-bin/input.sh",
        "#!/bin/sh\nprintf '10 Your name?\\r\\nignored body'\n",
    );
    dir.script(
        "cgi-bin/stderr.sh",
        "#!/bin/sh\nprintf 'oops \\033[31m\\r\\nFAKE\\n' >&2\nprintf '20 text/plain\\r\\nok'\n",
    );
    let server = cgi_server(&dir, &state, Duration::from_secs(5));
    for script in [
        "words.sh",
        "silent.sh",
        "barelf.sh",
        "unknown.sh",
        "partial.sh",
    ] {
        let a = get(server.addr, &format!("gemini://localhost/cgi-bin/{script}"));
        assert_eq!(a.status, 42, "{script}: {}", a.meta);
        assert!(a.body.is_empty());
        wait_for_log(&["WARN", &format!("CGI /cgi-bin/{script}")]);
    }
    wait_for_log(&["/cgi-bin/words.sh", "invalid header", "hello world"]);
    wait_for_log(&["/cgi-bin/silent.sh", "wrote nothing"]);

    let a = get(server.addr, "gemini://localhost/cgi-bin/input.sh");
    assert_eq!((a.status, a.meta.as_str()), (10, "Your name?"));
    assert!(a.body.is_empty(), "no body after a non-20 header");

    let a = get(server.addr, "gemini://localhost/cgi-bin/stderr.sh");
    assert_eq!((a.status, a.text().as_str()), (20, "ok"));
    let line = wait_for_log(&["/cgi-bin/stderr.sh", "stderr"]);
    assert!(line.contains("oops \\x1B[31m\\x0D"), "{line}");
    wait_for_log(&["/cgi-bin/stderr.sh", "stderr: FAKE"]);
    // The access log has the request, status and meta.
    wait_for_log(&[
        "INFO access",
        "\"gemini://localhost/cgi-bin/input.sh\" 10 \"Your name?\"",
    ]);
}

/// Whether the process is gone and reaped (a zombie still has its /proc
/// entry, so a child nobody waited for fails this).
fn pid_is_gone(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_err()
}

#[test]
fn script_past_the_timeout_is_killed_and_the_connection_closed() {
    let dir = TempDir::new("cgitime");
    let state = TempDir::new("cgitime-state");
    dir.script(
        "cgi-bin/hang.sh",
        "#!/bin/sh\necho $$ > hang.pid\nexec sleep 30\n",
    );
    dir.script(
        "cgi-bin/late.sh",
        "#!/bin/sh\nprintf '20 text/plain\\r\\nstart\\n'\necho $$ > late.pid\nexec sleep 30\n",
    );
    let server = cgi_server(&dir, &state, Duration::from_millis(600));

    for (script, want) in [("hang.sh", None), ("late.sh", Some("start\n"))] {
        let start = Instant::now();
        let a = get(server.addr, &format!("gemini://localhost/cgi-bin/{script}"));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(4),
            "{script}: closed after {took:?}"
        );
        match want {
            None => assert_eq!(a.status, 42, "{script}"),
            Some(body) => assert_eq!((a.status, a.text().as_str()), (20, body)),
        }
        let pid_file = dir
            .path()
            .join("cgi-bin")
            .join(script.replace(".sh", ".pid"));
        let pid: u32 = std::fs::read_to_string(pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !pid_is_gone(pid) {
            assert!(Instant::now() < deadline, "{script}: pid {pid} still there");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn output_is_streamed_as_the_script_writes_it() {
    let dir = TempDir::new("cgistream");
    let state = TempDir::new("cgistream-state");
    // The second line waits for a file the test creates only after it has
    // seen the first line: buffering the output until exit would deadlock
    // (and time out) instead of passing.
    dir.script(
        "cgi-bin/two.sh",
        "#!/bin/sh\nprintf '20 text/plain\\r\\nfirst\\n'\n\
         i=0\nwhile [ ! -e go ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n\
         echo second\n",
    );
    // The form: a line, a pause (a second), another line.
    dir.script(
        "cgi-bin/sleepy.sh",
        "#!/bin/sh\nprintf '20 text/plain\\r\\nfirst\\n'\nsleep 1\necho second\n",
    );
    let server = cgi_server(&dir, &state, Duration::from_secs(8));

    let mut tls = connect(server.addr, "localhost", client_config(None));
    tls.write_all(b"gemini://localhost/cgi-bin/two.sh\r\n")
        .unwrap();
    tls.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"first\n") {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"20 text/plain\r\nfirst\n");
    std::fs::write(dir.path().join("cgi-bin/go"), "").unwrap();
    let (rest, clean) = read_all(&mut tls);
    assert_eq!(rest, b"second\n");
    assert!(clean, "closed with close_notify");

    let mut tls = connect(server.addr, "localhost", client_config(None));
    tls.write_all(b"gemini://localhost/cgi-bin/sleepy.sh\r\n")
        .unwrap();
    tls.flush().unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while !got.ends_with(b"first\n") {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let first_at = start.elapsed();
    let (rest, _) = read_all(&mut tls);
    let second_at = start.elapsed();
    assert_eq!(rest, b"second\n");
    assert!(
        second_at.saturating_sub(first_at) >= Duration::from_millis(500),
        "first at {first_at:?}, second at {second_at:?}"
    );
}

#[test]
fn large_output_to_a_slow_reader_keeps_the_queue_bounded() {
    const SIZE: usize = 24 * 1024 * 1024;
    let dir = TempDir::new("cgibig");
    let state = TempDir::new("cgibig-state");
    dir.script(
        "cgi-bin/big.sh",
        &format!("#!/bin/sh\nprintf '20 application/octet-stream\\r\\n'\nexec head -c {SIZE} /dev/zero\n"),
    );
    // The timeout only stops a runaway script: the 24 MiB must not race it
    // (a debug build on a loaded machine, and the reader's pauses).
    let server = cgi_server(&dir, &state, Duration::from_secs(60));
    let mut tls = connect(server.addr, "localhost", client_config(None));
    tls.write_all(b"gemini://localhost/cgi-bin/big.sh\r\n")
        .unwrap();
    tls.flush().unwrap();
    let mut total = 0usize;
    let mut zeros = true;
    let mut buf = vec![0u8; 8 * 1024];
    let mut next_pause = 2 << 20;
    let mut header_left = b"20 application/octet-stream\r\n".len();
    loop {
        let n = match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("read failed at {total}: {e}"),
        };
        let skip = header_left.min(n);
        header_left -= skip;
        zeros &= buf[skip..n].iter().all(|&b| b == 0);
        total += n - skip;
        if total >= next_pause {
            std::thread::sleep(Duration::from_millis(60));
            next_pause += 2 << 20;
        }
    }
    assert_eq!(total, SIZE);
    assert!(zeros);
    let max = server.max_buffered.load(Ordering::Relaxed);
    // High water (64 KiB) + one pipe read (64 KiB) + TLS overhead.
    assert!(max < 200 * 1024, "server queued up to {max} bytes");
}
