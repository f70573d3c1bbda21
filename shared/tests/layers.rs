//! The shared crate is built in layers (see the crate docs): each top-level module uses
//! only modules of its own layer or below, and no two modules import each other, directly
//! or through others. This test reads the sources and fails on a cycle or an upward edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layer of each top-level module; a module may use modules of its layer or a lower one.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("kinds", 0),
    ("arn", 0),
    ("tags", 0),
    ("naming", 0),
    ("kms", 0),
    ("environment", 0),
    ("config", 0),
    ("select", 0),
    ("routing", 0),
    ("permissions", 0),
    ("inbound", 1),
    ("store", 2),
    ("lineage", 2),
    ("slots", 2),
    ("retention", 2),
    ("ledger", 2),
    ("ports", 3),
    ("sqs", 3),
    ("publish", 3),
    ("clients", 3),
    ("step", 3),
    ("copy", 3),
    ("sweep", 3),
    ("memory", 3),
];

/// Names the crate root re-exports, and the module they come from.
fn module_of(name: &str) -> Option<&str> {
    match name {
        "Error" | "Result" => Some("error"),
        // The contract is its own crate, below everything here.
        "events" | "ResourceKind" => None,
        other => Some(LAYERS.iter().find(|(m, _)| *m == other).map(|(m, _)| *m).unwrap_or(other)),
    }
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// Top-level module → the top-level modules it names through `crate::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let relative = path.strip_prefix(&format!("{}/", src.display())).unwrap();
        let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let uses = graph.entry(module.clone()).or_default();
        // Comments (doc links included) name modules without importing them.
        let code: String =
            text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => {
                    group.split('}').next().unwrap().split(',').map(|n| n.trim().split("::").next().unwrap()).collect()
                }
                None => vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap()],
            };
            for used in names.into_iter().filter_map(module_of) {
                if used != module {
                    uses.insert(used.to_string());
                }
            }
        }
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    for module in graph().keys() {
        assert!(
            LAYERS.iter().any(|(m, _)| m == module),
            "module {module} is in no layer of this test (and of the crate docs)"
        );
    }
}

#[test]
fn modules_use_only_their_layer_and_below() {
    let rank = |m: &str| LAYERS.iter().find(|(n, _)| *n == m).map(|(_, r)| *r).unwrap_or(u8::MAX);
    let mut upward = Vec::new();
    for (module, uses) in graph() {
        for used in uses {
            if rank(&used) > rank(&module) {
                upward.push(format!("{module} (layer {}) uses {used} (layer {})", rank(&module), rank(&used)));
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycles() {
    let graph = graph();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(m: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    assert!(graph.get("store").is_some_and(|u| u.contains("tags")), "the graph is read at all: {graph:?}");
}
