//! Just enough X.509 (DER) reading to describe a certificate in logs and `/proxy/status`:
//! serial, validity, subject common name and DNS names. rustls checks nothing here; this is
//! for people. Anything unexpected gives `None` rather than a guess.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the logs and the status endpoint say about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Upper-case hex, no leading zero byte (as `openssl x509 -serial` prints it).
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The subject's common name, when it has one.
    pub common_name: Option<String>,
    /// `dNSName` entries of the subject alternative name extension.
    pub dns_names: Vec<String>,
}

impl Summary {
    /// The common name, or else the first DNS name, or `-`.
    pub(crate) fn subject(&self) -> String {
        self.common_name
            .clone()
            .or_else(|| self.dns_names.first().cloned())
            .unwrap_or_else(|| "-".into())
    }

    /// The names the certificate is served for by SNI: its DNS names, or its common name when
    /// it has none (as they are written; the SNI index lower-cases them).
    pub(crate) fn names(&self) -> &[String] {
        match (&self.dns_names[..], &self.common_name) {
            ([], Some(cn)) => std::slice::from_ref(cn),
            (names, _) => names,
        }
    }

    /// Does the certificate name `host` (exactly, or through a `*.` wildcard one label deep)?
    pub(crate) fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names().iter().any(|n| {
            let n = n.to_ascii_lowercase();
            match n.strip_prefix("*.") {
                Some(parent) => host.split_once('.').is_some_and(|(_, rest)| rest == parent),
                None => n == host,
            }
        })
    }
}

/// One DER element: tag, contents, and what follows it.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
    rest: &'a [u8],
}

fn tlv(d: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, d) = d.split_first()?;
    let (&first, d) = d.split_first()?;
    let (len, d) = if first < 0x80 {
        (first as usize, d)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || d.len() < n {
            return None;
        }
        let len = d[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &d[n..])
    };
    if d.len() < len {
        return None;
    }
    Some(Tlv {
        tag,
        body: &d[..len],
        rest: &d[len..],
    })
}

/// Reads the element at the front of `d` and moves `d` past it.
fn next<'a>(d: &mut &'a [u8]) -> Option<Tlv<'a>> {
    let t = tlv(d)?;
    *d = t.rest;
    Some(t)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Describes a DER certificate, or `None` when it is not one this reader understands.
pub(crate) fn summarize(der: &[u8]) -> Option<Summary> {
    let cert = tlv(der).filter(|t| t.tag == SEQUENCE)?;
    let mut tbs = tlv(cert.body).filter(|t| t.tag == SEQUENCE)?.body;
    let mut first = next(&mut tbs)?;
    if first.tag == 0xa0 {
        // explicit version
        first = next(&mut tbs)?;
    }
    if first.tag != 0x02 {
        return None;
    }
    let serial = serial_hex(first.body);
    let _signature_alg = next(&mut tbs).filter(|t| t.tag == SEQUENCE)?;
    let _issuer = next(&mut tbs).filter(|t| t.tag == SEQUENCE)?;
    let validity = next(&mut tbs).filter(|t| t.tag == SEQUENCE)?;
    let mut v = validity.body;
    let not_before = time(&next(&mut v)?)?;
    let not_after = time(&next(&mut v)?)?;
    let subject = next(&mut tbs).filter(|t| t.tag == SEQUENCE)?;
    let common_name = common_name(subject.body);
    let _spki = next(&mut tbs)?;
    let mut dns_names = Vec::new();
    while let Some(t) = next(&mut tbs) {
        if t.tag == 0xa3 {
            dns_names = san_dns_names(t.body).unwrap_or_default();
        }
    }
    Some(Summary {
        serial,
        not_before,
        not_after,
        common_name,
        dns_names,
    })
}

