//! Secrets in the config (`bearer_token` and every `auth_token`): read so that no way of
//! writing one turns it into a publicly known token, and refused when too weak. Messages say
//! what is wrong and how to fix it, never the secret's text.
//!
//! Refused, in this order (the first problem found is the one reported):
//! 1. as written: `${NAME:-default}`, because the default is in the file for anyone to read;
//! 2. an unset variable: the message shows how to generate a value, and offers no default;
//! 3. as it became (expanded and trimmed): whitespace or control characters; text that still
//!    looks like a variable reference (a bare `$NAME`, which wakeproxy does not expand, a
//!    `${` kept by a `$$` escape or coming from a variable's value, or `%NAME%`), since that
//!    text itself would be the token;
//! 4. weakness, judged by [`weakness`].

use serde_yaml_ng::Value;

use super::expand::{ExpandError, bare_reference, is_var_name, references};
use super::read::{Ctx, FieldPath, Show};

/// Shortest accepted secret, in characters.
pub(super) const MIN_CHARS: usize = 32;
/// Least accepted strength by the estimate of [`estimated_bits`].
pub(super) const MIN_BITS: f64 = 128.0;
/// A run of this many equal characters (`aaaaaaaa`), or of characters counting up or down
/// (`12345678`, `hgfedcba`), is refused.
pub(super) const RUN_LIMIT: usize = 8;
/// Fewest distinct characters.
pub(super) const MIN_DISTINCT: usize = 8;

/// How to make a good one; ends most messages.
const GENERATE: &str = "generate one with: openssl rand -hex 32";

/// Reads the secret `v` at `path`. None, with the issue recorded, when it is refused.
pub(super) fn read(ctx: &mut Ctx, v: &Value, path: &FieldPath) -> Option<String> {
    let Value::String(raw) = v else {
        ctx.type_error(v, path, "a string", Show::Secret);
        return None;
    };
    let checked = written(raw)
        .and_then(|()| ctx.expand(raw).map_err(|e| expand_message(&e)))
        .and_then(|value| {
            let token = value.trim();
            // Reference-like text that is not in the file came from a variable's value.
            let from_env = !references(raw).is_empty()
                && bare_reference(raw).is_none()
                && percent_reference(raw).is_none();
            became(token, from_env).map(|()| token.to_string())
        });
    checked.map_err(|msg| ctx.issue(path, msg)).ok()
}

/// Checks how a secret is written, before expansion: no `${NAME:-default}`.
pub(super) fn written(raw: &str) -> Result<(), String> {
    match references(raw)
        .into_iter()
        .find(|r| r.has_default && is_var_name(r.name))
    {
        Some(r) => {
            let name = r.name;
            Err(format!(
                "${{{name}:-...}} gives a secret a default, which is written in this file for \
                 anyone to read: it would be a publicly known token. Write ${{{name}}} and set \
                 {name} to a random value (generate one with: openssl rand -hex 32)"
            ))
        }
        None => Ok(()),
    }
}

/// The message for a secret whose expansion failed. Unlike the general one, an unset
/// variable gets no advice to add a fallback (that would be a known token), and nothing
/// between `${` and `}` is echoed.
pub(super) fn expand_message(e: &ExpandError) -> String {
    match e {
        ExpandError::Unset { name } => format!(
            "environment variable {name} is not set; it must hold a random token, e.g. \
             export {name}=$(openssl rand -hex 32)"
        ),
        ExpandError::Unterminated => e.to_string(),
        ExpandError::InvalidName { .. } => "invalid reference: expected ${NAME} where NAME is \
                                            letters, digits and \"_\", not starting with a digit"
            .to_string(),
    }
}

/// Checks a secret as it became: expanded and trimmed. `from_env` says that text looking like
/// a reference can only have come from a variable's value (then none of it is named).
pub(super) fn became(token: &str, from_env: bool) -> Result<(), String> {
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".to_string());
    }
    if let Some(msg) = unexpanded(token, from_env) {
        return Err(msg);
    }
    match weakness(token) {
        Some(why) => Err(format!("{why}; {GENERATE}")),
        None => Ok(()),
    }
}

