//! Request bodies: how one is framed (`Content-Length`, chunked or none), a reader that
//! decodes it and stops at its end, and reading it in pieces.

use std::io::{self, BufRead, Read};

use crate::head::{MAX_HEAD_BYTES, Request, Version};

/// Longest chunk-size line (size plus extensions).
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// How the request body is delimited, or the status and reason to refuse it with.
pub fn request_framing(req: &Request) -> Result<Framing, (u16, &'static str)> {
    if req.header("transfer-encoding").is_some() {
        if req.header("content-length").is_some() {
            return Err((400, "both Transfer-Encoding and Content-Length"));
        }
        if req.version == Version::Http10 {
            return Err((400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<&str> = req
            .header_values("transfer-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            [.., last] if last.eq_ignore_ascii_case("chunked") => {
                Err((501, "only the chunked transfer coding is supported"))
            }
            _ => Err((400, "Transfer-Encoding does not end in chunked")),
        };
    }
    let mut length = None;
    for part in req
        .header_values("content-length")
        .flat_map(|v| v.split(','))
    {
        let part = part.trim();
        if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err((400, "invalid Content-Length"));
        }
        let n: u64 = part.parse().map_err(|_| (400, "invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err((400, "conflicting Content-Length values"));
        }
        length = Some(n);
    }
    Ok(match length {
        None | Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

#[derive(Clone, Copy, Debug)]
enum BodyState {
    /// This many bytes of a Content-Length body, or of the current chunk, are left.
    Fixed {
        left: u64,
        chunked: bool,
    },
    ChunkSize,
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Done,
}

/// Reads a request body off the connection, decoding chunked framing. Ends at the body's
/// end and leaves whatever follows (a pipelined request) in `inner`.
pub struct Body<R> {
    inner: R,
    state: BodyState,
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn ended_early(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg)
}

impl<R: BufRead> Body<R> {
    pub fn new(inner: R, framing: Framing) -> Self {
        let state = match framing {
            Framing::None => BodyState::Done,
            Framing::Length(left) => BodyState::Fixed {
                left,
                chunked: false,
            },
            Framing::Chunked => BodyState::ChunkSize,
        };
        Body { inner, state }
    }

    /// One line of chunked framing, without its line ending.
    fn framing_line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self
            .inner
            .by_ref()
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n > max {
            return Err(invalid("chunked framing line too long"));
        }
        if line.last() != Some(&b'\n') {
            return Err(ended_early("chunked body ended early"));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    fn skip_trailers(&mut self) -> io::Result<()> {
        let mut total = 0;
        loop {
            let line = self.framing_line(MAX_HEAD_BYTES)?;
            if line.is_empty() {
                return Ok(());
            }
            total += line.len();
            if total > MAX_HEAD_BYTES {
                return Err(invalid("chunked trailers too large"));
            }
        }
    }

    /// Reads data of a Content-Length body or of a chunk, at most `left` bytes.
    fn read_fixed(&mut self, buf: &mut [u8], left: u64, chunked: bool) -> io::Result<usize> {
        let max = (buf.len() as u64).min(left) as usize;
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(ended_early("request body ended early"));
        }
        let left = left - n as u64;
        self.state = match (left, chunked) {
            (0, true) => BodyState::ChunkEnd,
            (0, false) => BodyState::Done,
            _ => BodyState::Fixed { left, chunked },
        };
        Ok(n)
    }
}

fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = trim_ows(&line[..end]);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid("invalid chunk size"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| invalid("invalid chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| invalid("invalid chunk size"))
}

/// `b` without the spaces and tabs around it.
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Fixed { left, chunked } => return self.read_fixed(buf, left, chunked),
                BodyState::ChunkSize => {
                    let line = self.framing_line(MAX_CHUNK_LINE)?;
                    let size = parse_chunk_size(&line)?;
                    if size == 0 {
                        self.skip_trailers()?;
                        self.state = BodyState::Done;
                    } else {
                        self.state = BodyState::Fixed {
                            left: size,
                            chunked: true,
                        };
                    }
                }
                BodyState::ChunkEnd => {
                    if !self.framing_line(2)?.is_empty() {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    self.state = BodyState::ChunkSize;
                }
            }
        }
    }
}

/// Reads `r` to its end in fixed-size pieces, handing each to `f`. Returns the length.
pub fn for_each_piece(r: &mut impl Read, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                total += n as u64;
                f(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Decodes `input` as a chunked body; returns the body and what is left after it.
    fn dechunk(input: &[u8], read_size: usize) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut cursor = Cursor::new(input);
        let mut body = Vec::new();
        {
            let mut reader = Body::new(&mut cursor, Framing::Chunked);
            let mut buf = vec![0u8; read_size];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
            }
        }
        let pos = cursor.position() as usize;
        Ok((body, input[pos..].to_vec()))
    }

    #[test]
    fn chunked_decoding() {
        let input =
            b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        for read_size in [1, 3, 1024] {
            let (body, rest) = dechunk(input, read_size).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(rest, b"GET / HTTP/1.1\r\n", "pipelined bytes stay unread");
        }
        // Extensions, upper-case hex, leading zeros, bare LF, trailers.
        let input =
            b"0A;name=value\r\n0123456789\r\n001 ; x\n!\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";
        let (body, rest) = dechunk(input, 64).unwrap();
        assert_eq!(body, b"0123456789!");
        assert!(rest.is_empty());
        // An empty body.
        assert_eq!(dechunk(b"0\r\n\r\n", 8).unwrap().0, b"");
    }

    #[test]
    fn chunked_decoding_rejects_malformed_input() {
        let bad: [&[u8]; 9] = [
            b"x\r\nabc\r\n0\r\n\r\n",         // not hex
            b"\r\nabc\r\n0\r\n\r\n",          // empty size
            b"3\r\nabcd\r\n0\r\n\r\n",        // data longer than the size
            b"3\r\nab",                       // truncated data
            b"3\r\nabc\r\n0\r\n",             // no end of trailers
            b"ffffffffffffffffff\r\nabc\r\n", // size overflows
            b"-1\r\nabc\r\n0\r\n\r\n",        // negative
            b"3 4\r\nabc\r\n0\r\n\r\n",       // junk inside the size
            b"3\r\r\nabc\r\n0\r\n\r\n",       // a stray CR after the size
        ];
        for input in bad {
            assert!(
                dechunk(input, 16).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn content_length_body_stops_at_its_end() {
        let mut cursor = Cursor::new(&b"helloNEXT"[..]);
        let mut body = Vec::new();
        Body::new(&mut cursor, Framing::Length(5))
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(cursor.position(), 5);
        let mut short = Cursor::new(&b"hel"[..]);
        let err = Body::new(&mut short, Framing::Length(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn body_framing() {
        let req = |version, headers: &[(&str, &str)]| Request {
            method: "POST".into(),
            target: "/".into(),
            version,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        };
        let v11 = Version::Http11;
        assert_eq!(request_framing(&req(v11, &[])), Ok(Framing::None));
        assert_eq!(
            request_framing(&req(v11, &[("Content-Length", "0")])),
            Ok(Framing::None)
        );
        assert_eq!(
            request_framing(&req(v11, &[("content-length", "12")])),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            request_framing(&req(
                v11,
                &[("Content-Length", "5, 5"), ("Content-Length", "5")]
            )),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            request_framing(&req(v11, &[("Transfer-Encoding", "Chunked")])),
            Ok(Framing::Chunked)
        );
        let refused: [&[(&str, &str)]; 6] = [
            &[("Content-Length", "5"), ("Content-Length", "6")],
            &[("Content-Length", "+5")],
            &[("Content-Length", "")],
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
            &[("Transfer-Encoding", "chunked, gzip")],
            &[("Transfer-Encoding", "gzip, chunked")],
        ];
        for headers in refused {
            assert!(request_framing(&req(v11, headers)).is_err(), "{headers:?}");
        }
        assert!(
            request_framing(&req(Version::Http10, &[("Transfer-Encoding", "chunked")])).is_err()
        );
    }
}
