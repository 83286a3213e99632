//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `.ci/run`) loads `GET /` from an in-process
//! server; the page opens `/status` and `/chat` on the same origin. The
//! test reads the DOM twice and checks live numbers appear and move, and
//! saves a screenshot to `target/test-output/status-page.png`.
//! A missing Chromium fails the test rather than skipping it.

mod websocket_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use torsion_protocols::websocket::WsConfig;
use websocket_support::Server;

/// Longest a Chromium run may take before the test gives up on it.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return name;
        }
    }
    panic!("headless Chromium is required: apt-get install -y chromium");
}

/// Runs headless Chromium on `url` with `extra` arguments; bounded.
fn run_browser(url: &str, profile: &Path, extra: &[String]) -> Output {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,1000",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start chromium");
    // Read both pipes while it runs: a full pipe (a large DOM dump, or a
    // chatty log) would block Chromium until the deadline.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads `pipe` to its end on a thread; the thread returns what it read.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Dumps the DOM once the page has rendered a snapshot. Chromium's virtual
/// time can run out before the first WebSocket message arrives (sockets do
/// not hold it back like fetches do), so a dump without one is retried a
/// few times.
fn dump_rendered(url: &str, profile: &Path) -> String {
    let mut last = String::new();
    for _ in 0..5 {
        let out = run_browser(url, profile, &["--dump-dom".to_owned()]);
        assert!(
            out.status.success(),
            "{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last.contains("</span>websocket</td>") && text_of(&last, "updates") != "0" {
            return last;
        }
    }
    panic!("the page never rendered a snapshot:\n{last}");
}

/// The text of the element with `id` in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    rest[start..end].to_owned()
}

/// The `websocket` row's "Connections" cell (the 5th cell of the row).
fn websocket_connections(dom: &str) -> u64 {
    let row_start = dom.find("</span>websocket</td>").expect("websocket row");
    let cells: Vec<&str> = dom[row_start..]
        .split("<td class=\"n\">")
        .skip(1)
        .take(5)
        .map(|c| c.split('<').next().unwrap())
        .collect();
    cells[3].replace(',', "").parse().expect("a number")
}

fn output_dir() -> PathBuf {
    // CARGO_TARGET_DIR when set, else the workspace's target/.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn status_page_shows_live_numbers_in_chromium() {
    let config = WsConfig {
        status_interval: Duration::from_millis(250),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let url = format!("http://{}/", server.addr);
    let profile = std::env::temp_dir().join(format!("torsion-chromium-{}", std::process::id()));

    let dom1 = dump_rendered(&url, &profile);
    assert!(dom1.contains("torsion"));
    let updates1: u64 = text_of(&dom1, "updates").parse().unwrap();
    assert!(updates1 >= 1, "no snapshot reached the page");
    let uptime1 = text_of(&dom1, "uptime");
    assert!(uptime1.contains(':'), "uptime not filled: {uptime1:?}");
    assert_eq!(text_of(&dom1, "conn-text"), "live");
    assert!(text_of(&dom1, "rss").contains("iB"), "{dom1}");
    let conns1 = websocket_connections(&dom1);
    assert!(
        conns1 >= 2,
        "the page and its sockets are counted: {conns1}"
    );

    // The second visit finds the numbers moved: the first visit's
    // connections are counted.
    let shot = output_dir().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let dom2 = dump_rendered(&url, &profile);
    let conns2 = websocket_connections(&dom2);
    assert!(conns2 > conns1, "{conns1} -> {conns2}");
    assert_eq!(text_of(&dom2, "conn-text"), "live");

    // Some echo traffic while the screenshot is taken, so the rates and
    // charts have something to show.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = Arc::clone(&stop);
        let echo = server.url("/echo");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (mut ws, _) = tungstenite::connect(&echo).unwrap();
                for i in 0..20 {
                    ws.send(tungstenite::Message::text(format!("hello {i}")))
                        .unwrap();
                    ws.read().unwrap();
                }
                let _ = ws.close(None);
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let third = run_browser(
        &url,
        &profile,
        &[format!("--screenshot={}", shot.display())],
    );
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot missing or empty: {size} bytes");
    let _ = std::fs::remove_dir_all(&profile);
}