/// Why `token` looks like a variable reference that was never expanded, if it does.
fn unexpanded(token: &str, from_env: bool) -> Option<String> {
    let (whole, name) = if let Some(name) = bare_reference(token) {
        (token == format!("${name}"), name)
    } else if let Some(name) = percent_reference(token) {
        (token == format!("%{name}%"), name)
    } else if token.contains("${") {
        (false, "")
    } else {
        return None;
    };
    Some(if whole && !from_env {
        format!(
            "\"{token}\" is not expanded: wakeproxy reads a variable only when it is written \
             ${{{name}}}, so this text itself would be the token; write ${{{name}}}"
        )
    } else if from_env {
        "the value from the environment looks like an unexpanded variable reference ($NAME, \
         ${NAME} or %NAME%); set the variable to the token itself"
            .to_string()
    } else {
        "looks like it holds a variable reference that is not expanded ($NAME, a \"${\" left \
         by \"$$\", or %NAME%); wakeproxy expands only ${NAME}, and a secret must not contain \
         such text"
            .to_string()
    })
}

/// The name of the first `%NAME%` in `s` (Windows' form, never expanded).
fn percent_reference(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        let after = &rest[i + 1..];
        let end = after.find('%')?;
        if is_var_name(&after[..end]) {
            return Some(&after[..end]);
        }
        rest = &after[end..];
    }
    None
}

