//! The crate's module graph, read from the sources: no module depends on itself through others
//! (file by file), and the runtime never depends on the command line or the companions: `cli/`
//! maps flags onto the library's options, and `image/`, `registry/` and `network/` stand on the
//! runtime, never the reverse. Test modules (`#[cfg(test)] mod tests`) and comments are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules that use the runtime and that the runtime must not use.
const ABOVE_THE_RUNTIME: &[&str] = &["cli", "image", "registry", "network", "up"];

/// Files that are not part of the library's graph (the binary, the crate root, test-only code).
const OUTSIDE: &[&str] = &["main", "lib", "fuzz"];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every module of `src/` (`a::b` for src/a/b.rs or src/a/b/mod.rs) with its source text.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let root = todo[0].clone();
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts.len() == 1 && OUTSIDE.contains(&parts[0].as_str()) {
                continue;
            }
            out.insert(parts.join("::"), std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

/// The text without line comments and without the trailing `#[cfg(test)] mod tests`.
fn code_of(text: &str) -> String {
    let mut s = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            // the next non-empty line decides: a test module ends the file's code
            let rest = &text[text.find(line).unwrap() + line.len()..];
            if rest.trim_start().starts_with("mod tests") {
                break;
            }
        }
        let code = match line.find("//") {
            // `//` inside a string literal is rare enough in paths here; a cut line only loses
            // a possible edge after it, never invents one
            Some(i) => &line[..i],
            None => line,
        };
        s.push_str(code);
        s.push('\n');
    }
    s
}

fn ident_at(s: &str, mut i: usize) -> (String, usize) {
    let b = s.as_bytes();
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    (s[start..i].to_string(), i)
}

/// Paths named after `crate::` or `super::` in `code` (module `here`), absolute, with the
/// entries of one level of `{…}` use-lists expanded.
fn paths_in(code: &str, here: &[&str]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (kw, base) in [("crate::", 0usize), ("super::", 1)] {
        let mut from = 0;
        while let Some(off) = code[from..].find(kw) {
            let at = from + off;
            from = at + kw.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut prefix: Vec<String> = if base == 0 {
                Vec::new()
            } else {
                // `super` of module a::b (src/a/b.rs or src/a/b/mod.rs) is a
                let keep = here.len().saturating_sub(1);
                here[..keep].iter().map(|s| s.to_string()).collect()
            };
            let mut i = from;
            loop {
                if code[i..].starts_with('{') {
                    let end = code[i..].find('}').map_or(code.len(), |e| i + e);
                    for item in code[i + 1..end].split(',') {
                        let item = item.trim();
                        let mut p = prefix.clone();
                        for seg in item.split("::") {
                            let (id, _) = ident_at(seg.trim(), 0);
                            if id.is_empty() || id == "self" {
                                break;
                            }
                            p.push(id);
                        }
                        out.push(p);
                    }
                    break;
                }
                let (id, next) = ident_at(code, i);
                if id.is_empty() {
                    out.push(prefix.clone());
                    break;
                }
                prefix.push(id);
                if code[next..].starts_with("::") {
                    i = next + 2;
                } else {
                    out.push(prefix.clone());
                    break;
                }
            }
        }
    }
    out
}

fn graph() -> Graph {
    let mods = modules();
    let mut g = Graph::new();
    for (name, text) in &mods {
        let here: Vec<&str> = name.split("::").collect();
        let code = code_of(text);
        let edges = g.entry(name.clone()).or_default();
        for p in paths_in(&code, &here) {
            // the longest prefix that is a module file
            let target = (1..=p.len())
                .rev()
                .map(|k| p[..k].join("::"))
                .find(|c| mods.contains_key(c));
            if let Some(t) = target {
                // a module naming itself or one of its ancestors (re-exports) is not an edge
                if t != *name && !name.starts_with(&format!("{t}::")) {
                    edges.insert(t);
                }
            }
        }
    }
    g
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap()
}

#[test]
fn no_module_depends_on_itself() {
    let g = graph();
    assert!(
        g.len() > 50,
        "read only {} modules: is src/ there?",
        g.len()
    );
    let found = cycles(&g);
    let mut msg = String::new();
    for c in &found {
        msg.push_str(&format!("cycle among {c:?}:\n"));
        for a in c {
            let to: Vec<_> = g[a].iter().filter(|b| c.contains(b)).collect();
            msg.push_str(&format!("  {a} -> {to:?}\n"));
        }
    }
    assert!(found.is_empty(), "{msg}");
}

#[test]
fn the_runtime_does_not_use_the_cli_or_the_companions() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, to) in &g {
        if ABOVE_THE_RUNTIME.contains(&top(from)) {
            continue;
        }
        for t in to {
            if ABOVE_THE_RUNTIME.contains(&top(t)) {
                bad.push(format!("{from} -> {t}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "runtime modules using the layer above:\n{}",
        bad.join("\n")
    );
}

/// The reader itself: it finds the edges it is meant to find, or the two tests above could pass
/// by reading nothing.
#[test]
fn the_reader_sees_uses_and_use_lists() {
    let code = code_of(
        "use crate::a::{b, c::D};\nfn f() { super::e::g(); crate::h::i(); }\n\
         // crate::commented::out\n#[cfg(test)]\nmod tests { use crate::t; }\n",
    );
    let p = paths_in(&code, &["x", "y"]);
    let flat: Vec<String> = p.iter().map(|v| v.join("::")).collect();
    for want in ["a::b", "a::c::D", "x::e::g", "h::i"] {
        assert!(flat.iter().any(|f| f == want), "{want} not in {flat:?}");
    }
    assert!(
        !flat.iter().any(|f| f.contains("commented") || f == "t"),
        "{flat:?}"
    );
    let g = graph();
    assert!(
        g["container::lifecycle"].contains("process::spawn"),
        "{:?}",
        g["container::lifecycle"]
    );
    assert!(
        g["image::store"].contains("registry::reference"),
        "{:?}",
        g["image::store"]
    );
}
