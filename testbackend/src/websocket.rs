//! `/ws`: the WebSocket handshake (RFC 6455) and an echo of data frames, fragments
//! included; ping is answered with pong, close with close.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest as _, Sha1};

use crate::head::{Request, Version};
use crate::response::{Conn, Ctx, header_safe, respond};

/// Largest WebSocket frame payload accepted; larger frames are closed with 1009.
const WS_MAX_PAYLOAD: u64 = 32 << 20;
/// The GUID appended to `Sec-WebSocket-Key` (RFC 6455 section 1.3).
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64 of the SHA-1 of key and GUID.
fn websocket_accept(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.trim().as_bytes());
    sha1.update(WS_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Answers an upgrade with 101 and echoes frames until the client closes; anything else
/// that is not a version 13 upgrade gets 426. Returns whether the connection stays open.
pub fn serve_websocket(conn: &mut Conn, req: &Request, ctx: &Ctx) -> io::Result<bool> {
    let key = req
        .header("sec-websocket-key")
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let upgrade = req.method == "GET"
        && req.version == Version::Http11
        && req.has_token("upgrade", "websocket")
        && req.has_token("connection", "upgrade");
    let (Some(key), true) = (key, upgrade) else {
        let msg = "expected a WebSocket upgrade: GET over HTTP/1.1 with Connection: Upgrade, \
                   Upgrade: websocket and Sec-WebSocket-Key\n";
        let headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Upgrade", "websocket"),
        ];
        respond(&mut conn.writer, ctx, 426, &headers, msg.as_bytes())?;
        return Ok(ctx.keep_alive);
    };
    if req
        .header("sec-websocket-version")
        .is_some_and(|v| v.trim() != "13")
    {
        let headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Sec-WebSocket-Version", "13"),
        ];
        let msg = b"only WebSocket version 13 is supported\n";
        respond(&mut conn.writer, ctx, 426, &headers, msg)?;
        return Ok(ctx.keep_alive);
    }
    conn.writer.write_all(&switching_protocols(req, ctx, key))?;
    conn.writer.flush()?;
    let result = websocket_echo(&mut conn.reader, &mut conn.writer);
    let _ = conn.writer.shutdown(Shutdown::Write);
    result.map(|()| false)
}

/// The 101 response head that accepts the upgrade.
fn switching_protocols(req: &Request, ctx: &Ctx, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let _ = write!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        websocket_accept(key)
    );
    // Agree to the first subprotocol offered, so clients that insist on one still connect.
    let protocol = req
        .header_values("sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .next();
    if let Some(p) = protocol
        .map(str::trim)
        .filter(|p| !p.is_empty() && header_safe(p))
    {
        let _ = write!(out, "Sec-WebSocket-Protocol: {p}\r\n");
    }
    if let Some(name) = ctx.name.filter(|n| header_safe(n)) {
        let _ = write!(out, "X-Backend-Name: {name}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

#[derive(Debug)]
enum FrameError {
    Io(io::Error),
    /// Close the connection with this status code.
    Close(u16),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Reads one client frame (which must be masked) and unmasks its payload.
fn read_frame(r: &mut impl Read) -> Result<Frame, FrameError> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h)?;
    let fin = h[0] & 0x80 != 0;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b)?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    if h[0] & 0x70 != 0 || !masked || !matches!(opcode, 0..=2 | 8..=10) {
        return Err(FrameError::Close(1002));
    }
    if opcode >= 8 && (!fin || len > 125) {
        return Err(FrameError::Close(1002));
    }
    if len > WS_MAX_PAYLOAD {
        return Err(FrameError::Close(1009));
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask)?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Frame {
        fin,
        opcode,
        payload,
    })
}

/// Writes one unmasked server frame.
fn write_frame(w: &mut impl Write, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    w.write_all(&out)?;
    w.flush()
}

/// The payload of the close frame that answers a client's close: its status code, or 1002
/// for a lone byte or a code that may not be sent.
fn close_reply(payload: &[u8]) -> Vec<u8> {
    match payload {
        [] => Vec::new(),
        [_] => 1002u16.to_be_bytes().to_vec(),
        [hi, lo, ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let valid = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if valid { code } else { 1002 }.to_be_bytes().to_vec()
        }
    }
}

/// Echoes data frames (fragments included) as they come, answers ping with pong, and
/// returns once a close frame has been answered.
fn websocket_echo(r: &mut impl Read, w: &mut impl Write) -> io::Result<()> {
    loop {
        match read_frame(r) {
            Ok(Frame {
                fin,
                opcode: opcode @ 0..=2,
                payload,
            }) => write_frame(w, fin, opcode, &payload)?,
            Ok(Frame {
                opcode: 9, payload, ..
            }) => write_frame(w, true, 10, &payload)?,
            Ok(Frame { opcode: 10, .. }) => {}
            Ok(Frame { payload, .. }) => return write_frame(w, true, 8, &close_reply(&payload)),
            Err(FrameError::Close(code)) => return write_frame(w, true, 8, &code.to_be_bytes()),
            Err(FrameError::Io(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_known_vectors() {
        let sha1 = |data: &[u8]| hex(&Sha1::digest(data));
        assert_eq!(sha1(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        // The engine is the standard alphabet with padding (RFC 4648 section 4).
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(BASE64.encode(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(BASE64.encode([0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn websocket_accept_rfc6455_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            websocket_accept(" dGhlIHNhbXBsZSBub25jZQ== "),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn websocket_frames() {
        // RFC 6455 section 5.7: a masked "Hello".
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let frame = read_frame(&mut &masked[..]).unwrap();
        assert_eq!(
            frame,
            Frame {
                fin: true,
                opcode: 1,
                payload: b"Hello".to_vec()
            }
        );
        let mut out = Vec::new();
        write_frame(&mut out, true, 1, b"Hello").unwrap();
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut out = Vec::new();
        write_frame(&mut out, true, 2, &[0; 256]).unwrap();
        assert_eq!(out[..4], [0x82, 126, 1, 0]);
        // Unmasked client frames are a protocol error.
        assert!(matches!(
            read_frame(&mut &[0x81, 0x00][..]),
            Err(FrameError::Close(1002))
        ));

        // Ping then close, through the echo loop.
        let input = [0x89, 0x80, 1, 2, 3, 4, 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
        let mut out = Vec::new();
        websocket_echo(&mut &input[..], &mut out).unwrap();
        assert_eq!(out, [0x8a, 0x00, 0x88, 0x02, 0x03, 0xe8]);
    }

    #[test]
    fn close_replies() {
        assert_eq!(close_reply(&[]), b"");
        assert_eq!(close_reply(&[3]), 1002u16.to_be_bytes());
        assert_eq!(
            close_reply(&[0x03, 0xe8, b'b', b'y', b'e']),
            1000u16.to_be_bytes()
        );
        assert_eq!(close_reply(&1005u16.to_be_bytes()), 1002u16.to_be_bytes());
        assert_eq!(close_reply(&4000u16.to_be_bytes()), 4000u16.to_be_bytes());
    }
}
