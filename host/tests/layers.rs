//! The host crate's layers (see the layout in `host/src/lib.rs`): every module
//! imports only from its own folder or from a layer below, and no files import each
//! other in a circle. `cargo test -p agent-host --test layers` prints every edge that
//! breaks a rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the top; a folder (or top-level file) may import from its own
/// layer's folder only, and from any layer after it.
const LAYERS: &[&[&str]] = &[
    &["bin"],
    &["host"],
    &["ops", "guest", "outbound"],
    &["turn"],
    &["config"],
    &["store"],
    &["error"],
    &["guest_text", "trace"],
];

/// The module path of a file under `host/src` (`ops/config_file/mod.rs` ->
/// `ops::config_file`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn rank(module: &str) -> Option<(usize, &'static str)> {
    let top = module.split("::").next()?;
    LAYERS.iter().enumerate().find_map(|(i, layer)| {
        layer
            .iter()
            .find(|name| **name == top)
            .map(|name| (i, *name))
    })
}

/// Source without comments and string literals, so doc links and messages are not
/// taken for imports.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut in_string = false;
        let mut prev = ' ';
        for c in line.chars() {
            if c == '"' && prev != '\\' {
                in_string = !in_string;
            } else if !in_string {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// `crate::a::b::...` paths in `code`, expanded from `use crate::a::{b, c::d}`.
fn crate_paths(code: &str) -> Vec<String> {
    prefixed_paths(code, "crate::")
}

/// Paths in `code` that start with `prefix`, without it.
fn prefixed_paths(code: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let text: String = bytes.iter().collect();
    let mut start = 0;
    while let Some(i) = text[start..].find(prefix) {
        let at = start + i + prefix.len();
        let rest = &text[at..];
        let end = rest
            .find(|c: char| {
                !(c.is_alphanumeric()
                    || c == '_'
                    || c == ':'
                    || c == '{'
                    || c == '}'
                    || c == ','
                    || c == ' '
                    || c == '\n')
            })
            .unwrap_or(rest.len());
        let expr = rest[..end].replace(['\n', ' '], "");
        match expr.find('{') {
            Some(open) => {
                let base = expr[..open].trim_end_matches("::");
                let inner = expr[open + 1..].split('}').next().unwrap_or_default();
                for item in inner.split(',').filter(|s| !s.is_empty()) {
                    paths.push(format!("{base}::{item}"));
                }
            }
            None => paths.push(expr.trim_end_matches("::").to_string()),
        }
        start = at;
    }
    paths
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_down_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    // The module a path names: the longest known module that starts it.
    let target = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let from = module_of(&src, file);
        // The binary's modules name each other through `super::`: circles only.
        if from.starts_with("bin::") {
            // `super` of `serve/turns.rs` is `serve`; of `serve/mod.rs`, its parent.
            let parent = from
                .rsplit_once("::")
                .map_or(from.clone(), |(p, _)| p.to_string());
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            for path in prefixed_paths(&code, "super::") {
                if let Some(to) = target(&format!("{parent}::{path}"))
                    && to != from
                {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
            continue;
        }
        if from == "lib" {
            continue;
        }
        let Some((from_rank, from_top)) = rank(&from) else {
            upward.push(format!("{from}: in no layer (add it to LAYERS)"));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for path in crate_paths(&code) {
            let Some(to) = target(&path) else { continue };
            if to == from || to == "lib" {
                continue;
            }
            edges.entry(from.clone()).or_default().insert(to.clone());
            let Some((to_rank, to_top)) = rank(&to) else {
                continue;
            };
            if to_rank < from_rank || (to_rank == from_rank && to_top != from_top) {
                upward.push(format!("{from} -> {to} (crate::{path})"));
            }
        }
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 50,
        "too few imports found: the scan is broken"
    );
    let mut circles = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            // A circle through this edge: `from` reachable again from `to`.
            let mut seen = BTreeSet::new();
            let mut stack = vec![to.clone()];
            while let Some(m) = stack.pop() {
                if &m == from {
                    circles.push(format!("{from} -> {to} -> ... -> {from}"));
                    break;
                }
                if seen.insert(m.clone()) {
                    stack.extend(edges.get(&m).into_iter().flatten().cloned());
                }
            }
        }
    }
    assert!(
        upward.is_empty() && circles.is_empty(),
        "imports up or across layers:\n{}\ncircles:\n{}",
        upward.join("\n"),
        circles.join("\n")
    );
}
