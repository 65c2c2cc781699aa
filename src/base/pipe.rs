//! The kernel pipe that `splice(2)` moves socket bytes through: one per thread, made on first
//! use and reused, and never handed on while it holds bytes of a transfer that broke off.

use std::cell::RefCell;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_getpipe_size, fcntl_setpipe_size, splice};

/// The capacity asked of a pipe (`F_SETPIPE_SZ`; at most `/proc/sys/fs/pipe-max-size`, 1 MiB by
/// default), for at most `MAX_LARGE` pipes at a time. Measured (docs/benchmarks.md, "Splicing
/// bodies"): against the default 64 KiB, a 1 MiB pipe moved 10 MiB bodies with 15–25% less CPU.
pub(crate) const PIPE_SIZE: usize = 1024 * 1024;
/// The kernel's default pipe capacity.
const DEFAULT_SIZE: usize = 64 * 1024;
/// Pipes larger than the default at once, at most. A pipe's capacity counts against its
/// user's pipe budget (`/proc/sys/fs/pipe-user-pages-soft`: 16,384 pages, 64 MiB, shared by
/// every process of the user); once that is spent, the kernel gives every new pipe of the user
/// 8 KiB. 16 pipes of 1 MiB take a quarter of it, and `max_workers` (512) threads with the
/// default 64 KiB another half.
const MAX_LARGE: usize = 16;
/// Pipes larger than the default now.
static LARGE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's idle pipe.
    static SPARE: RefCell<Option<Pipe>> = const { RefCell::new(None) };
}

/// A pipe and how many bytes it holds.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    held: usize,
    /// Counted in `LARGE`.
    large: bool,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.large {
            LARGE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Does a `splice(2)` error mean the kernel cannot splice these descriptors at all (so the
/// bytes must be copied), rather than that the transfer failed?
pub(crate) fn unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    matches!(errno, Some(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP))
}

impl Pipe {
    /// A new pipe of `size` bytes if it may be that large, else of the default size. Fails
    /// when the kernel gives less than the default (the user's pipe budget is spent).
    pub(crate) fn open(size: usize) -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        let large = size > DEFAULT_SIZE && claim_large();
        let grown = large && fcntl_setpipe_size(&write, size).is_ok();
        if large && !grown {
            LARGE.fetch_sub(1, Ordering::Relaxed);
        }
        let mut pipe = Pipe {
            read,
            write,
            capacity: 0,
            held: 0,
            large: grown,
        };
        pipe.capacity = fcntl_getpipe_size(&pipe.write)?;
        if pipe.capacity < DEFAULT_SIZE {
            return Err(io::Error::other("the pipe budget of this user is spent"));
        }
        Ok(pipe)
    }

    /// Bytes it holds now.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Moves up to `max` bytes from socket `from` into the pipe, which is empty. Returns 0 at
    /// the end of the stream. Waits as a read from `from` would, within its read timeout (then
    /// `WouldBlock`).
    pub(crate) fn fill(&mut self, from: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
        debug_assert_eq!(self.held, 0, "filled only when empty");
        let len = max.min(self.capacity);
        let n = retry(|| splice(from, None, &self.write, None, len, SpliceFlags::MOVE))?;
        self.held += n;
        Ok(n)
    }

    /// Moves everything the pipe holds to socket `to`. Waits as a write to `to` would, within
    /// its write timeout.
    pub(crate) fn drain(&mut self, to: BorrowedFd<'_>) -> io::Result<()> {
        while self.held > 0 {
            let n = retry(|| splice(&self.read, None, to, None, self.held, SpliceFlags::MOVE))?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.held -= n;
        }
        Ok(())
    }

    /// Reads what the pipe holds into `out` (for a destination the kernel cannot splice to).
    pub(crate) fn take_held(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        out.resize(start + self.held, 0);
        let mut at = start;
        while self.held > 0 {
            let n = retry(|| rustix::io::read(&self.read, &mut out[at..]))?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            at += n;
            self.held -= n;
        }
        Ok(())
    }
}

/// Takes one of the `MAX_LARGE` places for a large pipe, if one is free.
fn claim_large() -> bool {
    let taken = LARGE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < MAX_LARGE).then_some(n + 1)
    });
    taken.is_ok()
}

/// Runs a system call again while it is interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// This thread's pipe, lent for one transfer: it goes back to the thread when dropped empty,
/// and is closed when dropped holding bytes (they belong to a transfer that broke off and
/// must never reach another one).
pub(crate) struct Lease(Option<Pipe>);

impl Lease {
    /// This thread's pipe, or a new one; `None` when none can be made (out of descriptors, or
    /// the user's pipe budget is spent).
    pub(crate) fn take() -> Option<Lease> {
        let spare = SPARE.with(|s| s.borrow_mut().take());
        spare
            .or_else(|| Pipe::open(PIPE_SIZE).ok())
            .map(|p| Lease(Some(p)))
    }

