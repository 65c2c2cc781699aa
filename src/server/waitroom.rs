//! Where waiting connections live while the poller owns them: a slab addressed by tokens
//! (index and generation, so a stale token never reaches a newer connection in the same slot)
//! and a heap of deadlines (stale entries are skipped when popped).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::waiting::Waiting;

/// A connection's name in epoll events: generation in the high half, index in the low half.
pub(super) type Token = u64;

struct Slot {
    generation: u32,
    entry: Option<(Waiting, Instant)>,
}

/// The waiting connections and their deadlines.
#[derive(Default)]
pub(super) struct Waitroom {
    slots: Vec<Slot>,
    free: Vec<u32>,
    deadlines: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    len: usize,
}

fn split(t: Token) -> (u32, u32) {
    ((t & 0xffff_ffff) as u32, (t >> 32) as u32)
}

impl Waitroom {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Takes in `w`, due to move on by `deadline`; returns its token.
    pub(super) fn insert(&mut self, w: Waiting, deadline: Instant) -> Token {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.entry = Some((w, deadline));
        self.len += 1;
        self.deadlines
            .push(Reverse((deadline, index, slot.generation)));
        (u64::from(slot.generation) << 32) | u64::from(index)
    }

    fn slot(&mut self, t: Token) -> Option<&mut Slot> {
        let (index, generation) = split(t);
        self.slots
            .get_mut(index as usize)
            .filter(|s| s.generation == generation && s.entry.is_some())
    }

    pub(super) fn get_mut(&mut self, t: Token) -> Option<&mut Waiting> {
        self.slot(t).and_then(|s| s.entry.as_mut()).map(|(w, _)| w)
    }

    /// Moves `t`'s deadline.
    pub(super) fn set_deadline(&mut self, t: Token, deadline: Instant) {
        let (index, generation) = split(t);
        if let Some((_, d)) = self.slot(t).and_then(|s| s.entry.as_mut())
            && *d != deadline
        {
            *d = deadline;
            self.deadlines.push(Reverse((deadline, index, generation)));
        }
    }

    pub(super) fn remove(&mut self, t: Token) -> Option<Waiting> {
        let (index, _) = split(t);
        let (w, _) = self.slot(t)?.entry.take()?;
        self.free.push(index);
        self.len -= 1;
        if self.deadlines.len() > 64 && self.deadlines.len() > 4 * self.len {
            self.compact();
        }
        Some(w)
    }

    /// The earliest deadline (perhaps of a connection already gone: an early wake-up only).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Takes out every connection whose deadline is at or before `now`.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<Waiting> {
        let mut out = Vec::new();
        while let Some(Reverse((d, index, generation))) = self.deadlines.peek().copied() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            let t = (u64::from(generation) << 32) | u64::from(index);
            let current = self
                .slot(t)
                .and_then(|s| s.entry.as_ref())
                .is_some_and(|(_, due)| *due == d);
            if current {
                out.extend(self.remove(t));
            }
        }
        out
    }

    /// Every connection's token, with its waiting stage's start (for sweeps).
    pub(super) fn tokens(&self) -> Vec<Token> {
        let mut out = Vec::with_capacity(self.len);
        for (i, s) in self.slots.iter().enumerate() {
            if s.entry.is_some() {
                out.push((u64::from(s.generation) << 32) | i as u64);
            }
        }
        out
    }

    /// Takes out every connection.
    pub(super) fn drain(&mut self) -> Vec<Waiting> {
        let out = self
            .slots
            .iter_mut()
            .filter_map(|s| s.entry.take().map(|(w, _)| w))
            .collect();
        *self = Waitroom::default();
        out
    }

    /// Drops heap entries that no longer match their connection's deadline.
    fn compact(&mut self) {
        let slots = &self.slots;
        let live = self.deadlines.drain().filter(|Reverse((d, i, g))| {
            let s = &slots[*i as usize];
            s.generation == *g && s.entry.as_ref().is_some_and(|(_, due)| due == d)
        });
        self.deadlines = live.collect();
    }
}
