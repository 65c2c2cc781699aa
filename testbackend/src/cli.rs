//! The command line, the environment settings and the `--check` health probe.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

pub const USAGE: &str = "\
usage: wakeproxy-testbackend [--listen ADDR:PORT]
       wakeproxy-testbackend [--listen ADDR:PORT] --check [PATH]

environment: PORT (8000), BIND (0.0.0.0), STARTUP_DELAY_MS, EXIT_AT_START, FAIL_HEALTH, NAME
endpoints: /health /stream /sse /status/NNN /cookies /gzip /sleep /sink /ws /wspage, else a JSON echo
";

/// What the command line asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub listen: Option<String>,
    /// `Some(path)` in `--check` mode.
    pub check: Option<String>,
    pub help: bool,
}

pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            out.help = true;
        } else if arg == "--listen" {
            out.listen = Some(args.next().ok_or("--listen needs ADDR:PORT")?);
        } else if let Some(v) = arg.strip_prefix("--listen=") {
            out.listen = Some(v.to_string());
        } else if arg == "--check" {
            let path = args.next_if(|a| a.starts_with('/'));
            out.check = Some(path.unwrap_or_else(|| "/health".to_string()));
        } else if let Some(v) = arg.strip_prefix("--check=") {
            if !v.starts_with('/') {
                return Err(format!("--check path must start with '/': {v:?}"));
            }
            out.check = Some(v.to_string());
        } else {
            return Err(format!("unknown argument {arg:?}"));
        }
    }
    Ok(out)
}

/// An environment variable, with an empty value treated as unset.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A set variable other than `0`, `false` or `no`.
pub fn env_flag(name: &str) -> bool {
    env_var(name).is_some_and(|v| {
        let v = v.trim();
        !(v == "0" || v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("no"))
    })
}

/// The address to listen on: `--listen`, else `BIND` and `PORT`.
pub fn listen_addr(listen: Option<&str>) -> Result<SocketAddr, String> {
    if let Some(listen) = listen {
        return listen
            .to_socket_addrs()
            .map_err(|e| format!("--listen {listen:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--listen {listen:?}: no address"));
    }
    let port = match env_var("PORT") {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("PORT is not a port number: {p:?}"))?,
        None => 8000,
    };
    let ip = match env_var("BIND") {
        Some(b) => {
            let t = b.trim();
            let t = t
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(t);
            t.parse::<IpAddr>()
                .map_err(|_| format!("BIND is not an IP address: {b:?}"))?
        }
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Ok(SocketAddr::new(ip, port))
}

/// `--check`: exit 0 if `GET path` on the local server answers 2xx or 3xx.
pub fn run_check(addr: SocketAddr, path: &str) -> ExitCode {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    let target = SocketAddr::new(ip, addr.port());
    match check_status(target, path) {
        Ok(status) if (200..400).contains(&status) => {
            println!("check {target}{path}: {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("check {target}{path}: {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("check {target}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_status(target: SocketAddr, path: &str) -> io::Result<u16> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: wakeproxy-testbackend-check\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(stream).take(1024).read_line(&mut line)?;
    parse_status_line(&line).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        )
    })
}

fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_line("HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(parse_status_line("SSH-2.0\r\n"), None);
    }

    #[test]
    fn arguments() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        assert_eq!(
            args(&["--check"]).unwrap().check.as_deref(),
            Some("/health")
        );
        assert_eq!(
            args(&["--check", "/x"]).unwrap().check.as_deref(),
            Some("/x")
        );
        assert_eq!(
            args(&["--listen", "127.0.0.1:0"])
                .unwrap()
                .listen
                .as_deref(),
            Some("127.0.0.1:0")
        );
        assert!(args(&["--check", "x"]).is_err());
        assert!(args(&["--listen"]).is_err());
    }
}
