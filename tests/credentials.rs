//! Guessing the token, as an attacker would, on 127.0.0.0/8 only and bounded in count: wrong
//! credentials by header, cookie or form from one address are checked no faster than the
//! schedule (3 free, then 250 ms doubling to 30 s), parallel connections share the address's
//! budget, the refusals are fast 429s with `Retry-After`, and a client with the token from
//! another address is served throughout. Many addresses together spend a shared budget.
//! And request headers with `_` in their names never reach a backend.

mod support;

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;

/// The schedule, as documented: wrong credentials in a row that cost nothing, the first wait
/// after them, and the longest wait.
const FREE: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The most checks the schedule allows from one address within `elapsed`.
fn checks_allowed(elapsed: Duration) -> u32 {
    let mut waited = Duration::ZERO;
    let mut n = FREE + 1;
    loop {
        let wait = FIRST_WAIT
            .saturating_mul(1 << (n - FREE - 1).min(16))
            .min(MAX_WAIT);
        if waited + wait > elapsed {
            return n;
        }
        waited += wait;
        n += 1;
    }
}

fn upstream(b: &Backend) -> String {
    format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr)
}

/// A keep-alive connection from `from`.
struct Client {
    reader: BufReader<std::net::TcpStream>,
}

impl Client {
    fn open(from: Ipv4Addr, to: SocketAddr) -> Client {
        let s = connect_from(from, to).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, raw: &str) -> RawResponse {
        self.reader.get_mut().write_all(raw.as_bytes()).unwrap();
        read_response(&mut self.reader, false)
    }
}

fn get_with(header: &str) -> String {
    format!("GET /app/x HTTP/1.1\r\nHost: h\r\n{header}\r\n")
}

