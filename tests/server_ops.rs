//! Operating the built binary: the configuration file's errors and
//! `--check-config`, `--workers 2` serving from both threads, the pid file,
//! SIGTERM letting an open connection finish, SIGHUP picking up a changed
//! certificate.

mod server_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use server_support::{command, echo_once, free_port, gemini, Server, TempDir, TIMEOUT};

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
