//! Turning a `/containers/{id}/logs` body into text: the 8-byte frame format of non-TTY containers, or raw bytes.

/// One frame of the multiplexed log stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Frame<'a> {
    /// 0 stdin, 1 stdout, 2 stderr.
    pub(super) stream: u8,
    pub(super) data: &'a [u8],
}

/// Splits `buf` into frames: `[stream, 0, 0, 0, size (u32 big-endian)]` then `size` bytes.
///
/// `None` if `buf` is not entirely a sequence of well-formed frames (a TTY container's raw
/// output, in practice); a last frame cut short is kept, since the caller may have limited
/// the read.
pub(super) fn frames(mut buf: &[u8]) -> Option<Vec<Frame<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < 8 || buf[0] > 2 || buf[1..4] != [0, 0, 0] {
            return None;
        }
        let size = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        let end = (8 + size).min(buf.len());
        out.push(Frame {
            stream: buf[0],
            data: &buf[8..end],
        });
        buf = &buf[end..];
    }
    Some(out)
}

/// The text of a logs body: demultiplexed when `multiplexed` is true or the body parses as
/// frames, raw otherwise; invalid UTF-8 is replaced.
pub(super) fn demux_to_string(body: &[u8], multiplexed: bool) -> String {
    match frames(body) {
        Some(frames) if multiplexed || !frames.is_empty() => {
            let mut text = Vec::with_capacity(body.len());
            for f in frames {
                text.extend_from_slice(f.data);
            }
            String::from_utf8_lossy(&text).into_owned()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn demultiplexes_stdout_and_stderr_in_order() {
        let mut body = frame(1, b"listening on :8000\n");
        body.extend(frame(2, b"EXIT_AT_START=3, exiting\n"));
        body.extend(frame(1, b""));
        body.extend(frame(1, b"bye\n"));
        assert_eq!(
            demux_to_string(&body, false),
            "listening on :8000\nEXIT_AT_START=3, exiting\nbye\n"
        );
        let f = frames(&body).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[1].stream, 2);
    }

    #[test]
    fn large_frame_size_uses_all_four_bytes() {
        let data = vec![b'x'; 70_000];
        let body = frame(1, &data);
        assert_eq!(body[4..8], [0, 1, 0x11, 0x70]);
        assert_eq!(demux_to_string(&body, true).len(), 70_000);
    }

    #[test]
    fn raw_tty_output_is_kept_as_is() {
        assert_eq!(
            demux_to_string(b"hello\r\nworld\r\n", false),
            "hello\r\nworld\r\n"
        );
        assert_eq!(demux_to_string(b"", false), "");
        // Eight bytes of text are not a frame header.
        assert_eq!(demux_to_string(b"abcdefgh", false), "abcdefgh");
    }

    #[test]
    fn truncated_last_frame_and_invalid_utf8() {
        let mut body = frame(1, b"ok\n");
        body.extend(frame(2, b"\xffcut"));
        body.truncate(body.len() - 2);
        assert_eq!(demux_to_string(&body, true), "ok\n\u{fffd}c");
    }
}
