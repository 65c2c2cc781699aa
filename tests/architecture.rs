//! The crate's structure, read lexically from `src/` (std only), against [`LAYERS`], with no
//! cycle between top-level modules nor between the files of one (a child may use its ancestor
//! `mod.rs`, the folder's façade), and with files and `fn`s under the size limits. `use` trees
//! and `crate::`, `super::`, `self::` and child-module paths count (an inline `mod x {}` is part
//! of its file); `#[cfg(test)]` items and test modules (segment `tests`, `tests_*`, `test_*`,
//! `fake_*`, or declared under `#[cfg(test)]`) are not layered. Comments and literals are
//! skipped. The report: `cargo test --test architecture -- --nocapture`.

use std::collections::{BTreeMap as Map, BTreeSet as Set, VecDeque};
use std::path::Path;
use std::sync::OnceLock;

/// Each top-level module and the top-level modules it may depend on.
#[rustfmt::skip]
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &[]),
    ("http", &["base"]),
    ("config", &["base"]),
    ("docker", &["base"]),
    ("tls", &["base", "http", "config"]),
    ("upstream", &["base", "http"]),
    ("lifecycle", &["base", "config", "docker"]),
    ("endpoints", &["base", "http", "config", "tls", "lifecycle"]),
    ("pipeline", &["base", "http", "config", "upstream", "lifecycle", "endpoints", "tls"]),
    ("server", &["base", "http", "config", "tls", "pipeline"]),
    ("app", &["base", "http", "config", "docker", "tls", "upstream", "lifecycle", "endpoints",
              "pipeline", "server"]),
];
/// Every file under `src/` has fewer lines than this.
const MAX_FILE_LINES: usize = 600;
/// Every `fn` under `src/` spans fewer lines than this (its `fn` line through its `}`).
const MAX_FN_LINES: usize = 80;

