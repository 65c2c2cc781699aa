//! A micro-benchmark of the body relay, run by hand (it is ignored otherwise): the CPU time the
//! relaying thread spends per body, copying through a read buffer against splicing through a
//! pipe, by body size, between loopback TCP sockets. It asserts nothing.
//!
//! `cargo test --release --lib splice::bench -- --ignored --nocapture`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use crate::base::pipe::Lease;
use crate::http::body::copy_body;

/// How the relaying thread moves a body.
#[derive(Clone, Copy)]
enum Path {
    /// `copy_body` through a read buffer of this size (8 KiB: a client connection's; 64 KiB:
    /// an upstream connection's).
    Copy(usize),
    /// `splice_exact` through a pipe of this size.
    Splice(usize),
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Copy(b) => write!(f, "copy, {} KiB buffer", b >> 10),
            Path::Splice(p) => write!(f, "splice, {} KiB pipe", p >> 10),
        }
    }
}

/// Nanoseconds this thread has run on a CPU (`CLOCK_THREAD_CPUTIME_ID`, exact to the moment,
/// unlike `/proc/thread-self/schedstat`, which moves on scheduler events only).
fn thread_cpu_ns() -> u64 {
    use rustix::time::{ClockId, clock_gettime};
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    for s in [&a, &b] {
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    (a, b)
}

/// Bytes of each body the sender has written before the relay starts on it: up to this much
/// waits in the socket, so for bodies this small the relay never waits for the sender.
const PRELOAD: usize = 256 * 1024;

/// Relays `bodies` bodies of `size` bytes one at a time, as requests on one connection come
/// (the next one is sent once the last one has arrived), each body's first `PRELOAD` bytes
/// already in the socket when the relay starts on it. Returns the relaying thread's CPU µs
/// per body, counted during the relay only, and the wall µs per relay.
fn run(path: Path, size: usize, bodies: usize) -> (f64, f64) {
    let (mut sender, from) = pair();
    let (mut to, mut receiver) = pair();
    let (go, go_rx) = mpsc::channel::<()>();
    let (sent_tx, sent) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let body = vec![0x5au8; size];
        let first = size.min(PRELOAD);
        while go_rx.recv().is_ok() {
            sender.write_all(&body[..first]).unwrap();
            sent_tx.send(()).unwrap();
            sender.write_all(&body[first..]).unwrap();
        }
    });
    let sink = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        for _ in 0..bodies {
            let mut left = size;
            while left > 0 {
                left -= receiver.read(&mut buf[..left.min(256 * 1024)]).unwrap();
            }
            done_tx.send(()).unwrap();
        }
    });
    let buf = match path {
        Path::Copy(b) => b,
        Path::Splice(p) => {
            Lease::resize_spare(p);
            1024
        }
    };
    let mut src = BufStream::new(from, buf, buf);
    let (mut cpu, mut wall) = (0, Duration::ZERO);
    for _ in 0..bodies {
        go.send(()).unwrap();
        sent.recv().unwrap();
        let (cpu0, t0) = (thread_cpu_ns(), Instant::now());
        let n = match path {
            Path::Copy(_) => {
                let kind = BodyKind::Length(size as u64);
                copy_body(kind, &mut src, &mut to, false, None, &mut |_| {}).unwrap()
            }
            Path::Splice(_) => {
                let to = to.as_fd();
                splice_exact(&mut src, to, size as u64, Direction::Request, &mut |_| {}).unwrap()
            }
        };
        (cpu, wall) = (cpu + thread_cpu_ns() - cpu0, wall + t0.elapsed());
        assert_eq!(n, size as u64);
        done.recv().unwrap();
    }
    drop(go);
    feeder.join().unwrap();
    sink.join().unwrap();
    let per = |total: f64| total / bodies as f64;
    (per(cpu as f64 / 1000.0), per(wall.as_secs_f64() * 1e6))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: run by hand with --ignored --nocapture"]
fn copy_against_splice() {
    const ROUNDS: usize = 5;
    let sizes = [
        1 << 10,
        4 << 10,
        8 << 10,
        16 << 10,
        32 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
        10 << 20,
    ];
    let paths = [
        Path::Copy(8 << 10),
        Path::Copy(64 << 10),
        Path::Splice(64 << 10),
        Path::Splice(256 << 10),
        Path::Splice(1 << 20),
    ];
    // Warm-up: the first cell would otherwise pay for a cold CPU (frequency, caches).
    run(Path::Copy(64 << 10), 64 << 10, 2000);
    println!("| body | path | relay CPU µs/body | relay wall µs/body |\n|---:|---|---:|---:|");
    for size in sizes {
        let bodies = ((512usize << 20) / size).clamp(50, 5000);
        let mut cells: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); paths.len()];
        for _ in 0..ROUNDS {
            for (i, path) in paths.iter().enumerate() {
                let (cpu, wall) = run(*path, size, bodies);
                cells[i].0.push(cpu);
                cells[i].1.push(wall);
            }
        }
        for (path, (cpu, wall)) in paths.iter().zip(cells) {
            let kib = size >> 10;
            println!(
                "| {kib} KiB | {path} | {:.1} | {:.1} |",
                median(cpu),
                median(wall)
            );
        }
    }
}
