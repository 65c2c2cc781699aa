//! Request and response head parsing, body framing and request-target splitting.
//!
//! Beyond "no panic", it checks properties the proxy relies on:
//! - a complete head parses to the same result from exactly its own bytes (`head_len` is right);
//! - framing is consistent (`Length(0)` is never produced, chunked only with Transfer-Encoding);
//! - a split target's path starts with `/` and holds no fragment;
//! - the head the proxy would send upstream for an accepted request parses back, under the
//!   proxy's own parser, to the same method, target and body framing (no desync / smuggling
//!   through header rewriting).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use wakeproxy::http::head::{
    header_tokens, parse_request, parse_response, request_body, response_body, wants_keep_alive, BodyKind,
};
use wakeproxy::http::rewrite::{requested_upgrade, upstream_request, ForwardInfo};
use wakeproxy::http::target::{split_target, upstream_target};

fuzz_target!(|data: &[u8]| {
    request(data);
    response(data);
});

fn request(data: &[u8]) {
    let Ok(Some((len, head))) = parse_request(data) else {
        return;
    };
    assert!(len <= data.len(), "head length {len} beyond input {}", data.len());
    assert!(!head.target.is_empty());
    assert!(head.minor <= 1);
    // The head's own bytes parse to the same head.
    match parse_request(&data[..len]) {
        Ok(Some((len2, head2))) => {
            assert_eq!(len2, len);
            assert_eq!(head2, head);
        }
        other => panic!("head re-parsed from its own {len} bytes gave {other:?}"),
    }
    let _ = wants_keep_alive(head.minor, &head.headers);
    let body = request_body(&head);
    match body {
        Ok(BodyKind::Length(n)) => assert!(n > 0, "Length(0) instead of Empty"),
        Ok(BodyKind::Chunked) => {
            let te = header_tokens(&head.headers, "transfer-encoding");
            assert!(te.len() == 1 && te[0].eq_ignore_ascii_case("chunked"), "{te:?}");
        }
        Ok(BodyKind::UntilClose) => panic!("a request body never runs until close"),
        Ok(BodyKind::Empty) | Err(_) => {}
    }
    let Ok(target) = split_target(&head.target) else {
        return;
    };
    assert!(target.path.starts_with('/'), "path {:?}", target.path);
    assert!(!target.path.contains('#'));
    assert!(!target.query.is_some_and(|q| q.contains('#')));
    let Ok(body) = body else {
        return;
    };

    // What the proxy sends upstream must parse back to the same request.
    let new_target = upstream_target(target.path, target.query, "/", false);
    let info = ForwardInfo {
        peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        trusted: head.headers.len() % 2 == 0,
        proto: "http",
        stripped_prefix: None,
        auth_token: Some("fuzz-token"),
        own_cookie: "wakeproxy_session",
        upstream_authority: "backend:8000",
        upgrade: requested_upgrade(&head),
    };
    let mut out = Vec::new();
    upstream_request(&head, &new_target, body, &info, &mut out);
    match parse_request(&out) {
        Ok(Some((n, up))) => {
            assert_eq!(n, out.len(), "upstream head {:?}", String::from_utf8_lossy(&out));
            assert_eq!(up.method, head.method);
            assert_eq!(up.target, new_target);
            assert_eq!(up.minor, 1);
            let up_body = request_body(&up);
            assert_eq!(up_body, Ok(body), "upstream head {:?}", String::from_utf8_lossy(&out));
        }
        Ok(None) => panic!("upstream head incomplete: {:?}", String::from_utf8_lossy(&out)),
        // The only tolerated refusal is the header count: the proxy adds up to 5 headers of
        // its own to a head that may already have the maximum.
        Err(wakeproxy::http::head::HeadError::TooManyHeaders) => {}
        Err(e) => panic!("upstream head refused ({e}): {:?}", String::from_utf8_lossy(&out)),
    }
}

fn response(data: &[u8]) {
    let Ok(Some((len, head))) = parse_response(data) else {
        return;
    };
    assert!(len <= data.len());
    assert!((100..=999).contains(&head.status));
    for method in ["GET", "HEAD"] {
        match response_body(method, &head) {
            Ok(BodyKind::Length(n)) => assert!(n > 0),
            Ok(kind) if method == "HEAD" => assert_eq!(kind, BodyKind::Empty),
            _ => {}
        }
    }
}
