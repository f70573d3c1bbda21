//! Configuration from the environment, read once at init. Every error names the variable,
//! so a mis-deployed function fails its init with a message an operator can act on.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::str::FromStr;

/// A view of the environment. Services read through this so tests can pass a map
/// instead of mutating the process environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Env { vars: std::env::vars().collect() }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env { vars: pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    /// A set, non-empty variable; blank counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String> {
        self.optional(name).ok_or_else(|| Error::Config(format!("{name} is not set")))
    }

    pub fn parse<T: FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| Error::Config(format!("{name}={raw:?} is invalid: {e}"))),
        }
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

    #[test]
    fn errors_name_the_variable() {
        let env = Env::from_pairs([("TARGET_ACCOUNTS", "222222222222, 12345"), ("MAX", "x"), ("RE", "(")]);
        let e = env.accounts("TARGET_ACCOUNTS").unwrap_err().to_string();
        assert!(e.contains("TARGET_ACCOUNTS") && e.contains("12345"), "{e}");
        let e = env.parse::<u32>("MAX", 1).unwrap_err().to_string();
        assert!(e.contains("MAX"), "{e}");
        let e = env.required("MISSING").unwrap_err().to_string();
        assert!(e.contains("MISSING is not set"), "{e}");
        assert!(env.regex("RE").unwrap_err().to_string().contains("RE is not a valid regex"));
    }

    #[test]
    fn lists_and_defaults() {
        let env = Env::from_pairs([("A", "111111111111,222222222222"), ("BLANK", "  ")]);
        assert_eq!(env.accounts("A").unwrap(), vec!["111111111111", "222222222222"]);
        assert_eq!(env.list("BLANK"), Vec::<String>::new());
        assert_eq!(env.parse::<u32>("BLANK", 7).unwrap(), 7);
    }
}
