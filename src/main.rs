//! The `wakeproxy` binary: parse arguments, set up logging, run a command, map its result to
//! an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use simplelog::{ColorChoice, ConfigBuilder, LevelFilter, TermLogger, TerminalMode, ThreadLogMode};
use wakeproxy::app::cli::{CliError, Command, TopLevel, normalize_args, usage};
use wakeproxy::{app, config};

fn init_logging(level: LevelFilter) {
    let mut b = ConfigBuilder::new();
    b.set_time_format_rfc3339()
        .set_thread_mode(ThreadLogMode::Names)
        .set_target_level(LevelFilter::Off);
    let _ = b.set_time_offset_to_local();
    if level < LevelFilter::Debug {
        // rustls warns about what clients send (an IP address as SNI, say): one line per
        // handshake that a client controls. wakeproxy logs failed handshakes itself, so below
        // debug level rustls stays quiet.
        b.add_filter_ignore_str("rustls");
    }
    let _ = TermLogger::init(level, b.build(), TerminalMode::Stderr, ColorChoice::Never);
}

fn run(top: TopLevel) -> Result<(), CliError> {
    match top.command {
        None => Err(CliError::Usage(format!("no command given\n\n{}", usage()))),
        Some(Command::Validate(a)) => app::run_validate(&a),
        Some(Command::Pull(a)) => app::pull::run_pull(&a),
        Some(Command::Status(a)) => app::status::run_status(&a),
        Some(Command::Daemon(a)) => app::daemon::run(&a),
        Some(Command::Health(a)) => app::daemon::healthcheck(&a.config),
        Some(Command::Proxy(a)) => {
            let cfg = config::load(&a.config).map_err(CliError::Config)?;
            let level = if a.verbose {
                LevelFilter::Debug
            } else {
                cfg.global.log_level
            };
            init_logging(level);
            log_panics();
            app::run_proxy(&a, cfg)
        }
    }
}

/// A panic ends only the connection (thread) it happened in; log it like any other error.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!("panic in thread {}: {info}", thread.name().unwrap_or("?"));
    }));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let rest = normalize_args(&args[1..]);
    let strs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let top = match <TopLevel as argh::FromArgs>::from_args(&["wakeproxy"], &strs) {
        Ok(t) => t,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("{}", early.output);
                    ExitCode::from(2)
                }
            };
        }
    };
    if top.version {
        println!("wakeproxy {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match run(top) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wakeproxy: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