    /// Makes this thread's pipe one of `size` bytes (benchmarks compare sizes).
    #[cfg(test)]
    pub(crate) fn resize_spare(size: usize) {
        let pipe = Pipe::open(size).expect("a pipe");
        SPARE.with(|s| *s.borrow_mut() = Some(pipe));
    }
}

impl Deref for Lease {
    type Target = Pipe;
    fn deref(&self) -> &Pipe {
        self.0
            .as_ref()
            .expect("a lease holds its pipe until dropped")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Pipe {
        self.0
            .as_mut()
            .expect("a lease holds its pipe until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pipe) = self.0.take().filter(|p| p.held == 0) {
            // During thread exit the slot may be gone: the pipe is simply closed.
            let _ = SPARE.try_with(|s| *s.borrow_mut() = Some(pipe));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::{Duration, Instant};

    fn pair() -> (TcpStream, TcpStream) {
        crate::base::socket::loopback_pair()
    }

    #[test]
    fn bytes_go_from_socket_to_socket_through_the_pipe() {
        let (mut sender, from) = pair();
        let (to, mut receiver) = pair();
        let mut pipe = Lease::take().unwrap();
        assert!(pipe.capacity >= 64 * 1024);
        sender.write_all(b"hello, pipe").unwrap();
        let n = pipe.fill(from.as_fd(), 5).unwrap();
        assert_eq!((n, pipe.held()), (5, 5), "no more than asked for");
        pipe.drain(to.as_fd()).unwrap();
        assert_eq!(pipe.held(), 0);
        let mut got = [0u8; 5];
        receiver.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        // The rest stays in the socket for whoever reads next; the end of stream reads 0.
        drop(sender);
        let mut rest = Vec::new();
        (&from).read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b", pipe");
        assert_eq!(pipe.fill(from.as_fd(), 100).unwrap(), 0);
    }

    #[test]
    fn a_stalled_socket_times_out_like_a_read() {
        let (_sender, from) = pair();
        from.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut pipe = Lease::take().unwrap();
        let t0 = Instant::now();
        let e = pipe.fill(from.as_fd(), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        assert!(t0.elapsed() >= Duration::from_millis(90));
        assert!(!unsupported(&e));
    }

    #[test]
    fn a_pipe_goes_back_to_its_thread_only_when_empty() {
        let fd_of = |l: &Lease| l.read.as_raw_fd();
        let (mut sender, from) = pair();
        let first = Lease::take().unwrap();
        let fd = fd_of(&first);
        drop(first);
        let mut again = Lease::take().unwrap();
        assert_eq!(fd_of(&again), fd, "the same pipe is reused");
        sender.write_all(b"stale").unwrap();
        assert_eq!(again.fill(from.as_fd(), 5).unwrap(), 5);
        drop(again); // holding bytes: closed, not kept
        let fresh = Lease::take().unwrap();
        assert_eq!(fresh.held(), 0, "a new pipe, empty");
        let mut out = b"x".to_vec();
        let mut held = Lease::take().unwrap();
        sender.write_all(b"abc").unwrap();
        held.fill(from.as_fd(), 3).unwrap();
        held.take_held(&mut out).unwrap();
        assert_eq!((out.as_slice(), held.held()), (&b"xabc"[..], 0));
    }

    #[test]
    fn only_a_few_pipes_are_large_at_once() {
        let pipes: Vec<Pipe> = (0..MAX_LARGE + 4)
            .map(|_| Pipe::open(PIPE_SIZE).unwrap())
            .collect();
        let large = pipes.iter().filter(|p| p.capacity > DEFAULT_SIZE).count();
        assert!(large <= MAX_LARGE, "{large}");
        assert!(pipes.iter().all(|p| p.capacity >= DEFAULT_SIZE));
        assert!(pipes.iter().all(|p| p.large == (p.capacity > DEFAULT_SIZE)));
        assert!(LARGE.load(Ordering::Relaxed) <= MAX_LARGE);
        let small = Pipe::open(DEFAULT_SIZE).unwrap();
        assert!(!small.large && small.capacity == DEFAULT_SIZE);
    }

    #[test]
    fn what_counts_as_not_supported() {
        use rustix::io::Errno;
        let os = |e: Errno| io::Error::from_raw_os_error(e.raw_os_error());
        assert!(unsupported(&os(Errno::INVAL)));
        assert!(!unsupported(&os(Errno::PIPE)));
        assert!(!unsupported(&os(Errno::AGAIN)));
        assert!(!unsupported(&io::ErrorKind::UnexpectedEof.into()));
        // What the kernel says for a descriptor it cannot splice from (an epoll instance).
        let epoll = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC);
        let mut pipe = Pipe::open(PIPE_SIZE).unwrap();
        let e = pipe.fill(epoll.unwrap().as_fd(), 1).unwrap_err();
        assert!(unsupported(&e), "{e}");
    }
}
