//! Maps field paths (`global.idle_timeout`, `services[1].environment.FOO`) to 1-based lines
//! by scanning the raw text of block-style YAML. Pure and best effort: unknown paths give None.
//!
//! It understands `key:` lines by indentation, `- ` list items (also `- name: x`, where the
//! item's first key sits on the dash line, and sequences indented like their parent key),
//! comments, blank lines, and skips the bodies of block scalars (`|`, `>`) and of quoted or
//! flow values that span lines. Keys inside flow collections (`{a: 1}`) are not found.

use std::collections::HashMap;

/// Line numbers of the paths found in one text.
#[derive(Debug, Default)]
pub(super) struct Locator {
    lines: HashMap<String, usize>,
}

/// One open node: a key or a list item.
struct OpenNode {
    /// Column of the key or of the dash.
    col: usize,
    path: String,
    is_item: bool,
    /// Index the next list item under this node gets.
    next_index: usize,
}

/// What the scanner is skipping over.
#[derive(Clone, Copy)]
enum Skip {
    None,
    /// Block scalar body: lines indented deeper than this column (and blank lines).
    Block(usize),
    /// A quoted scalar still open at the end of a line.
    Quote(char),
    /// A flow collection with this many unclosed brackets.
    Flow(usize),
}

impl Locator {
    /// Scans `text` once.
    pub(super) fn new(text: &str) -> Locator {
        let mut lines = HashMap::new();
        let mut stack = vec![OpenNode {
            col: 0,
            path: String::new(),
            is_item: false,
            next_index: 0,
        }];
        let mut skip = Skip::None;
        for (n, line) in text.lines().enumerate() {
            let number = n + 1;
            let content = line.trim_start_matches(' ');
            let col = line.len() - content.len();
            match skip {
                Skip::Block(min) if content.trim().is_empty() || col > min => continue,
                Skip::Quote(q) => {
                    if closes_quote(line, q) {
                        skip = Skip::None;
                    }
                    continue;
                }
                Skip::Flow(depth) => {
                    let depth = flow_depth(line, depth);
                    skip = if depth == 0 {
                        Skip::None
                    } else {
                        Skip::Flow(depth)
                    };
                    continue;
                }
                _ => skip = Skip::None,
            }
            if content.trim().is_empty()
                || content.starts_with('#')
                || content.starts_with("---")
                || content.starts_with("...")
            {
                continue;
            }
            skip = scan_line(&mut stack, &mut lines, content, col, number);
        }
        Locator { lines }
    }

    /// The line where `path` is written, if it was found.
    pub(super) fn line(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }
}

/// Records the nodes that start on one (non-blank, non-comment) line; says what to skip next.
fn scan_line(
    stack: &mut Vec<OpenNode>,
    lines: &mut HashMap<String, usize>,
    mut content: &str,
    mut col: usize,
    number: usize,
) -> Skip {
    // List items, possibly several on one line (`- - x`).
    while content == "-" || content.starts_with("- ") {
        while stack.len() > 1 {
            let top = &stack[stack.len() - 1];
            if top.col > col || (top.col == col && top.is_item) {
                stack.pop();
            } else {
                break;
            }
        }
        let parent = stack.len() - 1;
        let path = format!("{}[{}]", stack[parent].path, stack[parent].next_index);
        stack[parent].next_index += 1;
        lines.entry(path.clone()).or_insert(number);
        stack.push(OpenNode {
            col,
            path,
            is_item: true,
            next_index: 0,
        });
        let rest = &content[1..];
        let trimmed = rest.trim_start_matches(' ');
        col += 1 + rest.len() - trimmed.len();
        content = trimmed;
    }
    if content.is_empty() || content.starts_with('#') {
        return Skip::None;
    }
    let (key, value) = match split_key(content) {
        Some(kv) => kv,
        // A scalar (list item or continuation line): it may still open a multi-line value.
        None => return value_skip(content, col.saturating_sub(1)),
    };
    while stack.len() > 1 && stack[stack.len() - 1].col >= col {
        stack.pop();
    }
    let parent = &stack[stack.len() - 1].path;
    let path = if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    };
    lines.entry(path.clone()).or_insert(number);
    stack.push(OpenNode {
        col,
        path,
        is_item: false,
        next_index: 0,
    });
    value_skip(value, col)
}

