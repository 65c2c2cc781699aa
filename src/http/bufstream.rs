//! A read buffer in front of a socket: bytes read past a request or response head stay here
//! for the body reader, and writes go straight through to the socket.

use std::io::{self, BufRead, Read, Write};
use std::time::Duration;

use crate::base::Socket;

/// Bytes read onto the stack when the buffer is not allocated (a typical request head fits).
const FIRST_READ: usize = 2048;

/// A socket with a growable read buffer (`pos..end` holds unread bytes). The buffer is
/// allocated on the first read that needs it and can be given back with `release` while the
/// connection waits idle, so thousands of idle keep-alive connections hold no read buffers.
pub struct BufStream<S> {
    pub inner: S,
    buf: Vec<u8>,
    initial: usize,
    pos: usize,
    end: usize,
    max: usize,
    /// The timeouts last set through this wrapper (so an unchanged one costs no syscall).
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
}

impl<S> BufStream<S> {
    /// `initial` bytes of buffer, growable up to `max` by `fill_more`.
    pub fn new(inner: S, initial: usize, max: usize) -> Self {
        BufStream {
            inner,
            buf: Vec::new(),
            initial: initial.max(1),
            pos: 0,
            end: 0,
            max: max.max(initial.max(1)),
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Like `new`, with `bytes` already read from the socket (and not yet consumed).
    pub fn with_buffered(inner: S, bytes: Vec<u8>, initial: usize, max: usize) -> Self {
        let mut s = BufStream::new(inner, initial, max);
        s.end = bytes.len();
        s.buf = bytes;
        s
    }

    /// The socket and the bytes read from it but not consumed.
    pub fn into_parts(mut self) -> (S, Vec<u8>) {
        self.buf.truncate(self.end);
        self.buf.drain(..self.pos);
        (self.inner, self.buf)
    }

    /// The unread bytes.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Marks `n` buffered bytes as read.
    pub fn consume_buffered(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        }
    }

    /// Has the buffer reached its maximum with no room to read into?
    pub fn is_full(&self) -> bool {
        self.end - self.pos >= self.max
    }

    /// Frees the read buffer if nothing is left unread in it (the next read allocates it again).
    /// Returns whether it did. See also `Socket::release_buffers`.
    pub fn release(&mut self) -> bool {
        if self.pos != self.end {
            return false;
        }
        self.buf = Vec::new();
        self.pos = 0;
        self.end = 0;
        true
    }
}

impl<S: Socket> BufStream<S> {
    /// Sets the socket's read timeout unless it is already `t` (a setsockopt per request
    /// is measurable on the warm path).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if self.read_timeout != Some(t) {
            self.inner.set_read_timeout(t)?;
            self.read_timeout = Some(t);
        }
        Ok(())
    }

    /// Like `set_read_timeout`, for writes.
    pub fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if self.write_timeout != Some(t) {
            self.inner.set_write_timeout(t)?;
            self.write_timeout = Some(t);
        }
        Ok(())
    }
}

impl<S: Read> BufStream<S> {
    /// Reads more bytes after the unread ones, compacting or growing the buffer first.
    /// Returns 0 at end of stream. Fails with `OutOfMemory` kind when the buffer is at its maximum.
    pub fn fill_more(&mut self) -> io::Result<usize> {
        if self.buf.is_empty() {
            return self.first_fill();
        }
        if self.end == self.buf.len() {
            self.room();
        }
        if self.end == self.buf.len() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            } else if self.buf.len() < self.max {
                let new_len = (self.buf.len() * 2).min(self.max);
                self.buf.resize(new_len, 0);
            } else {
                return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer full"));
            }
        }
        let n = self.inner.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }
}

impl<S: Read> BufStream<S> {
    /// Fills an unallocated buffer: reads into a small stack buffer first and allocates only
    /// once bytes arrived, so a connection blocked here waiting for its next request holds no
    /// heap buffer. Kept out of line so its stack buffer is not part of the callers' frames.
    #[inline(never)]
    fn first_fill(&mut self) -> io::Result<usize> {
        let mut first = [0u8; FIRST_READ];
        let n = self.inner.read(&mut first[..FIRST_READ.min(self.max)])?;
        if n > 0 {
            // Only the bytes read are written: the rest of the capacity is zeroed (by
            // `room`) only if a head or body needs more than this first read.
            self.buf = Vec::with_capacity(self.initial.max(n));
            self.buf.extend_from_slice(&first[..n]);
            self.pos = 0;
            self.end = n;
        }
        Ok(n)
    }