fn serial_hex(b: &[u8]) -> String {
    let b = match b {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => b,
    };
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The first CN attribute of a Name.
fn common_name(mut name: &[u8]) -> Option<String> {
    while let Some(rdn) = next(&mut name) {
        if rdn.tag != SET {
            return None;
        }
        let mut atvs = rdn.body;
        while let Some(atv) = next(&mut atvs) {
            let mut a = atv.body;
            let oid = next(&mut a)?;
            let value = next(&mut a)?;
            if oid.tag == 0x06 && oid.body == OID_CN {
                return Some(String::from_utf8_lossy(value.body).into_owned());
            }
        }
    }
    None
}

/// The dNSName entries of the subjectAltName extension inside `[3] { SEQUENCE OF Extension }`.
fn san_dns_names(explicit: &[u8]) -> Option<Vec<String>> {
    let mut exts = tlv(explicit).filter(|t| t.tag == SEQUENCE)?.body;
    while let Some(ext) = next(&mut exts) {
        let mut e = ext.body;
        let oid = next(&mut e)?;
        if oid.body != OID_SAN {
            continue;
        }
        let mut value = next(&mut e)?;
        if value.tag == 0x01 {
            // critical flag
            value = next(&mut e)?;
        }
        let mut names = tlv(value.body).filter(|t| t.tag == SEQUENCE)?.body;
        let mut out = Vec::new();
        while let Some(n) = next(&mut names) {
            if n.tag == 0x82 {
                out.push(String::from_utf8_lossy(n.body).into_owned());
            }
        }
        return Some(out);
    }
    Some(Vec::new())
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(t: &Tlv<'_>) -> Option<SystemTime> {
    let s = std::str::from_utf8(t.body).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match t.tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, h, m, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec;
    Some(if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn times_in_both_encodings() {
        let utc = Tlv {
            tag: 0x17,
            body: b"260101120000Z",
            rest: b"",
        };
        let generalized = Tlv {
            tag: 0x18,
            body: b"20260101120000Z",
            rest: b"",
        };
        assert_eq!(time(&utc), time(&generalized));
        assert_eq!(
            crate::base::rfc3339(time(&generalized).unwrap()),
            "2026-01-01T12:00:00Z"
        );
        let bad = Tlv {
            tag: 0x18,
            body: b"20261301120000Z",
            rest: b"",
        };
        assert_eq!(time(&bad), None);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(summarize(b""), None);
        assert_eq!(summarize(&[0x30, 0x82, 0xff]), None);
        assert_eq!(summarize(&[0x30, 0x03, 0x02, 0x01, 0x01]), None);
    }

    #[test]
    fn wildcard_coverage() {
        let s = Summary {
            serial: "01".into(),
            not_before: UNIX_EPOCH,
            not_after: UNIX_EPOCH,
            common_name: Some("ignored.example".into()),
            dns_names: vec!["example.com".into(), "*.apps.example.com".into()],
        };
        assert!(s.covers("example.com"));
        assert!(s.covers("EXAMPLE.com."));
        assert!(s.covers("a.apps.example.com"));
        assert!(!s.covers("a.b.apps.example.com"));
        assert!(
            !s.covers("ignored.example"),
            "the CN is ignored when SANs exist"
        );
        assert_eq!(s.subject(), "ignored.example");
        assert_eq!(s.names(), ["example.com", "*.apps.example.com"]);
        let cn_only = Summary {
            dns_names: Vec::new(),
            ..s
        };
        assert_eq!(cn_only.names(), ["ignored.example"]);
        assert!(cn_only.covers("ignored.example"));
    }

    #[test]
    fn san_dns_names_with_wildcards_without_addresses() {
        use crate::tls::tests::certs::{EC_CERT, WILDCARD_CERT};
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(WILDCARD_CERT.as_bytes()).unwrap();
        let s = summarize(&der).unwrap();
        assert_eq!(s.serial, "5A17");
        assert_eq!(s.common_name.as_deref(), Some("wildcard test"));
        assert_eq!(
            s.dns_names,
            ["*.wild.example", "Wild.Example", "www.wild.example"],
            "IP and e-mail names are left out; a critical extension is read"
        );
        assert!(s.covers("a.wild.example") && s.covers("wild.example"));
        assert!(!s.covers("a.b.wild.example"));
        assert_eq!(crate::base::rfc3339(s.not_after), "2126-11-09T22:27:14Z");
        let der = CertificateDer::from_pem_slice(EC_CERT.as_bytes()).unwrap();
        assert_eq!(summarize(&der).unwrap().dns_names, ["test.example"]);
    }
}