#[test]
fn guessing_from_one_address_is_held_to_the_schedule_while_the_token_is_served() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&upstream(&b)));
    let to = p.addr;

    // The client with the token, from its own address, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let legit = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = Client::open(Ipv4Addr::new(127, 0, 6, 1), to);
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) || lat.is_empty() {
                let t = Instant::now();
                let r = c.send(&get_with(&format!("Authorization: Bearer {TOKEN}\r\n")));
                assert_eq!(r.status, 200, "the client with the token: {}", r.text());
                lat.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(10));
            }
            lat
        })
    };

    // 1,000 different wrong tokens from one address, over 8 parallel connections, as fast as
    // the answers come.
    const GUESSES: usize = 1000;
    const CONNS: usize = 8;
    let attacker = Ipv4Addr::new(127, 0, 5, 1);
    let t0 = Instant::now();
    let threads: Vec<_> = (0..CONNS)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = Client::open(attacker, to);
                let (mut checked, mut refused) = (0u32, 0u32);
                for i in (k..GUESSES).step_by(CONNS) {
                    let r = c.send(&get_with(&format!(
                        "Authorization: Bearer guess-{i:04}-0123456789abcdef0123456789\r\n"
                    )));
                    match r.status {
                        401 => checked += 1,
                        429 => {
                            let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
                            assert!((1..=30).contains(&after), "Retry-After: {after}");
                            refused += 1;
                        }
                        s => panic!("guess {i}: {s} {}", r.text()),
                    }
                }
                (checked, refused)
            })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for t in threads {
        let (c, r) = t.join().unwrap();
        checked += c;
        refused += r;
    }
    let elapsed = t0.elapsed();
    let allowed = checks_allowed(elapsed);
    eprintln!(
        "{GUESSES} wrong tokens from one address in {elapsed:.2?}: {checked} checked (the \
         schedule allows {allowed} in that time), {refused} answered 429 unchecked"
    );
    assert_eq!(checked + refused, GUESSES as u32);
    assert!(
        checked <= allowed,
        "{checked} guesses were checked in {elapsed:?}; the schedule allows {allowed}"
    );
    assert!(
        checked > FREE,
        "the free ones and the first after them are checked"
    );

    let m = prom_parse(&get(p.addr, "/proxy/metrics").text());
    let header_failures = sample(&m, "wakeproxy_auth_failures_total", &[("via", "header")]);
    assert_eq!(header_failures, f64::from(checked));
    assert_eq!(
        sample(&m, "wakeproxy_auth_throttled_total", &[]),
        f64::from(refused)
    );

    // Honouring Retry-After, the next guesses come no sooner than the schedule says: the
    // address had `checked` failures, so each further check costs at least the next wait.
    let mut c = Client::open(attacker, to);
    let t1 = Instant::now();
    let mut more = 0;
    while more < 2 {
        let r = c.send(&get_with(
            "Authorization: Bearer another-guess-abcdef0123456789\r\n",
        ));
        match r.status {
            401 => more += 1,
            429 => {
                let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
                std::thread::sleep(Duration::from_secs(after.min(30)));
            }
            s => panic!("{s}"),
        }
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "no check within 2 minutes"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = legit.join().unwrap();
    lat.sort();
    eprintln!(
        "two more guesses honouring Retry-After took {:.2?}; the client with the token all \
         along: {} requests, all 200, p50 {:.2?}, max {:.2?}",
        t1.elapsed(),
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    let first = FIRST_WAIT
        .saturating_mul(1 << (checked - FREE - 1).min(16))
        .min(MAX_WAIT);
    assert!(
        t1.elapsed() >= first,
        "two more checks took {:?}, less than the wait after {checked} failures ({first:?})",
        t1.elapsed()
    );
}

#[test]
fn wrong_cookies_and_forms_count_too_but_one_stale_cookie_counts_once() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&upstream(&b)));
    // A browser with one stale cookie loads many pages: counted once, never locked out.
    let mut browser = Client::open(Ipv4Addr::new(127, 0, 7, 1), p.addr);
    let stale = format!("Cookie: wakeproxy_session={}\r\n", "ab".repeat(32));
    for _ in 0..20 {
        assert_eq!(browser.send(&get_with(&stale)).status, 401);
    }
    // Made-up cookies, each different, are guesses.
    let mut guesser = Client::open(Ipv4Addr::new(127, 0, 7, 2), p.addr);
    let statuses: Vec<u16> = (0..10)
        .map(|i| {
            let v = format!("Cookie: wakeproxy_session={i:064x}\r\n");
            guesser.send(&get_with(&v)).status
        })
        .collect();
    assert_eq!(&statuses[..FREE as usize + 1], &[401; FREE as usize + 1]);
    assert!(statuses.contains(&429), "{statuses:?}");
    // The form: the same budget, and the page says when to try again.
    let from = Ipv4Addr::new(127, 0, 7, 3);
    let mut last = None;
    for i in 0..6 {
        let body = format!("token=wrong-{i}&next=%2F");
        let mut c = Client::open(from, p.addr);
        let r = c.send(&format!(
            "POST /proxy/login HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        last = Some(r);
    }
    let last = last.unwrap();
    assert_eq!(last.status, 429);
    assert!(last.header("retry-after").is_some());
    assert!(last.text().contains("try again in"), "{}", last.text());
    let m = prom_parse(&get(p.addr, "/proxy/metrics").text());
    assert_eq!(
        sample(&m, "wakeproxy_auth_failures_total", &[("via", "cookie")]),
        1.0 + (FREE + 1) as f64,
        "the stale cookie once, and each checked guess"
    );
    assert_eq!(
        sample(&m, "wakeproxy_auth_failures_total", &[("via", "form")]),
        (FREE + 1) as f64
    );
}

#[test]
fn many_addresses_together_spend_a_shared_budget_that_spares_known_clients() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&upstream(&b)));
    // A client that showed the token before the attack.
    let friend = Ipv4Addr::new(127, 0, 8, 1);
    let ok = get_with(&format!("Authorization: Bearer {TOKEN}\r\n"));
    let wrong = get_with("Authorization: Bearer wrong-wrong-wrong-0123456789abcdef\r\n");
    let mut c = Client::open(friend, p.addr);
    assert_eq!(c.send(&wrong).status, 401);
    assert_eq!(c.send(&ok).status, 200);
    // 200 addresses, each spending its free guesses: 600 wrong tokens, the whole budget.
    let mut refused_first = 0;
    for a in 0..200u32 {
        let from = Ipv4Addr::new(127, 9, (a / 250) as u8, (a % 250 + 1) as u8);
        let mut c = Client::open(from, p.addr);
        for _ in 0..FREE {
            if c.send(&wrong).status == 429 {
                refused_first += 1;
            }
        }
    }
    eprintln!("refused while the budget ran out: {refused_first}");
    let mut fresh = Client::open(Ipv4Addr::new(127, 10, 0, 1), p.addr);
    let r = fresh.send(&ok);
    assert_eq!(
        r.status, 429,
        "a new address is not checked while the budget is spent"
    );
    assert!(r.header("retry-after").is_some());
    let mut c = Client::open(friend, p.addr);
    assert_eq!(
        c.send(&ok).status,
        200,
        "a client that showed the token lately is still checked"
    );
}

#[test]
fn headers_with_underscores_never_reach_the_backend_unless_allowed() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "{}  - name: legacy\n    path: /legacy\n    upstream: {}\n    allow_underscores_in_headers: true\n",
        upstream(&b),
        b.addr
    )));
    let sneaky = "X_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nX_Forwarded_Proto: https\r\n\
                  X_Forwarded_Host: evil.example\r\nMy_Header: 1\r\n";
    let send = |path: &str| {
        raw_request(
            p.addr,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n{sneaky}Connection: close\r\n\r\n"
            ),
        )
    };
    let r = send("/app/x");
    assert_eq!(r.status, 200);
    let echo = r.json();
    let names: Vec<String> = echoed_headers(&echo).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().all(|n| !n.contains('_')), "{names:?}");
    assert!(!r.text().contains("6.6.6.6") && !r.text().contains("evil.example"));
    assert_eq!(echoed_header(&echo, "x-forwarded-for"), ["127.0.0.1"]);

    let r = send("/legacy/x");
    let echo = r.json();
    assert_eq!(echoed_header(&echo, "my_header"), ["1"], "opted in");
    assert!(
        !r.text().contains("6.6.6.6") && !r.text().contains("evil.example"),
        "never the ones that read as the proxy's own: {}",
        r.text()
    );

    // Whitespace before the colon is no way around it.
    let r = raw_request(
        p.addr,
        &format!(
            "GET /app/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nX-Forwarded-For : 6.6.6.6\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        r.status == 400 || !r.text().contains("6.6.6.6"),
        "{} {}",
        r.status,
        r.text()
    );
}
