//! Which databases / volumes snapferry backs up. Three selectors, combinable: explicit
//! identifiers, a regex on the *resource* identifier (not the snapshot id), and an opt-in
//! tag. A resource is selected when any configured selector matches it; with none
//! configured, nothing is selected (backing up everything must be asked for: `SELECT_REGEX=.*`).

use crate::config::Env;
use crate::error::Result;
use crate::tags::Tags;
use regex::Regex;

#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub identifiers: Vec<String>,
    pub regex: Option<Regex>,
    /// Tag key, and the value it must have (any value when `None`).
    pub tag: Option<(String, Option<String>)>,
    /// EBS: the opt-in tag of EC2 instances whose volumes are snapshotted together.
    pub instance_tag: Option<(String, Option<String>)>,
}

fn tag_selector(raw: String) -> (String, Option<String>) {
    match raw.split_once('=') {
        Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
        None => (raw, None),
    }
}

pub(crate) fn tag_matches(selector: &Option<(String, Option<String>)>, tags: &Tags) -> bool {
    selector.as_ref().is_some_and(|(key, value)| match (tags.get(key), value) {
        (Some(_), None) => true,
        (Some(actual), Some(wanted)) => actual == wanted,
        (None, _) => false,
    })
}

impl Selection {
    /// From `SELECT_IDENTIFIERS`, `SELECT_REGEX`, `SELECT_TAG` and `SELECT_INSTANCE_TAG`
    /// (tags as `key` or `key=value`).
    pub fn from_env(env: &Env) -> Result<Selection> {
        Ok(Selection {
            identifiers: env.list("SELECT_IDENTIFIERS"),
            regex: env.regex("SELECT_REGEX")?,
            tag: env.optional("SELECT_TAG").map(tag_selector),
            instance_tag: env.optional("SELECT_INSTANCE_TAG").map(tag_selector),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.identifiers.is_empty() && self.regex.is_none() && self.tag.is_none() && self.instance_tag.is_none()
    }

    /// Whether the identifier alone decides it (no tag lookup needed).
    pub fn matches_id(&self, resource_id: &str) -> bool {
        self.identifiers.iter().any(|i| i == resource_id)
            || self.regex.as_ref().is_some_and(|r| r.is_match(resource_id))
    }

    pub fn needs_tags(&self) -> bool {
        self.tag.is_some() || self.instance_tag.is_some()
    }

    pub fn matches(&self, resource_id: &str, tags: &Tags) -> bool {
        self.matches_id(resource_id) || tag_matches(&self.tag, tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selectors_combine_as_a_union() {
        let env = Env::from_pairs(
            "create-snapshot",
            [("SELECT_IDENTIFIERS", "billing"), ("SELECT_REGEX", "^prod-"), ("SELECT_TAG", "backup=snapferry")],
        )
        .unwrap();
        let s = Selection::from_env(&env).unwrap();
        assert!(s.matches("billing", &Tags::new()));
        assert!(s.matches("prod-orders", &Tags::new()));
        assert!(s.matches("misc", &tags(&[("backup", "snapferry")])));
        assert!(!s.matches("misc", &tags(&[("backup", "other")])));
        assert!(!s.matches("staging-prod", &Tags::new()), "the regex is anchored by the operator, not by us");
    }

    #[test]
    fn tag_key_alone_matches_any_value_and_empty_selects_nothing() {
        let s = Selection::from_env(&Env::from_pairs("create-snapshot", [("SELECT_TAG", "backup")]).unwrap()).unwrap();
        assert!(s.matches("x", &tags(&[("backup", "")])));
        let none = Selection::from_env(&Env::from_pairs("create-snapshot", []).unwrap()).unwrap();
        assert!(none.is_empty() && !none.matches("anything", &tags(&[("backup", "yes")])));
    }

    #[test]
    fn a_bad_regex_names_the_variable() {
        let e = Selection::from_env(&Env::from_pairs("create-snapshot", [("SELECT_REGEX", "(")]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("SELECT_REGEX"), "{e}");
    }
}
