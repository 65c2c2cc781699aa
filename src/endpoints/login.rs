//! Browser access: `/proxy/login` (a form that trades the token for a cookie) and
//! `/proxy/logout`. Browsers cannot set an Authorization header on a page load or a
//! WebSocket, so the cookie stands in for it. The pages and cookies are made here; reading
//! the form and checking the token is the pipeline's.

use crate::http::head::header;
use crate::http::{Reply, RequestHead};

/// The cookie's name.
pub(crate) const COOKIE: &str = "wakeproxy_session";
/// Largest login form body accepted.
pub(crate) const MAX_FORM: u64 = 4096;

/// Decodes `application/x-www-form-urlencoded` and returns field `name`.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
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

/// Whether a request is a browser opening a page, which is better sent to the login form
/// than given a JSON 401, and better shown the waiting page than a blank tab: a GET (or
/// HEAD), not an upgrade, that says it is a navigation (`Sec-Fetch-Mode: navigate`), or,
/// from a browser too old to say (no `Sec-Fetch-Mode`), whose `Accept` prefers `text/html`
/// to JSON. A `fetch()` says `cors`, `no-cors` or `same-origin`: never a page load.
pub(crate) fn is_page_load(head: &RequestHead) -> bool {
    if !matches!(head.method.as_str(), "GET" | "HEAD") || header(&head.headers, "upgrade").is_some()
    {
        return false;
    }
    match header(&head.headers, "sec-fetch-mode") {
        Some(h) => h.value().trim_ascii().eq_ignore_ascii_case(b"navigate"),
        None => header(&head.headers, "accept")
            .is_some_and(|h| prefers_html(&String::from_utf8_lossy(h.value()))),
    }
}

/// Does an `Accept` value rank `text/html` above JSON (and above zero)?
fn prefers_html(accept: &str) -> bool {
    let mut html = None;
    let mut json = None;
    for (i, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match kind.as_str() {
            "text/html" if html.is_none() => html = Some((q, i)),
            "application/json" if json.is_none() => json = Some((q, i)),
            _ => {}
        }
    }
    match (html, json) {
        (Some((hq, _)), None) => hq > 0.0,
        (Some((hq, hi)), Some((jq, ji))) => hq > 0.0 && (hq > jq || (hq == jq && hi < ji)),
        (None, _) => false,
    }
}

/// A browser opening a page without credentials: `303` to the login form, which comes back to
/// `target` (the path and query asked for) after the login.
pub(crate) fn sign_in_first(target: &str) -> Reply {
    let location = format!("/proxy/login?next={}", encode_component(target));
    html(303, Vec::new())
        .header("Location", &location)
        .header("Cache-Control", "no-store")
}

/// Percent-encodes everything but unreserved characters and `/` (a query parameter value).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after logging in: a local path only (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> &str {
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

/// What the login page says above the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    None,
    WrongToken,
    /// Too many wrong tokens from this address: try again in this many seconds.
    Wait(u64),
    LoggedOut,
}

/// The login page.
pub(crate) fn form_page(next: &str, notice: Notice) -> Vec<u8> {
    let esc = next
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    let msg = match notice {
        Notice::None => String::new(),
        Notice::WrongToken => "<p class=\"err\">Wrong token.</p>".into(),
        Notice::Wait(s) => format!(
            "<p class=\"err\">Too many wrong tokens from your address: try again in {s} s.</p>"
        ),
        Notice::LoggedOut => "<p>Logged out.</p>".into(),
    };
    page_with(&format!(
        "{msg}<form method=\"post\" action=\"/proxy/login\"><input type=\"hidden\" name=\"next\" value=\"{esc}\">\
<label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" autofocus></label>\
<input type=\"submit\" id=\"submit\" value=\"Log in\"></form>"
    ))
}

/// A page of the proxy's own, around `body`.
fn page_with(body: &str) -> Vec<u8> {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>wakeproxy login</title>\
<meta name=\"viewport\" content=\"width=device-width\"><style>body{{font-family:sans-serif;max-width:24em;margin:4em auto}}\
input{{width:100%;padding:.4em;margin:.3em 0}}.err{{color:#b00}}</style></head><body><h1>wakeproxy</h1>{body}</body></html>\n"
    )
    .into_bytes()
}

/// `GET /proxy/logout`: a button that logs out (a POST, which a page elsewhere cannot send
/// with this proxy's origin), so that following a link never logs anybody out.
pub(crate) fn logout_page() -> Reply {
    let form = "<form method=\"post\" action=\"/proxy/logout\">\
<input type=\"submit\" id=\"logout\" value=\"Log out\"></form>";
    html(200, page_with(form))
}

