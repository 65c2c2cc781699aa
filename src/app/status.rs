//! `wakeproxy proxy-status`: fetches `/proxy/status` from a running proxy (over HTTP or HTTPS,
//! trusting a private CA with `--cacert`) and prints it as a table or as JSON, once or every
//! `--follow` seconds.

use std::time::Duration;

use super::cli::{CliError, StatusArgs};

/// The status URL for a server URL: `/proxy/status` is appended unless a path is given.
pub fn status_url(server_url: &str) -> String {
    let trimmed = server_url.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, r)| r);
    if after_scheme.contains('/') {
        trimmed.to_string()
    } else {
        format!("{trimmed}/proxy/status")
    }
}

/// A ureq agent for `proxy-status`, trusting `cacert` (PEM) instead of the public roots.
fn status_agent(cacert: Option<&std::path::Path>) -> Result<ureq::Agent, CliError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let mut tls = TlsConfig::builder().provider(TlsProvider::Rustls);
    if let Some(path) = cacert {
        let pem = std::fs::read(path)
            .map_err(|e| CliError::Status(format!("cannot read {}: {e}", path.display())))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(CliError::Status(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .tls_config(tls.build())
        .build()
        .into())
}

fn fetch_status(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
) -> Result<serde_json::Value, CliError> {
    let mut res = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| CliError::Status(format!("cannot reach {url}: {e}")))?;
    let status = res.status().as_u16();
    let body = res
        .body_mut()
        .read_to_string()
        .map_err(|e| CliError::Status(format!("reading the answer from {url}: {e}")))?;
    if status == 401 {
        return Err(CliError::Status(format!(
            "{url} refused the bearer token (401)"
        )));
    }
    if status != 200 {
        return Err(CliError::Status(format!(
            "{url} answered {status}: {}",
            body.trim()
        )));
    }
    serde_json::from_str(&body)
        .map_err(|e| CliError::Status(format!("{url} did not answer with status JSON: {e}")))
}

/// Renders the status JSON as a table.
pub fn status_table(v: &serde_json::Value) -> String {
    let cols = [
        "NAME",
        "PATH",
        "KIND",
        "STATUS",
        "HOST_PORT",
        "IN_FLIGHT",
        "LAST_ACCESS",
    ];
    let mut rows: Vec<Vec<String>> = vec![cols.iter().map(|c| c.to_string()).collect()];
    let text = |x: &serde_json::Value| match x {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for s in v["services"].as_array().into_iter().flatten() {
        rows.push(
            [
                "name",
                "path",
                "kind",
                "status",
                "host_port",
                "in_flight",
                "last_access",
            ]
            .iter()
            .map(|k| match (*k, pulling(&s["pull"])) {
                ("status", Some(p)) => format!("{} ({p})", text(&s[*k])),
                _ => text(&s[*k]),
            })
            .collect(),
        );
    }
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A pull under way, as the status column shows it: `pulling 2/5 layers, 12.0/40.5 MB`.
fn pulling(p: &serde_json::Value) -> Option<String> {
    let n = |k: &str| p[k].as_u64();
    let mb = |b: u64| b as f64 / 1e6;
    Some(format!(
        "pulling {}/{} layers, {:.1}/{:.1} MB",
        n("layers_done")?,
        n("layers_total")?,
        mb(n("bytes_done")?),
        mb(n("bytes_total")?)
    ))
}

/// `proxy-status`: prints the table (or JSON), once or every `--follow` seconds.
pub fn run_status(args: &StatusArgs) -> Result<(), CliError> {
    let token = args
        .bearer_token
        .clone()
        .or_else(|| std::env::var("PROXY_BEARER_TOKEN").ok())
        .ok_or_else(|| {
            CliError::Status(
                "no bearer token: pass --bearer-token or set PROXY_BEARER_TOKEN".into(),
            )
        })?;
    let url = status_url(&args.server_url);
    let agent = status_agent(args.cacert.as_deref())?;
    loop {
        let v = fetch_status(&agent, &url, &token)?;
        let text = if args.json {
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        } else {
            status_table(&v)
        };
        match args.follow {
            None => {
                print!("{text}");
                return Ok(());
            }
            Some(secs) => {
                // Clear the screen and redraw, like `watch`.
                print!("\x1b[2J\x1b[H{url}  (every {secs}s)\n\n{text}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::thread::sleep(Duration::from_secs(secs.max(1)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_url_appends_path() {
        assert_eq!(
            status_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/proxy/status"
        );
        assert_eq!(status_url("http://h:1/"), "http://h:1/proxy/status");
        assert_eq!(
            status_url("https://h/proxy/status"),
            "https://h/proxy/status"
        );
    }

    #[test]
    fn table_lists_services() {
        let v = serde_json::json!({"services": [
            {"name": "blog", "path": "/blog", "kind": "container", "status": "running", "host_port": 32768, "in_flight": 0, "last_access": null},
            {"name": "wiki", "path": "/wiki", "kind": "container", "status": "starting", "host_port": null, "in_flight": 3, "last_access": null, "pull": {"layers_done": 2, "layers_total": 5, "bytes_done": 12000000, "bytes_total": 40500000}},
            {"name": "api", "path": "/", "kind": "upstream", "status": "external", "host_port": null, "in_flight": 2, "last_access": "2026-11-26T16:51:32Z"}
        ]});
        let t = status_table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("NAME  PATH   KIND"));
        assert!(
            lines[1].contains("blog") && lines[1].contains("32768") && lines[1].contains("running")
        );
        assert!(
            lines[2].contains("starting (pulling 2/5 layers, 12.0/40.5 MB)"),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("2026-11-26T16:51:32Z"));
    }
}
