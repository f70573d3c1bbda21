//! Configuration from the environment, read once at init. Every variable a step reads is
//! declared in `shared/environment.json` (see [`crate::environment`]): its default comes
//! from there, and reading an undeclared one is a bug this module refuses. Every error
//! names the variable, so a mis-deployed function fails its init with a message an
//! operator can act on.

use crate::environment::{self, Var};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// One step's view of its environment. Steps read through this so the local host and
/// tests pass a map instead of mutating the process environment.
#[derive(Debug, Clone)]
pub struct Env {
    step: &'static str,
    vars: BTreeMap<String, String>,
    /// What the step read, so a test can prove it reads every variable it declares.
    read: RefCell<BTreeSet<&'static str>>,
}

impl Env {
    /// `vars` as the environment of `step` (a function of `shared/environment.json`).
    pub fn new(step: &str, vars: BTreeMap<String, String>) -> Result<Self> {
        let step = environment::step_name(step)
            .ok_or_else(|| Error::Config(format!("{step:?} is not a step declared in shared/environment.json")))?;
        Ok(Env { step, vars, read: RefCell::default() })
    }

    pub fn from_process(step: &str) -> Result<Self> {
        Env::new(step, std::env::vars().collect())
    }

    pub fn from_pairs<'a>(step: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        Env::new(step, pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    pub fn step(&self) -> &'static str {
        self.step
    }

    /// Declared variables of this step it has not read (yet).
    pub fn unread(&self) -> Vec<&'static str> {
        let read = self.read.borrow();
        environment::vars(self.step).map(|v| v.name.as_str()).filter(|n| !read.contains(n)).collect()
    }

    fn declared(&self, name: &str) -> &'static Var {
        let Some(var) = environment::var(self.step, name) else {
            // A programming error, not a deployment one: the contract and the code disagree.
            panic!("{name} is read by {} but not declared for it in shared/environment.json", self.step);
        };
        self.read.borrow_mut().insert(var.name.as_str());
        var
    }

    /// The value, or the declared default; blank counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        let var = self.declared(name);
        self.vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).or_else(|| var.default.clone())
    }

    pub fn required(&self, name: &str) -> Result<String> {
        self.optional(name).ok_or_else(|| Error::Config(format!("{name} is not set")))
    }

    /// The value (or declared default) parsed as `T`.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.required(name)?;
        raw.parse().map_err(|e| Error::Config(format!("{name}={raw:?} is invalid: {e}")))
    }

    /// A comma-separated list; empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// A comma-separated list of 12-digit AWS account ids.
    pub fn accounts(&self, name: &str) -> Result<Vec<String>> {
        let accounts = self.list(name);
        if let Some(bad) = accounts.iter().find(|a| !is_account_id(a)) {
            return Err(Error::Config(format!("{name} has {bad:?}, which is not a 12-digit AWS account id")));
        }
        Ok(accounts)
    }

    /// A comma-separated list of resource kinds (`db-instance,db-cluster,ebs`).
    pub fn kinds(&self, name: &str) -> Result<Vec<crate::ResourceKind>> {
        self.list(name).iter().map(|s| s.parse().map_err(|e: String| Error::Config(format!("{name}: {e}")))).collect()
    }

    pub fn regex(&self, name: &str) -> Result<Option<regex::Regex>> {
        self.optional(name)
            .map(|raw| regex::Regex::new(&raw).map_err(|e| Error::Config(format!("{name} is not a valid regex: {e}"))))
            .transpose()
    }
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> Env {
        Env::from_pairs("copy-shared-snapshot", pairs.iter().copied()).unwrap()
    }

    #[test]
    fn errors_name_the_variable() {
        let env =
            env(&[("SOURCE_ACCOUNTS", "222222222222, 12345"), ("RECHECK_SECONDS", "x"), ("IDENTIFIER_REGEX", "(")]);
        let e = env.accounts("SOURCE_ACCOUNTS").unwrap_err().to_string();
        assert!(e.contains("SOURCE_ACCOUNTS") && e.contains("12345"), "{e}");
        let e = env.parse::<u32>("RECHECK_SECONDS").unwrap_err().to_string();
        assert!(e.contains("RECHECK_SECONDS"), "{e}");
        let e = env.required("TARGET_KMS_KEY_ARN").unwrap_err().to_string();
        assert!(e.contains("TARGET_KMS_KEY_ARN is not set"), "{e}");
        assert!(
            env.regex("IDENTIFIER_REGEX").unwrap_err().to_string().contains("IDENTIFIER_REGEX is not a valid regex")
        );
    }

    #[test]
    fn lists_and_declared_defaults() {
        let env = env(&[("SOURCE_ACCOUNTS", "111111111111,222222222222"), ("EXTRA_REGIONS", "  ")]);
        assert_eq!(env.accounts("SOURCE_ACCOUNTS").unwrap(), vec!["111111111111", "222222222222"]);
        assert_eq!(env.list("EXTRA_REGIONS"), Vec::<String>::new());
        assert_eq!(env.parse::<u32>("RECHECK_SECONDS").unwrap(), 30, "default from shared/environment.json");
        assert_eq!(env.optional("PIPELINE_BUS").as_deref(), Some("snapferry"));
    }

    #[test]
    #[should_panic(expected = "SELECT_TAG is read by copy-shared-snapshot but not declared")]
    fn undeclared_variables_cannot_be_read() {
        env(&[]).optional("SELECT_TAG");
    }

    #[test]
    fn unknown_steps_are_refused() {
        let e = Env::from_pairs("no-such-step", []).unwrap_err().to_string();
        assert!(e.contains("no-such-step"), "{e}");
    }
}