/// `GET /proxy/login`: the form, going on to `next` (from the query) after logging in.
pub(crate) fn page(query: Option<&str>) -> Reply {
    let next = query.and_then(|q| form_field(q.as_bytes(), "next"));
    html(200, form_page(safe_next(next.as_deref()), Notice::None))
}

/// `POST /proxy/logout`: the form again, with the cookie cleared (the session is ended on
/// the server by then).
pub(crate) fn logged_out() -> Reply {
    let clear = format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    html(200, form_page("/", Notice::LoggedOut)).header("Set-Cookie", &clear)
}

/// A login form as posted: the token given, and where to go next (a local path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Submitted {
    pub token: String,
    pub next: String,
}

/// Reads a posted `application/x-www-form-urlencoded` login form.
pub(crate) fn submitted(form: &[u8]) -> Submitted {
    let next = form_field(form, "next");
    Submitted {
        token: form_field(form, "token")
            .unwrap_or_default()
            .trim()
            .to_string(),
        next: safe_next(next.as_deref()).to_string(),
    }
}

/// The right token: a cookie holding `session` for `lifetime` (Secure over TLS), and on to
/// `next`.
pub(crate) fn logged_in(
    next: &str,
    session: &str,
    secure: bool,
    lifetime: std::time::Duration,
) -> Reply {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = lifetime.as_secs();
    let cookie =
        format!("{COOKIE}={session}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    html(303, Vec::new())
        .header("Location", next)
        .header("Set-Cookie", &cookie)
}

/// A wrong token: the form again, saying so.
pub(crate) fn refused(next: &str) -> Reply {
    html(401, form_page(next, Notice::WrongToken))
        .header("WWW-Authenticate", "Bearer realm=\"wakeproxy\"")
}

/// Too many wrong tokens from this address: the form again, saying when to try (429).
pub(crate) fn wait(next: &str, retry_after: u64) -> Reply {
    html(429, form_page(next, Notice::Wait(retry_after)))
        .header("Retry-After", &retry_after.to_string())
}

fn html(status: u16, body: Vec<u8>) -> Reply {
    Reply::new(status, "text/html; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn head(method: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: method.into(),
            target: "/app".into(),
            minor: 1,
            headers: headers
                .iter()
                .map(|(n, v)| crate::http::Header::new(n, *v))
                .collect(),
        }
    }

    #[test]
    fn page_loads_are_told_from_api_calls() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(is_page_load(&head("GET", &[("Accept", browser)])));
        assert!(is_page_load(&head(
            "GET",
            &[("Sec-Fetch-Mode", "navigate")]
        )));
        assert!(is_page_load(&head("HEAD", &[("Accept", "text/html")])));
        assert!(!is_page_load(&head("POST", &[("Accept", browser)])));
        assert!(!is_page_load(&head("GET", &[("Accept", "*/*")])));
        assert!(!is_page_load(&head("GET", &[])));
        assert!(!is_page_load(&head("GET", &[("Sec-Fetch-Mode", "cors")])));
        let api = "application/json, text/html;q=0.5";
        assert!(!is_page_load(&head("GET", &[("Accept", api)])));
        assert!(!is_page_load(&head("GET", &[("Accept", "text/html;q=0")])));
        assert!(!is_page_load(&head(
            "GET",
            &[("Accept", "application/json, text/html")]
        )));
        assert!(is_page_load(&head(
            "GET",
            &[("Accept", "text/html, application/json")]
        )));
        // A fetch() asking for HTML, or a WebSocket handshake from a page, is not a page load.
        let fetch = [("Accept", browser), ("Sec-Fetch-Mode", "cors")];
        assert!(!is_page_load(&head("GET", &fetch)));
        let ws = [("Accept", browser), ("Upgrade", "websocket")];
        assert!(!is_page_load(&head("GET", &ws)));
        let nav = [("Accept", "*/*"), ("Sec-Fetch-Mode", "navigate")];
        assert!(is_page_load(&head("GET", &nav)));
    }

    #[test]
    fn the_redirect_comes_back_to_the_page() {
        let r = sign_in_first("/app/x?a=1&b=two words");
        let text = format!("{r:?}");
        assert!(
            text.contains("/proxy/login?next=/app/x%3Fa%3D1%26b%3Dtwo%20words"),
            "{text}"
        );
        let back = form_field(b"next=/app/x%3Fa%3D1%26b%3Dtwo%20words", "next");
        assert_eq!(back.as_deref(), Some("/app/x?a=1&b=two words"));
        assert_eq!(encode_component("//evil"), "//evil");
        assert_eq!(
            safe_next(Some("//evil")),
            "/",
            "and the form refuses it on the way back"
        );
    }

    #[test]
    fn page_escapes_next() {
        let p = String::from_utf8(form_page("/a\"><script>", Notice::None)).unwrap();
        assert!(!p.contains("<script>"));
        assert!(p.contains("name=\"token\""));
    }
}
