//! The layering of `shared/src`, held against the code: every `crate::` path a file names
//! must point to its own layer or one below it, and the modules of a layer must not import
//! each other in a circle. A file that breaks either fails this test with the file, the line
//! and the rule.
//!
//! domain, support  (nothing but themselves)
//!   ↑
//! store, adapters  (domain, support)
//!   ↑
//! app              (everything above this line)
//!   ↑
//! runtime          (everything)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each layer may import besides itself.
fn may_import(layer: &str) -> &'static [&'static str] {
    match layer {
        "domain" | "support" => &[],
        "store" | "adapters" => &["domain", "support"],
        "app" => &["domain", "support", "store", "adapters"],
        "runtime" => &["domain", "support", "store", "adapters", "app"],
        // The test helpers (built only with the `testing` feature) may use anything.
        "testing" => &["domain", "support", "store", "adapters", "app", "runtime"],
        other => panic!("shared/src/{other} is in no layer: add it to may_import in this test"),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("shared/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One import: the file's line number and the path it names, as `["app", "payments", ...]`.
struct Import {
    line: usize,
    path: Vec<String>,
}

/// The `crate::…` paths a file names outside comments.
fn imports(source: &str) -> Vec<Import> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let path: Vec<String> = after
                .split("::")
                .map(|seg| seg.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
                .take_while(|seg| !seg.is_empty())
                .collect();
            if !path.is_empty() {
                found.push(Import { line: n + 1, path });
            }
            rest = after;
        }
    }
    found
}

/// A file's place: its layer and the module of that layer it belongs to (`app/payments/hold.rs`
/// is layer `app`, module `payments`).
fn place(relative: &Path) -> (String, String) {
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    let layer = parts[0].clone();
    let module = parts.get(1).cloned().unwrap_or_else(|| "mod".to_string());
    (layer, module)
}

#[test]
fn layers_import_only_downward_and_modules_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();

    let mut violations = Vec::new();
    // module -> modules it imports, within one layer ("app::sweeper" -> "app::reminders").
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("below src");
        if relative == Path::new("lib.rs") {
            continue;
        }
        let (layer, module) = place(relative);
        let allowed = may_import(&layer);
        let source = std::fs::read_to_string(file).expect("a source file is readable");
        for import in imports(&source) {
            let target_layer = &import.path[0];
            if target_layer != &layer && !allowed.contains(&target_layer.as_str()) {
                violations.push(format!(
                    "shared/src/{}:{}: layer {layer} imports crate::{} (layer {layer} may import only {:?})",
                    relative.display(),
                    import.line,
                    import.path.join("::"),
                    allowed
                ));
            }
            if target_layer == &layer
                && let Some(target_module) = import.path.get(1)
                && target_module != &module
                && module != "mod"
            {
                edges.entry(format!("{layer}::{module}")).or_default().insert(format!("{layer}::{target_module}"));
            }
        }
    }
    assert!(violations.is_empty(), "upward imports:\n{}", violations.join("\n"));

    let circles = circles(&edges);
    assert!(circles.is_empty(), "modules that import each other in a circle:\n{}", circles.join("\n"));
}

/// Every circle in the graph, each written once as `a -> b -> a`.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            found.push(circle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, path, done, found);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn the_rule_catches_an_upward_import() {
    let found = imports("use crate::app::config::Vars; // crate::store in a comment is not an import\n");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, ["app", "config", "Vars"]);
    assert!(!may_import("adapters").contains(&"app"));
    let mut edges = BTreeMap::new();
    edges.insert("app::a".to_string(), BTreeSet::from(["app::b".to_string()]));
    edges.insert("app::b".to_string(), BTreeSet::from(["app::a".to_string()]));
    assert_eq!(circles(&edges), ["app::a -> app::b -> app::a"]);
}
