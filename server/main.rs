//! The `torsion` binary: reads flags and the config file into a plan,
//! wires listeners to protocol factories, and runs the reactor(s). See
//! README.md for every flag.

mod activation;
mod bench;
mod cli;
mod config;
mod flags;
mod plan;
mod privileges;
mod run;
mod startup;
mod status;
mod tls_setup;
mod wiring;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new("bench")) {
        return bench::run(std::env::args_os().skip(2).collect());
    }
    init_logging();
    let action = match cli::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(cli::UsageError(msg)) => {
            eprintln!("torsion: {msg}\nTry 'torsion --help'.");
            return ExitCode::from(2);
        }
    };
    let opts = match action {
        cli::Action::Print(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        cli::Action::Serve(opts) => opts,
    };
    let file = match opts.config.as_deref().map(config::load).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("torsion: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = match plan::make(&opts, file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("torsion: {e}");
            return ExitCode::from(2);
        }
    };
    // An unknown --user is a configuration error, found before anything
    // is bound (and by --check-config).
    let drop_to = match privileges::resolve(plan.user.as_deref(), plan.group.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("torsion: {e}");
            return ExitCode::from(2);
        }
    };
    if opts.check_config {
        if let Err(e) = wiring::check(&plan) {
            eprintln!("torsion: {e}");
            return ExitCode::from(2);
        }
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    match run::run(plan, drop_to) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torsion: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise, with
/// millisecond timestamps. Whatever came from a peer is escaped by the code
/// that logs it, so no client can forge a line.
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            let ts = buf.timestamp_millis();
            writeln!(buf, "{ts} {:<5} {}", record.level(), record.args())
        })
        .init();
}
