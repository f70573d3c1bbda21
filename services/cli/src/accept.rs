//! `snapferry accept`: an operator's decision about a copy the restore step reported
//! suspicious ("Restore Suspicious": its data fell against the previous good copy of its
//! resource). Until then retention keeps that good copy whatever its rules say. Accepted
//! (the fall was meant: a table dropped on purpose, an archive job), the copy counts as its
//! resource's newest good copy: later copies are compared with it, and retention may expire
//! the one before it. The copy gets one tag, `snapferry:accepted-at`; nothing is deleted.

use crate::account::Account;
use serde::Serialize;
use snapferry::error::{Error, Result};
use snapferry::lineage::{self, Lineage, MadeBy, Mark};
use snapferry::store::Stores;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct AcceptArgs {
    #[command(flatten)]
    pub account: Account,
    /// The suspicious copy's ARN, as its "Restore Suspicious" event names it
    /// (`snapshot.arn`), in the backup account.
    pub copy: String,
}

#[derive(Debug, Serialize)]
struct Accepted {
    copy: String,
    resource: String,
    accepted_at: String,
    /// False when it had been accepted before (nothing changed).
    changed: bool,
}

pub async fn run(args: AcceptArgs) -> Result<ExitCode> {
    let out = args.account.output();
    let kind = snapferry::arn::snapshot_kind(&args.copy)
        .ok_or_else(|| Error::BadInput(format!("{} is not a DB, DB cluster or EBS snapshot ARN", args.copy)))?;
    let clients = args.account.clients().await?;
    let region = snapferry::arn::Arn::parse(&args.copy).map(|a| a.region.to_string()).unwrap_or_default();
    let store = clients.store_in(kind, &region);
    let copy = store
        .describe(&args.copy)
        .await?
        .ok_or_else(|| Error::BadInput(format!("{} does not exist in account {}", args.copy, clients.account)))?;
    let lineage = Lineage::of(&copy);
    if !lineage.is(MadeBy::Copy) || copy.account != clients.account {
        return Err(Error::BadInput(format!("{} is not one of snapferry's copies in this account", copy.arn)));
    }
    if !lineage.has(Mark::Suspicious) {
        return Err(Error::BadInput(format!(
            "{} was not found suspicious: there is nothing to accept (its restore test's verdict stands)",
            copy.arn
        )));
    }
    let now = chrono::Utc::now();
    let changed = !lineage.has(Mark::Accepted);
    if changed {
        store.tag(&copy, &lineage::stamp(Mark::Accepted, now)).await?;
    }
    let accepted = Accepted {
        copy: copy.arn.clone(),
        resource: lineage.origin_resource().unwrap_or(&copy.resource_id).to_string(),
        accepted_at: lineage.at(Mark::Accepted).unwrap_or(now).to_rfc3339(),
        changed,
    };
    out.print(&accepted, || {
        let when = if accepted.changed { "accepted" } else { "was accepted already" };
        format!(
            "{} {when}: it is {}'s newest good copy now; retention may expire the copies before it as its rules say",
            accepted.copy, accepted.resource
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
