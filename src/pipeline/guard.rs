//! Guessing the token is slow everywhere: wrong credentials (bearer header, login form or
//! session cookie) count against the client's address and against a budget shared by all
//! addresses. Pure: time comes in as a value.
//!
//! The first [`FREE`] wrong credentials in a row cost nothing (a typo, a stale script); after
//! its `n`th, an address waits `250 ms × 2^(n-FREE-1)` (at most [`MAX_WAIT`]) before its next
//! credential is checked at all; meanwhile it is answered 429
//! with `Retry-After` at once, without a check and without holding a thread. Parallel
//! attempts share the address's one record, so opening more connections buys nothing. When
//! the shared budget is spent (many addresses guessing), addresses that have not shown a
//! right credential lately wait for it to refill; addresses that have are still checked.
//! A right credential is never slowed, and the first on a connection clears its address's
//! record.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::base::client::ClientKey;

/// Wrong credentials in a row that cost no wait.
pub(crate) const FREE: u32 = 3;
/// The first wait after a wrong credential past [`FREE`]; each further one doubles it.
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two checks for one address.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);
/// An address's wrong credentials are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The shared budget: this many wrong credentials at once, refilled by one each
/// [`REFILL_EVERY`].
const BUDGET: u32 = 600;
const REFILL_EVERY: Duration = Duration::from_secs(1);
/// Addresses kept as "showed a right credential lately" (they bypass a spent budget).
const MAX_TRUSTED: usize = 4096;
/// Addresses with a record; past this, records that ran out are dropped first, then the
/// oldest.
const MAX_RECORDS: usize = 100_000;
/// Distinct wrong cookies remembered, so that a browser sending one stale cookie with every
/// request counts it once.
const MAX_STALE_COOKIES: usize = 4096;

/// What a credential gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judgement {
    /// It is right: pass.
    Pass,
    /// It is wrong (and now counted): 401.
    Fail,
    /// Whatever it is, 429: come back after this long.
    Wait(Duration),
}

impl Judgement {
    /// `Retry-After` in whole seconds (at least 1).
    pub(crate) fn retry_after(d: Duration) -> u64 {
        let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        whole.max(1)
    }
}

/// One address's wrong credentials in a row.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// No check before this.
    until: Instant,
    /// The last wrong credential.
    last: Instant,
}

/// The shared budget: tokens spent by wrong credentials, refilled over time.
#[derive(Debug)]
struct Budget {
    tokens: u32,
    refilled: Instant,
}

impl Budget {
    fn refill(&mut self, now: Instant) {
        let gained =
            now.saturating_duration_since(self.refilled).as_nanos() / REFILL_EVERY.as_nanos();
        if gained > 0 {
            self.tokens = (u128::from(self.tokens) + gained).min(u128::from(BUDGET)) as u32;
            self.refilled += REFILL_EVERY * gained.min(u128::from(u32::MAX)) as u32;
        }
        if self.tokens == BUDGET {
            self.refilled = now;
        }
    }

