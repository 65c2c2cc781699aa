//! Pure parsers for durations (`300`, `90s`, `5m`, `1h30m`, `1500ms`) and sizes (`512m`,
//! `1.5g`), and the range checks of durations. Each returns `Err(message)`; the caller adds the
//! field path and line.

use std::time::Duration;

/// What a duration field accepts, in the words of its error messages.
pub(super) const DURATION_FORMS: &str =
    "seconds (300) or a duration like 90s, 5m, 1h or 1h30m (units d, h, m, s, ms)";

/// Docker's minimum memory limit: 6 MiB.
const MIN_MEM_BYTES: u64 = 6 * 1024 * 1024;

/// The units of a duration, largest first, in milliseconds. A value lists them in this order.
const UNITS: [(&str, u64); 5] = [
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// The accepted range of one duration field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) min: Duration,
    pub(super) max: Duration,
    /// Whether a part of a second (`1500ms`) is meaningful for this field.
    pub(super) sub_second: bool,
}

impl Span {
    /// Whole seconds from `min` to `max`.
    pub(super) const fn secs(min: u64, max: u64) -> Span {
        Span {
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
            sub_second: false,
        }
    }

    /// The same range, with milliseconds allowed.
    pub(super) const fn with_millis(self) -> Span {
        Span {
            sub_second: true,
            ..self
        }
    }

    /// `d` when it lies in this range (and is whole seconds unless `sub_second`).
    pub(super) fn check(&self, d: Duration) -> Result<Duration, String> {
        if d < self.min || d > self.max {
            return Err(format!(
                "must be between {} and {}, found {}",
                format_duration(self.min),
                format_duration(self.max),
                format_duration(d)
            ));
        }
        if !self.sub_second && d.subsec_nanos() != 0 {
            return Err(format!(
                "is counted in whole seconds, found {}",
                format_duration(d)
            ));
        }
        Ok(d)
    }
}

/// Parses a duration: a whole number of seconds (`300`), or whole numbers each followed by a
/// unit, largest unit first and each unit at most once (`1h30m`, `90s`, `1500ms`, `7d`).
pub(super) fn parse_duration(raw: &str) -> Result<Duration, String> {
    let bad = || format!("expected {DURATION_FORMS}, found {raw:?}");
    let text = raw.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{raw:?} is too large"));
    }
    let mut rest = text;
    let mut next_unit = 0; // index into UNITS of the largest unit still allowed
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let pos = UNITS[next_unit..].iter().position(|(u, _)| *u == unit);
        let (Some(pos), false) = (pos, num.is_empty()) else {
            return Err(bad());
        };
        let (_, scale) = UNITS[next_unit + pos];
        next_unit += pos + 1;
        millis = num
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .and_then(|n| n.checked_add(millis))
            .ok_or_else(|| format!("{raw:?} is too large"))?;
        rest = after;
    }
    if text.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_millis(millis))
}

/// Renders a duration the way `parse_duration` reads it, in the fewest parts: `1h30m`, `45s`,
/// `1s500ms`, `0s`.
pub(super) fn format_duration(d: Duration) -> String {
    let mut millis = d.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, scale) in UNITS {
        let scale = u128::from(scale);
        if millis >= scale {
            out.push_str(&format!("{}{unit}", millis / scale));
            millis %= scale;
        }
    }
    out
}

