//! Static files over real TLS sockets: no way out of the root (twelve
//! traversal encodings and symlink escapes), dotfiles, redirects, index
//! files, listings, MIME types and languages, unreadable files, and a
//! 50 MiB file streamed to a slow reader with a bounded output queue.

mod gemini_common;

use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gemini_common::*;
use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};

const SECRET: &str = "TOP-SECRET-d41d8cd98f00b204";

fn serve(dir: &TempDir, state: &TempDir, lang: Option<&str>) -> Server {
    let mut vhost = VirtualHost::new("localhost", Root::Dir(dir.path().to_path_buf()));
    vhost.default_lang = lang.map(str::to_string);
    Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        GeminiFactory::new(GeminiConfig::single(vhost), 0).unwrap()
    })
}

#[test]
fn no_way_out_of_the_root() {
    // outside/secret.txt next to outside/root/, plus symlinks inside the
    // root to the secret, to its directory and to /etc.
    let outside = TempDir::new("escape");
    let state = TempDir::new("escape-state");
    outside.write("secret.txt", SECRET);
    let root = outside.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("index.gmi"), "# inside\n").unwrap();
    std::fs::write(root.join("sub/page.gmi"), "# sub\n").unwrap();
    symlink(outside.path().join("secret.txt"), root.join("link.txt")).unwrap();
    symlink(outside.path(), root.join("linkdir")).unwrap();
    symlink("../secret.txt", root.join("sub/rel.txt")).unwrap();
    symlink("/etc", root.join("etc")).unwrap();
    // A directory whose index file is a symlink to the secret.
    std::fs::create_dir_all(root.join("trap")).unwrap();
    symlink(
        outside.path().join("secret.txt"),
        root.join("trap/index.gmi"),
    )
    .unwrap();
    // An in-root symlink is fine.
    symlink("sub/page.gmi", root.join("ok.gmi")).unwrap();

    let vhost = VirtualHost::new("localhost", Root::Dir(root.clone()));
    let server = Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        GeminiFactory::new(GeminiConfig::single(vhost), 0).unwrap()
    });

    let traversals = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/%252e%252e/secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/%00/../secret.txt",
        "//secret.txt",
        "/sub//../../secret.txt",
    ];
    let symlinks = [
        "/link.txt",
        "/linkdir/secret.txt",
        "/linkdir/",
        "/linkdir",
        "/sub/rel.txt",
        "/etc/passwd",
        "/etc/",
        "/trap/",
    ];
    for path in traversals.iter().chain(symlinks.iter()) {
        let answer = get(server.addr, &format!("gemini://localhost{path}"));
        let raw = String::from_utf8_lossy(&answer.raw);
        assert!(!raw.contains(SECRET), "{path} leaked the secret");
        assert!(!raw.contains("root:"), "{path} leaked /etc/passwd");
        assert!(
            matches!(answer.status, 51 | 59),
            "{path}: {} {}",
            answer.status,
            answer.meta
        );
    }
    // What is inside still works, including an in-root symlink; the root
    // listing shows no secret.
    assert_eq!(
        get(server.addr, "gemini://localhost/ok.gmi").text(),
        "# sub\n"
    );
    assert_eq!(
        get(server.addr, "gemini://localhost/sub/page.gmi").status,
        20
    );
    let listing = get(server.addr, "gemini://localhost/sub/");
    assert!(!String::from_utf8_lossy(&listing.raw).contains(SECRET));
}

#[test]
fn dotfiles_hidden_except_well_known() {
    let dir = TempDir::new("dot");
    let state = TempDir::new("dot-state");
    dir.write(".env", "PASSWORD=x");
    dir.write(".git/config", "[core]");
    dir.write(".well-known/security.txt", "Contact: x");
    dir.write("a/.hidden", "x");
    let server = serve(&dir, &state, None);
    for path in ["/.env", "/.git/config", "/a/.hidden", "/%2eenv"] {
        let a = get(server.addr, &format!("gemini://localhost{path}"));
        assert_eq!(a.status, 51, "{path}");
        assert!(!String::from_utf8_lossy(&a.raw).contains("PASSWORD"));
    }
    let wk = get(server.addr, "gemini://localhost/.well-known/security.txt");
    assert_eq!((wk.status, wk.text().as_str()), (20, "Contact: x"));
    let listing = get(server.addr, "gemini://localhost/").text();
    assert!(!listing.contains(".env") && !listing.contains(".git"));
}