/// Why `token` is too weak, if it is: shorter than [`MIN_CHARS`], a run of [`RUN_LIMIT`]
/// equal or consecutive characters, a shorter sequence repeated, fewer than [`MIN_DISTINCT`]
/// distinct characters, or under [`MIN_BITS`] by [`estimated_bits`].
pub(super) fn weakness(token: &str) -> Option<String> {
    let chars: Vec<char> = token.chars().collect();
    let n = chars.len();
    if n < MIN_CHARS {
        return Some(format!(
            "must be at least {MIN_CHARS} characters, found {n}"
        ));
    }
    let run = longest_run(&chars);
    if run >= RUN_LIMIT {
        return Some(format!(
            "has a run of {run} equal or consecutive characters (like aaaaaaaa or 12345678); \
             fewer than {RUN_LIMIT} in a row are allowed"
        ));
    }
    if let Some(p) = period(&chars) {
        return Some(format!("repeats the same {p}-character sequence"));
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT {
        return Some(format!(
            "uses only {} different characters; at least {MIN_DISTINCT} are needed",
            distinct.len()
        ));
    }
    let bits = estimated_bits(token);
    if bits < MIN_BITS {
        return Some(format!(
            "is too easy to guess: about {bits:.0} bits by a simple estimate (its length times \
             log2 of the character classes it uses: digits 10, lower case 26, upper case 26, \
             others 33), at least {MIN_BITS:.0} needed"
        ));
    }
    None
}

/// Strength in bits if every character were drawn at random from the classes the token uses:
/// length × log2(sum of the class sizes). 32 hex digits: 32 × log2(10 + 26) ≈ 165; 32
/// decimal digits: 32 × log2(10) ≈ 106, too few (39 digits are enough).
pub(super) fn estimated_bits(token: &str) -> f64 {
    let has = |f: fn(&char) -> bool| token.chars().any(|c| f(&c));
    let pool = [
        (has(char::is_ascii_digit), 10),
        (has(char::is_ascii_lowercase), 26),
        (has(char::is_ascii_uppercase), 26),
        (has(|c| !c.is_ascii_alphanumeric()), 33),
    ]
    .iter()
    .filter(|(used, _)| *used)
    .map(|(_, size)| size)
    .sum::<u32>();
    if pool == 0 {
        return 0.0;
    }
    token.chars().count() as f64 * f64::from(pool).log2()
}

/// The longest run of equal characters, or of characters one code point apart in the same
/// direction.
fn longest_run(chars: &[char]) -> usize {
    let mut best = usize::from(!chars.is_empty());
    // (length, step) of the run ending at the previous character; step is -1, 0 or 1.
    let mut run = (1, None::<i64>);
    for pair in chars.windows(2) {
        let step = i64::from(u32::from(pair[1])) - i64::from(u32::from(pair[0]));
        run = match (step.abs() <= 1, run.1) {
            (true, Some(s)) if s == step => (run.0 + 1, Some(step)),
            (true, _) => (2, Some(step)),
            (false, _) => (1, None),
        };
        best = best.max(run.0);
    }
    best
}

/// The shortest `p` up to half the length such that the token is its first `p` characters
/// over and over (`abcabcab`: 3).
fn period(chars: &[char]) -> Option<usize> {
    (1..=chars.len() / 2).find(|&p| (p..chars.len()).all(|i| chars[i] == chars[i - p]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 32 random hex digits (`openssl rand -hex 16`).
    const GOOD: &str = "903b273d830064dfd0709bfa6bc593d4";

    fn weak(token: &str) -> String {
        weakness(token).unwrap_or_else(|| panic!("{token:?} was accepted"))
    }

    #[test]
    fn random_tokens_pass() {
        for t in [
            GOOD,
            "+gAL0mt4keQYCQPxYjO35Nej5OYUEPIqIPyWAU6H",
            "7b160a90a2bba89b2100d1f018f8eaa4ac769909b160031e2e7d2df983c5555e",
            "7163020966379678564539198031622812070042",
            "ofuipxsiudbibhampyqcefddmbgdgoen",
        ] {
            assert_eq!(weakness(t), None, "{t}");
            assert_eq!(became(t, false), Ok(()), "{t}");
        }
    }

    #[test]
    fn short_tokens_are_refused() {
        assert_eq!(
            weak(&GOOD[..31]),
            "must be at least 32 characters, found 31"
        );
        assert!(weak("aaaaaaaaaaaaaaaa").contains("at least 32 characters, found 16"));
        assert_eq!(
            weakness(""),
            Some("must be at least 32 characters, found 0".into())
        );
    }

    #[test]
    fn runs_of_equal_or_consecutive_characters_are_refused() {
        let msg = weak("903b273d830064dfaaaaaaaa6bc593d4");
        assert!(msg.contains("a run of 8 equal"), "{msg}");
        let msg = weak("903b273d8300x12345678a6bc593d4e1");
        assert!(msg.contains("a run of 8"), "{msg}");
        let msg = weak("903b273d8300hgfedcbafa6bc593d4e1");
        assert!(msg.contains("a run of 8"), "{msg}");
        let msg = weak("903b273d0123456789abc593d4e1f0b7");
        assert!(msg.contains("a run of 10"), "{msg}");
        // Seven in a row is still fine.
        assert_eq!(weakness("903b273d830064dfaaaaaaa06bc593d4"), None);
        assert_eq!(weakness("903b273d8300x1234567fa6bc593d4e1"), None);
        assert_eq!(longest_run(&['a']), 1);
        assert_eq!(longest_run(&[]), 0);
        assert_eq!(longest_run(&"abcba".chars().collect::<Vec<_>>()), 3);
    }

    #[test]
    fn repeated_sequences_and_few_distinct_characters_are_refused() {
        let msg = weak("0123456x0123456x0123456x0123456x");
        assert_eq!(msg, "repeats the same 8-character sequence");
        assert!(weak("ab1ab1ab1ab1ab1ab1ab1ab1ab1ab1ab1").contains("3-character"));
        let msg = weak("aabbaabbbaaabababbbaabaabbbaabab");
        assert_eq!(
            msg,
            "uses only 2 different characters; at least 8 are needed"
        );
    }

    #[test]
    fn low_entropy_is_refused_by_the_estimate() {
        // 32 decimal digits: 32 × log2(10) ≈ 106 bits.
        let digits = "88421390776512093448761209834756";
        let msg = weak(digits);
        assert!(msg.contains("about 106 bits"), "{msg}");
        assert!(msg.contains("at least 128"), "{msg}");
        assert!((estimated_bits(digits) - 106.3).abs() < 0.1);
        // The same length in hex is plenty: 32 × log2(36) ≈ 165.
        assert!((estimated_bits(GOOD) - 165.4).abs() < 0.1);
        assert!((estimated_bits("aB3+") - 4.0 * 95f64.log2()).abs() < 1e-9);
        assert_eq!(estimated_bits(""), 0.0);
    }

    #[test]
    fn weak_messages_say_how_to_generate_and_never_echo_the_token() {
        for t in [
            "short-secret",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "88421390776512093448761209834756",
        ] {
            let msg = became(t, false).unwrap_err();
            assert!(msg.contains("openssl rand -hex 32"), "{msg}");
            assert!(!msg.contains(t), "{msg} leaks the token");
        }
    }

    #[test]
    fn a_default_for_a_secret_is_refused_naming_why() {
        let msg = written("${PROXY_BEARER_TOKEN:-changeme-changeme}").unwrap_err();
        assert!(msg.contains("publicly known token"), "{msg}");
        assert!(msg.contains("Write ${PROXY_BEARER_TOKEN}"), "{msg}");
        assert!(
            !msg.contains("changeme"),
            "the default is not echoed: {msg}"
        );
        assert!(written("x${A:-}").is_err(), "an empty default too");
        assert_eq!(written("${PROXY_BEARER_TOKEN}"), Ok(()));
        assert_eq!(written("$${A:-x}"), Ok(()), "escaped: not a reference");
    }

    #[test]
    fn the_unset_message_shows_how_to_generate_and_offers_no_default() {
        let msg = expand_message(&ExpandError::Unset {
            name: "PROXY_BEARER_TOKEN".into(),
        });
        assert!(msg.contains("PROXY_BEARER_TOKEN is not set"), "{msg}");
        assert!(msg.contains("openssl rand -hex 32"), "{msg}");
        assert!(!msg.to_lowercase().contains("default"), "{msg}");
        let msg = expand_message(&ExpandError::InvalidName {
            expr: "secret text".into(),
        });
        assert!(!msg.contains("secret text"), "{msg}");
    }

    #[test]
    fn a_bare_dollar_name_is_refused_showing_the_braced_form() {
        let msg = became("$PROXY_BEARER_TOKEN", false).unwrap_err();
        assert!(
            msg.contains("\"$PROXY_BEARER_TOKEN\" is not expanded"),
            "{msg}"
        );
        assert!(msg.contains("write ${PROXY_BEARER_TOKEN}"), "{msg}");
        // Inside a longer literal the text is not echoed.
        let msg = became(&format!("{GOOD}$ABC"), false).unwrap_err();
        assert!(
            msg.contains("not expanded") && !msg.contains("ABC"),
            "{msg}"
        );
        // From a variable whose value is itself a reference.
        let msg = became("$OTHER_SECRET", true).unwrap_err();
        assert!(msg.contains("value from the environment"), "{msg}");
        assert!(!msg.contains("OTHER_SECRET"), "{msg}");
        // A lone or digit-led dollar is not a reference.
        assert_eq!(became(&format!("{GOOD}$9$"), false), Ok(()));
    }

    #[test]
    fn braces_left_literal_and_percent_names_are_refused() {
        let msg = became(&format!("${{PROXY_BEARER_TOKEN}}{GOOD}"), false).unwrap_err();
        assert!(msg.contains("not expanded"), "{msg}");
        let msg = became("%PROXY_BEARER_TOKEN%", false).unwrap_err();
        assert!(
            msg.contains("\"%PROXY_BEARER_TOKEN%\" is not expanded"),
            "{msg}"
        );
        assert!(msg.contains("write ${PROXY_BEARER_TOKEN}"), "{msg}");
        assert!(became(&format!("{GOOD}%TOKEN%"), false).is_err());
        // Percent-encoding is not a name.
        assert_eq!(became(&format!("{GOOD}%2F%3A"), false), Ok(()));
        assert_eq!(percent_reference("a%1%-%C_D%"), Some("C_D"));
    }

    #[test]
    fn whitespace_is_refused_without_echo() {
        let msg = became(&format!("{GOOD} x"), false).unwrap_err();
        assert_eq!(msg, "must not contain whitespace or control characters");
    }
}
