//! Which certificate a handshake gets: the index of the names the loaded certificates serve
//! (from their subject alternative names; `*.example.com` one label deep, as a service's
//! `host` matches) and the choice by SNI. Pure: certificates are slot numbers here.
//!
//! The choice, in order: the certificate naming the SNI exactly, then one with a wildcard for
//! it, then the fallback. The fallback (also for clients that send no SNI, or an IP address,
//! which rustls passes on as no SNI) is the default pair when it is loaded, else the first
//! loaded certificate in slot order: a client gets a certificate whose name it can check and
//! refuse, rather than a failed handshake. Two certificates naming the same name: the earlier
//! slot wins.

use std::borrow::Cow;
use std::collections::HashMap;

/// The names of the loaded certificates, looked up on every handshake.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SniIndex {
    /// `app.example.com` → slot.
    exact: HashMap<String, usize>,
    /// `*.example.com`, keyed by what follows the label (`example.com`) → slot.
    wildcard: HashMap<String, usize>,
    fallback: Option<usize>,
}

/// A certificate's name as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    Exact(String),
    /// The parent of a `*.` name: `example.com` for `*.example.com`.
    Wildcard(String),
}

/// A name from a certificate, lower-cased and without a trailing dot; `None` for what no SNI
/// can match (empty, `*` anywhere but alone as the first label, a bare `*.`).
pub(crate) fn name(raw: &str) -> Option<Name> {
    let n = raw.trim_end_matches('.').to_ascii_lowercase();
    match n.strip_prefix("*.") {
        Some(parent) if !parent.is_empty() && !parent.contains('*') && !parent.starts_with('.') => {
            Some(Name::Wildcard(parent.to_string()))
        }
        Some(_) => None,
        None if n.is_empty() || n.contains('*') => None,
        None => Some(Name::Exact(n)),
    }
}

impl SniIndex {
    /// The index of `slots`, each the names of a loaded certificate or `None` while its slot has
    /// none; `default` is the default pair's slot.
    pub(crate) fn build<'a, I, N>(slots: I, default: Option<usize>) -> SniIndex
    where
        I: IntoIterator<Item = Option<N>>,
        N: IntoIterator<Item = &'a str>,
    {
        let mut index = SniIndex::default();
        let mut first = None;
        let mut default_loaded = false;
        for (slot, names) in slots.into_iter().enumerate() {
            let Some(names) = names else { continue };
            first = first.or(Some(slot));
            default_loaded |= Some(slot) == default;
            for n in names.into_iter().filter_map(name) {
                let (map, key) = match n {
                    Name::Exact(k) => (&mut index.exact, k),
                    Name::Wildcard(k) => (&mut index.wildcard, k),
                };
                map.entry(key).or_insert(slot);
            }
        }
        index.fallback = if default_loaded { default } else { first };
        index
    }

    /// The slot whose certificate a handshake with `sni` gets (rustls passes it lower-cased
    /// and without a trailing dot; anything else is lower-cased here first). `None` when no
    /// certificate is loaded.
    pub(crate) fn choose(&self, sni: Option<&str>) -> Option<usize> {
        let Some(sni) = sni else {
            return self.fallback;
        };
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        let sni = match sni.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(sni.to_ascii_lowercase()),
            false => Cow::Borrowed(sni),
        };
        self.lookup(&sni).or(self.fallback)
    }

    /// The slot naming `name` (lower-case, no trailing dot) exactly, else by wildcard.
    fn lookup(&self, name: &str) -> Option<usize> {
        if let Some(&slot) = self.exact.get(name) {
            return Some(slot);
        }
        let (label, parent) = name.split_once('.')?;
        match label.is_empty() {
            true => None,
            false => self.wildcard.get(parent).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots as name lists; `None` is a slot not loaded (yet).
    fn index(slots: &[Option<&[&str]>], default: Option<usize>) -> SniIndex {
        SniIndex::build(slots.iter().map(|s| s.map(|n| n.iter().copied())), default)
    }

    #[test]
    fn names_from_certificates() {
        assert_eq!(
            name("App.Example.COM."),
            Some(Name::Exact("app.example.com".into()))
        );
        assert_eq!(
            name("*.Example.com"),
            Some(Name::Wildcard("example.com".into()))
        );
        for bad in ["", ".", "*", "*.", "a.*.b", "*.*.b", "x*.b", "*..b"] {
            assert_eq!(name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn exact_then_wildcard_then_the_default() {
        // 0: a.example.com and b.example.com; 1: *.example.com; 2: the default pair.
        let i = index(
            &[
                Some(&["a.example.com", "b.example.com"]),
                Some(&["*.example.com"]),
                Some(&["example.com", "c.example.com"]),
            ],
            Some(2),
        );
        assert_eq!(i.choose(Some("a.example.com")), Some(0));
        assert_eq!(i.choose(Some("b.example.com")), Some(0));
        assert_eq!(i.choose(Some("x.example.com")), Some(1));
        assert_eq!(i.choose(Some("example.com")), Some(2));
        assert_eq!(
            i.choose(Some("c.example.com")),
            Some(2),
            "the default pair's exact name beats a wildcard"
        );
        assert_eq!(i.choose(Some("x.y.example.com")), Some(2), "one label only");
        assert_eq!(i.choose(Some("unknown.test")), Some(2));
        assert_eq!(i.choose(None), Some(2), "no SNI");
    }

    #[test]
    fn sni_case_and_trailing_dot_do_not_matter() {
        let i = index(
            &[Some(&["A.example.com", "*.Wild.test"]), Some(&[])],
            Some(1),
        );
        assert_eq!(i.choose(Some("a.example.com")), Some(0));
        assert_eq!(i.choose(Some("A.Example.Com.")), Some(0));
        assert_eq!(i.choose(Some("X.WILD.test")), Some(0));
        assert_eq!(
            i.choose(Some(".wild.test")),
            Some(1),
            "an empty label is no match"
        );
    }

    #[test]
    fn without_a_default_pair_the_first_loaded_certificate_answers() {
        let i = index(&[None, Some(&["b.test"]), Some(&["c.test"])], None);
        assert_eq!(i.choose(Some("c.test")), Some(2));
        assert_eq!(i.choose(Some("a.test")), Some(1));
        assert_eq!(i.choose(None), Some(1));
        // The default pair not loaded (yet): the same.
        let i = index(&[Some(&["b.test"]), None], Some(1));
        assert_eq!(i.choose(None), Some(0));
        assert_eq!(i.choose(Some("other.test")), Some(0));
    }

    #[test]
    fn nothing_loaded_means_no_certificate() {
        let i = index(&[None, None], Some(1));
        assert_eq!(i.choose(Some("a.test")), None);
        assert_eq!(i.choose(None), None);
        assert_eq!(SniIndex::default().choose(None), None);
    }

    #[test]
    fn the_earlier_slot_wins_a_name_two_certificates_share() {
        let i = index(
            &[
                Some(&["*.test", "a.test"]),
                Some(&["a.test", "*.test", "b.test"]),
            ],
            None,
        );
        assert_eq!(i.choose(Some("a.test")), Some(0));
        assert_eq!(i.choose(Some("z.test")), Some(0));
        assert_eq!(i.choose(Some("b.test")), Some(1));
    }
}
