//! Command-line arguments (argh) and the errors commands end with, mapped to exit codes in
//! exactly one place.

use std::fmt;
use std::path::PathBuf;

use argh::FromArgs;

/// wakeproxy: a reverse proxy that starts Docker containers on first request and stops them when idle.
#[derive(FromArgs, Debug, PartialEq)]
pub struct TopLevel {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand)]
pub enum Command {
    Proxy(ProxyArgs),
    Validate(ValidateArgs),
    Status(StatusArgs),
    Daemon(DaemonArgs),
    Health(HealthArgs),
    Pull(PullArgs),
}

/// pull the images of a config's services (all, or the ones named) from their registries
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "proxy-pull")]
pub struct PullArgs {
    /// path to proxy.yaml
    #[argh(option, short = 'c')]
    pub config: PathBuf,
    /// services to pull (default: every service with an image)
    #[argh(positional)]
    pub services: Vec<String>,
}

/// exit 0 when the proxy of this config answers /proxy/healthz (for container HEALTHCHECKs)
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "healthcheck")]
pub struct HealthArgs {
    /// path to proxy.yaml (its listen_address and listen_http are probed)
    #[argh(option, short = 'c')]
    pub config: PathBuf,
}

/// run the proxy in the background: start, stop, restart, status or reload
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "proxy-daemon")]
pub struct DaemonArgs {
    /// path to proxy.yaml
    #[argh(option, short = 'c')]
    pub config: PathBuf,
    /// pid file (default: wakeproxy.pid beside the config)
    #[argh(option)]
    pub pid_file: Option<PathBuf>,
    /// log file (default: wakeproxy.log beside the config)
    #[argh(option)]
    pub log_file: Option<PathBuf>,
    /// start the proxy with --no-tls
    #[argh(switch)]
    pub no_tls: bool,
    /// start, stop, restart, status or reload
    #[argh(positional)]
    pub action: String,
}

/// run the proxy in the foreground
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "proxy")]
pub struct ProxyArgs {
    /// path to proxy.yaml
    #[argh(option, short = 'c')]
    pub config: PathBuf,
    /// serve plain HTTP only, even when certificates are configured
    #[argh(switch)]
    pub no_tls: bool,
    /// log at debug level
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}

/// check a config file and print its services
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "proxy-validate-config")]
pub struct ValidateArgs {
    /// path to proxy.yaml
    #[argh(option, short = 'c')]
    pub config: PathBuf,
    /// also ask the Docker daemon: images present or pullable, networks, IPVS for swarm VIPs
    #[argh(switch)]
    pub docker: bool,
}

/// show the state of every service of a running proxy
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "proxy-status")]
pub struct StatusArgs {
    /// the proxy's URL, e.g. http://127.0.0.1:8080 (the /proxy/status path is added when missing)
    #[argh(option)]
    pub server_url: String,
    /// the proxy's bearer token (default: $PROXY_BEARER_TOKEN)
    #[argh(option)]
    pub bearer_token: Option<String>,
    /// print the raw JSON
    #[argh(switch)]
    pub json: bool,
    /// redraw every SECONDS seconds (default 2) until interrupted
    #[argh(option)]
    pub follow: Option<u64>,
    /// PEM file of the CA to trust for an https:// server URL (default: the public web roots)
    #[argh(option)]
    pub cacert: Option<PathBuf>,
}

/// Default refresh interval of `proxy-status --follow`.
pub const DEFAULT_FOLLOW_SECS: u64 = 2;

/// Options that take a value: a `-h` right after one of them is that value, not a request
/// for help. (`--follow` is not here: its value is optional and only ever a number.)
const VALUE_OPTIONS: &[&str] = &[
    "-c",
    "--config",
    "--pid-file",
    "--log-file",
    "--server-url",
    "--bearer-token",
    "--cacert",
];

/// Fills in what argh does not do itself, before it parses:
/// - `-h` means `--help` (argh knows only `--help` and `help`);
/// - `--follow` alone (last, or before another flag) gets the default interval inserted, as
///   argh has no optional option values.
///
/// Nothing after `--` is touched.
pub fn normalize_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    for (i, a) in args.iter().enumerate() {
        if a == "--" {
            out.extend(args[i..].iter().cloned());
            break;
        }
        let value_of_option = i > 0 && VALUE_OPTIONS.contains(&args[i - 1].as_str());
        if a == "-h" && !value_of_option {
            out.push("--help".to_string());
        } else {
            out.push(a.clone());
        }
        if a == "--follow" && args.get(i + 1).is_none_or(|n| n.parse::<u64>().is_err()) {
            out.push(DEFAULT_FOLLOW_SECS.to_string());
        }
    }
    out
}

