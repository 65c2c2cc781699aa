//! Splits a `command` or `entrypoint` written as one string into words, the way a POSIX shell
//! splits them (as Compose does): blanks separate words, `'...'` is literal, `"..."` keeps
//! blanks and takes `\` before `"`, `\`, `$`, `` ` `` and a newline, and outside quotes `\`
//! takes the next character. Nothing is expanded: no variables, globs, pipes or redirections
//! (`$`, `*`, `|` and `>` are ordinary characters). Pure.

/// The words of `raw`; an unterminated quote or a trailing `\` is an error.
pub(super) fn split_words(raw: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started (so `''` gives an empty word, and blanks alone give none).
    let mut started = false;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(unterminated("single")),
                    }
                }
            }
            '"' => {
                started = true;
                double_quoted(&mut chars, &mut word)?;
            }
            '\\' => match chars.next() {
                Some('\n') => {} // a line continuation
                Some(c) => {
                    started = true;
                    word.push(c);
                }
                None => {
                    return Err("ends with a \"\\\" that escapes nothing \
                         (write \"\\\\\" for a backslash)"
                        .to_string());
                }
            },
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// Reads a `"..."` body (after its opening quote) into `word`.
fn double_quoted(chars: &mut std::str::Chars, word: &mut String) -> Result<(), String> {
    loop {
        match chars.next() {
            Some('"') => return Ok(()),
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                Some('\n') => {}
                Some(c) => {
                    word.push('\\');
                    word.push(c);
                }
                None => return Err(unterminated("double")),
            },
            Some(c) => word.push(c),
            None => return Err(unterminated("double")),
        }
    }
}

fn unterminated(kind: &str) -> String {
    format!(
        "a {kind} quote is never closed (close it, or write the words as a list: \
         [\"prog\", \"--flag\", \"value\"])"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(raw: &str) -> Vec<String> {
        split_words(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(words("npm run start"), ["npm", "run", "start"]);
        assert_eq!(words("  a \t b\n c  "), ["a", "b", "c"]);
        assert!(words("").is_empty());
        assert!(words("   ").is_empty());
    }

    #[test]
    fn quotes_keep_blanks_and_join_with_neighbours() {
        assert_eq!(
            words("sh -c 'echo hello world'"),
            ["sh", "-c", "echo hello world"]
        );
        assert_eq!(
            words(r#"python -m "http.server" 8000"#),
            ["python", "-m", "http.server", "8000"]
        );
        assert_eq!(words(r#"--name="a b"c"#), ["--name=a bc"]);
        assert_eq!(words("a'b'\"c\"d"), ["abcd"]);
        assert_eq!(words("'' \"\" x"), ["", "", "x"]);
    }

    #[test]
    fn single_quotes_are_literal_double_quotes_take_some_escapes() {
        assert_eq!(words(r#"'a\"b $X'"#), [r#"a\"b $X"#]);
        assert_eq!(
            words(r#""say \"hi\" \\ \$HOME \`x\` \n""#),
            [r#"say "hi" \ $HOME `x` \n"#]
        );
        assert_eq!(words("\"it's\""), ["it's"]);
        assert_eq!(words(r#"'say "hi"'"#), [r#"say "hi""#]);
    }

    #[test]
    fn backslashes_outside_quotes_escape_one_character() {
        assert_eq!(words(r"a\ b c"), ["a b", "c"]);
        assert_eq!(words(r"\'x\'"), ["'x'"]);
        assert_eq!(words("one \\\ntwo"), ["one", "two"]);
        assert_eq!(words(r"C:\\dir"), [r"C:\dir"]);
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(
            words("echo $HOME *.txt | wc > out"),
            ["echo", "$HOME", "*.txt", "|", "wc", ">", "out"]
        );
    }

    #[test]
    fn unterminated_quotes_and_lone_backslashes_are_refused() {
        for (raw, fragment) in [
            ("echo 'hi", "a single quote is never closed"),
            ("echo \"hi", "a double quote is never closed"),
            ("echo \"hi\\", "a double quote is never closed"),
            ("echo hi\\", "ends with a \"\\\""),
        ] {
            let e = split_words(raw).unwrap_err();
            assert!(e.contains(fragment), "{raw:?}: {e}");
        }
        assert!(
            split_words("'x")
                .unwrap_err()
                .contains("write the words as a list")
        );
    }
}
