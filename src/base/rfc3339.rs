//! RFC 3339 timestamps in UTC: written in whole seconds (`2026-11-26T16:51:32Z`), read as the
//! Docker daemon writes them (`2026-11-26T16:51:32.18870Z`, a fraction of 0 to 9 digits).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-26T16:51:32Z` (UTC, whole seconds).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-26T16:51:32.18870Z` (UTC, `Z`, an optional fraction) as a time; `None` for any
/// other shape.
pub(crate) fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let (whole, frac) = time.split_once('.').unwrap_or((time, ""));
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let mut t = whole.split(':');
    let (h, mi, sec) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let nanos: u32 = format!("{frac:0<9}").parse().ok()?;
    let secs = days_from_civil(y, m as u32, day as u32) * 86_400 + h * 3600 + mi * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// (year, month, day), proleptic Gregorian, to days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_711_892)),
            "2026-11-26T16:51:32Z"
        );
    }

    #[test]
    fn reads_what_it_writes_and_the_daemon_s_fractions() {
        for secs in [0, 951_782_400, 1_795_711_892, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_utc(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_utc("2026-11-26T16:51:32.18870Z"),
            Some(UNIX_EPOCH + Duration::new(1_795_711_892, 188_700_000))
        );
        assert_eq!(
            parse_utc("2026-11-26T16:51:32.123456789Z"),
            Some(UNIX_EPOCH + Duration::new(1_795_711_892, 123_456_789))
        );
        for bad in [
            "",
            "2026-11-26T16:51:32",
            "2026-11-26 16:51:32Z",
            "2026-13-26T16:51:32Z",
            "2026-11-26T24:51:32Z",
            "2026-11-26T16:51:32.1234567890Z",
            "2026-11-26T16:51:32.x1Z",
            "+2026-11-26T16:51:32Z",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad:?}");
        }
    }
}