    /// Makes the whole allocated capacity (up to `max`) readable into.
    fn room(&mut self) {
        let cap = self.buf.capacity().min(self.max);
        if self.buf.len() < cap {
            self.buf.resize(cap, 0);
        }
    }
}

impl<S: Read> Read for BufStream<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end && out.len() >= self.buf.len() {
            return self.inner.read(out);
        }
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<S: Read> BufRead for BufStream<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            if self.buf.is_empty() {
                self.first_fill()?;
            } else {
                self.room();
                self.end = self.inner.read(&mut self.buf)?;
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }
    fn consume(&mut self, n: usize) {
        self.consume_buffered(n);
    }
}

impl<S: Write> Write for BufStream<S> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.inner.write(b)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn grows_until_max_then_reports_full() {
        let data = vec![b'x'; 100];
        let mut s = BufStream::new(Cursor::new(data), 16, 64);
        let mut total = 0;
        loop {
            match s.fill_more() {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
                    break;
                }
            }
        }
        assert_eq!(total, 64);
        assert!(s.is_full());
        s.consume_buffered(10);
        assert_eq!(s.buffered().len(), 54);
        assert!(s.fill_more().unwrap() > 0);
    }

    #[test]
    fn the_buffer_is_allocated_on_first_read_and_released_only_when_drained() {
        // More than FIRST_READ bytes: the first fill stops there, the rest follows.
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut s = BufStream::new(Cursor::new(data.clone()), 4096, 8192);
        assert_eq!(s.buf.capacity(), 0);
        assert_eq!(s.fill_more().unwrap(), FIRST_READ);
        assert_eq!(s.buf.len(), FIRST_READ);
        assert_eq!(s.buf.capacity(), 4096);
        while s.fill_more().unwrap() > 0 {}
        assert_eq!(s.buffered(), &data[..]);
        assert!(!s.release(), "unread bytes must survive a release");
        assert_eq!(s.buffered(), &data[..]);
        s.consume_buffered(data.len());
        assert!(s.release());
        assert_eq!(s.buf.capacity(), 0);
        // After a release, BufRead allocates again; Read of a large slice goes straight through.
        let mut s = BufStream::new(Cursor::new(b"abcdefgh".to_vec()), 4, 4);
        assert_eq!(s.fill_buf().unwrap(), b"abcd");
        s.consume(4);
        assert!(s.release());
        assert_eq!(s.fill_buf().unwrap(), b"efgh");
        assert_eq!(s.buf.capacity(), 4);
        let mut s = BufStream::new(Cursor::new(data.clone()), 16, 16);
        let mut out = vec![0; 100];
        assert_eq!(s.read(&mut out).unwrap(), 100);
        assert_eq!(s.buf.capacity(), 0);
        assert_eq!(&out[..], &data[..100]);
    }

    #[test]
    fn bytes_read_elsewhere_come_first_and_unread_ones_come_back() {
        let mut s =
            BufStream::with_buffered(Cursor::new(b" world".to_vec()), b"hello".to_vec(), 4, 64);
        assert_eq!(s.buffered(), b"hello");
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
        let mut s =
            BufStream::with_buffered(Cursor::new(Vec::<u8>::new()), b"GET / x".to_vec(), 4, 64);
        s.consume_buffered(4);
        let (_, rest) = s.into_parts();
        assert_eq!(rest, b"/ x");
    }

    #[test]
    fn read_drains_buffer_then_inner() {
        let mut s = BufStream::new(Cursor::new(b"hello world".to_vec()), 4, 4);
        s.fill_more().unwrap();
        assert_eq!(s.buffered(), b"hell");
        s.consume_buffered(2);
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out, "llo world");
    }
}
