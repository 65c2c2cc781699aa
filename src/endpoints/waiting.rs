//! The waiting page a browser gets while a service starts (or the reason its start failed),
//! and `/proxy/waking/<service>`, the small JSON document the page polls until the service is
//! ready. Built from values: the pipeline decides when a request gets them.
//!
//! The page works without JavaScript (a `<noscript>` meta refresh loads the same URL again
//! every few seconds) and with it (the script polls the JSON document once a second, updates
//! the stage and the elapsed time, reloads the URL once the service is ready and stops on a
//! failure). A `loading_page` template replaces the built-in one; its placeholders are below.

use std::time::Duration;

use serde_json::json;

use crate::http::Reply;
use crate::lifecycle::Report;

/// Where the page polls for service `name`.
pub(crate) fn status_path(name: &str) -> String {
    format!("/proxy/waking/{name}")
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiting<'a> {
    pub service: &'a str,
    /// The stage of the start (`starting`, `pulling the image`, ...).
    pub stage: &'a str,
    pub elapsed: Duration,
    /// Why the start failed: the page shows it and stops waiting.
    pub failure: Option<&'a str>,
}

impl Waiting<'_> {
    /// The service's page from its lifecycle report (`failure` from a start this request
    /// waited for, which the report may not say yet).
    pub(crate) fn of<'a>(service: &'a str, r: &'a Report, failure: Option<&'a str>) -> Waiting<'a> {
        let (stage, elapsed) = r.stage.unwrap_or(("starting", Duration::ZERO));
        Waiting {
            service,
            stage,
            elapsed,
            failure: failure.or(r.failure.as_deref()),
        }
    }
}

/// The page: 200 while starting, 503 once the start failed; never cached.
pub(crate) fn page(template: Option<&str>, w: &Waiting<'_>) -> Reply {
    let body = render(template.unwrap_or(DEFAULT_TEMPLATE), w);
    let status = if w.failure.is_some() { 503 } else { 200 };
    // Every answer of the proxy's own carries `Cache-Control: no-store` (`Reply::render`).
    let reply = Reply::new(status, "text/html; charset=utf-8", body.into_bytes())
        .header("X-Content-Type-Options", "nosniff");
    match w.failure {
        Some(_) => reply.header("Retry-After", "5"),
        None => reply,
    }
}

