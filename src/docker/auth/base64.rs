//! Base64 (RFC 4648): the standard alphabet and the URL-safe one; encoding pads, decoding takes
//! the text with or without its padding.
//!
//! Docker needs both: config.json's `auth` is standard base64 of `user:password`, and the
//! Engine API's `X-Registry-Auth` header is base64url of a JSON object.

use std::fmt;

/// Which 64 characters stand for the 6-bit values (they differ only in the last two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alphabet {
    /// `A-Z a-z 0-9 + /` (RFC 4648 section 4).
    Standard,
    /// `A-Z a-z 0-9 - _` (RFC 4648 section 5), safe in URLs and header values.
    UrlSafe,
}

impl Alphabet {
    fn chars(self) -> &'static [u8; 64] {
        match self {
            Alphabet::Standard => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            }
            Alphabet::UrlSafe => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            }
        }
    }

    /// The 6-bit value of `c`, if `c` belongs to this alphabet.
    fn value(self, c: u8) -> Option<u8> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            _ => {
                return self.chars()[62..]
                    .iter()
                    .position(|&x| x == c)
                    .map(|i| 62 + i as u8);
            }
        };
        Some(v)
    }
}

/// Text that is not base64 in the alphabet asked for. Says where, never what (the text may be
/// a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InvalidBase64 {
    /// A character outside the alphabet (or `=` before the end), at this byte offset.
    Character(usize),
    /// A length that no padding can fix: one character left over after the last group of four.
    Length,
}

impl fmt::Display for InvalidBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidBase64::Character(at) => write!(f, "not base64 (bad character at offset {at})"),
            InvalidBase64::Length => write!(f, "not base64 (truncated)"),
        }
    }
}

/// `data` as base64 in `alphabet`, padded with `=` to a multiple of four characters.
pub(crate) fn encode(data: &[u8], alphabet: Alphabet) -> String {
    let chars = alphabet.chars();
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        // Three bytes make 24 bits, read as four 6-bit values; a short group is padded with
        // zero bits and its missing characters are written as `=`.
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(chars[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 in `alphabet`. Padding is optional, but if present it must end the text;
/// leftover bits in the last character are ignored, as most decoders do.
pub(crate) fn decode(text: &str, alphabet: Alphabet) -> Result<Vec<u8>, InvalidBase64> {
    let bytes = text.as_bytes();
    let unpadded = bytes.len()
        - bytes
            .iter()
            .rev()
            .take(2)
            .take_while(|&&c| c == b'=')
            .count();
    let body = &bytes[..unpadded];
    if body.len() % 4 == 1 || (unpadded < bytes.len() && !bytes.len().is_multiple_of(4)) {
        return Err(InvalidBase64::Length);
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for (g, group) in body.chunks(4).enumerate() {
        let mut n = 0u32;
        for (i, &c) in group.iter().enumerate() {
            let v = alphabet
                .value(c)
                .ok_or(InvalidBase64::Character(g * 4 + i))?;
            n |= u32::from(v) << (18 - 6 * i);
        }
        // k characters carry 6k bits: whole bytes are k - 1 of them (2 → 1, 3 → 2, 4 → 3).
        let whole = group.len() - 1;
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..whole]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_both_ways_in_both_alphabets() {
        for alphabet in [Alphabet::Standard, Alphabet::UrlSafe] {
            for (plain, coded) in VECTORS {
                assert_eq!(encode(plain.as_bytes(), alphabet), coded, "{plain:?}");
                assert_eq!(
                    decode(coded, alphabet).unwrap(),
                    plain.as_bytes(),
                    "{coded:?}"
                );
            }
        }
    }

    #[test]
    fn padding_may_be_left_out() {
        for (plain, coded) in VECTORS {
            let bare = coded.trim_end_matches('=');
            assert_eq!(decode(bare, Alphabet::Standard).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn the_alphabets_differ_in_the_last_two_characters() {
        // 0xfb 0xff 0xbf is 111110 111111 111110 111111: values 62, 63, 62, 63.
        let data = [0xfb, 0xff, 0xbf];
        assert_eq!(encode(&data, Alphabet::Standard), "+/+/");
        assert_eq!(encode(&data, Alphabet::UrlSafe), "-_-_");
        assert_eq!(decode("-_-_", Alphabet::UrlSafe).unwrap(), data);
        assert_eq!(decode("+/+/", Alphabet::Standard).unwrap(), data);
        assert_eq!(
            decode("-_-_", Alphabet::Standard),
            Err(InvalidBase64::Character(0))
        );
        assert_eq!(
            decode("+/+/", Alphabet::UrlSafe),
            Err(InvalidBase64::Character(0))
        );
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for len in [0, 1, 2, 3, 254, 255, 256] {
            for alphabet in [Alphabet::Standard, Alphabet::UrlSafe] {
                let text = encode(&all[..len], alphabet);
                assert_eq!(text.len() % 4, 0);
                assert_eq!(decode(&text, alphabet).unwrap(), &all[..len]);
            }
        }
    }

    #[test]
    fn bad_text_is_refused_with_where() {
        assert_eq!(
            decode("Zm9v!mFy", Alphabet::Standard),
            Err(InvalidBase64::Character(4))
        );
        assert_eq!(
            decode("Zm=v", Alphabet::Standard),
            Err(InvalidBase64::Character(2))
        );
        assert_eq!(
            decode("Zm9v Zg=", Alphabet::Standard),
            Err(InvalidBase64::Character(4))
        );
        // One character after a group of four can never be a byte.
        assert_eq!(
            decode("Zm9vY", Alphabet::Standard),
            Err(InvalidBase64::Length)
        );
        // Padding that does not make a multiple of four.
        assert_eq!(
            decode("Zg=", Alphabet::Standard),
            Err(InvalidBase64::Length)
        );
        // At most two `=`.
        assert_eq!(
            decode("A===", Alphabet::Standard),
            Err(InvalidBase64::Character(1))
        );
        assert_eq!(
            InvalidBase64::Character(4).to_string(),
            "not base64 (bad character at offset 4)"
        );
    }
}