    /// How long until one token is there (zero when one is).
    fn wait(&self, now: Instant) -> Duration {
        match self.tokens {
            0 => (self.refilled + REFILL_EVERY).saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }
}

#[derive(Debug)]
struct State {
    records: HashMap<ClientKey, Record>,
    budget: Budget,
    trusted: HashSet<ClientKey>,
    trusted_order: VecDeque<ClientKey>,
    stale: HashSet<[u8; 32]>,
    stale_order: VecDeque<[u8; 32]>,
}

impl State {
    fn trust(&mut self, key: ClientKey) {
        self.records.remove(&key);
        if self.trusted.insert(key) {
            self.trusted_order.push_back(key);
            if self.trusted_order.len() > MAX_TRUSTED
                && let Some(old) = self.trusted_order.pop_front()
            {
                self.trusted.remove(&old);
            }
        }
    }
}

/// Wrong-credential records, per address and shared. See the module documentation.
#[derive(Debug)]
pub(crate) struct Guard {
    state: Mutex<State>,
    /// Time zero of `quiet_from`.
    epoch: Instant,
    /// From this many nanoseconds after `epoch` on, no address waits and the shared budget is
    /// not spent: a right credential then passes without the lock (the warm path).
    quiet_from: AtomicU64,
}

impl Guard {
    pub(crate) fn new(now: Instant) -> Guard {
        Guard {
            state: Mutex::new(State {
                records: HashMap::new(),
                budget: Budget {
                    tokens: BUDGET,
                    refilled: now,
                },
                trusted: HashSet::new(),
                trusted_order: VecDeque::new(),
                stale: HashSet::new(),
                stale_order: VecDeque::new(),
            }),
            epoch: now,
            quiet_from: AtomicU64::new(0),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nobody may pass without the lock before `t`.
    fn busy_until(&self, t: Instant) {
        self.quiet_from.fetch_max(self.nanos(t), Relaxed);
    }

    /// What a credential from `key` at `now` gets, `right` or not, decided together with the
    /// address's record so that parallel attempts cannot slip between a look and an update:
    /// while the address (or, for addresses not trusted, everybody) must wait, the answer is
    /// `Wait` whatever the credential, so a guess learns nothing; otherwise a wrong one is
    /// recorded. A right credential costs no lock while no address waits and the budget
    /// is not spent.
    pub(crate) fn judge(&self, key: ClientKey, now: Instant, right: bool) -> Judgement {
        if right && self.nanos(now) >= self.quiet_from.load(Relaxed) {
            return Judgement::Pass;
        }
        let mut s = self.state.lock();
        if let Some(r) = s.records.get(&key)
            && r.until > now
        {
            return Judgement::Wait(r.until - now);
        }
        s.budget.refill(now);
        let wait = s.budget.wait(now);
        if !wait.is_zero() && !s.trusted.contains(&key) {
            return Judgement::Wait(wait);
        }
        if right {
            s.trust(key);
            return Judgement::Pass;
        }
        s.budget.tokens = s.budget.tokens.saturating_sub(1);
        if s.budget.tokens == 0 {
            self.busy_until(now + REFILL_EVERY);
        }
        if s.records.len() >= MAX_RECORDS && !s.records.contains_key(&key) {
            make_room(&mut s.records, now);
        }
        let r = s.records.entry(key).or_insert(Record {
            failures: 0,
            until: now,
            last: now,
        });
        if now.saturating_duration_since(r.last) > FORGET_AFTER {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        r.until = now + wait_after(r.failures);
        let until = r.until;
        self.busy_until(until);
        Judgement::Fail
    }

    /// A connection from `key` showed a right credential for the first time: the address
    /// counts as a known client while the shared budget is spent, and its wrong credentials
    /// so far are forgotten.
    pub(crate) fn trust(&self, key: ClientKey) {
        self.state.lock().trust(key);
    }

    /// Whether the wrong cookie of digest `d` was counted before. A browser keeps sending a
    /// stale cookie with every request: once is enough.
    pub(crate) fn cookie_counted(&self, d: &[u8; 32]) -> bool {
        self.state.lock().stale.contains(d)
    }

    /// Remembers that the wrong cookie of digest `d` was counted (the oldest go first).
    pub(crate) fn count_cookie(&self, d: [u8; 32]) {
        let mut s = self.state.lock();
        if s.stale.insert(d) {
            s.stale_order.push_back(d);
            if s.stale_order.len() > MAX_STALE_COOKIES
                && let Some(old) = s.stale_order.pop_front()
            {
                s.stale.remove(&old);
            }
        }
    }

    /// Addresses that must wait at `now`.
    pub(crate) fn waiting(&self, now: Instant) -> usize {
        let s = self.state.lock();
        s.records.values().filter(|r| r.until > now).count()
    }

    /// What is left of the shared budget at `now`.
    #[cfg(test)]
    fn budget(&self, now: Instant) -> u32 {
        let mut s = self.state.lock();
        s.budget.refill(now);
        s.budget.tokens
    }
}

/// The wait after the `n`th wrong credential in a row.
pub(crate) fn wait_after(n: u32) -> Duration {
    if n <= FREE {
        return Duration::ZERO;
    }
    FIRST_WAIT
        .saturating_mul(1u32 << (n - FREE - 1).min(16))
        .min(MAX_WAIT)
}

/// Drops records whose wait is over and that are old, else the oldest tenth.
fn make_room(records: &mut HashMap<ClientKey, Record>, now: Instant) {
    records.retain(|_, r| r.until > now || now.saturating_duration_since(r.last) < MAX_WAIT);
    if records.len() >= MAX_RECORDS {
        let mut lasts: Vec<Instant> = records.values().map(|r| r.last).collect();
        let cut = lasts.len() / 10;
        lasts.select_nth_unstable(cut);
        let oldest = lasts[cut];
        records.retain(|_, r| r.last > oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::sync::Arc;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse::<IpAddr>().unwrap())
    }

    const MS: Duration = Duration::from_millis(1);
    use Judgement::{Fail, Pass, Wait};

    #[test]
    fn waits_grow_and_cap() {
        assert_eq!(wait_after(1), Duration::ZERO);
        assert_eq!(wait_after(FREE), Duration::ZERO);
        assert_eq!(wait_after(FREE + 1), 250 * MS);
        assert_eq!(wait_after(FREE + 2), 500 * MS);
        assert_eq!(wait_after(FREE + 5), 4000 * MS);
        assert_eq!(wait_after(FREE + 8), MAX_WAIT);
        assert_eq!(wait_after(u32::MAX), MAX_WAIT);
    }

    /// `FREE` wrong credentials from `key` at `now`, which cost nothing.
    fn spend_free(g: &Guard, key: ClientKey, now: Instant) {
        for _ in 0..FREE {
            assert_eq!(g.judge(key, now, false), Fail);
        }
    }

    #[test]
    fn a_wrong_credential_closes_the_address_until_its_wait_is_over() {
        let t0 = Instant::now();
        let g = Guard::new(t0);
        let a = key("10.0.0.1");
        spend_free(&g, a, t0);
        assert_eq!(g.judge(a, t0, false), Fail);
        assert_eq!(g.judge(a, t0, true), Wait(250 * MS), "right or not");
        assert_eq!(g.judge(a, t0 + 100 * MS, false), Wait(150 * MS));
        assert_eq!(g.judge(a, t0 + 250 * MS, false), Fail);
        assert_eq!(g.judge(a, t0 + 300 * MS, true), Wait(450 * MS));
        assert_eq!(g.waiting(t0 + 300 * MS), 1);
        // Another address is not touched...
        assert_eq!(g.judge(key("10.0.0.2"), t0, true), Pass);
        // ...but a neighbour in the same IPv6 /64 is.
        let v6 = key("2001:db8::1");
        spend_free(&g, v6, t0);
        assert_eq!(g.judge(v6, t0, false), Fail);
        assert!(matches!(g.judge(key("2001:db8::2"), t0, true), Wait(_)));
    }

    #[test]
    fn parallel_attempts_share_the_record() {
        let t0 = Instant::now();
        let g = Arc::new(Guard::new(t0));
        let a = key("10.0.0.1");
        let judged: Vec<Judgement> = (0..8)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || g.judge(a, t0, false))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let failed = judged.iter().filter(|j| **j == Fail).count();
        assert_eq!(failed, FREE as usize + 1, "{judged:?}");
    }

    #[test]
    fn a_right_credential_clears_the_record_and_forgetting_restarts_the_schedule() {
        let t0 = Instant::now();
        let g = Guard::new(t0);
        let a = key("10.0.0.1");
        for i in 0..6 {
            assert_eq!(g.judge(a, t0 + i * MAX_WAIT, false), Fail);
        }
        let later = t0 + 6 * MAX_WAIT;
        assert_eq!(g.judge(a, later, false), Fail);
        assert_eq!(g.judge(a, later, true), Wait(wait_after(7)));
        let after = later + wait_after(7);
        assert_eq!(g.judge(a, after, true), Pass);
        g.trust(a); // the connection's first right credential
        spend_free(&g, a, after);
        assert_eq!(g.judge(a, after, false), Fail);
        assert_eq!(g.judge(a, after, true), Wait(250 * MS));
        let much_later = after + FORGET_AFTER + MS;
        assert_eq!(g.judge(a, much_later, false), Fail);
        assert_eq!(g.judge(a, much_later, false), Fail, "forgotten: free again");
    }

    #[test]
    fn a_stale_cookie_counts_once() {
        let g = Guard::new(Instant::now());
        assert!(!g.cookie_counted(&[7; 32]));
        g.count_cookie([7; 32]);
        assert!(g.cookie_counted(&[7; 32]));
        assert!(!g.cookie_counted(&[8; 32]));
        for i in 0..MAX_STALE_COOKIES as u32 {
            let mut d = [0; 32];
            d[..4].copy_from_slice(&i.to_le_bytes());
            d[31] = 1;
            g.count_cookie(d);
        }
        assert!(
            !g.cookie_counted(&[7; 32]),
            "the oldest are forgotten first"
        );
    }

    #[test]
    fn a_spent_budget_stops_new_addresses_but_not_trusted_ones() {
        let t0 = Instant::now();
        let g = Guard::new(t0);
        let friend = key("192.168.1.1");
        g.trust(friend);
        for i in 0..BUDGET {
            g.judge(key(&format!("10.{}.{}.1", i / 250, i % 250)), t0, false);
        }
        assert_eq!(g.budget(t0), 0);
        assert_eq!(g.judge(key("172.16.0.1"), t0, true), Wait(REFILL_EVERY));
        assert_eq!(g.judge(friend, t0, true), Pass);
        assert_eq!(g.judge(key("172.16.0.1"), t0 + REFILL_EVERY, true), Pass);
        assert_eq!(g.budget(t0 + REFILL_EVERY * 10), 10);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(Judgement::retry_after(250 * MS), 1);
        assert_eq!(Judgement::retry_after(Duration::from_secs(2)), 2);
        assert_eq!(Judgement::retry_after(Duration::from_millis(2001)), 3);
        assert_eq!(Judgement::retry_after(Duration::ZERO), 1);
    }

    #[test]
    fn records_stay_bounded() {
        let t0 = Instant::now();
        let mut records = HashMap::new();
        for i in 0..MAX_RECORDS as u32 {
            let ip = std::net::Ipv4Addr::from(i);
            records.insert(
                ClientKey::of(IpAddr::V4(ip)),
                Record {
                    failures: 1,
                    until: t0 + MAX_WAIT,
                    last: t0 + Duration::from_nanos(u64::from(i)),
                },
            );
        }
        make_room(&mut records, t0);
        assert!(records.len() < MAX_RECORDS);
    }
}