/// The top-level usage text, as `wakeproxy --help` prints it.
pub fn usage() -> String {
    match TopLevel::from_args(&["wakeproxy"], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    }
}

/// How a command failed; `exit_code` is the one place errors become exit codes.
#[derive(Debug)]
pub enum CliError {
    /// The configuration is invalid (exit 1).
    Config(crate::config::ConfigErrors),
    /// The proxy could not start: port in use, Docker too old... (exit 1).
    Startup(String),
    /// `proxy-status` could not get an answer (exit 3).
    Status(String),
    /// A `proxy-daemon` action failed with this exit code (3: not running).
    Daemon { code: i32, message: String },
    /// Wrong command-line usage (exit 2).
    Usage(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) | CliError::Startup(_) => 1,
            CliError::Status(_) => 3,
            CliError::Daemon { code, .. } => *code,
            CliError::Usage(_) => 2,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Config(e) => write!(f, "invalid configuration:\n{e}"),
            CliError::Startup(m) => write!(f, "cannot start: {m}"),
            CliError::Status(m) | CliError::Daemon { message: m, .. } | CliError::Usage(m) => {
                write!(f, "{m}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<TopLevel, argh::EarlyExit> {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let norm = normalize_args(&owned);
        let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
        TopLevel::from_args(&["wakeproxy"], &refs)
    }

    #[test]
    fn parses_subcommands() {
        let t = parse(&["proxy", "--config", "p.yaml", "--no-tls", "--verbose"]).unwrap();
        assert_eq!(
            t.command,
            Some(Command::Proxy(ProxyArgs {
                config: "p.yaml".into(),
                no_tls: true,
                verbose: true
            }))
        );
        let t = parse(&["proxy-validate-config", "-c", "x.yaml"]).unwrap();
        assert!(matches!(t.command, Some(Command::Validate(_))));
        assert!(parse(&["--version"]).unwrap().version);
        assert!(parse(&["proxy"]).is_err(), "--config is required");
    }

    #[test]
    fn follow_takes_an_optional_interval() {
        let s = |args: &[&str]| match parse(args).unwrap().command {
            Some(Command::Status(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            s(&["proxy-status", "--server-url", "u", "--follow"]).follow,
            Some(2)
        );
        assert_eq!(
            s(&["proxy-status", "--server-url", "u", "--follow", "5"]).follow,
            Some(5)
        );
        assert_eq!(
            s(&["proxy-status", "--follow", "--server-url", "u", "--json"]).follow,
            Some(2)
        );
        assert_eq!(s(&["proxy-status", "--server-url", "u"]).follow, None);
    }

    #[test]
    fn dash_h_asks_for_help_unless_it_is_an_option_value() {
        let norm = |args: &[&str]| {
            let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            normalize_args(&owned)
        };
        assert_eq!(norm(&["-h"]), ["--help"]);
        assert_eq!(norm(&["proxy-daemon", "-h"]), ["proxy-daemon", "--help"]);
        assert_eq!(
            norm(&["proxy-status", "--follow", "-h"]),
            ["proxy-status", "--follow", "2", "--help"]
        );
        assert_eq!(norm(&["proxy", "-c", "-h"]), ["proxy", "-c", "-h"]);
        assert_eq!(
            norm(&["proxy-status", "--bearer-token", "-h"]),
            ["proxy-status", "--bearer-token", "-h"]
        );
        assert_eq!(
            norm(&["proxy-daemon", "-c", "x", "--", "-h"]),
            ["proxy-daemon", "-c", "x", "--", "-h"]
        );
        // What argh makes of it: help, which is not an error.
        let early = parse(&["proxy-daemon", "-h"]).unwrap_err();
        assert_eq!(early.status, Ok(()));
        assert!(early.output.starts_with("Usage: wakeproxy proxy-daemon"));
    }

    #[test]
    fn usage_lists_the_commands() {
        let text = usage();
        assert!(text.starts_with("Usage: wakeproxy"), "{text}");
        for command in [
            "proxy",
            "proxy-validate-config",
            "proxy-daemon",
            "healthcheck",
        ] {
            assert!(text.contains(command), "{text}");
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Startup("x".into()).exit_code(), 1);
        assert_eq!(CliError::Status("x".into()).exit_code(), 3);
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
    }
}
