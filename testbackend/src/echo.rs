//! The JSON echo of a request (the answer on every path without an endpoint of its own).

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::head::Request;

/// Appends `s` as a JSON string: quotes and backslashes escaped, control characters as
/// `\u00XX`.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_json_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.push_str("null"),
    }
}

/// `{"name", "method", "target", "path", "query", "headers": [[name, value], ...],
/// "body_bytes", "body", "peer"}` and a newline; `body` is null unless given.
pub fn echo_json(
    name: Option<&str>,
    req: &Request,
    path: &str,
    query: Option<&str>,
    body_bytes: u64,
    body: Option<&str>,
    peer: SocketAddr,
) -> String {
    let mut out = String::with_capacity(512 + body.map_or(0, str::len));
    out.push_str("{\"name\":");
    push_json_opt(&mut out, name);
    out.push_str(",\"method\":");
    push_json_str(&mut out, &req.method);
    out.push_str(",\"target\":");
    push_json_str(&mut out, &req.target);
    out.push_str(",\"path\":");
    push_json_str(&mut out, path);
    out.push_str(",\"query\":");
    push_json_opt(&mut out, query);
    out.push_str(",\"headers\":[");
    for (i, (n, v)) in req.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        push_json_str(&mut out, n);
        out.push(',');
        push_json_str(&mut out, v);
        out.push(']');
    }
    let _ = write!(out, "],\"body_bytes\":{body_bytes},\"body\":");
    push_json_opt(&mut out, body);
    out.push_str(",\"peer\":");
    push_json_str(&mut out, &peer.to_string());
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{Version, split_target};

    #[test]
    fn json_escaping() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\te\u{1}\u{1f}/é€😀\u{7f}");
        assert_eq!(
            out,
            r#""a\"b\\c\u000ad\u0009e\u0001\u001f/é€😀"#.to_string() + "\u{7f}\""
        );
        let mut out = String::new();
        push_json_opt(&mut out, None);
        assert_eq!(out, "null");
    }

    #[test]
    fn echo_json_shape() {
        let req = Request {
            method: "POST".into(),
            target: "/a%20b?x=1&y".into(),
            version: Version::Http11,
            headers: vec![
                ("Host".into(), "h".into()),
                ("set-cookie".into(), "a=1".into()),
                ("Set-Cookie".into(), "b=\"2\"".into()),
            ],
        };
        let (path, query) = split_target(&req.target);
        let peer: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let json = echo_json(Some("n1"), &req, path, query, 3, Some("hi\n"), peer);
        assert_eq!(
            json,
            "{\"name\":\"n1\",\"method\":\"POST\",\"target\":\"/a%20b?x=1&y\",\"path\":\"/a%20b\",\
             \"query\":\"x=1&y\",\"headers\":[[\"Host\",\"h\"],[\"set-cookie\",\"a=1\"],\
             [\"Set-Cookie\",\"b=\\\"2\\\"\"]],\"body_bytes\":3,\"body\":\"hi\\u000a\",\
             \"peer\":\"127.0.0.1:4242\"}\n"
        );
    }
}