/// Splits `key: value` (plain, single- or double-quoted key). None when the line is no key.
fn split_key(content: &str) -> Option<(String, &str)> {
    let first = content.chars().next()?;
    if first == '"' || first == '\'' {
        let (key, len) = quoted(content, first)?;
        let rest = content[len..].trim_start_matches(' ');
        let value = rest.strip_prefix(':')?;
        if !(value.is_empty() || value.starts_with([' ', '\t'])) {
            return None;
        }
        return Some((key, value.trim()));
    }
    if matches!(first, '[' | '{' | '|' | '>' | '&' | '*' | '!') {
        return None;
    }
    let bytes = content.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && matches!(bytes[i - 1], b' ' | b'\t') {
            return None;
        }
        if *b == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) {
            let key = content[..i].trim_end();
            return Some((key.to_string(), content[i + 1..].trim()));
        }
    }
    None
}

/// Reads a quoted scalar at the start of `s`; returns its text and its length in bytes.
fn quoted(s: &str, q: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == q {
            if q == '\'' && chars.peek().map(|(_, c)| *c) == Some('\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            return Some((out, i + 1));
        }
        if c == '\\' && q == '"' {
            if let Some((_, e)) = chars.next() {
                out.push(e);
            }
            continue;
        }
        out.push(c);
    }
    None
}

/// What a value that starts on this line makes the scanner skip on the following lines.
fn value_skip(value: &str, col: usize) -> Skip {
    let value = strip_props(value);
    let Some(first) = value.chars().next() else {
        return Skip::None;
    };
    match first {
        '|' | '>' => Skip::Block(col),
        '"' | '\'' => match quoted(value, first) {
            Some(_) => Skip::None,
            None => Skip::Quote(first),
        },
        '[' | '{' => match flow_depth(value, 0) {
            0 => Skip::None,
            depth => Skip::Flow(depth),
        },
        _ => Skip::None,
    }
}

/// Drops leading `&anchor` and `!tag` properties from a value.
fn strip_props(mut value: &str) -> &str {
    while value.starts_with(['&', '!']) {
        value = match value.find(' ') {
            Some(i) => value[i..].trim_start(),
            None => "",
        };
    }
    value
}

/// True when a line ends an open quoted scalar.
fn closes_quote(line: &str, q: char) -> bool {
    let mut escaped = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if escaped {
            escaped = false;
        } else if q == '"' && c == '\\' {
            escaped = true;
        } else if c == q {
            if q == '\'' && chars.peek() == Some(&'\'') {
                chars.next();
                continue;
            }
            return true;
        }
    }
    false
}

