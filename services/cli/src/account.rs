//! The account an operator command acts in, and how it prints.
//!
//! The standard AWS configuration applies (environment, `--profile`, `--region`, the
//! credentials chain); `--endpoint` (or `AWS_ENDPOINT_URL`) points at the local emulator,
//! and `--account` assumes a role in another account, as the demo does there.

use aws_config::{BehaviorVersion, Region};
use serde::Serialize;
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use std::io::IsTerminal;

#[derive(Debug, Clone, clap::Args)]
pub struct Account {
    /// AWS profile (one per account: the source's or the backup account's).
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region (the account's home region of the pipeline).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Another endpoint for every AWS API, e.g. the local emulator's (which takes any
    /// credentials: without a profile or AWS_ACCESS_KEY_ID, placeholder ones are used).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// Act in this account by assuming `--role` in it.
    #[arg(long, global = true)]
    pub account: Option<String>,
    /// The role `--account` assumes.
    #[arg(long, global = true, default_value = "snapferry-operator")]
    pub role: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Account {
    pub async fn clients(&self) -> Result<Clients> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
            // The local emulator takes any credentials; placeholder ones spare the chain's
            // search (which ends at the instance metadata service) when none are configured.
            if self.profile.is_none() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "snapferry-cli",
                ));
            }
        }
        let base = loader.load().await;
        match &self.account {
            Some(account) => {
                let role = format!("arn:aws:iam::{account}:role/{}", self.role);
                let config = Clients::assume_role(&base, &role, "snapferry-cli").await?;
                Clients::with_account(config, account.clone())
            }
            None => Clients::from_config(base).await,
        }
    }

    /// The same settings for another account: its own profile, or a role assumed in it.
    pub fn other(&self, profile: Option<String>, account: Option<String>) -> Account {
        Account { profile: profile.or_else(|| self.profile.clone()), account, ..self.clone() }
    }

    pub fn output(&self) -> Output {
        Output { json: self.json }
    }
}

/// A source account next to the backup account a command acts in: its own profile, or a
/// role assumed in it with the backup account's credentials.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceAccount {
    /// A source account's profile.
    #[arg(long)]
    pub source_profile: Option<String>,
    /// A source account to act in by assuming `--role` (instead of `--source-profile`).
    #[arg(long)]
    pub source_account: Option<String>,
}

impl SourceAccount {
    /// The source account's clients, when one is given.
    pub async fn clients(&self, base: &Account) -> Result<Option<Clients>> {
        if self.source_profile.is_none() && self.source_account.is_none() {
            return Ok(None);
        }
        Ok(Some(base.other(self.source_profile.clone(), self.source_account.clone()).clients().await?))
    }
}

/// Tables for people, JSON for machines.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn print<T: Serialize>(&self, data: &T, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            let text =
                serde_json::to_string_pretty(data).map_err(|e| Error::BadInput(format!("cannot print JSON: {e}")))?;
            println!("{text}");
        } else {
            println!("{}", human());
        }
        Ok(())
    }

    /// A progress bar on a terminal; hidden for JSON output or when stderr is not a terminal.
    pub fn progress(&self) -> indicatif::ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} moved ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    }
}

/// An age or duration in seconds as people read it: 45s, 12m, 5h, 3d.
pub fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