#[test]
fn directories_redirect_serve_index_or_list() {
    let dir = TempDir::new("dirs");
    let state = TempDir::new("dirs-state");
    dir.write("withindex/index.gmi", "# index here\n");
    dir.write("withindex/other.gmi", "x");
    dir.write("plain/z.txt", "z");
    dir.write("plain/a b.gmi", "a");
    dir.write("plain/hash#q?.txt", "h");
    dir.write("plain/pct%.gmi", "p");
    dir.write("plain/été.gmi", "e");
    dir.write("plain/=> fake link", "f");
    dir.write("plain/.secret", "s");
    dir.write("plain/sub dir/x.gmi", "x");
    dir.write("plain/Zed.gmi", "Z");
    let server = serve(&dir, &state, Some("en"));
    let port = server.port();

    let r = get(server.addr, &format!("gemini://localhost:{port}/withindex"));
    assert_eq!(r.status, 31);
    assert_eq!(r.meta, format!("gemini://localhost:{port}/withindex/"));
    let r = get(server.addr, "gemini://localhost/withindex?q=1");
    assert_eq!(
        (r.status, r.meta.as_str()),
        (31, "gemini://localhost/withindex/?q=1")
    );

    let r = get(server.addr, "gemini://localhost/withindex/");
    assert_eq!(
        (r.status, r.meta.as_str(), r.text().as_str()),
        (20, "text/gemini; lang=en", "# index here\n")
    );

    let r = get(server.addr, "gemini://localhost/plain/");
    assert_eq!((r.status, r.meta.as_str()), (20, "text/gemini; lang=en"));
    assert_eq!(
        r.text(),
        "# Index of /plain/\n\
         \n\
         => ../ ../\n\
         => /plain/%3D%3E%20fake%20link => fake link\n\
         => /plain/Zed.gmi Zed.gmi\n\
         => /plain/a%20b.gmi a b.gmi\n\
         => /plain/hash%23q%3F.txt hash#q?.txt\n\
         => /plain/pct%25.gmi pct%.gmi\n\
         => /plain/sub%20dir/ sub dir/\n\
         => /plain/z.txt z.txt\n\
         => /plain/%C3%A9t%C3%A9.gmi été.gmi\n"
    );
    // Every link of the listing works.
    for line in r.text().lines().filter(|l| l.starts_with("=> /")) {
        let link = line[3..].split(' ').next().unwrap();
        let a = get(server.addr, &format!("gemini://localhost{link}"));
        assert_eq!(a.status, 20, "{link}");
    }
    let root = get(server.addr, "gemini://localhost/").text();
    assert!(
        root.starts_with("# Index of /\n\n=> /plain/ plain/\n"),
        "{root}"
    );
    assert!(!root.contains("=> ../"));
}

/// A directory named by a request at the 1,024-byte limit cannot be
/// redirected to its slash form (the redirect would not fit in a header):
/// the client is told so with 59, instead of the response failing as 42.
#[test]
fn a_directory_redirect_too_long_for_a_header_is_59() {
    let dir = TempDir::new("longdir");
    let state = TempDir::new("longdir-state");
    let prefix = "gemini://localhost/";
    // Components within NAME_MAX (255), the whole URL exactly 1,024 bytes.
    let mut path = format!(
        "{}/{}/{}/",
        "a".repeat(250),
        "b".repeat(250),
        "c".repeat(250)
    );
    path.push_str(&"d".repeat(1024 - prefix.len() - path.len()));
    dir.write(&format!("{path}/f.gmi"), "deep\n");
    let server = serve(&dir, &state, None);
    let url = format!("{prefix}{path}");
    assert_eq!(url.len(), 1024);
    let r = get(server.addr, &url);
    assert_eq!(
        (r.status, r.meta.as_str()),
        (59, "URL too long to redirect")
    );
    // One byte shorter still redirects.
    let shorter = &url[..url.len() - 1];
    std::fs::create_dir_all(dir.path().join(&path[..path.len() - 1])).unwrap();
    let r = get(server.addr, shorter);
    assert_eq!((r.status, r.meta), (31, format!("{shorter}/")));
}

#[test]
fn mime_types_and_lang() {
    let dir = TempDir::new("mime");
    let state = TempDir::new("mime-state");
    dir.write("a.gmi", "g");
    dir.write("b.gemini", "g");
    dir.write("c.txt", "t");
    dir.write("d.png", "p");
    dir.write("e.html", "h");
    dir.write("f.zzzunknown", "u");
    dir.write("noext", "n");
    let server = serve(&dir, &state, Some("fr"));
    for (path, mime) in [
        ("/a.gmi", "text/gemini; lang=fr"),
        ("/b.gemini", "text/gemini; lang=fr"),
        ("/c.txt", "text/plain"),
        ("/d.png", "image/png"),
        ("/e.html", "text/html"),
        ("/f.zzzunknown", "application/octet-stream"),
        ("/noext", "application/octet-stream"),
    ] {
        let a = get(server.addr, &format!("gemini://localhost{path}"));
        assert_eq!((a.status, a.meta.as_str()), (20, mime), "{path}");
    }
    // A FIFO is never opened (that would block the loop): 51, and the
    // server goes on answering.
    let fifo = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe.gmi"))
        .status()
        .unwrap();
    assert!(fifo.success());
    assert_eq!(get(server.addr, "gemini://localhost/pipe.gmi").status, 51);
    let missing = get(server.addr, "gemini://localhost/missing.gmi");
    assert_eq!((missing.status, missing.meta.as_str()), (51, "Not found"));

    let state2 = TempDir::new("mime-state2");
    let no_lang = serve(&dir, &state2, None);
    let a = get(no_lang.addr, "gemini://localhost/a.gmi");
    assert_eq!(a.meta, "text/gemini");
}

