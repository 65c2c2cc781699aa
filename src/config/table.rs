//! The plain-text services table printed by `proxy-validate-config`.

use super::{Backend, Config};

const HEADER: [&str; 8] = [
    "NAME", "HOST", "PATH", "KIND", "TARGET", "PORT", "IDLE", "STRIP",
];

/// One row per service: NAME, HOST (`*` for any name), PATH, KIND (container|upstream), TARGET (image or host:port),
/// PORT (internal_port or -), IDLE (`300s` or `never`), STRIP (yes/no). Columns are aligned
/// with spaces; every line ends with a newline and has no trailing spaces.
pub fn services_table(config: &Config) -> String {
    let mut rows: Vec<[String; 8]> = vec![HEADER.map(String::from)];
    for s in &config.services {
        let (kind, target, port) = match &s.backend {
            Backend::Container(c) => match &c.existing {
                Some(e) => ("existing", e.to_string(), c.internal_port.to_string()),
                None => ("container", c.image.clone(), c.internal_port.to_string()),
            },
            Backend::Upstream(u) => ("upstream", u.clone(), "-".to_string()),
        };
        let idle = match s.idle_timeout.as_secs() {
            0 => "never".to_string(),
            n => format!("{n}s"),
        };
        let strip = if s.strip_prefix { "yes" } else { "no" };
        let host = s.host.as_ref().map_or("*".to_string(), |h| h.to_string());
        rows.push([
            s.name.clone(),
            host,
            s.path.clone(),
            kind.to_string(),
            target,
            port,
            idle,
            strip.to_string(),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i] - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn table_lists_every_service_aligned() {
        let text = "\
global:
  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4
  idle_timeout: 0
services:
  - name: web
    path: /
    image: nginx:latest
    internal_port: 80
    idle_timeout: 300
  - name: api-backend
    path: /api
    upstream: 127.0.0.1:9000
    strip_prefix: false
  - name: wiki
    host: Wiki.Example.com
    upstream: 127.0.0.1:9001
";
        let config = parse(text, "t.yaml", &|_| None).unwrap();
        let table = services_table(&config);
        let expected = "\
NAME         HOST              PATH  KIND       TARGET          PORT  IDLE   STRIP
web          *                 /     container  nginx:latest    80    300s   yes
api-backend  *                 /api  upstream   127.0.0.1:9000  -     never  no
wiki         wiki.example.com  /     upstream   127.0.0.1:9001  -     never  yes
";
        assert_eq!(table, expected);
    }
}
