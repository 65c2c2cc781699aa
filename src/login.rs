//! Browser access: `/proxy/login` (a form that trades the token for a cookie), `/proxy/logout`,
//! the cookie's value, and the per-client delay after wrong tokens. Browsers cannot set an
//! Authorization header on a page load or a WebSocket, so the cookie stands in for it.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "wakeproxy_session";
/// How long a login lasts (30 days).
const MAX_AGE_SECS: u64 = 30 * 24 * 3600;
/// Largest login form body accepted.
pub const MAX_FORM: u64 = 4096;
/// Wrong-token delays are forgotten after this long without a failure.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The cookie value for `token`: a digest, so the raw token is never stored in a browser.
pub fn cookie_value(token: &str) -> String {
    let d = Sha256::digest(format!("wakeproxy-session-v1:{token}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn find_cookie<'a>(
    cookie_headers: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Option<&'a [u8]> {
    for h in cookie_headers {
        for pair in h.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if let Some(v) = pair
                .strip_prefix(name.as_bytes())
                .and_then(|r| r.strip_prefix(b"="))
            {
                return Some(v);
            }
        }
    }
    None
}

/// Is this `name=value` pair the cookie `name`?
fn is_named(pair: &[u8], name: &str) -> bool {
    pair.starts_with(name.as_bytes()) && pair.get(name.len()) == Some(&b'=')
}

/// A `Cookie` header value without cookie `name` (`None` when nothing else is left).
pub fn strip_cookie(value: &[u8], name: &str) -> Option<Vec<u8>> {
    let kept: Vec<&[u8]> = value
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty() && !is_named(p, name))
        .collect();
    (!kept.is_empty()).then(|| kept.join(&b"; "[..]))
}

/// Decodes `application/x-www-form-urlencoded` and returns field `name`.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[..0]),
        };
        (url_decode(k)? == name).then(|| url_decode(v)).flatten()
    })
}

fn url_decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Where to go after logging in: a local path only (no open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/",
    }
}

/// The login page.
pub fn form_page(next: &str, failed: bool) -> Vec<u8> {
    let esc = next
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    let msg = if failed {
        "<p class=\"err\">Wrong token.</p>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>wakeproxy login</title>\
<meta name=\"viewport\" content=\"width=device-width\"><style>body{{font-family:sans-serif;max-width:24em;margin:4em auto}}\
input{{width:100%;padding:.4em;margin:.3em 0}}.err{{color:#b00}}</style></head><body><h1>wakeproxy</h1>{msg}\
<form method=\"post\" action=\"/proxy/login\"><input type=\"hidden\" name=\"next\" value=\"{esc}\">\
<label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" autofocus></label>\
<input type=\"submit\" id=\"submit\" value=\"Log in\"></form></body></html>\n"
    )
    .into_bytes()
}

/// A response with the given status, extra header lines and HTML body.
pub fn response(status: &str, extra: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{extra}{}\r\n",
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" }
    );
    out.extend_from_slice(body);
    out
}

/// The `Set-Cookie` line of a successful login.
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("Set-Cookie: {COOKIE}={value}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Strict{secure}\r\n")
}

/// The `Set-Cookie` line that clears the cookie.
pub fn clear_cookie() -> String {
    format!("Set-Cookie: {COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\r\n")
}

/// Per-client delays after wrong tokens: 250 ms, doubling per failure, at most 5 s.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// Records a failure from `ip` at `now` and returns how long to hold the answer.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut map = self.failures.lock();
        if map.len() > 10_000 {
            map.retain(|_, (_, t)| now.saturating_duration_since(*t) < FORGET_AFTER);
        }
        let e = map.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(e.1) > FORGET_AFTER {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        Duration::from_millis(250u64.saturating_mul(1 << (e.0 - 1).min(5)))
            .min(Duration::from_secs(5))
    }

    /// A successful login clears the client's record.
    pub fn succeed(&self, ip: IpAddr) {
        self.failures.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_value_hides_the_token() {
        let v = cookie_value("secret-token-0123456789");
        assert_eq!(v.len(), 64);
        assert!(!v.contains("secret"));
        assert_eq!(v, cookie_value("secret-token-0123456789"));
        assert_ne!(v, cookie_value("secret-token-0123456780"));
    }

    #[test]
    fn cookies_are_found_and_stripped() {
        let hs: Vec<&[u8]> = vec![b"a=1; wakeproxy_session=abc; b=2", b"c=3"];
        assert_eq!(find_cookie(hs.iter().copied(), COOKIE), Some(&b"abc"[..]));
        assert_eq!(find_cookie(hs.iter().copied(), "b"), Some(&b"2"[..]));
        assert_eq!(
            find_cookie([&b"xwakeproxy_session=1"[..]].into_iter(), COOKIE),
            None
        );
        assert_eq!(
            strip_cookie(b"a=1; wakeproxy_session=abc; b=2", COOKIE).unwrap(),
            b"a=1; b=2"
        );
        assert_eq!(strip_cookie(b"wakeproxy_session=abc", COOKIE), None);
        assert_eq!(
            strip_cookie(b"wakeproxy_sessionx=1", COOKIE).unwrap(),
            b"wakeproxy_sessionx=1"
        );
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            form_field(b"next=%2Fapp&token=a%2Bb+c", "token").as_deref(),
            Some("a+b c")
        );
        assert_eq!(form_field(b"next=%2Fapp", "next").as_deref(), Some("/app"));
        assert_eq!(form_field(b"token=%zz", "token"), None);
        assert_eq!(form_field(b"", "token"), None);
    }

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/app/x?y=1")), "/app/x?y=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn throttle_grows_and_resets() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert_eq!(t.fail(ip, now), Duration::from_millis(250));
        assert_eq!(t.fail(ip, now), Duration::from_millis(500));
        for _ in 0..10 {
            t.fail(ip, now);
        }
        assert_eq!(t.fail(ip, now), Duration::from_secs(5));
        assert_eq!(
            t.fail(ip, now + Duration::from_secs(3600)),
            Duration::from_millis(250),
            "forgotten after a while"
        );
        t.succeed(ip);
        assert_eq!(
            t.fail("10.0.0.2".parse().unwrap(), now),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn page_escapes_next() {
        let p = String::from_utf8(form_page("/a\"><script>", false)).unwrap();
        assert!(!p.contains("<script>"));
        assert!(p.contains("name=\"token\""));
    }
}