/// Bracket depth after reading `line`, starting from `depth` (quotes and comments ignored).
fn flow_depth(line: &str, mut depth: usize) -> usize {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' if prev == ' ' => break,
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# wakeproxy config
global:
  domain: example.com   # the public name
  bearer_token: ${PROXY_BEARER_TOKEN}

  trusted_proxies:
    - 10.0.0.0/8
    - \"::1\"
services:
  - name: a
    path: /
    environment:
      FOO: bar
      \"QUOTED\": 1
    volumes:
      /data/workspace:
        bind: /workspace
        mode: rw
  -   name: b
      path: /b
  -
    name: c
    notes: |
      fake: key
      - fake item

    image: x
";

    #[test]
    fn finds_keys_items_and_nested_paths() {
        let loc = Locator::new(TEXT);
        let cases = [
            ("global", 2),
            ("global.domain", 3),
            ("global.bearer_token", 4),
            ("global.trusted_proxies", 6),
            ("global.trusted_proxies[0]", 7),
            ("global.trusted_proxies[1]", 8),
            ("services", 9),
            ("services[0]", 10),
            ("services[0].name", 10),
            ("services[0].path", 11),
            ("services[0].environment", 12),
            ("services[0].environment.FOO", 13),
            ("services[0].environment.QUOTED", 14),
            ("services[0].volumes./data/workspace", 16),
            ("services[0].volumes./data/workspace.bind", 17),
            ("services[0].volumes./data/workspace.mode", 18),
            ("services[1]", 19),
            ("services[1].name", 19),
            ("services[1].path", 20),
            ("services[2]", 21),
            ("services[2].name", 22),
            ("services[2].notes", 23),
            ("services[2].image", 27),
        ];
        for (path, line) in cases {
            assert_eq!(loc.line(path), Some(line), "{path}");
        }
        for missing in ["services[2].fake", "services[3]", "global.nope", "fake", ""] {
            assert_eq!(loc.line(missing), None, "{missing}");
        }
    }

    #[test]
    fn sequences_indented_like_their_parent_key() {
        let text =
            "services:\n- name: a\n  list:\n  - x\n  - y\n  other: 1\n- name: b\nglobal:\n  k: v\n";
        let loc = Locator::new(text);
        assert_eq!(loc.line("services[0]"), Some(2));
        assert_eq!(loc.line("services[0].list[0]"), Some(4));
        assert_eq!(loc.line("services[0].list[1]"), Some(5));
        assert_eq!(loc.line("services[0].other"), Some(6));
        assert_eq!(loc.line("services[1].name"), Some(7));
        assert_eq!(loc.line("global.k"), Some(9));
        assert_eq!(loc.line("services[0].list[2]"), None);
    }

    #[test]
    fn nested_lists_on_one_line_and_lists_of_lists() {
        let text = "a:\n  - - x\n    - y\n  - - z\n";
        let loc = Locator::new(text);
        assert_eq!(loc.line("a[0]"), Some(2));
        assert_eq!(loc.line("a[0][0]"), Some(2));
        assert_eq!(loc.line("a[0][1]"), Some(3));
        assert_eq!(loc.line("a[1][0]"), Some(4));
    }

    #[test]
    fn skips_multi_line_quoted_and_flow_values() {
        let text = "a: \"one\n  b: two\"\nc: [1,\n  d: 2]\ne: {x: 1}\nf: 'it''s'\n\
                    g: >-\n  h: folded\ni: 'open\n  j: x'\nk: 1\n";
        let loc = Locator::new(text);
        assert_eq!(loc.line("a"), Some(1));
        assert_eq!(loc.line("b"), None);
        assert_eq!(loc.line("c"), Some(3));
        assert_eq!(loc.line("d"), None);
        assert_eq!(loc.line("e"), Some(5));
        assert_eq!(loc.line("e.x"), None, "flow keys are not located");
        assert_eq!(loc.line("f"), Some(6));
        assert_eq!(loc.line("g"), Some(7));
        assert_eq!(loc.line("h"), None);
        assert_eq!(loc.line("i"), Some(9));
        assert_eq!(loc.line("j"), None);
        assert_eq!(loc.line("k"), Some(11));
    }

    #[test]
    fn keys_with_colons_urls_anchors_and_comments() {
        let text = "base: &base\n  x: 1\nurl: http://a:80/b\n\"a: b\": 1\n'q''s': 2\n\
                    weird key: 3\n# c: 4\nlast:\n";
        let loc = Locator::new(text);
        assert_eq!(loc.line("base.x"), Some(2));
        assert_eq!(loc.line("url"), Some(3));
        assert_eq!(loc.line("a: b"), Some(4));
        assert_eq!(loc.line("q's"), Some(5));
        assert_eq!(loc.line("weird key"), Some(6));
        assert_eq!(loc.line("c"), None);
        assert_eq!(loc.line("last"), Some(8));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for text in [
            "",
            "-",
            "- ",
            ":",
            "::",
            "\"",
            "'",
            "[",
            "{",
            "|",
            "a: |",
            "- - - -",
            "   -",
            "\t a: 1",
            "a:\n\tb: 1",
            "ä: ö\n  ü: 1",
            "- \"x",
            "a: [\n",
            "---\n...\n",
        ] {
            let _ = Locator::new(text);
        }
        let deep: String = (0..300)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let loc = Locator::new(&deep);
        assert_eq!(loc.line("k0.k1.k2"), Some(3));
    }
}
