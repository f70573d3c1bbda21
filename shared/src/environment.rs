//! The environment contract: `shared/environment.json` declares, once, every variable each
//! step reads, its default and whether it is required. [`crate::config::Env`] refuses to
//! read anything undeclared; the CDK stacks are checked against the same file; the
//! configuration table in `docs/configuration.md` is [`markdown_table`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;

pub const ENVIRONMENT_JSON: &str = include_str!("../environment.json");

/// One declared variable.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub required: bool,
    /// Set by the deployment itself (CDK's step construct, the local host), not by users.
    pub platform: bool,
    pub default: Option<String>,
    pub doc: String,
}

#[derive(Debug, Deserialize)]
struct Contract {
    common: Vec<Var>,
    functions: BTreeMap<String, Vec<Var>>,
}

static CONTRACT: LazyLock<Contract> = LazyLock::new(|| {
    // Compiled in and covered by tests: a file that does not parse is a build defect.
    serde_json::from_str(ENVIRONMENT_JSON).expect("shared/environment.json is valid")
});

/// The declared steps, in file order (alphabetical).
pub fn steps() -> impl Iterator<Item = &'static str> {
    CONTRACT.functions.keys().map(String::as_str)
}

/// `step` as the contract spells it, when declared.
pub fn step_name(step: &str) -> Option<&'static str> {
    steps().find(|s| *s == step)
}

/// Every variable `step` may read: the common ones, then its own.
pub fn vars(step: &str) -> impl Iterator<Item = &'static Var> {
    let own = CONTRACT.functions.get(step).map(Vec::as_slice).unwrap_or_default();
    CONTRACT.common.iter().chain(own)
}

pub fn var(step: &str, name: &str) -> Option<&'static Var> {
    vars(step).find(|v| v.name == name)
}

/// The configuration table of `docs/configuration.md`, generated from the contract.
pub fn markdown_table() -> String {
    let rows = CONTRACT.common.iter().map(|v| ("every step", v));
    let rows =
        rows.chain(CONTRACT.functions.iter().flat_map(|(step, own)| own.iter().map(move |v| (step.as_str(), v))));
    let mut out = String::from("| step | variable | meaning |\n|---|---|---|\n");
    for (step, v) in rows {
        let default = match (&v.default, v.required) {
            (Some(d), _) => format!("default `{d}`; "),
            (None, true) => "required; ".to_string(),
            (None, false) => String::new(),
        };
        out.push_str(&format!("| {step} | `{}` | {default}{} |\n", v.name, v.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_parses_and_names_are_unique_per_step() {
        assert!(steps().count() >= 4);
        for step in steps() {
            let mut names: Vec<_> = vars(step).map(|v| v.name.as_str()).collect();
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "{step} declares a variable twice");
            for v in vars(step) {
                assert!(!(v.required && v.default.is_some()), "{step}: {} is required and has a default", v.name);
                assert!(!v.doc.is_empty(), "{step}: {} has no doc", v.name);
            }
        }
    }

    #[test]
    fn the_documented_table_is_the_contract() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
        let (start, end) = ("<!-- environment:start -->\n", "<!-- environment:end -->");
        let from = doc.find(start).expect("docs/configuration.md has the environment table markers") + start.len();
        let to = doc[from..].find(end).expect("end marker") + from;
        assert_eq!(
            &doc[from..to],
            markdown_table(),
            "docs/configuration.md's configuration table differs from shared/environment.json; paste in snapferry::environment::markdown_table()"
        );
    }
}
