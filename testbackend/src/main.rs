//! `wakeproxy-testbackend`: the backend that wakeproxy's tests and demo images run.
//!
//! A small blocking HTTP/1.1 server, one thread per connection, with keep-alive and
//! request bodies in both `Content-Length` and chunked framing. Besides `std` it uses only
//! pure-Rust crates (`httparse`, `sha1`, `sha2`, `base64`), so it builds into a static binary
//! that runs in a `FROM scratch` image.
//!
//! # Configuration
//!
//! | setting | meaning |
//! |---|---|
//! | `PORT`, `BIND` | listen on `BIND:PORT` (default `0.0.0.0:8000`); port 0 picks a free port |
//! | `--listen ADDR:PORT` | overrides `PORT` and `BIND` |
//! | `STARTUP_DELAY_MS` | sleep this long before binding (a slow app) |
//! | `EXIT_AT_START=<code>` | print `exiting at start with code <code>` to stderr and exit |
//! | `FAIL_HEALTH=1` | `/health` answers 500 |
//! | `NAME` | put in every echo and in an `X-Backend-Name` header on every response |
//! | `--check [PATH]` | GET `127.0.0.1:$PORT/health` (or `PATH`); exit 0 on 2xx/3xx, else 1 |
//!
//! Once bound it prints `listening on <addr>` to stdout. `--check` is meant as a Docker
//! `HEALTHCHECK` in an image without a shell.
//!
//! # Endpoints
//!
//! Paths are matched on the raw request target's path, whatever the method.
//!
//! | path | answer |
//! |---|---|
//! | `/health` | 200 `ok` (500 `unhealthy` with `FAIL_HEALTH`) |
//! | `/stream?chunks=5&interval_ms=200&size=16` | chunked body, one flushed chunk per interval |
//! | `/sse?events=5&interval_ms=200` | `text/event-stream`, `data: event N t=<unix ms when sent>`; `events=0` is forever |
//! | `/status/NNN` | that status (200..=599), small body; none for 204/304 |
//! | `/cookies` | three separate `Set-Cookie` headers, and one for `wakeproxy_session` |
//! | `/gzip` | `Content-Encoding: gzip` of `hello gzip\n` |
//! | `/sleep?ms=1000` | waits, then 200 `slept` |
//! | `/alloc?mb=64` | allocates and touches that much memory, then 200 (to hit a `mem_limit`) |
//! | `/sink` | streams the body through SHA-256: `{"bytes":N,"sha256":"hex"}` |
//! | `/ws` | WebSocket echo (text, binary, fragments), ping → pong, close → close |
//! | `/wspage` | HTML page whose script opens a WebSocket to the sibling `ws` path, sends `hello from browser` and sets the title to `WS:<reply>` (`WS error` / `WS closed <code>` on failure) |
//! | anything else | JSON echo of the request: name, method, target, path, query, headers, body, peer |
//!
//! Over HTTP/1.0, `/stream` and `/sse` are close-delimited instead of chunked. A malformed
//! request gets 400 and the connection is closed. Reads and writes time out after 60 s.

#![forbid(unsafe_code)]

mod body;
mod cli;
mod echo;
mod head;
mod response;
mod routes;
mod websocket;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use cli::{USAGE, env_flag, env_var};
use routes::Config;

/// Stack of each connection thread; all large buffers live on the heap.
const CONN_STACK: usize = 512 * 1024;

fn main() -> ExitCode {
    let args = match cli::parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("wakeproxy-testbackend: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.check.is_none()
        && let Some(code) = env_var("EXIT_AT_START")
    {
        let Ok(code) = code.trim().parse::<i32>() else {
            eprintln!("wakeproxy-testbackend: EXIT_AT_START is not an integer: {code:?}");
            return ExitCode::from(2);
        };
        eprintln!("exiting at start with code {code}");
        std::process::exit(code);
    }
    let addr = match cli::listen_addr(args.listen.as_deref()) {
        Ok(addr) => addr,
        Err(msg) => {
            eprintln!("wakeproxy-testbackend: {msg}");
            return ExitCode::from(2);
        }
    };
    match args.check {
        Some(path) => cli::run_check(addr, &path),
        None => match serve(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("wakeproxy-testbackend: {msg}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Waits `STARTUP_DELAY_MS`, binds, prints `listening on <addr>` and serves every
/// connection on a thread of its own, forever.
fn serve(addr: SocketAddr) -> Result<(), String> {
    if let Some(ms) = env_var("STARTUP_DELAY_MS") {
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| format!("STARTUP_DELAY_MS is not a number: {ms:?}"))?;
        thread::sleep(Duration::from_millis(ms));
    }
    let config = Arc::new(Config {
        // A name that could break a header line is kept out of headers (see `head_common`).
        name: env_var("NAME"),
        fail_health: env_flag("FAIL_HEALTH"),
    });
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    println!("listening on {local}");
    let _ = io::stdout().flush();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let config = Arc::clone(&config);
                let spawned = thread::Builder::new()
                    .name(format!("conn {peer}"))
                    .stack_size(CONN_STACK)
                    .spawn(move || routes::handle_connection(stream, peer, &config));
                if let Err(e) = spawned {
                    eprintln!("cannot spawn a thread for {peer}: {e}");
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
