//! End to end with a real Gemini client from Debian: amfora (`apt-get
//! install amfora tmux`), driven in a detached tmux session, opens the
//! capsule, and its screen must show the page; then it follows a link by
//! number. Fails with a clear message when amfora or tmux is missing.

mod gemini_common;

use std::process::Command;
use std::time::{Duration, Instant};

use gemini_common::*;
use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tmux server of its own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "amfora"])
    }

    /// Waits (bounded) until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "amfora never showed {text:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn amfora_browses_the_capsule() {
    assert!(
        have("amfora") && have("tmux"),
        "this test drives the Debian Gemini client amfora in tmux: apt-get install amfora tmux"
    );
    let dir = TempDir::new("amfora");
    let state = TempDir::new("amfora-state");
    let home = TempDir::new("amfora-home");
    dir.write(
        "index.gmi",
        "# Hello from torsion\n\nServed to amfora over TLS.\n\n=> second.gmi The second page\n",
    );
    dir.write("second.gmi", "# Second page reached\n");
    let root = dir.path().to_path_buf();
    let server = Server::start(server_tls(state.path(), &["localhost"], &[]), move || {
        GeminiFactory::new(
            GeminiConfig::single(VirtualHost::new("localhost", Root::Dir(root))),
            0,
        )
        .unwrap()
    });

    let tmux = Tmux {
        socket: format!("torsion-amfora-{}", std::process::id()),
    };
    let h = home.path().display().to_string();
    let command = format!(
        "env HOME={h} XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data \
         XDG_CACHE_HOME={h}/cache TERM=xterm-256color amfora {}",
        server.url("/")
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "amfora",
        "-x",
        "120",
        "-y",
        "30",
        &command,
    ]);
    let screen = tmux.wait_for("Served to amfora over TLS.");
    assert!(screen.contains("Hello from torsion"), "{screen}");
    assert!(screen.contains("The second page"), "{screen}");

    // Follow the first link: its number, then Enter.
    tmux.run(&["send-keys", "-t", "amfora", "1"]);
    tmux.run(&["send-keys", "-t", "amfora", "Enter"]);
    let screen = tmux.wait_for("Second page reached");
    eprintln!("{screen}");
}
