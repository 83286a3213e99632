//! Running without holding root: systemd socket activation (a listening
//! socket inherited as fd 3 with `LISTEN_FDS=1` and `LISTEN_PID` set to the
//! server's pid), and `--user nobody` dropping root in every thread after
//! binding (when the tests run as root, as in CI).

mod server_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use server_support::{command, configure, gemini, tls_connect, Server, TempDir, BIN};

/// `torsion ARGS` with `listener` as fd 3 and the systemd variables; the
/// shell sets `LISTEN_PID` to its own pid, which `exec` makes torsion's.
fn activated(dir: &TempDir, listener: &TcpListener, names: Option<&str>, args: &[&str]) -> Server {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args);
    configure(&mut c, dir);
    c.env("LISTEN_FDS", "1");
    if let Some(n) = names {
        c.env("LISTEN_FDNAMES", n);
    }
    let fd = listener.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and
    // exec.
    unsafe {
        c.pre_exec(move || {
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Server::start(c, 1)
}

#[test]
fn an_inherited_socket_is_served_and_not_passed_to_cgi_scripts() {
    let dir = TempDir::new("activation");
    let capsule = dir.path().join("capsule");
    std::fs::create_dir_all(capsule.join("cgi-bin")).unwrap();
    let script = capsule.join("cgi-bin/fds");
    // Lists the script's descriptors above stderr: none may be a socket.
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '20 text/plain\\r\\n'\nfor f in /proc/$$/fd/*; do readlink \"$f\"; done\necho end\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The test keeps its copy open: binding the port again (no
    // SO_REUSEPORT with one worker) would fail, so serving it proves the
    // inherited socket is used.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = activated(
        &dir,
        &listener,
        None,
        &[
            "--no-http",
            "--no-ws",
            "--port",
            &port,
            "--dir",
            capsule.to_str().unwrap(),
        ],
    );
    let addr = server.addr("gemini");
    assert_eq!(addr, listener.local_addr().unwrap());
    server.wait_line("using the socket inherited from systemd");
    let home = gemini(addr, &format!("gemini://localhost:{port}/"));
    assert!(
        home.header.starts_with("51") || home.header.starts_with("20"),
        "{}",
        home.header
    );
    let fds = gemini(addr, &format!("gemini://localhost:{port}/cgi-bin/fds"));
    assert!(fds.header.starts_with("20 text/plain"), "{}", fds.header);
    assert!(fds.body.contains("end"), "{}", fds.body);
    assert!(
        !fds.body.contains("socket:"),
        "a socket leaked into CGI: {}",
        fds.body
    );
}

#[test]
fn a_named_inherited_socket_serves_its_scheme_on_its_port_in_every_worker() {
    let dir = TempDir::new("activation-named");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = activated(
        &dir,
        &listener,
        Some("https"),
        &[
            "--no-gemini",
            "--no-http",
            "--ws-port",
            "0",
            "--workers",
            "2",
        ],
    );
    let addr = server.addr("https");
    assert_eq!(addr, listener.local_addr().unwrap());
    for _ in 0..20 {
        let mut tls = tls_connect(addr, "localhost", &[b"http/1.1"]);
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut page = Vec::new();
        let _ = tls.read_to_end(&mut page);
        let page = String::from_utf8_lossy(&page);
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    }
}

#[test]
fn variables_for_another_process_are_ignored() {
    let dir = TempDir::new("activation-foreign");
    let mut c = command(&dir, &["--no-http", "--no-ws", "--port", "0"]);
    c.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    let server = Server::start(c, 1);
    let reply = gemini(server.addr("gemini"), "gemini://localhost/");
    assert!(reply.header.starts_with("20 "), "{}", reply.header);
    assert!(!server
        .lines()
        .iter()
        .any(|l| l.contains("inherited from systemd")));
}

fn running_as_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn id_of(flag: &str, user: &str) -> String {
    let out = Command::new("id").args([flag, user]).output().unwrap();
    assert!(out.status.success(), "id {flag} {user}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn user_nobody_drops_root_in_every_thread_and_still_serves_and_reloads() {
    if !running_as_root() {
        eprintln!("skipped: dropping privileges needs root (CI runs as root)");
        return;
    }
    let (uid, gid) = (id_of("-u", "nobody"), id_of("-g", "nobody"));
    let dir = TempDir::new("nobody");
    let mut server = Server::start(
        command(
            &dir,
            &[
                "--no-http",
                "--no-ws",
                "--port",
                "0",
                "--workers",
                "2",
                "--user",
                "nobody",
            ],
        ),
        1,
    );
    server.wait_line("dropped root privileges");
    let reply = gemini(server.addr("gemini"), "gemini://localhost/");
    assert!(reply.header.starts_with("20 "), "{}", reply.header);
    let threads = server.threads();
    assert!(threads.len() >= 2, "{threads:?}");
    for (tid, name) in &threads {
        let ids = |key| {
            server
                .task_status(tid, key)
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("Uid"), vec![uid.clone(); 4], "thread {tid} ({name})");
        assert_eq!(ids("Gid"), vec![gid.clone(); 4], "thread {tid} ({name})");
        assert_eq!(
            server.task_status(tid, "Groups"),
            "",
            "thread {tid} ({name})"
        );
    }
    // The generated certificate was handed to nobody: SIGHUP can re-read it.
    server.signal(libc::SIGHUP);
    server.wait_line("SIGHUP: reloaded");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0), "{:#?}", server.lines());
}

#[test]
fn root_without_user_is_warned() {
    if !running_as_root() {
        eprintln!("skipped: the warning is for root");
        return;
    }
    let dir = TempDir::new("rootwarn");
    let server = Server::start(
        command(
            &dir,
            &[
                "--no-gemini",
                "--no-http",
                "--no-ws",
                "--echo",
                "127.0.0.1:0",
            ],
        ),
        1,
    );
    server.wait_line("running as root without --user");
}