/// Parses a size: a number (decimals allowed, as Docker does: `1.5g`) with an optional `b`,
/// `k`/`kb`, `m`/`mb`, `g`/`gb` or `t`/`tb` suffix, any case, in binary multiples (1k = 1024).
/// A fraction of a byte is dropped.
pub(super) fn parse_size(raw: &str) -> Result<u64, String> {
    let lower = raw.trim().to_ascii_lowercase();
    let end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, suffix) = lower.split_at(end);
    let multiplier: u64 = match suffix {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return Err(size_forms(raw)),
    };
    let (whole, fraction) = num.split_once('.').unwrap_or((num, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(fraction) || (num.contains('.') && fraction.is_empty()) {
        return Err(size_forms(raw));
    }
    let too_large = || format!("{raw:?} is too large");
    let mut bytes = whole
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(too_large)?;
    // The fraction's bytes: digits * multiplier / 10^len, dropping what is below a byte.
    let (mut part, mut scale) = (0u128, 1u128);
    for b in fraction.bytes().take(18) {
        part = part * 10 + u128::from(b - b'0');
        scale *= 10;
    }
    let extra = u64::try_from(part * u128::from(multiplier) / scale).map_err(|_| too_large())?;
    bytes = bytes.checked_add(extra).ok_or_else(too_large)?;
    Ok(bytes)
}

fn size_forms(raw: &str) -> String {
    format!(
        "expected a size like 512m, 1.5g or 64kb (a number with an optional b, k, kb, m, mb, g, \
         gb, t or tb suffix, binary multiples), found {raw:?}"
    )
}

/// Checks a byte count against Docker's minimum.
pub(super) fn check_mem_bytes(bytes: u64) -> Result<u64, String> {
    if bytes < MIN_MEM_BYTES {
        return Err(format!(
            "must be at least 6m ({MIN_MEM_BYTES} bytes, Docker's minimum), found {bytes} bytes"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1000;

    #[test]
    fn durations_accepted() {
        for (raw, millis) in [
            ("300", 300 * SEC),
            ("0", 0),
            (" 42 ", 42 * SEC),
            ("300s", 300 * SEC),
            ("5m", 300 * SEC),
            ("1h", 3600 * SEC),
            ("1h30m", 5400 * SEC),
            ("1h0m5s", 3605 * SEC),
            ("2m30s", 150 * SEC),
            ("7d", 7 * 86400 * SEC),
            ("1d12h", 36 * 3600 * SEC),
            ("1500ms", 1500),
            ("1s500ms", 1500),
            ("90m", 5400 * SEC),
        ] {
            assert_eq!(
                parse_duration(raw),
                Ok(Duration::from_millis(millis)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn durations_refused_with_the_forms_in_the_message() {
        for raw in [
            "", "s", "5 m", "5min", "1.5h", "-5s", "5M", "1H", "30m1h", "1m1m", "1s1m", "5ms3s",
            "abc", "m5", "1h 30m", "5sec",
        ] {
            let e = parse_duration(raw).unwrap_err();
            assert!(
                e.starts_with("expected seconds (300) or a duration like 90s, 5m, 1h or 1h30m"),
                "{raw:?}: {e}"
            );
            assert!(e.contains(&format!("found {raw:?}")), "{raw:?}: {e}");
        }
        for raw in ["99999999999999999999", "999999999999999999d"] {
            let e = parse_duration(raw).unwrap_err();
            assert!(e.ends_with("is too large"), "{raw:?}: {e}");
        }
    }

    #[test]
    fn durations_print_as_they_are_read() {
        for (millis, text) in [
            (0, "0s"),
            (300 * SEC, "5m"),
            (5400 * SEC, "1h30m"),
            (45 * SEC, "45s"),
            (1500, "1s500ms"),
            (10 * 365 * 86400 * SEC, "3650d"),
            (3605 * SEC, "1h5s"),
        ] {
            let d = Duration::from_millis(millis);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d), "{text} reads back");
        }
    }

    #[test]
    fn spans_keep_their_range_and_precision() {
        let whole = Span::secs(1, 3600);
        assert_eq!(
            whole.check(Duration::from_secs(60)),
            Ok(Duration::from_secs(60))
        );
        let e = whole.check(Duration::from_secs(7200)).unwrap_err();
        assert_eq!(e, "must be between 1s and 1h, found 2h");
        let e = whole.check(Duration::ZERO).unwrap_err();
        assert_eq!(e, "must be between 1s and 1h, found 0s");
        let e = whole.check(Duration::from_millis(1500)).unwrap_err();
        assert_eq!(e, "is counted in whole seconds, found 1s500ms");
        let fine = whole.with_millis();
        assert_eq!(
            fine.check(Duration::from_millis(1500)),
            Ok(Duration::from_millis(1500))
        );
        let e = fine.check(Duration::from_millis(500)).unwrap_err();
        assert_eq!(e, "must be between 1s and 1h, found 500ms");
    }

    #[test]
    fn sizes_accepted() {
        let mib = 1024 * 1024;
        for (raw, want) in [
            ("8g", 8 << 30),
            ("8G", 8 << 30),
            ("8gb", 8 << 30),
            ("8GB", 8 << 30),
            ("512m", 512 * mib),
            ("512MB", 512 * mib),
            ("512Mb", 512 * mib),
            ("64k", 64 << 10),
            ("64KB", 64 << 10),
            ("100b", 100),
            ("100B", 100),
            ("100", 100),
            ("1t", 1 << 40),
            ("2tb", 2 << 40),
            ("1.5g", 3 << 29),
            ("0.5m", 512 << 10),
            ("1.0001k", 1024), // below a byte is dropped
            (" 1g ", 1 << 30),
            ("0", 0),
        ] {
            assert_eq!(parse_size(raw), Ok(want), "{raw:?}");
        }
    }

    #[test]
    fn sizes_refused_with_the_forms_in_the_message() {
        for raw in [
            "", "m", "g1", "-1g", "12 m", "1gib", "1x", "1.g", ".5g", "1..5g", "1.2.3m", "1e3",
        ] {
            let e = parse_size(raw).unwrap_err();
            assert!(e.starts_with("expected a size like 512m"), "{raw:?}: {e}");
            assert!(e.contains("kb, m, mb, g, gb"), "{raw:?}: {e}");
            assert!(e.ends_with(&format!("found {raw:?}")), "{raw:?}: {e}");
        }
        for raw in ["99999999999t", "99999999999999999999999", "17179869184.5g"] {
            let e = parse_size(raw).unwrap_err();
            assert!(e.ends_with("is too large"), "{raw:?}: {e}");
        }
    }

    #[test]
    fn mem_limits_have_dockers_minimum() {
        let mib = 1024 * 1024;
        let parse_mem_limit = |raw| check_mem_bytes(parse_size(raw)?);
        assert_eq!(parse_mem_limit("6m"), Ok(6 * mib));
        assert_eq!(parse_mem_limit("6144k"), Ok(6 * mib));
        assert_eq!(parse_mem_limit("6291456"), Ok(6 * mib));
        for raw in ["5m", "6291455", "0", "5.9m"] {
            let e = parse_mem_limit(raw).unwrap_err();
            assert!(e.contains("at least 6m"), "{raw:?}: {e}");
        }
        assert!(
            parse_mem_limit("1x")
                .unwrap_err()
                .contains("expected a size")
        );
    }
}