type Layers<'a> = &'a [(&'a str, &'a [&'a str])];
/// Edges `(from, to)`, each with where its references are (`file:line`).
type Edges = Map<(String, String), Vec<String>>;
/// Paths (`super::a::B`), each with its line.
type Paths = Vec<(Vec<String>, usize)>;

fn analysis() -> &'static Analysis {
    static ANALYSIS: OnceLock<Analysis> = OnceLock::new();
    ANALYSIS.get_or_init(|| analyse(&read_tree(Path::new(env!("CARGO_MANIFEST_DIR"))), LAYERS))
}

#[test]
fn report() {
    println!("{}", analysis().report);
}

#[test]
fn layering() {
    check("layering", &analysis().layering);
}

#[test]
fn cycles() {
    check("cycle", &analysis().cycles);
}

#[test]
fn sizes() {
    check("size", &analysis().sizes);
}

fn check(what: &str, violations: &[String]) {
    let (n, list) = (violations.len(), violations.join("\n  "));
    assert!(n == 0, "{n} {what} violation(s):\n  {list}\n");
}

/// Every `.rs` file under `root/src`: (path from `root`, with `/`; contents), sorted by path.
fn read_tree(root: &Path) -> Vec<(String, String)> {
    let (mut out, mut dirs) = (Vec::new(), vec![root.join("src")]);
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            let rel = path.strip_prefix(root).unwrap().components();
            let rel: Vec<_> = rel.map(|c| c.as_os_str().to_string_lossy()).collect();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((rel.join("/"), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    line: usize,
}

fn is_ident(t: &str) -> bool {
    t.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// The code's tokens, each with its line: identifiers and numbers (`r#x` is `x`), lifetimes,
/// `::` and single punctuation. Comments, strings and char literals are skipped.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let word = |k: usize| k < c.len() && (c[k].is_alphanumeric() || c[k] == '_');
    let (mut toks, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let literal = literal_end(&c, i);
        let raw = 2 * usize::from(c[i] == 'r' && c.get(i + 1) == Some(&'#'));
        let end = match (literal, c[i]) {
            (Some(end), _) => end,
            (_, ':') if c.get(i + 1) == Some(&':') => i + 2,
            (_, '\'') => (i + 1..).find(|&k| !word(k)).unwrap(),
            _ if word(i) => (i + 1 + raw..).find(|&k| !word(k)).unwrap(),
            _ => i + 1,
        };
        if literal.is_none() && !c[i].is_whitespace() {
            let text = c[i + raw..end].iter().collect();
            toks.push(Tok { text, line });
        }
        line += c[i..end].iter().filter(|&&ch| ch == '\n').count();
        i = end;
    }
    toks
}

/// If a comment, string or char literal starts at token start `i`, the index past its end
/// (block comments nest). A `'` starts a char only when escaped (`'\n'`) or closed two on
/// (`'x'`), so lifetimes and labels (`'a`, `'outer:`) stay code.
fn literal_end(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or(' ');
    let p = i + usize::from(matches!((at(i), at(i + 1)), ('b' | 'c', '"' | '\'' | 'r')));
    let h = (p + 1..).take_while(|&k| at(k) == '#').count();
    let raw: Vec<char> = std::iter::once('"').chain(vec!['#'; h]).collect();
    match (at(p), at(p + 1), at(p + 2)) {
        ('/', '/', _) => Some(past(c, p, &['\n'], false)),
        ('/', '*', _) => {
            let mut k = p + 2;
            while k < c.len() && !c[k..].starts_with(&['*', '/']) {
                let nested = c[k..].starts_with(&['/', '*']);
                k = if nested { literal_end(c, k)? } else { k + 1 };
            }
            Some(c.len().min(k + 2))
        }
        ('"', _, _) => Some(past(c, p + 1, &['"'], true)),
        ('r', '#' | '"', _) if at(p + 1 + h) == '"' => Some(past(c, p + 2 + h, &raw, false)),
        ('\'', '\\', _) => Some(past(c, p + 1, &['\''], true)),
        ('\'', x, '\'') if x != '\'' => Some(p + 3),
        _ => None,
    }
}

/// Past the first `delim` from `k` on (skipping `\` escapes if `escapes`).
fn past(c: &[char], mut k: usize, delim: &[char], escapes: bool) -> usize {
    while k < c.len() && !c[k..].starts_with(delim) {
        k += if escapes && c[k] == '\\' { 2 } else { 1 };
    }
    c.len().min(k + delim.len())
}

fn text(toks: &[Tok], i: usize) -> &str {
    toks.get(i).map_or("", |t| t.text.as_str())
}

/// Index of the bracket closing the one at `open`.
fn matching(toks: &[Tok], open: usize) -> Option<usize> {
    let o = text(toks, open);
    let pair = ["{}", "()", "[]"].into_iter().find(|p| p[..1] == *o)?;
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(open) {
        depth += i32::from(t.text == o) - i32::from(t.text == pair[1..]);
        if depth == 0 {
            return Some(k);
        }
    }
    None
}

/// From `k` on, the first `;`, `{` or `}` outside `(…)` and `[…]`: an item's end or body.
fn item_head_end(toks: &[Tok], mut k: usize) -> usize {
    let mut depth = 0;
    while k < toks.len() && !(depth == 0 && matches!(text(toks, k), ";" | "{" | "}")) {
        depth += i32::from(matches!(text(toks, k), "(" | "["));
        depth -= i32::from(matches!(text(toks, k), ")" | "]"));
        k += 1;
    }
    k
}

/// `(name, line of fn, lines through its closing brace)` of every `fn` with a body.
fn fn_spans(toks: &[Tok]) -> Vec<(String, usize, usize)> {
    let is_fn = |i: &usize| text(toks, *i) == "fn" && is_ident(text(toks, i + 1));
    let span = |i: usize| {
        let (close, line) = (matching(toks, item_head_end(toks, i + 2))?, toks[i].line);
        Some((toks[i + 1].text.clone(), line, toks[close].line - line + 1))
    };
    (0..toks.len()).filter(is_fn).filter_map(span).collect()
}

/// The tokens without `#[cfg(test)]` items, the names in `#[cfg(test)] mod x;`, and whether
/// the whole file is test code (`#![cfg(test)]`).
fn drop_test_items(toks: &[Tok]) -> (Vec<Tok>, Vec<String>, bool) {
    let cfg = ["#", "[", "cfg", "(", "test", ")", "]"];
    let at = |i: usize, words: &[&str]| (0..words.len()).all(|k| text(toks, i + k) == words[k]);
    let test_file = (0..toks.len()).any(|i| at(i, &["#", "!"]) && at(i + 2, &cfg[1..]));
    let (mut kept, mut test_mods, mut i) = (Vec::new(), Vec::new(), 0);
    while i < toks.len() {
        if !at(i, &cfg) {
            kept.push(toks[i].clone());
            i += 1;
            continue;
        }
        let k = item_head_end(toks, i + cfg.len());
        if text(toks, k) == ";" && text(toks, k - 2) == "mod" {
            test_mods.push(toks[k - 1].text.clone());
        }
        let body_end = matching(toks, k).map(|c| c + 1);
        i = body_end.unwrap_or(k + usize::from(text(toks, k) == ";"));
    }
    (kept, test_mods, test_file)
}

/// The crate paths used in a file of module `here`, made absolute (no leading `crate`).
fn references(toks: &[Tok], here: &[String]) -> Paths {
    let is_mod = |i: &usize| text(toks, *i) == "mod" && matches!(text(toks, i + 2), ";" | "{");
    let kids = (0..toks.len()).filter(is_mod).map(|i| text(toks, i + 1));
    let kids: Set<&str> = kids.collect();
    let (mut paths, mut i) = (Paths::new(), 0);
    while i < toks.len() {
        let (prev, t) = (text(toks, i.wrapping_sub(1)), text(toks, i));
        let root = matches!(t, "crate" | "super" | "self") || kids.contains(t);
        let start = root && text(toks, i + 1) == "::" && !matches!(prev, "::" | "." | "in");
        i = match t {
            "use" => use_tree(toks, i + 1, &[], &mut paths),
            _ if start => use_tree(toks, i, &[], &mut paths),
            _ => i + 1,
        };
    }
    let abs = |(p, line): (Vec<String>, usize)| Some((resolve(&p, here, &kids)?, line));
    paths.into_iter().filter_map(abs).collect()
}

/// Reads the use tree (or path) at `i` into `out`, a path per leaf; returns the index after.
fn use_tree(toks: &[Tok], mut i: usize, prefix: &[String], out: &mut Paths) -> usize {
    let mut path = prefix.to_vec();
    while is_ident(text(toks, i)) && text(toks, i + 1) == "::" && text(toks, i + 2) != "<" {
        path.push(toks[i].text.clone());
        i += 2;
    }
    match text(toks, i) {
        "{" => {
            i += 1;
            while !matches!(text(toks, i), "}" | "") {
                i = use_tree(toks, i, &path, out).max(i + 1);
            }
            i + 1
        }
        t if is_ident(t) || t == "*" => {
            path.extend(is_ident(t).then(|| t.to_string()));
            out.push((path, toks[i].line));
            i + if text(toks, i + 1) == "as" { 3 } else { 1 }
        }
        _ => i,
    }
}

/// The absolute form of `raw` seen from module `here`, if it is a path into the crate.
fn resolve(raw: &[String], here: &[String], kids: &Set<&str>) -> Option<Vec<String>> {
    let (first, rest) = raw.split_first()?;
    let mut abs = match first.as_str() {
        "crate" => vec![],
        "self" => here.to_vec(),
        "super" => here.split_last()?.1.to_vec(),
        kid if kids.contains(kid) => [here, &raw[..1]].concat(),
        _ => return None,
    };
    for seg in rest {
        match seg.as_str() {
            "super" => abs.pop().map(drop)?,
            "self" => {}
            _ => abs.push(seg.clone()),
        }
    }
    Some(abs)
}

/// `src/a/b.rs`, `src/a/b/mod.rs`: `a::b`; `src/lib.rs`: root; `src/main.rs`, `src/bin/`: none.
fn module_of(path: &str) -> Option<Vec<String>> {
    let rel = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut segs: Vec<String> = rel.split('/').map(String::from).collect();
    if segs.last().is_some_and(|s| s == "mod") || segs == ["lib"] {
        segs.pop();
    }
    (rel != "main" && !rel.starts_with("bin/")).then_some(segs)
}

fn is_test(module: &[String], declared: &Set<Vec<String>>) -> bool {
    let prefixes = ["tests_", "test_", "fake_"];
    let named = |s: &String| s == "tests" || prefixes.iter().any(|p| s.starts_with(p));
    module.iter().any(named) || (1..=module.len()).any(|n| declared.contains(&module[..n]))
}

#[derive(Default)]
struct Analysis {
    /// (lines, path) of every file and (lines, `path:line  fn name`) of every fn, largest first.
    files: Vec<(usize, String)>,
    fns: Vec<(usize, String)>,
    /// Modules, and how many of them are test code.
    modules: (usize, usize),
    /// Non-test top-level modules (with their first file), their edges, and the file-level
    /// edges inside each (module paths joined with `::`).
    tops: Map<String, String>,
    top: Edges,
    inner: Map<String, Edges>,
    layering: Vec<String>,
    cycles: Vec<String>,
    sizes: Vec<String>,
    report: String,
}

fn analyse(sources: &[(String, String)], layers: Layers) -> Analysis {
    let (mut a, mut files, mut declared) = (Analysis::default(), Vec::new(), Set::new());
    for (path, src) in sources {
        let toks = tokens(src);
        a.files.push((src.lines().count(), path.clone()));
        for (name, line, len) in fn_spans(&toks) {
            a.fns.push((len, format!("{path}:{line}  fn {name}")));
        }
        let Some(m) = module_of(path) else { continue };
        let (kept, test_mods, test_file) = drop_test_items(&toks);
        declared.extend(test_file.then(|| m.clone()));
        declared.extend(test_mods.into_iter().map(|t| [&m[..], &[t]].concat()));
        files.push((path.as_str(), references(&kept, &m), m));
    }
    a.files.sort_by(|x, y| (y.0, &x.1).cmp(&(x.0, &y.1)));
    a.fns.sort_by(|x, y| (y.0, &x.1).cmp(&(x.0, &y.1)));
    link(&mut a, &files, &declared);
    a.layering = check_layering(&a, layers);
    a.cycles = check_cycles(&a);
    let big = a.files.iter().filter(|f| f.0 >= MAX_FILE_LINES);
    let big = big.map(|(n, at)| format!("{at}: {n} lines (limit: under {MAX_FILE_LINES})"));
    let long = a.fns.iter().filter(|f| f.0 >= MAX_FN_LINES);
    let long = long.map(|(n, at)| format!("{at}: {n} lines (limit: under {MAX_FN_LINES})"));
    a.sizes = big.chain(long).collect();
    a.report = render(&a, layers);
    a
}

/// Adds the edges of `files` (path, references, module) that are not test code to `a`.
fn link(a: &mut Analysis, files: &[(&str, Paths, Vec<String>)], declared: &Set<Vec<String>>) {
    let modules: Set<&[String]> = files.iter().map(|f| &f.2[..]).collect();
    let test = |m: &[String]| is_test(m, declared);
    a.modules = (files.len(), files.iter().filter(|f| test(&f.2)).count());
    for (path, refs, module) in files.iter().filter(|f| !test(&f.2) && !f.2.is_empty()) {
        let top = &module[0];
        a.tops.entry(top.clone()).or_insert(path.to_string());
        for (to, line) in refs {
            let n = (0..=to.len()).rev().find(|&n| modules.contains(&to[..n]));
            let (to, loc) = (&to[..n.unwrap_or(0)], format!("{path}:{line}"));
            let inside = module.starts_with(to); // itself, an ancestor or the root
            if !inside && to[0] != *top {
                let key = (top.clone(), to[0].clone());
                a.top.entry(key).or_default().push(loc);
            } else if !inside && !test(to) {
                let key = (module.join("::"), to.join("::"));
                let inner = a.inner.entry(top.clone()).or_default();
                inner.entry(key).or_default().push(loc);
            }
        }
    }
}

fn check_layering(a: &Analysis, layers: Layers) -> Vec<String> {
    let table: Map<&str, &[&str]> = layers.iter().copied().collect();
    let mut out = Vec::new();
    for (top, file) in a.tops.iter().filter(|t| !table.contains_key(&t.0[..])) {
        out.push(format!("module `{top}` ({file}) is not in LAYERS"));
    }
    for ((from, to), locs) in &a.top {
        let may = table.get(&from[..]).copied().unwrap_or_default();
        if table.contains_key(&from[..]) && !may.contains(&&to[..]) {
            let may = may.join(", ") + if may.is_empty() { "nothing" } else { "" };
            let msg = format!("{from} -> {to} is not allowed ({from} may use: {may})");
            out.push(format!("{msg}: {}", evidence(locs)));
        }
    }
    out
}

/// The first few places, and how many more.
fn evidence(locs: &[String]) -> String {
    let mut locs = locs.to_vec();
    locs.dedup();
    let more = locs.len().saturating_sub(3);
    let more = (more > 0).then(|| format!(" and {more} more"));
    locs[..locs.len().min(3)].join(", ") + &more.unwrap_or_default()
}

fn check_cycles(a: &Analysis) -> Vec<String> {
    let mut graphs = vec![("top-level cycle".to_string(), &a.top)];
    for (top, edges) in &a.inner {
        graphs.push((format!("cycle inside `{top}`"), edges));
    }
    let mut out = Vec::new();
    for (what, edges) in graphs {
        for cycle in find_cycles(edges) {
            let mut msg = format!("{what}: {}", cycle.join(" -> "));
            for p in cycle.windows(2) {
                let at = evidence(&edges[&(p[0].to_string(), p[1].to_string())]);
                msg += &format!("\n      {} -> {}: {at}", p[0], p[1]);
            }
            out.push(msg);
        }
    }
    out
}

/// Each node's shortest cycle back to itself, once each (as `a -> … -> a`, from its least node).
fn find_cycles(edges: &Edges) -> Vec<Vec<&str>> {
    let mut adj: Map<&str, Vec<&str>> = Map::new();
    for (from, to) in edges.keys() {
        adj.entry(from).or_default().push(to);
    }
    let mut found = Set::new();
    for mut cycle in adj.keys().filter_map(|s| shortest_cycle(&adj, s)) {
        let least = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
        cycle.rotate_left(least);
        cycle.push(cycle[0]);
        found.insert(cycle);
    }
    found.into_iter().collect()
}

/// The shortest path `start -> … -> x` with an edge `x -> start` (breadth-first).
fn shortest_cycle<'a>(adj: &Map<&'a str, Vec<&'a str>>, start: &'a str) -> Option<Vec<&'a str>> {
    let (mut seen, mut queue) = (Set::new(), VecDeque::from([vec![start]]));
    while let Some(path) = queue.pop_front() {
        for &next in adj.get(path[path.len() - 1]).into_iter().flatten() {
            if next == start {
                return Some(path);
            } else if seen.insert(next) {
                queue.push_back([&path[..], &[next]].concat());
            }
        }
    }
    None
}

fn render(a: &Analysis, layers: Layers) -> String {
    let ((modules, tests), files, tops) = (a.modules, a.files.len(), a.tops.len());
    let mut r = format!("== src/ architecture ==\n{files} files, {modules} modules");
    r += &format!(" ({tests} of them test code)\n{tops} top-level modules:\n");
    for top in a.tops.keys() {
        let to: Vec<_> = a.top.keys().filter(|e| e.0 == *top).collect();
        let to: Vec<_> = to.iter().map(|e| e.1.as_str()).collect();
        let none = if to.is_empty() { "(nothing)" } else { "" };
        r += &format!("  {top} -> {}{none}\n", to.join(", "));
    }
    let absent = layers.iter().filter(|l| !a.tops.contains_key(l.0));
    let absent: Vec<_> = absent.map(|l| l.0).collect();
    let none = if absent.is_empty() { "(none)" } else { "" };
    r += &format!("in LAYERS, not in src/: {}{none}\n", absent.join(", "));
    r += &format!("longest functions (limit: under {MAX_FN_LINES}):\n");
    for (n, at) in a.fns.iter().take(5) {
        r += &format!("  {n:>5} lines  {at}\n");
    }
    r += &format!("largest files (limit: under {MAX_FILE_LINES}):\n");
    for (n, at) in a.files.iter().take(5) {
        r += &format!("  {n:>5} lines  {at}\n");
    }
    let all: Vec<_> = a.layering.iter().chain(&a.cycles).chain(&a.sizes).collect();
    r += &format!("violations: {}", all.len());
    for v in all {
        r += &format!("\n  {v}");
    }
    r
}

// Tests of the scanner itself.

/// The references of `src` seen from module `here`, joined with spaces.
fn refs_of(src: &str, here: &[&str]) -> String {
    let here: Vec<String> = here.iter().map(|s| s.to_string()).collect();
    let refs = references(&drop_test_items(&tokens(src)).0, &here);
    let refs: Vec<_> = refs.iter().map(|r| r.0.join("::")).collect();
    refs.join(" ")
}

#[test]
fn scanner_skips_comments_strings_and_chars() {
    let src = r####"
// use crate::line_comment;
/// crate::doc_comment
//! crate::inner_doc
/* crate::block /* nested */ crate::still_block */
fn f() {
    let s = ("crate::fake::x \" crate::escaped", r#"crate::raw "quoted" "#);
    let b = (br##"crate::raw_bytes "# "##, '"', '\'', b'\n');
    let real = crate::real::Thing;
}
pub(crate) fn g() {}
pub(in crate::restricted) struct S;
"####;
    assert_eq!(refs_of(src, &[]), "real::Thing");
    let last = tokens(src).pop().unwrap();
    assert_eq!((last.text.as_str(), last.line), (";", 12));
}

#[test]
fn scanner_reads_use_trees_and_paths_outside_cfg_test() {
    let src = "use crate::{a::b, c};\npub use crate::{\n  d::{self, e::F},\n  g as h,\n};\n\
               use std::fmt;\nuse crate::i::*;\nfn f() { crate::j::k::<u8>(); }\n";
    assert_eq!(refs_of(src, &[]), "a::b c d d::e::F g i j::k");
    let src = "mod kid;\nuse super::z::W;\nuse super::super::q;\nuse self::kid::K;\n\
               fn f() { self::k::g(); super::m(); kid::run(); other::x(); x.kid::<u8>(); }\n";
    let want = "x::z::W q x::y::kid::K x::y::k::g x::m x::y::kid::run";
    assert_eq!(refs_of(src, &["x", "y"]), want);
    assert_eq!(refs_of("use super::a;", &[]), "");
    let src = "use crate::a::X;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\n#[allow(unused)]\n\
               pub(crate) mod helpers;\n#[cfg(test)]\nmod tests_more {\n    use crate::b::Y;\n    \
               fn f() { let _ = '}'; }\n}\nuse crate::c;\n";
    assert_eq!(drop_test_items(&tokens(src)).1, ["tests", "helpers"]);
    assert_eq!(refs_of(src, &[]), "a::X c");
    assert!(drop_test_items(&tokens("#![cfg(test)]\nuse crate::a;")).2);
}

#[test]
fn scanner_matches_fn_braces() {
    let src = r###"
impl<'a> S<'a> {
    fn outer<'b>(&'b self, x: &'a str) -> [u8; 2] {
        let (open, close, raw) = ('{', "}", r#"}}"#);
        fn nested() {
            let _ = 'x';
        }
        'label: loop { break 'label; }
        [b'{', b'\''] // }
    }
}
trait T {
    fn declared(&self) -> [u8; 4];
    fn defaulted(&self) {}
}
type P = fn(u8) -> u8;
"###;
    let spans = fn_spans(&tokens(src)).into_iter().map(|s| format!("{s:?}"));
    let want = r#"("outer", 3, 8) ("nested", 5, 3) ("defaulted", 14, 1)"#;
    assert_eq!(spans.collect::<Vec<_>>().join(" "), want);
}

#[test]
fn scanner_maps_files_to_modules_and_finds_cycles() {
    let module = |p: &str| module_of(p).map_or("-".into(), |m| m.join("::"));
    let paths = "src/lib.rs src/main.rs src/bin/t.rs src/a/b.rs src/a/b/mod.rs";
    let modules: Vec<_> = paths.split(' ').map(module).collect();
    assert_eq!(modules.join(","), ",-,-,a::b,a::b");
    let segs = |m: &str| m.split("::").map(String::from).collect::<Vec<_>>();
    let test = |m: &str| is_test(&segs(m), &Set::new());
    assert!(test("a::tests::b") && test("a::tests_x") && test("test_certs") && test("a::fake_d"));
    assert!(!test("contest") && !test("a::testing") && !test("a::fakes") && !test("test"));
    let edge = |e: &str| ((e[..1].to_string(), e[2..].to_string()), vec![]);
    let edges: Edges = ["a b", "b a", "b c", "c d", "d b", "d e"].map(edge).into();
    let want = [vec!["a", "b", "a"], vec!["b", "c", "d", "b"]];
    assert_eq!(find_cycles(&edges), want);
}

#[test]
fn analysis_of_a_small_tree() {
    let tree = "src/lib.rs|pub mod base; pub mod http; pub mod extra;\n\
                src/base/mod.rs|mod a; mod b; #[cfg(test)] mod checks; use crate::http::Req;\n\
                src/base/a.rs|use super::b::B; use super::Facade;\n\
                src/base/b.rs|use super::{a::A, Facade};\n\
                src/base/checks.rs|use crate::extra::E;\n\
                src/http.rs|use crate::base::Thing;\n\
                src/main.rs|fn main() { wakeproxy::extra::go(); }";
    let tree = tree.lines().map(|l| l.split_once('|').unwrap());
    let mut tree: Vec<_> = tree.map(|(p, s)| (p.to_string(), s.to_string())).collect();
    let long = "fn long() {".to_string() + &"\n".repeat(MAX_FN_LINES - 1) + "}";
    tree.push(("src/extra.rs".into(), long + &"\n".repeat(MAX_FILE_LINES)));
    let a = analyse(&tree, &[("base", &[]), ("http", &["base"])]);
    let want = "module `extra` (src/extra.rs) is not in LAYERS\n\
                base -> http is not allowed (base may use: nothing): src/base/mod.rs:1";
    assert_eq!(a.layering.join("\n"), want);
    assert_eq!(a.cycles.len(), 2, "{:?}", a.cycles);
    assert!(a.cycles[0].starts_with("top-level cycle: base -> http -> base\n"));
    assert!(a.cycles[1].starts_with("cycle inside `base`: base::a -> base::b -> base::a\n"));
    let (n, max, f) = (
        MAX_FN_LINES - 1 + MAX_FILE_LINES,
        MAX_FILE_LINES,
        MAX_FN_LINES,
    );
    let want = format!("src/extra.rs: {n} lines (limit: under {max})\n");
    let want = want + &format!("src/extra.rs:1  fn long: {f} lines (limit: under {f})");
    assert_eq!(a.sizes.join("\n"), want);
    let want = "8 files, 7 modules (1 of them test code)\n3 top-level modules:\n";
    assert!(a.report.contains(want), "{}", a.report);
    let want = "  base -> http\n  extra -> (nothing)\n  http -> base\n";
    assert!(a.report.contains(want), "{}", a.report);
}
