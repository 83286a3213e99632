//! The `torsion` binary: wires listeners to protocol factories and runs the
//! reactor. See README.md for the flags.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use torsion_protocols::echo::{Echo, EchoConfig};
use torsion_reactor::{Reactor, ReactorConfig};

fn main() -> ExitCode {
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
    match serve(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torsion: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(opts: cli::Options) -> Result<(), Box<dyn std::error::Error>> {
    let config = ReactorConfig {
        shutdown_timeout: opts.shutdown_timeout,
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::with_config(config)?;
    for addr in &opts.echo {
        let id = reactor.listen(*addr, Echo::factory(EchoConfig::default()))?;
        let bound = reactor
            .local_addr(id)
            .map(|a| a.to_string())
            .unwrap_or_default();
        // Printed (not only logged) so scripts and tests can find the port.
        eprintln!("torsion: echo listening on {bound}");
        log::info!("echo listening on tcp://{bound}");
    }
    reactor.stop_on_signals()?;
    reactor.run()?;
    log::info!("stopped");
    Ok(())
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise, with
/// timestamps; messages are escaped by their producers.
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            let ts = buf.timestamp_millis();
            writeln!(buf, "{ts} {:<5} {}", record.level(), record.args())
        })
        .init();
}