/// Fills the placeholders (see README, "The waiting page"); every value is HTML-escaped.
pub(crate) fn render(template: &str, w: &Waiting<'_>) -> String {
    let secs = w.elapsed.as_secs();
    let state = if w.failure.is_some() {
        "failed"
    } else {
        "starting"
    };
    let refresh = match w.failure {
        None => {
            format!("<noscript><meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\"></noscript>")
        }
        Some(_) => String::new(),
    };
    let script = script(&status_path(w.service), secs);
    let fields: [(&str, String); 7] = [
        ("{{service}}", escape(w.service)),
        (
            "{{stage}}",
            escape(if w.failure.is_some() {
                "failed"
            } else {
                w.stage
            }),
        ),
        ("{{elapsed}}", secs.to_string()),
        ("{{error}}", escape(w.failure.unwrap_or(""))),
        ("{{state}}", state.to_string()),
        ("{{refresh}}", refresh),
        ("{{script}}", script),
    ];
    let mut out = String::with_capacity(template.len() + 2048);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        match fields.iter().find(|(k, _)| at.starts_with(k)) {
            Some((k, v)) => {
                out.push_str(v);
                rest = &at[k.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &at[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// How often the page loads itself again without JavaScript.
const REFRESH_SECS: u32 = 3;

/// The poller: the JSON document once a second; the stage and elapsed time into the elements
/// `wakeproxy-stage` and `wakeproxy-elapsed`; on `ready` (or `stopped`: start again) a
/// reload of the page's own URL; on `failed` the reason into `wakeproxy-error`, and no more
/// polling.
fn script(status_url: &str, elapsed: u64) -> String {
    let url = serde_json::to_string(status_url).unwrap_or_default();
    format!(
        "<script>(function(){{var url={url},t0=Date.now()-{elapsed}*1000,done=false;\
function el(id){{return document.getElementById(id)}}\
function set(id,v){{var e=el(id);if(e)e.textContent=v}}\
function tick(){{if(!done)set('wakeproxy-elapsed',Math.round((Date.now()-t0)/1000))}}\
function poll(){{fetch(url,{{cache:'no-store',credentials:'same-origin',headers:{{Accept:'application/json'}}}})\
.then(function(r){{return r.json()}}).then(function(s){{\
if(s.state==='ready'||s.state==='stopped'){{done=true;set('wakeproxy-stage','ready: loading');location.reload();return}}\
if(s.state==='failed'){{done=true;set('wakeproxy-stage','failed');set('wakeproxy-error',s.error||'');\
var b=el('wakeproxy-box');if(b)b.className='failed';return}}\
if(s.stage)set('wakeproxy-stage',s.stage);setTimeout(poll,1000)}})\
.catch(function(){{setTimeout(poll,2000)}})}}\
setInterval(tick,1000);setTimeout(poll,1000)}})();</script>"
    )
}

/// The built-in page.
const DEFAULT_TEMPLATE: &str = "<!doctype html><html><head><meta charset=\"utf-8\">\
<title>Starting {{service}}</title><meta name=\"viewport\" content=\"width=device-width\">{{refresh}}\
<style>body{font-family:sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#222}\
.spin{display:inline-block;width:1em;height:1em;border:.2em solid #ccc;border-top-color:#333;\
border-radius:50%;animation:r 1s linear infinite;vertical-align:middle;margin-right:.5em}\
@keyframes r{to{transform:rotate(360deg)}}.failed .spin{display:none}.failed h1{color:#b00}\
pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em;font-size:.85em}pre:empty{display:none}\
</style></head><body><div id=\"wakeproxy-box\" class=\"{{state}}\">\
<h1><span class=\"spin\"></span>{{service}}</h1>\
<p>Stage: <b id=\"wakeproxy-stage\">{{stage}}</b> &middot; <span id=\"wakeproxy-elapsed\">{{elapsed}}</span> s</p>\
<p>The page opens by itself once the service is ready.</p>\
<pre id=\"wakeproxy-error\">{{error}}</pre></div>{{script}}</body></html>\n";

/// `/proxy/waking/<service>`: `state` is `ready`, `starting` (with `stage`), `failed` (with
/// `error`), `stopped` or `stopping`; `report` is `None` for a service always up.
pub(crate) fn readiness(service: &str, report: Option<&Report>) -> Reply {
    let doc = match report {
        None => json!({"service": service, "state": "ready"}),
        Some(r) => {
            let state = match (r.status, &r.failure) {
                ("running", _) => "ready",
                ("starting", _) => "starting",
                ("conflict", _) | (_, Some(_)) => "failed",
                (other, None) => other,
            };
            let (stage, elapsed) = match r.stage {
                Some((s, d)) => (Some(s), Some(d.as_millis() as u64)),
                None => (None, None),
            };
            let error = match state {
                "failed" => r.failure.clone().or_else(|| r.last_error.clone()),
                _ => None,
            };
            json!({
                "service": service,
                "state": state,
                "stage": stage,
                "elapsed_ms": elapsed,
                "error": error,
            })
        }
    };
    Reply::ok("application/json", format!("{doc}\n").into_bytes())
}

/// `&`, `<`, `>`, `"` and `'` as entities.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starting() -> Waiting<'static> {
        Waiting {
            service: "wiki",
            stage: "waiting for health",
            elapsed: Duration::from_millis(4_900),
            failure: None,
        }
    }

    fn text(r: &Reply) -> String {
        String::from_utf8(r.render(true, false)).unwrap()
    }

    #[test]
    fn the_page_names_the_service_stage_and_time_and_is_never_cached() {
        let r = page(None, &starting());
        let t = text(&r);
        assert!(t.starts_with("HTTP/1.1 200 "), "{t}");
        assert_eq!(
            t.matches("\r\nCache-Control: no-store\r\n").count(),
            1,
            "{t}"
        );
        assert!(t.contains("<title>Starting wiki</title>"), "{t}");
        assert!(
            t.contains("<b id=\"wakeproxy-stage\">waiting for health</b>"),
            "{t}"
        );
        assert!(
            t.contains("<span id=\"wakeproxy-elapsed\">4</span> s"),
            "{t}"
        );
        assert!(
            t.contains("<meta http-equiv=\"refresh\" content=\"3\">"),
            "{t}"
        );
        assert!(t.contains("var url=\"/proxy/waking/wiki\""), "{t}");
        assert!(!t.contains("{{"), "every placeholder filled: {t}");
        assert!(
            !t.contains("http://") && !t.contains("https://"),
            "no external assets"
        );
    }

    #[test]
    fn a_failure_is_shown_escaped_with_503_and_no_refresh() {
        let w = Waiting {
            failure: Some("exited with code 3; last log lines:\n<boom> & \"x\""),
            ..starting()
        };
        let t = text(&page(None, &w));
        assert!(t.starts_with("HTTP/1.1 503 "), "{t}");
        assert!(t.contains("class=\"failed\""), "{t}");
        assert!(
            t.contains("exited with code 3; last log lines:\n&lt;boom&gt; &amp; &quot;x&quot;"),
            "{t}"
        );
        assert!(!t.contains("http-equiv=\"refresh\""), "{t}");
    }

    #[test]
    fn a_template_gets_its_placeholders_and_keeps_other_braces() {
        let tpl = "<p>{{service}} {{stage}} {{elapsed}} {{state}} {{x}} {{error}}</p>{{refresh}}";
        let out = render(tpl, &starting());
        assert!(
            out.starts_with("<p>wiki waiting for health 4 starting {{x}} </p><noscript>"),
            "{out}"
        );
        assert_eq!(render("{{", &starting()), "{{");
        assert_eq!(render("a {{service", &starting()), "a {{service");
    }

    fn report(status: &'static str) -> Report {
        Report {
            engine: crate::lifecycle::EngineKind::Container,
            status,
            port: None,
            container: "wiki".into(),
            cold_starts: 0,
            last_start: None,
            last_error: Some("an older error".into()),
            waiting: 1,
            replicas: None,
            docker_unreachable: false,
            pull: None,
            pull_policy: "missing",
            stage: None,
            failure: None,
            dependencies: Vec::new(),
        }
    }

    fn state(r: Option<&Report>) -> serde_json::Value {
        let reply = readiness("wiki", r);
        let t = text(&reply);
        assert!(t.contains("Cache-Control: no-store"), "{t}");
        serde_json::from_str(t.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    }

    #[test]
    fn readiness_says_ready_starting_failed_or_stopped() {
        assert_eq!(state(None)["state"], "ready");
        assert_eq!(state(Some(&report("running")))["state"], "ready");
        let mut r = report("starting");
        r.stage = Some(("pulling the image", Duration::from_millis(1500)));
        let v = state(Some(&r));
        assert_eq!(
            (v["state"].as_str(), v["stage"].as_str()),
            (Some("starting"), Some("pulling the image"))
        );
        assert_eq!(v["elapsed_ms"], 1500);
        assert_eq!(v["error"], serde_json::Value::Null);
        let mut r = report("stopped");
        assert_eq!(
            state(Some(&r))["state"],
            "stopped",
            "an older error is not this start's"
        );
        r.failure = Some("exit code 3".into());
        let v = state(Some(&r));
        assert_eq!(
            (v["state"].as_str(), v["error"].as_str()),
            (Some("failed"), Some("exit code 3"))
        );
        assert_eq!(state(Some(&report("conflict")))["error"], "an older error");
    }
}
