//! Streaming message bodies from one side to the other: exact-length copy, chunked decoding
//! and re-encoding, read-until-close. Never holds more than one buffer of a body.

use std::io::{self, BufRead, IoSlice, Write};

use super::head::BodyKind;

/// Longest chunk-size line (size plus extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted (trailers are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Why copying a body stopped early.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the source failed (or it ended before the framing said).
    Read(io::Error),
    /// Writing to the destination failed.
    Write(io::Error),
    /// The source's chunked framing is malformed.
    Malformed(&'static str),
    /// The body exceeded the allowed size.
    TooLarge,
}

impl CopyError {
    /// Reading the source timed out (a stalled or too slow body).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CopyError::Read(e)
            if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock))
    }
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::Read(e) => write!(f, "reading body: {e}"),
            CopyError::Write(e) => write!(f, "writing body: {e}"),
            CopyError::Malformed(m) => write!(f, "malformed chunked body: {m}"),
            CopyError::TooLarge => write!(f, "body too large"),
        }
    }
}

/// Writes every slice fully, using vectored writes (one syscall for head and body when possible).
pub fn write_all_vectored<W: Write + ?Sized>(
    w: &mut W,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn eof() -> CopyError {
    CopyError::Read(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-body",
    ))
}

/// Streams a body framed as `kind` from `src` to `dst`. With `chunked_out`, a `Chunked` or
/// `UntilClose` body is written with chunked framing (each piece read becomes one chunk);
/// otherwise bytes are copied as they are. `limit` caps the body size. `progress` is called
/// after each piece with its size. Returns the body's size.
pub fn copy_body<R: BufRead + ?Sized, W: Write + ?Sized>(
    kind: BodyKind,
    src: &mut R,
    dst: &mut W,
    chunked_out: bool,
    limit: Option<u64>,
    progress: &mut dyn FnMut(usize),
) -> Result<u64, CopyError> {
    let mut total: u64 = 0;
    let mut emit = |dst: &mut W, data: &[u8], total: &mut u64| -> Result<(), CopyError> {
        *total += data.len() as u64;
        if limit.is_some_and(|l| *total > l) {
            return Err(CopyError::TooLarge);
        }
        if chunked_out {
            let size = format!("{:x}\r\n", data.len());
            write_all_vectored(
                dst,
                &mut [
                    IoSlice::new(size.as_bytes()),
                    IoSlice::new(data),
                    IoSlice::new(b"\r\n"),
                ],
            )
        } else {
            dst.write_all(data)
        }
        .map_err(CopyError::Write)?;
        progress(data.len());
        Ok(())
    };
    match kind {
        BodyKind::Empty => {}
        BodyKind::Length(mut left) => {
            while left > 0 {
                let buf = src.fill_buf().map_err(CopyError::Read)?;
                if buf.is_empty() {
                    return Err(eof());
                }
                let n = buf.len().min(left.min(usize::MAX as u64) as usize);
                emit(dst, &buf[..n], &mut total)?;
                src.consume(n);
                left -= n as u64;
            }
        }
        BodyKind::UntilClose => loop {
            let buf = src.fill_buf().map_err(CopyError::Read)?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            emit(dst, buf, &mut total)?;
            src.consume(n);
        },
        BodyKind::Chunked => loop {
            let size = read_chunk_size(src)?;
            if size == 0 {
                skip_trailers(src)?;
                break;
            }
            let mut left = size;
            while left > 0 {
                let buf = src.fill_buf().map_err(CopyError::Read)?;
                if buf.is_empty() {
                    return Err(eof());
                }
                let n = buf.len().min(left.min(usize::MAX as u64) as usize);
                emit(dst, &buf[..n], &mut total)?;
                src.consume(n);
                left -= n as u64;
            }
            expect_crlf(src)?;
        },
    }
    if chunked_out {
        dst.write_all(b"0\r\n\r\n").map_err(CopyError::Write)?;
    }
    Ok(total)
}

