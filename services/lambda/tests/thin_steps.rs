//! The steps stay thin: what differs by resource kind is read from the kinds table
//! (`snapferry::kinds`), a snapshot's lineage through `snapferry::lineage`, and errors are
//! matched by their variant. This test reads the sources of every crate under `services/`
//! and fails naming each line that branches on a kind, reads or writes a `snapferry:` tag by
//! its key, or compares an error code string.

use std::path::{Path, PathBuf};

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

/// What a step's source must not say, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("ResourceKind::", "a branch on the resource kind (read the kinds table instead)"),
    ("\"snapferry:", "a snapferry tag by its key (go through snapferry::lineage)"),
    (".code() ==", "an error code compared as a string (match the error's variant)"),
    (".code() !=", "an error code compared as a string (match the error's variant)"),
];

/// `tags::` followed by an upper-case name: one of the tag keys of `snapferry::tags`.
fn names_a_tag_key(line: &str) -> bool {
    line.match_indices("tags::").any(|(i, _)| line[i + "tags::".len()..].starts_with(|c: char| c.is_ascii_uppercase()))
        && !line.contains("tags::Tags")
        && !line.contains("tags::SourceFigures")
        && !line.contains("tags::RestoredFigures")
        && !line.contains("tags::LineageTags")
}

fn offences(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let mut why: Vec<&str> = FORBIDDEN.iter().filter(|(p, _)| code.contains(p)).map(|(_, w)| *w).collect();
            if names_a_tag_key(code) {
                why.push("a snapferry tag by its key (go through snapferry::lineage)");
            }
            for w in why {
                found.push(format!("{}:{}: {w}\n    {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn no_step_branches_on_a_kind_reads_a_tag_by_its_key_or_compares_an_error_code() {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut all = Vec::new();
    let mut crates = 0;
    for entry in std::fs::read_dir(&services).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            crates += 1;
            all.extend(offences(&src));
        }
    }
    assert!(crates >= 8, "read {crates} crates under {}", services.display());
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[test]
fn the_scan_sees_each_kind_of_offence() {
    let dir = std::env::temp_dir().join(format!("snapferry-thin-steps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sample = "fn f(s: &Snapshot, e: &Error) {\n\
        if s.kind == ResourceKind::Ebs {}\n\
        let _ = s.tags.get(tags::VERIFIED_AT);\n\
        let _ = s.tags.get(\"snapferry:step\");\n\
        if e.code() == \"CopyFailed\" {}\n\
        let _: tags::Tags = Default::default(); // tags::Tags is a type, not a key\n\
    }\n";
    std::fs::write(dir.join("sample.rs"), sample).unwrap();
    let found = offences(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found.len(), 4, "{found:#?}");
}
