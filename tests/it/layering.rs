//! The architecture's invariants, read from the source (ARCHITECTURE.md states them): the window never imports
//! burn, the data layer or the trainer; the training side never imports egui; no two modules import each other,
//! directly or around a loop; and no source file outgrows ~600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file as a module: its path in the crate (`data::folder`) and its text without tests.
struct Module {
    path: String,
    file: PathBuf,
    code: String,
}

fn src_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
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

/// `src/data/folder.rs` → `data::folder`; `src/data/mod.rs` → `data`; `src/lib.rs` → ``.
fn module_path(file: &Path) -> String {
    let relative = file.strip_prefix(src_dir()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The text without comments and without an inline `#[cfg(test)] mod tests { … }` at the end.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn modules() -> Vec<Module> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            Module { path: module_path(&file), code: code_of(&text), file }
        })
        .collect()
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.len() - 1];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(expand).map(|p| format!("{prefix}{p}")).collect()
}

/// Every path a module names: its `use` trees expanded, and inline `crate::…` / `super::…` paths.
fn named_paths(module: &Module) -> Vec<String> {
    let code = &module.code;
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let boundary = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        rest = &rest[at + 4..];
        let Some(end) = rest.find(';') else { break };
        if boundary {
            paths.extend(expand(&rest[..end]).into_iter().map(|p| p.split(" as ").next().unwrap_or("").to_owned()));
        }
    }
    for prefix in ["crate::", "super::"] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at..];
            let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
            paths.push(tail[..end].trim_end_matches(':').to_owned());
            rest = &rest[at + prefix.len()..];
        }
    }
    paths
}

/// A `mod.rs` (or `lib.rs`) that only declares and re-exports its children, with the child each
/// re-exported name comes from.
fn reexports(module: &Module) -> Option<BTreeMap<String, String>> {
    let mut names = BTreeMap::new();
    let statements = module.code.split(';').map(str::trim).filter(|s| !s.is_empty());
    for statement in statements {
        let statement: String =
            statement.lines().filter(|l| !l.trim_start().starts_with("#[")).collect::<Vec<_>>().join(" ");
        let statement = statement.trim();
        let words: Vec<&str> = statement.split_whitespace().collect();
        match words.as_slice() {
            ["mod" | "pub" | "pub(crate)", ..] if words.contains(&"mod") && words.len() <= 3 => {}
            ["pub", "use", ..] => {
                for path in expand(statement.trim_start_matches("pub use ")) {
                    let segments: Vec<&str> = path.split("::").collect();
                    if let (Some(first), Some(last)) = (segments.first(), segments.last()) {
                        names.insert((*last).to_owned(), (*first).to_owned());
                    }
                }
            }
            [] => {}
            _ => return None,
        }
    }
    Some(names)
}

/// The module a path points into, following re-export-only modules to the child that defines the item.
fn resolve(
    path: &str,
    from: &str,
    known: &BTreeSet<String>,
    forwards: &BTreeMap<String, BTreeMap<String, String>>,
) -> Option<String> {
    let mut segments: Vec<String> = Vec::new();
    let mut parts = path.split("::").peekable();
    match parts.peek().copied() {
        Some("crate") => {
            parts.next();
        }
        Some("super") => {
            let mut base: Vec<String> = from.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            while parts.peek() == Some(&"super") {
                parts.next();
                base.pop();
            }
            segments = base;
        }
        _ => return None,
    }
    segments.extend(parts.map(str::to_owned));
    // The longest prefix that is a module file.
    let mut module = String::new();
    let mut index = 0;
    for (i, _) in segments.iter().enumerate() {
        let candidate = segments[..=i].join("::");
        if known.contains(&candidate) {
            module = candidate;
            index = i + 1;
        }
    }
    // Through re-export-only modules to the defining child.
    while let (Some(forward), Some(name)) = (forwards.get(&module), segments.get(index)) {
        let Some(child) = forward.get(name) else { break };
        let next = if module.is_empty() { child.clone() } else { format!("{module}::{child}") };
        if !known.contains(&next) || next == module {
            break;
        }
        module = next;
    }
    Some(module)
}

fn graph() -> (Vec<Module>, BTreeMap<String, BTreeSet<String>>) {
    let modules = modules();
    let known: BTreeSet<String> = modules.iter().map(|m| m.path.clone()).collect();
    let forwards: BTreeMap<String, BTreeMap<String, String>> =
        modules.iter().filter_map(|m| reexports(m).map(|r| (m.path.clone(), r))).collect();
    let mut edges = BTreeMap::new();
    for module in &modules {
        // A re-export-only module imports nothing of its own.
        if forwards.contains_key(&module.path) {
            continue;
        }
        let targets: BTreeSet<String> = named_paths(module)
            .iter()
            .filter_map(|p| resolve(p, &module.path, &known, &forwards))
            .filter(|t| *t != module.path && !t.is_empty())
            .collect();
        edges.insert(module.path.clone(), targets);
    }
    (modules, edges)
}

#[test]
fn the_window_never_imports_burn_data_or_the_trainer() {
    let (modules, edges) = graph();
    for module in modules.iter().filter(|m| m.path == "app" || m.path.starts_with("app::")) {
        assert!(!module.code.contains("burn"), "{} mentions burn", module.file.display());
        for target in edges.get(&module.path).into_iter().flatten() {
            for banned in ["data", "train", "model", "kernels"] {
                assert!(
                    target != banned && !target.starts_with(&format!("{banned}::")),
                    "{} imports {target}",
                    module.file.display()
                );
            }
        }
    }
}

#[test]
fn the_training_side_never_imports_egui() {
    for module in modules() {
        let front_end = ["app", "cli"].iter().any(|f| module.path == *f || module.path.starts_with(&format!("{f}::")));
        if !front_end {
            for banned in ["egui", "eframe"] {
                assert!(!module.code.contains(banned), "{} mentions {banned}", module.file.display());
            }
        }
    }
}

#[test]
fn no_two_modules_import_each_other_directly_or_around_a_loop() {
    let (_, edges) = graph();
    // Depth-first search for a back edge, reporting the loop it closes.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
    // The checker itself sees real edges.
    assert!(edges["train::worker"].contains("protocol"), "{:?}", edges["train::worker"]);
    assert!(edges["app::window"].contains("app::view"), "{:?}", edges["app::window"]);
}

#[test]
fn no_source_file_is_over_600_lines() {
    for module in modules() {
        let lines = std::fs::read_to_string(&module.file).unwrap().lines().count();
        assert!(lines <= 600, "{} has {lines} lines: split it by responsibility", module.file.display());
    }
}