/// Reads one CRLF-terminated line (without the CRLF), at most `max` bytes. Bare LF is refused.
fn read_line<R: BufRead + ?Sized>(src: &mut R, max: usize) -> Result<Vec<u8>, CopyError> {
    let mut line = Vec::new();
    loop {
        let buf = src.fill_buf().map_err(CopyError::Read)?;
        if buf.is_empty() {
            return Err(eof());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&buf[..i]);
                src.consume(i + 1);
                if line.pop() != Some(b'\r') {
                    return Err(CopyError::Malformed("line not ended by CRLF"));
                }
                if line.len() > max {
                    return Err(CopyError::Malformed("chunk line too long"));
                }
                return Ok(line);
            }
            None => {
                let n = buf.len();
                line.extend_from_slice(buf);
                src.consume(n);
                if line.len() > max + 1 {
                    return Err(CopyError::Malformed("chunk line too long"));
                }
            }
        }
    }
}

/// Parses `1a;ext=v` into 26. Hex digits only, at most 15 of them; extensions are checked
/// for control bytes and dropped.
pub fn parse_chunk_size(line: &[u8]) -> Result<u64, CopyError> {
    let (digits, ext) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, &line[..0]),
    };
    let digits = trim_ows(digits);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(CopyError::Malformed("invalid chunk size"));
    }
    if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(CopyError::Malformed("control character in chunk extension"));
    }
    let s = std::str::from_utf8(digits).map_err(|_| CopyError::Malformed("invalid chunk size"))?;
    u64::from_str_radix(s, 16).map_err(|_| CopyError::Malformed("invalid chunk size"))
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn read_chunk_size<R: BufRead + ?Sized>(src: &mut R) -> Result<u64, CopyError> {
    let line = read_line(src, MAX_CHUNK_LINE)?;
    parse_chunk_size(&line)
}

fn expect_crlf<R: BufRead + ?Sized>(src: &mut R) -> Result<(), CopyError> {
    let line = read_line(src, 0)?;
    if line.is_empty() {
        Ok(())
    } else {
        Err(CopyError::Malformed("chunk data longer than its size"))
    }
}

fn skip_trailers<R: BufRead + ?Sized>(src: &mut R) -> Result<(), CopyError> {
    let mut seen = 0;
    loop {
        let line = read_line(src, MAX_TRAILERS)?;
        if line.is_empty() {
            return Ok(());
        }
        seen += line.len();
        if seen > MAX_TRAILERS {
            return Err(CopyError::Malformed("trailers too large"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn copy(kind: BodyKind, input: &[u8], chunked_out: bool) -> Result<(Vec<u8>, u64), CopyError> {
        let mut src = Cursor::new(input.to_vec());
        let mut out = Vec::new();
        let n = copy_body(kind, &mut src, &mut out, chunked_out, None, &mut |_| {})?;
        Ok((out, n))
    }

    #[test]
    fn length_copies_exactly() {
        let (out, n) = copy(BodyKind::Length(5), b"hello world", false).unwrap();
        assert_eq!((out.as_slice(), n), (&b"hello"[..], 5));
        assert!(matches!(
            copy(BodyKind::Length(50), b"short", false),
            Err(CopyError::Read(_))
        ));
    }

    #[test]
    fn chunked_decodes_and_reencodes() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT";
        let (out, n) = copy(BodyKind::Chunked, input, false).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(n, 11);
        let (out, _) = copy(BodyKind::Chunked, input, true).unwrap();
        assert_eq!(out, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    }

    #[test]
    fn until_close_can_be_chunked() {
        let (out, _) = copy(BodyKind::UntilClose, b"abc", true).unwrap();
        assert_eq!(out, b"3\r\nabc\r\n0\r\n\r\n");
        let (out, _) = copy(BodyKind::UntilClose, b"abc", false).unwrap();
        assert_eq!(out, b"abc");
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhel",
        ] {
            assert!(
                copy(BodyKind::Chunked, bad, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_ext = format!(
            "5;{}\r\nhello\r\n0\r\n\r\n",
            "a".repeat(MAX_CHUNK_LINE + 10)
        );
        assert!(copy(BodyKind::Chunked, long_ext.as_bytes(), false).is_err());
    }

    #[test]
    fn limit_is_enforced() {
        let mut src = Cursor::new(b"hello world".to_vec());
        let r = copy_body(
            BodyKind::Length(11),
            &mut src,
            &mut Vec::new(),
            false,
            Some(5),
            &mut |_| {},
        );
        assert!(matches!(r, Err(CopyError::TooLarge)));
    }

    #[test]
    fn chunk_size_parsing() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"A ; name=value").unwrap(), 10);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"0x5").is_err());
    }
}
