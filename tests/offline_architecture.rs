//! The architecture check: reads every `crate::`, `super::` and `self::` path in `src/` and fails
//! when a file imports from a layer above its own or when files import each other in a circle.
//! The layer order is written once, in ARCHITECTURE.md's `layers` block; this file never
//! compiles or runs pgdrill, it only reads its source text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One file of the library: its module path (`["runner", "execute"]`) and its code with
/// comments, string literals and `#[cfg(test)]` modules blanked out (same length, so byte
/// offsets still give line numbers).
struct SourceFile {
    path: String,
    module: Vec<String>,
    is_mod_rs: bool,
    code: String,
}

/// A `use` or inline path found in a file, resolved to the file it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    from: String,
    line: usize,
    to: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Findings {
    /// `file:line: layer a imports layer b (above it)`.
    upward: Vec<String>,
    /// Each cycle as its files, sorted.
    cycles: Vec<Vec<String>>,
    /// Top-level modules of `src/` that the `layers` block does not place.
    unplaced: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Reading the tree

fn module_of(rel: &Path) -> (Vec<String>, bool) {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs").to_string();
    let is_mod = stem == "mod" || (parts.is_empty() && stem == "lib");
    if !is_mod {
        parts.push(stem);
    }
    (parts, is_mod)
}

fn read_tree(src: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(src).expect("under src").to_path_buf();
            // The binary (main.rs, cli/) sits above every layer and imports through `pgdrill::`.
            if rel == Path::new("main.rs") || rel == Path::new("cli.rs") || rel.starts_with("cli") {
                continue;
            }
            if path.is_dir() {
                // Directories of data (fixtures) hold no Rust modules.
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("readable source");
                files.push(source_file(&rel, &text));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn source_file(rel: &Path, text: &str) -> SourceFile {
    let (module, is_mod_rs) = module_of(rel);
    SourceFile {
        path: format!("src/{}", rel.display()),
        module,
        is_mod_rs,
        code: blank_test_modules(&blank_comments_and_strings(text)),
    }
}

/// Replaces comments, string and char literals with spaces (newlines kept).
fn blank_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if matches!(b.get(i + 1), Some(b'#') | Some(b'"'))
                && (i == 0 || !is_ident(b[i - 1])) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i + 2 + hashes;
                let end = text[start..]
                    .find(&close)
                    .map_or(b.len(), |n| start + n + close.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i, j + 1);
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    let end = text[i + 2..].find('\'').map_or(b.len(), |n| i + 2 + n + 1);
                    blank(&mut out, i, end);
                    i = end;
                } else if let Some(c) = text[i + 1..].chars().next() {
                    let after = i + 1 + c.len_utf8();
                    if b.get(after) == Some(&b'\'') {
                        blank(&mut out, i, after + 1);
                        i = after + 1;
                    } else {
                        i += 1;
                    }
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8 boundaries")
}

/// Blanks `#[cfg(test)] mod name { … }` blocks: tests may reach anywhere for fixtures.
fn blank_test_modules(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]").map(|n| from + n) {
        let rest = &out[at + "#[cfg(test)]".len()..];
        let trimmed = rest.trim_start();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        let open = rest.find(['{', ';']).map(|n| at + "#[cfg(test)]".len() + n);
        match open {
            Some(open) if is_mod && out.as_bytes()[open] == b'{' => {
                let mut depth = 0;
                let mut end = out.len();
                for (k, c) in out[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let blanked: String = out[at..end]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' })
                    .collect();
                out.replace_range(at..end, &blanked);
                from = end;
            }
            _ => from = at + 1,
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

// ---------------------------------------------------------------------------------------------
// Paths

/// Every path starting with `crate::`, `super::` or `self::` in `code`, `use` groups expanded,
/// with the byte offset where it starts.
fn paths_in(code: &str) -> Vec<(usize, Vec<String>)> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    for head in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(head).map(|n| from + n) {
            from = at + head.len();
            if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b':') {
                continue;
            }
            let root = head.trim_end_matches("::").to_string();
            let mut expanded = Vec::new();
            parse_path(code, at + head.len(), vec![root], &mut expanded);
            found.extend(expanded.into_iter().map(|p| (at, p)));
        }
    }
    found
}

/// Parses `a::b::{c, d::e}` from `at`, pushing each full path (prefix + segments).
fn parse_path(
    code: &str,
    mut at: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let b = code.as_bytes();
    loop {
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < b.len() && b[at] == b'{' {
            at += 1;
            loop {
                while at < b.len() && (b[at].is_ascii_whitespace() || b[at] == b',') {
                    at += 1;
                }
                if at >= b.len() || b[at] == b'}' {
                    return at + 1;
                }
                at = parse_path(code, at, prefix.clone(), out);
            }
        }
        let start = at;
        while at < b.len() && is_ident(b[at]) {
            at += 1;
        }
        if start == at {
            // `*` or an operator: the path ends here.
            out.push(prefix);
            return at + usize::from(at < b.len() && b[at] == b'*');
        }
        let seg = &code[start..at];
        if seg != "self" {
            prefix.push(seg.to_string());
        }
        if code[at..].starts_with("::") {
            at += 2;
            continue;
        }
        // `as alias`, `,`, `}`, `;`, `(`, `<`… end the path.
        out.push(prefix);
        while at < b.len() && !matches!(b[at], b',' | b'}' | b';') {
            if b[at] == b'{' || b[at] == b'(' || b[at] == b'<' || b[at] == b'\n' {
                break;
            }
            at += 1;
        }
        return at;
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution and findings

struct Tree {
    files: Vec<SourceFile>,
    /// Module path → index in `files`.
    by_module: BTreeMap<Vec<String>, usize>,
    /// For `mod.rs`/`lib.rs` modules: re-exported name → the module path it comes from.
    reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
    /// For `mod.rs`/`lib.rs` modules: the modules they re-export with `pub use m::*`.
    globs: BTreeMap<Vec<String>, Vec<Vec<String>>>,
}

impl Tree {
    fn new(files: Vec<SourceFile>) -> Self {
        let by_module = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        let mut tree = Tree {
            files,
            by_module,
            reexports: BTreeMap::new(),
            globs: BTreeMap::new(),
        };
        for i in 0..tree.files.len() {
            if !tree.files[i].is_mod_rs {
                continue;
            }
            let module = tree.files[i].module.clone();
            let mut names = BTreeMap::new();
            let mut globs = Vec::new();
            for path in reexport_paths(&tree.files[i].code) {
                let absolute = tree.absolute(&module, true, &path.segments);
                if path.glob {
                    globs.push(absolute);
                } else if let Some(name) = path.segments.last().cloned() {
                    names.insert(name, absolute[..absolute.len().saturating_sub(1)].to_vec());
                }
            }
            tree.reexports.insert(module.clone(), names);
            tree.globs.insert(module, globs);
        }
        tree
    }

    /// `crate::…`, `super::…`, `self::…` or a bare `name::…` (in `pub use`) as an absolute path.
    fn absolute(&self, module: &[String], is_mod_rs: bool, path: &[String]) -> Vec<String> {
        // The module a relative path starts from: a file's own module (`self`), or for a
        // non-mod.rs file, `super` is its parent.
        let own: Vec<String> = module.to_vec();
        match path.first().map(String::as_str) {
            Some("crate") => path[1..].to_vec(),
            Some("self") => [own, path[1..].to_vec()].concat(),
            Some("super") => {
                let mut base = own;
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                let _ = is_mod_rs;
                [base, rest.to_vec()].concat()
            }
            _ => [own, path.to_vec()].concat(),
        }
    }

    /// The file an absolute path names: the longest module prefix, following `mod.rs`
    /// re-exports so that `crate::runner::Rto` names `runner/events.rs`, not `runner/mod.rs`.
    fn file_of(&self, path: &[String]) -> Option<usize> {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let (len, &index) = (0..=path.len())
                .rev()
                .find_map(|n| self.by_module.get(&path[..n]).map(|i| (n, i)))?;
            let file = &self.files[index];
            let next = path.get(len);
            match (file.is_mod_rs, next) {
                (true, Some(name)) => match self.reexported_from(&file.module, name) {
                    Some(target) if target != file.module => {
                        path = [target, path[len..].to_vec()].concat();
                    }
                    _ => return Some(index),
                },
                _ => return Some(index),
            }
        }
        None
    }

    /// The module `module`'s `pub use` brings `name` from: named, or through a glob whose
    /// module defines a public item of that name.
    fn reexported_from(&self, module: &[String], name: &str) -> Option<Vec<String>> {
        if let Some(target) = self.reexports.get(module).and_then(|r| r.get(name)) {
            return Some(target.clone());
        }
        self.globs.get(module)?.iter().find_map(|glob| {
            let file = &self.files[*self.by_module.get(glob)?];
            defines(&file.code, name).then(|| glob.clone())
        })
    }

    fn imports(&self) -> Vec<Import> {
        let mut imports = BTreeSet::new();
        for file in &self.files {
            // mod.rs and lib.rs only declare and re-export; their arrows are the re-exports,
            // followed above, not imports of their own.
            if file.is_mod_rs {
                continue;
            }
            for (at, path) in paths_in(&file.code) {
                let absolute = self.absolute(&file.module, file.is_mod_rs, &path);
                if let Some(to) = self.file_of(&absolute) {
                    let to = &self.files[to];
                    if to.path != file.path && !to.is_mod_rs {
                        let line = file.code[..at].matches('\n').count() + 1;
                        imports.insert(Import {
                            from: file.path.clone(),
                            line,
                            to: to.path.clone(),
                        });
                    }
                }
            }
        }
        imports.into_iter().collect()
    }
}

struct Reexport {
    segments: Vec<String>,
    glob: bool,
}

/// `pub use a::{b, c};` and `pub use a::*;` lines of a mod.rs, as relative paths.
fn reexport_paths(code: &str) -> Vec<Reexport> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("pub use ").map(|n| from + n) {
        from = at + 8;
        let glob = code[from..]
            .split(';')
            .next()
            .is_some_and(|s| s.trim_end().ends_with('*'));
        let mut out = Vec::new();
        parse_path(code, from, Vec::new(), &mut out);
        found.extend(out.into_iter().map(|segments| Reexport { segments, glob }));
    }
    found
}

/// Whether `code` declares a public item called `name`.
fn defines(code: &str, name: &str) -> bool {
    [
        "struct", "enum", "fn", "trait", "type", "const", "static", "mod", "async fn",
    ]
    .iter()
    .any(|kind| {
        let needle = format!("pub {kind} {name}");
        code.match_indices(&needle).any(|(at, _)| {
            code.as_bytes()
                .get(at + needle.len())
                .is_none_or(|&c| !is_ident(c))
        })
    })
}

fn layer_of(file: &SourceFile) -> &str {
    file.module.first().map_or("lib", String::as_str)
}

fn check(files: Vec<SourceFile>, layers: &[String]) -> Findings {
    let tree = Tree::new(files);
    let rank = |layer: &str| layers.iter().position(|l| l == layer);
    let mut findings = Findings::default();
    let top: BTreeSet<&str> = tree
        .files
        .iter()
        .map(layer_of)
        .filter(|l| *l != "lib")
        .collect();
    findings.unplaced = top
        .iter()
        .filter(|l| rank(l).is_none())
        .map(|l| l.to_string())
        .collect();
    let by_path: BTreeMap<&str, &SourceFile> =
        tree.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let imports = tree.imports();
    for import in &imports {
        let (from, to) = (
            layer_of(by_path[import.from.as_str()]),
            layer_of(by_path[import.to.as_str()]),
        );
        if let (Some(a), Some(b)) = (rank(from), rank(to))
            && b > a
        {
            findings.upward.push(format!(
                "{}:{}: {from} imports {} ({to} is above {from})",
                import.from, import.line, import.to
            ));
        }
    }
    findings.cycles = cycles(&imports);
    findings
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(imports: &[Import]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports {
        graph.entry(&i.from).or_default().insert(&i.to);
        graph.entry(&i.to).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, graph: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &graph[v] {
            if !s.index.contains_key(w) {
                visit(w, graph, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for &v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(v, &graph, &mut state);
        }
    }
    state.found.sort();
    state.found
}

/// The `layers` block of ARCHITECTURE.md: one top-level module per line, lowest first.
fn layers_from(architecture: &str) -> Vec<String> {
    let start = architecture
        .find("```layers")
        .expect("ARCHITECTURE.md has a ```layers block")
        + "```layers".len();
    let end = start
        + architecture[start..]
            .find("```")
            .expect("the layers block is closed");
    architecture[start..end]
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The checks

#[test]
fn no_module_imports_from_a_layer_above_it_and_no_files_import_each_other_in_a_circle() {
    let architecture =
        std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let layers = layers_from(&architecture);
    let files = read_tree(&root().join("src"));
    assert!(
        files.len() > 50,
        "read only {} files from src/",
        files.len()
    );
    let findings = check(files, &layers);
    let mut report = String::new();
    for l in &findings.unplaced {
        report.push_str(&format!(
            "top-level module `{l}` is not in ARCHITECTURE.md's layers block\n"
        ));
    }
    for u in &findings.upward {
        report.push_str(&format!("upward import: {u}\n"));
    }
    for c in &findings.cycles {
        report.push_str(&format!("import cycle: {}\n", c.join(" ↔ ")));
    }
    assert!(
        report.is_empty(),
        "the layers (lowest first) are {layers:?}\n{report}"
    );
}

/// The check on a small made-up tree: it must see an upward import, a cycle through `super::`,
/// a `use` group, a re-export through mod.rs, and ignore comments, strings and test modules.
#[test]
fn the_check_finds_upward_imports_and_cycles_in_a_made_up_tree() {
    let tree = [
        ("lib.rs", "pub mod low;\npub mod high;\n"),
        ("low/mod.rs", "mod a;\nmod b;\npub use a::Alpha;\n"),
        (
            "low/a.rs",
            "use super::b::Beta;\n// use crate::high::H;\nconst S: &str = \"crate::high::H\";\n",
        ),
        (
            "low/b.rs",
            "use crate::low::{Alpha, a};\nfn f() { let _ = crate::high::H; }\n\
             #[cfg(test)]\nmod tests {\n    use crate::high::Other;\n}\n",
        ),
        (
            "high/mod.rs",
            "mod h;\nmod g;\npub use h::H;\npub use g::*;\n",
        ),
        ("high/h.rs", "pub struct H;\n"),
        ("high/g.rs", "use crate::low::b::Beta;\npub struct Gamma;\n"),
        ("high/f.rs", "use super::Gamma;\n"),
    ];
    let files: Vec<SourceFile> = tree
        .iter()
        .map(|(p, t)| source_file(Path::new(p), t))
        .collect();
    let layers = vec!["low".to_string(), "high".to_string()];
    let findings = check(files, &layers);
    assert_eq!(
        findings.upward,
        vec!["src/low/b.rs:2: low imports src/high/h.rs (high is above low)".to_string()]
    );
    assert_eq!(
        findings.cycles,
        vec![vec!["src/low/a.rs".to_string(), "src/low/b.rs".to_string()]]
    );
    assert!(findings.unplaced.is_empty());
    // The glob re-export `pub use g::*` is followed to g.rs: f.rs imports g.rs, downward from
    // nothing, so it is neither upward nor a cycle; but it was seen.
    let files: Vec<SourceFile> = tree
        .iter()
        .map(|(p, t)| source_file(Path::new(p), t))
        .collect();
    let imports = Tree::new(files).imports();
    assert!(
        imports
            .iter()
            .any(|i| i.from == "src/high/f.rs" && i.to == "src/high/g.rs"),
        "{imports:?}"
    );

    // A layer missing from the list is reported, not ignored.
    let files: Vec<SourceFile> = tree
        .iter()
        .map(|(p, t)| source_file(Path::new(p), t))
        .collect();
    let findings = check(files, &["low".to_string()]);
    assert_eq!(findings.unplaced, vec!["high".to_string()]);
}

/// Every file opens with a `//!` line saying what it is for, and a `mod.rs` (or `lib.rs`)
/// only declares modules and re-exports: anything else in one is reported.
fn contract_problems(rel: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !text.trim_start().starts_with("//!") {
        problems.push(format!("src/{rel}: does not open with a `//!` line"));
    }
    let (_, is_mod) = module_of(Path::new(rel));
    if is_mod {
        let code = blank_comments_and_strings(text);
        for (n, line) in code.lines().enumerate() {
            let l = line.trim();
            let allowed = l.is_empty()
                || l.starts_with("#[")
                || l.starts_with('}')
                || [
                    "mod ",
                    "pub mod ",
                    "pub(crate) mod ",
                    "pub(super) mod ",
                    "use ",
                    "pub use ",
                ]
                .iter()
                .any(|p| l.starts_with(p))
                || !l.contains(['(', '=', '{']) && !l.starts_with("pub ") && !l.starts_with("fn ");
            if !allowed {
                problems.push(format!(
                    "src/{rel}:{}: a mod.rs only declares and re-exports: `{l}`",
                    n + 1
                ));
            }
        }
    }
    problems
}

#[test]
fn every_file_says_what_it_is_for_and_mod_rs_only_declares() {
    let src = root().join("src");
    let mut problems = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(&src)
                    .expect("under src")
                    .display()
                    .to_string();
                let text = std::fs::read_to_string(&path).expect("readable source");
                problems.extend(contract_problems(&rel, &text));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_contract_check_sees_a_missing_line_and_logic_in_a_mod_rs() {
    assert!(contract_problems("a/b.rs", "//! What b is for.\nfn f() {}\n").is_empty());
    assert!(contract_problems("a/mod.rs", "//! A.\nmod b;\npub use b::{C, D};\n").is_empty());
    assert_eq!(
        contract_problems("a/b.rs", "use x;\n"),
        vec!["src/a/b.rs: does not open with a `//!` line".to_string()]
    );
    assert_eq!(
        contract_problems("a/mod.rs", "//! A.\nmod b;\npub fn helper() {}\n"),
        vec![
            "src/a/mod.rs:3: a mod.rs only declares and re-exports: `pub fn helper() {}`"
                .to_string()
        ]
    );
}

#[test]
fn the_layers_block_is_read_lowest_first() {
    let doc = "x\n```layers\nwal      # primitives\nscenario\n\n```\n";
    assert_eq!(
        layers_from(doc),
        vec!["wal".to_string(), "scenario".to_string()]
    );
}
