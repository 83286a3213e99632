//! Operating the built binary: the configuration file's errors and
//! `--check-config`, `--workers 2` serving from both threads (and the
//! status page counting both), the pid file, SIGTERM letting an open
//! connection finish, SIGHUP picking up a changed certificate.

mod server_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use server_support::{
    command, echo_once, free_port, gemini, tls_connect, Server, TempDir, TIMEOUT,
};

fn run_to_end(dir: &TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    let out = command(dir, args)
        .stdin(Stdio::null())
        .output()
        .expect("run torsion");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_config_file_exits_2_naming_the_file_key_and_line() {
    let dir = TempDir::new("badconf");
    let file = dir.path().join("torsion.toml");
    std::fs::write(&file, "[server]\nworkers = 1\n\n[[gemini]]\nprot = 1965\n").unwrap();
    let (code, _, err) = run_to_end(&dir, &["--config", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("torsion.toml"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("prot"), "{err}");

    std::fs::write(&file, "[[http]]\nport = 8080\nredirect_code = 302\n").unwrap();
    let (code, _, err) = run_to_end(
        &dir,
        &["--config", file.to_str().unwrap(), "--check-config"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("http[0].redirect_code"), "{err}");

    let (code, _, err) = run_to_end(&dir, &["--check-config", "--user", "no-such-user-torsion"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no such user"), "{err}");
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let dir = TempDir::new("example");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/torsion.example.toml");
    let (code, out, err) = run_to_end(&dir, &["--config", example, "--check-config"]);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("configuration OK"), "{out}");
    // Checking binds nothing and writes nothing.
    assert!(!dir.path().join("state").exists());
}

fn echo_only(dir: &TempDir, addr: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--no-gemini", "--no-http", "--no-ws", "--echo", addr];
    args.extend_from_slice(extra);
    Server::start(command(dir, &args), 1)
}

#[test]
fn two_workers_each_serve_connections() {
    let dir = TempDir::new("workers");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = echo_only(&dir, &addr, &["--workers", "2"]);
    let echo = server.addr("echo");
    let threads = server.threads();
    let main_tid = server.pid().to_string();
    let worker = threads
        .iter()
        .find(|(_, name)| name == "worker-1")
        .map(|(tid, _)| tid.clone())
        .unwrap_or_else(|| panic!("no worker-1 thread: {threads:?}"));
    // Each wake-up of a reactor from its poll is a voluntary context
    // switch; an idle reactor has (almost) none.
    let switches = |tid: &str| -> u64 {
        server
            .task_status(tid, "voluntary_ctxt_switches")
            .parse()
            .unwrap()
    };
    let before = (switches(&main_tid), switches(&worker));
    for i in 0..200 {
        let line = format!("connection {i}\n");
        assert_eq!(echo_once(echo, &line), line);
    }
    let after = (switches(&main_tid), switches(&worker));
    // SO_REUSEPORT hashes each connection to one of the two sockets: with
    // 200 connections, each worker gets about 100.
    assert!(
        after.0 >= before.0 + 10 && after.1 >= before.1 + 10,
        "both workers should have served: (main, worker-1) switches {before:?} → {after:?}"
    );
}

/// The number after `"key":` in the status JSON's line for `protocol`.
fn status_count(json: &str, protocol: &str, key: &str) -> Option<u64> {
    let line = json.split(&format!("\"name\":\"{protocol}\"")).nth(1)?;
    let line = line.split('}').next()?;
    let value = line.split(&format!("\"{key}\":")).nth(1)?;
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_status_page_of_one_worker_counts_every_workers_requests() {
    let dir = TempDir::new("workers-status");
    let gemini_port = free_port().to_string();
    let ws_port = free_port().to_string();
    let server = Server::start(
        command(
            &dir,
            &[
                "--workers",
                "2",
                "--no-http",
                "--port",
                &gemini_port,
                "--ws-port",
                &ws_port,
                "--max-conns-per-ip",
                "0",
            ],
        ),
        2,
    );
    let gemini_addr = server.addr("gemini");
    let https = server.addr("https");
    // SO_REUSEPORT spreads 40 connections over both workers.
    const REQUESTS: u64 = 40;
    for _ in 0..REQUESTS {
        let reply = gemini(gemini_addr, "gemini://localhost/");
        assert!(reply.header.starts_with("20 "), "{}", reply.header);
    }
    // Whichever worker serves /status reports both: other workers' lines
    // arrive one snapshot later.
    let tls = tls_connect(https, "localhost", &[b"http/1.1"]);
    let url = format!("wss://localhost:{}/status", https.port());
    let (mut ws, _) = tungstenite::client(url, tls).expect("/status");
    let deadline = Instant::now() + TIMEOUT;
    let mut last = String::new();
    loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("a snapshot") {
            last = t.as_str().to_owned();
            let requests = status_count(&last, "gemini", "requests");
            let connections = status_count(&last, "gemini", "connections");
            if requests == Some(REQUESTS) {
                assert_eq!(connections, Some(REQUESTS), "{last}");
                break;
            }
            assert!(
                requests.is_some_and(|r| r < REQUESTS),
                "more requests than were made: {last}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "the status page never counted all {REQUESTS} requests of both workers; last: {last}"
        );
    }
    let _ = ws.close(None);
}

#[test]
fn pid_file_and_sigterm_let_an_open_connection_finish_and_exit_0() {
    let dir = TempDir::new("sigterm");
    let pid_file = dir.path().join("torsion.pid");
    let mut server = echo_only(
        &dir,
        "127.0.0.1:0",
        &["--pid-file", pid_file.to_str().unwrap()],
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid file written before listening");
    assert_eq!(pid, format!("{}\n", server.pid()));
    let addr = server.addr("echo");

    let mut open = TcpStream::connect(addr).unwrap();
    open.set_read_timeout(Some(TIMEOUT)).unwrap();
    open.write_all(b"before\n").unwrap();
    let mut buf = [0u8; 7];
    open.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"before\n");

    server.signal(libc::SIGTERM);
    server.wait_line("stop signal: no new connections");
    // No new connections once it is shutting down...
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...but the open one is still served, and the process waits for it.
    open.write_all(b"during\n").unwrap();
    open.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"during\n");
    assert!(server.is_running(), "exited with a connection open");
    drop(open);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{:#?}", server.lines());
    assert!(!pid_file.exists(), "pid file removed at exit");
}

#[test]
fn sighup_serves_a_changed_certificate_to_new_connections() {
    let dir = TempDir::new("sighup");
    let state = dir.path().join("certs");
    let server = Server::start(
        command(
            &dir,
            &[
                "--no-http",
                "--no-ws",
                "--port",
                "0",
                "--state-dir",
                state.to_str().unwrap(),
            ],
        ),
        1,
    );
    let addr = server.addr("gemini");
    let first = gemini(addr, "gemini://localhost/");
    assert!(first.header.starts_with("20 "), "{}", first.header);
    // Remove the kept certificate: reloading generates a new one.
    std::fs::remove_file(state.join("cert.pem")).unwrap();
    std::fs::remove_file(state.join("key.pem")).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_line("SIGHUP: reloaded");
    assert!(state.join("cert.pem").is_file());
    let second = gemini(addr, "gemini://localhost/");
    assert!(second.header.starts_with("20 "), "{}", second.header);
    assert_ne!(first.cert, second.cert, "the new certificate is served");
}

#[test]
fn a_failed_start_leaves_another_instances_pid_file_alone() {
    let dir = TempDir::new("pidclash");
    let pid_file = dir.path().join("torsion.pid");
    let pid_arg = pid_file.to_str().unwrap();
    let first = echo_only(&dir, "127.0.0.1:0", &["--pid-file", pid_arg]);
    let taken = first.addr("echo").to_string();
    let (code, _, err) = run_to_end(
        &dir,
        &[
            "--no-gemini",
            "--no-http",
            "--no-ws",
            "--echo",
            &taken,
            "--pid-file",
            pid_arg,
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot listen") || err.contains("in use"),
        "{err}"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the first instance's pid file");
    assert_eq!(pid, format!("{}\n", first.pid()));
}
