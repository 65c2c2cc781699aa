//! The commands: argument parsing (`cli`), running the proxy (`serve`, with `runtime`,
//! `reload` and `tls`), `proxy-status` (`status`), `proxy-daemon` and `healthcheck` (`daemon`,
//! asking the proxy with `probe`), and
//! `proxy-pull` (`pull`), `proxy-validate-config` here. The only layer that sees every other.

pub mod checks;
pub mod cli;
pub mod daemon;
mod discovery;
mod probe;
pub mod pull;
mod reload;
mod runtime;
mod serve;
pub mod status;
mod tls;

use crate::config;

pub use serve::run_proxy;

use cli::{CliError, ValidateArgs};

/// `proxy-validate-config`: prints the services table, or every error; with `--docker`, what
/// the Docker host offers each service too.
pub fn run_validate(args: &ValidateArgs) -> Result<(), CliError> {
    let cfg = config::load(&args.config).map_err(CliError::Config)?;
    print!("{}", config::services_table(&cfg));
    let public = config::warnings(&cfg);
    for w in crate::tls::config_warnings(&cfg).iter().chain(&public) {
        println!("warning: {w}");
    }
    if args.docker {
        let docker = crate::docker::Docker::from_env()
            .and_then(|d| d.negotiate().map(|_| d))
            .map_err(|e| CliError::Startup(e.to_string()))?;
        let facts = checks::gather(&cfg, &docker, true).map_err(CliError::Startup)?;
        for f in checks::findings(&cfg, &facts) {
            let mark = if f.ok { "ok" } else { "warning" };
            println!("{mark}: {}: {}", f.service, f.text);
        }
        unknown_containers(args, &cfg, &facts)?;
    }
    println!(
        "{}: valid ({} services)",
        args.config.display(),
        cfg.services.len()
    );
    Ok(())
}

/// With `--docker`, a container the config names that does not exist is an error at its line.
fn unknown_containers(
    args: &ValidateArgs,
    cfg: &config::Config,
    facts: &checks::Facts,
) -> Result<(), CliError> {
    let unknown = checks::unknown_containers(cfg, facts);
    if unknown.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&args.config).unwrap_or_default();
    let issues = unknown
        .into_iter()
        .map(|(field, message)| config::ConfigIssue {
            line: config::line_of(&text, &field),
            field,
            message,
        })
        .collect();
    Err(CliError::Config(config::ConfigErrors {
        source: args.config.display().to_string(),
        issues,
    }))
}
