//! The command line: every flag defined once, with the text `--help` shows.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

/// What the command line asked for.
#[derive(Debug)]
pub struct Options {
    /// Echo listeners (`--echo ADDR`, repeatable).
    pub echo: Vec<SocketAddr>,
    /// Grace period for connections after SIGINT/SIGTERM.
    pub shutdown_timeout: Duration,
}

/// What to do instead of serving.
#[derive(Debug)]
pub enum Action {
    /// Serve with these options.
    Serve(Options),
    /// Print this text to stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

/// A usage error: printed with a hint, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

/// One flag: its spellings, its value's name (if it takes one) and its help.
struct Flag {
    long: &'static str,
    short: Option<char>,
    value: Option<&'static str>,
    help: &'static str,
}

/// The flag table: the single source for parsing and for `--help`.
const FLAGS: &[Flag] = &[
    Flag {
        long: "echo",
        short: None,
        value: Some("ADDR"),
        help: "Run an echo listener (RFC 862) on ADDR, e.g. 127.0.0.1:7000 or [::]:7000. Repeatable. Default when no listener is given: 127.0.0.1:7000.",
    },
    Flag {
        long: "shutdown-timeout",
        short: None,
        value: Some("SECS"),
        help: "After SIGINT/SIGTERM, let open connections finish for up to SECS seconds, then close them [default: 10].",
    },
    Flag {
        long: "help",
        short: Some('h'),
        value: None,
        help: "Print this help.",
    },
    Flag {
        long: "version",
        short: Some('V'),
        value: None,
        help: "Print the version.",
    },
];

/// The default echo address when no listener is configured.
pub const DEFAULT_ECHO: &str = "127.0.0.1:7000";

fn help_text() -> String {
    let mut s = format!(
        "torsion {} — a single-threaded reactor server\n\n\
         USAGE: torsion [OPTIONS]\n\n\
         The Gemini, HTTP-redirect and WebSocket listeners are being built; until they\n\
         land the binary serves echo.\n\nOPTIONS:\n",
        env!("CARGO_PKG_VERSION")
    );
    for f in FLAGS {
        let short = f.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = f.value.map(|v| format!(" {v}")).unwrap_or_default();
        s.push_str(&format!("  {short}--{}{value}\n      {}\n", f.long, f.help));
    }
    s.push_str(
        "\nENVIRONMENT:\n  RUST_LOG    log filter (env_logger syntax) [default: info]\n\
         \nEXIT CODES:\n  0  stopped cleanly\n  1  could not start or failed while running\n  2  bad command line\n",
    );
    s
}

/// Parses the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action, UsageError> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut opts = Options {
        echo: Vec::new(),
        shutdown_timeout: Duration::from_secs(10),
    };
    let err = |e: lexopt::Error| UsageError(e.to_string());
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Long("echo") => {
                let v: String = parser.value().map_err(err)?.string().map_err(err)?;
                let a = v.parse().map_err(|_| {
                    UsageError(format!(
                        "--echo: {v:?} is not an address like 127.0.0.1:7000"
                    ))
                })?;
                opts.echo.push(a);
            }
            Long("shutdown-timeout") => {
                let v: String = parser.value().map_err(err)?.string().map_err(err)?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--shutdown-timeout: {v:?} is not a number of seconds (0–86400)"
                        ))
                    })?;
                opts.shutdown_timeout = Duration::from_secs_f64(secs);
            }
            Short('h') | Long("help") => return Ok(Action::Print(help_text())),
            Short('V') | Long("version") => {
                return Ok(Action::Print(format!(
                    "torsion {}\n",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            other => return Err(UsageError(other.unexpected().to_string())),
        }
    }
    if opts.echo.is_empty() {
        if let Ok(a) = DEFAULT_ECHO.parse() {
            opts.echo.push(a);
        }
    }
    Ok(Action::Serve(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn defaults_to_one_echo_listener() {
        let Ok(Action::Serve(o)) = parse(args(&[])) else {
            panic!("expected serve")
        };
        assert_eq!(o.echo, vec![DEFAULT_ECHO.parse::<SocketAddr>().unwrap()]);
        assert_eq!(o.shutdown_timeout, Duration::from_secs(10));
    }

    #[test]
    fn parses_flags_and_rejects_garbage() {
        let Ok(Action::Serve(o)) = parse(args(&["--echo", "[::]:0", "--shutdown-timeout", "2.5"]))
        else {
            panic!("expected serve")
        };
        assert_eq!(o.echo.len(), 1);
        assert_eq!(o.shutdown_timeout, Duration::from_millis(2500));
        assert!(parse(args(&["--echo", "nope"])).is_err());
        assert!(parse(args(&["--shutdown-timeout", "-1"])).is_err());
        assert!(parse(args(&["--bogus"])).is_err());
    }

    #[test]
    fn help_lists_every_flag() {
        let Ok(Action::Print(h)) = parse(args(&["--help"])) else {
            panic!("expected help")
        };
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{} missing", f.long);
        }
    }
}
