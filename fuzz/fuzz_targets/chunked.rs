//! The chunked body decoder (`copy_body` with `BodyKind::Chunked`) and `parse_chunk_size`.
//!
//! The input is the raw bytes that follow a head. Properties checked:
//! - decoding gives the same verdict and bytes whether the reader hands out everything at once
//!   (`Cursor`) or a few bytes at a time (`BufReader` with a tiny buffer): lines split across
//!   reads must not change the result;
//! - the returned size equals the bytes written (plain output) and the sum of `progress` calls;
//! - with `chunked_out`, the re-encoded output decodes back to the same bytes, consumes all of
//!   itself, and nothing follows its last chunk;
//! - `limit` is exact: the decoded size passes, one byte less is `TooLarge`;
//! - `parse_chunk_size` accepts only 1-15 hex digits (optional spaces/tabs) and returns their value.
#![no_main]

use std::io::{BufRead, BufReader, Cursor};

use libfuzzer_sys::fuzz_target;
use wakeproxy::http::body::{copy_body, parse_chunk_size, CopyError};
use wakeproxy::http::head::BodyKind;

/// Decodes a chunked body from `src`: (result, output, sum of the progress calls).
fn decode<R: BufRead>(src: &mut R, chunked_out: bool, limit: Option<u64>) -> (Result<u64, CopyError>, Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut progress = 0u64;
    let r = copy_body(BodyKind::Chunked, src, &mut out, chunked_out, limit, &mut |n| progress += n as u64);
    (r, out, progress)
}

/// As `decode` over a slice, also returning how many bytes were consumed.
fn decode_slice(input: &[u8], chunked_out: bool, limit: Option<u64>) -> (Result<u64, CopyError>, Vec<u8>, u64, usize) {
    let mut src = Cursor::new(input);
    let (r, out, progress) = decode(&mut src, chunked_out, limit);
    (r, out, progress, src.position() as usize)
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        check_chunk_size(line);
    }

    // Plain output, whole input at once.
    let (plain, body, progress, used) = decode_slice(data, false, None);
    if let Ok(n) = plain {
        assert_eq!(n, body.len() as u64);
        assert_eq!(progress, n);
        assert!(used <= data.len());
    }

    // Same decoding when the reader hands out 1, 2, 3 or 7 bytes at a time.
    for cap in [1, 2, 3, 7] {
        let mut src = BufReader::with_capacity(cap, Cursor::new(data));
        let (r, out, _) = decode(&mut src, false, None);
        match (&plain, &r) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "size differs with a {cap}-byte buffer");
                assert_eq!(body, out, "bytes differ with a {cap}-byte buffer");
            }
            (Err(_), Err(_)) => {}
            _ => panic!("verdict differs with a {cap}-byte buffer: whole {plain:?}, split {r:?}"),
        }
    }

    // Chunked output decodes back to the same bytes.
    let (re, encoded, progress, _) = decode_slice(data, true, None);
    match (&plain, &re) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert_eq!(progress, *a);
            let (back, decoded, _, used) = decode_slice(&encoded, false, None);
            assert_eq!(back.ok(), Some(*a), "re-encoded body does not decode: {encoded:?}");
            assert_eq!(decoded, body, "re-encoded body decodes to other bytes");
            assert_eq!(used, encoded.len(), "bytes left after the re-encoded body");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("chunked_out changed the verdict: plain {plain:?}, chunked {re:?}"),
    }

    // The limit is exact.
    if let Ok(n) = plain {
        let (r, _, _, _) = decode_slice(data, false, Some(n));
        assert_eq!(r.ok(), Some(n), "limit equal to the size refused");
        if n > 0 {
            let (r, _, _, _) = decode_slice(data, true, Some(n - 1));
            assert!(matches!(r, Err(CopyError::TooLarge)), "limit below the size gave {r:?}");
        }
    }
});

/// `parse_chunk_size` against a simple model: the part before the first `;`, trimmed of spaces
/// and tabs, must be 1-15 hex digits; extensions must hold no control bytes except tab.
fn check_chunk_size(line: &[u8]) {
    let got = parse_chunk_size(line);
    let (digits, ext) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, &line[..0]),
    };
    let digits = trim(digits);
    let valid_digits = (1..=15).contains(&digits.len()) && digits.iter().all(u8::is_ascii_hexdigit);
    let valid_ext = !ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
    match got {
        Ok(n) => {
            assert!(valid_digits && valid_ext, "accepted {line:?}");
            let want = u64::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap();
            assert_eq!(n, want);
        }
        Err(CopyError::Malformed(_)) => assert!(!(valid_digits && valid_ext), "refused {line:?}"),
        Err(e) => panic!("unexpected error kind {e:?} for {line:?}"),
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != b' ' && c != b'\t').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b' ' && c != b'\t').map_or(start, |i| i + 1);
    &b[start..end]
}