/// Whether this process runs as root (which reads any file whatever its
/// mode).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                == Some("0")
        })
        .unwrap_or(false)
}

#[test]
fn unreadable_file_is_50_and_logged() {
    if is_root() {
        // Root reads mode-000 files: run this test again as nobody, from a
        // copy of this test binary that nobody can execute wherever the
        // target directory is.
        use std::os::unix::fs::PermissionsExt;
        let copy_dir = TempDir::new("unreadable-exe");
        std::fs::set_permissions(copy_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = copy_dir.path().join("gemini_static");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(["--exact", "unreadable_file_is_50_and_logged", "--quiet"])
            .env("TMPDIR", "/tmp")
            .status();
        match status {
            Ok(s) => assert!(s.success(), "the test failed as nobody"),
            Err(e) => panic!("running as root and setpriv (util-linux) is missing: {e}"),
        }
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("unreadable");
    let state = TempDir::new("unreadable-state");
    let f = dir.write("closed.gmi", SECRET);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::create_dir_all(dir.path().join("locked")).unwrap();
    dir.write("locked/inner.gmi", SECRET);
    std::fs::set_permissions(
        dir.path().join("locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let server = serve(&dir, &state, None);
    for path in ["/closed.gmi", "/locked/inner.gmi"] {
        let a = get(server.addr, &format!("gemini://localhost{path}"));
        assert!(matches!(a.status, 40 | 50), "{path}: {}", a.status);
        assert!(!String::from_utf8_lossy(&a.raw).contains(SECRET));
    }
    std::fs::set_permissions(
        dir.path().join("locked"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// The byte at offset `i` of the big test file: not periodic at any power
/// of two, so a dropped or repeated chunk is caught.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i % 251) as u8
}

#[test]
fn fifty_mib_streamed_to_a_slow_reader_with_bounded_memory() {
    const SIZE: u64 = 50 * 1024 * 1024;
    let dir = TempDir::new("big");
    let state = TempDir::new("big-state");
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(dir.path().join("big.bin")).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for mb in 0..(SIZE >> 20) {
            for (j, b) in block.iter_mut().enumerate() {
                *b = pattern((mb << 20) + j as u64);
            }
            f.write_all(&block).unwrap();
        }
    }
    let server = serve(&dir, &state, None);
    let mut tls = connect(server.addr, "localhost", client_config(None));
    tls.write_all(b"gemini://localhost/big.bin\r\n").unwrap();
    tls.flush().unwrap();

    let start = Instant::now();
    let mut header = Vec::new();
    let mut byte = [0u8; 1];
    while !header.ends_with(b"\r\n") {
        tls.read_exact(&mut byte).unwrap();
        header.push(byte[0]);
    }
    assert_eq!(header, b"20 application/octet-stream\r\n");
    // A slow reader: small reads, and a pause after every 4 MiB, so the
    // server's queue fills and waits for the socket again and again.
    let mut buf = vec![0u8; 8 * 1024];
    let mut offset = 0u64;
    let mut next_pause = 4 << 20;
    loop {
        let n = match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("read failed at {offset}: {e}"),
        };
        for (j, b) in buf[..n].iter().enumerate() {
            if *b != pattern(offset + j as u64) {
                panic!("byte {} differs", offset + j as u64);
            }
        }
        offset += n as u64;
        if offset >= next_pause {
            std::thread::sleep(Duration::from_millis(100));
            next_pause += 4 << 20;
        }
    }
    assert_eq!(offset, SIZE, "whole file arrived");
    let max = server.max_buffered.load(Ordering::Relaxed);
    eprintln!(
        "50 MiB in {:?}, largest server queue {max} bytes",
        start.elapsed()
    );
    // High water (64 KiB) + one chunk (32 KiB) + TLS record overhead.
    assert!(max < 160 * 1024, "server queued up to {max} bytes");
    // Only a sanity bound (a stuck stream would fail the reads first): the
    // pauses alone are over a second, and a debug build on a loaded
    // machine is slow.
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "50 MiB took {:?}",
        start.elapsed()
    );
}
