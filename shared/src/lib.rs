//! snapferry's shared library: everything the Lambdas and the operator CLI have in common.
//! Modules form layers, each using only the ones listed before it (a test keeps the
//! import graph free of cycles):
//!
//! 1. [`events`]: the contract (the `snapferry-contract` crate, no AWS SDK).
//! 2. Foundations: [`error`], [`kinds`] (everything that differs by resource kind, one row
//!    per kind), [`arn`], [`tags`], [`naming`], [`kms`], [`environment`], [`config`],
//!    [`select`], [`routing`], [`permissions`].
//! 3. [`inbound`]: one parser for every SQS body, native `aws.rds` / `aws.ec2` events included.
//! 4. [`store`]: the one abstraction over the three resource kinds, and its AWS adapters;
//!    [`lineage`]: a snapshot's lineage, typed, the only reader and writer of snapferry's
//!    tags for the steps; [`slots`]: when a copy slot frees, from the copies in progress;
//!    [`retention`]: which snapshots the rules keep; [`ledger`]: the backup account's copies
//!    in progress and waiting, taken atomically (DynamoDB).
//! 5. Runtime: [`ports`] (queue, bus, clock), [`sqs`] (the batch helper and the SQS
//!    adapter), [`publish`] (the EventBridge adapter), [`clients`], [`step`] (the step
//!    context and the Lambda loop), and [`copy`] (a snapferry copy's policy: slots,
//!    refusals, copying again, re-checks, a full snapshot quota), [`sweep`] (a sweep's
//!    failures, reported each and never stopping it); `memory` (feature
//!    `memory`): in-memory adapters of every port, with AWS's semantics, for decision tests.

pub use snapferry_contract as events;

pub mod arn;
pub mod clients;
pub mod config;
pub mod copy;
pub mod environment;
pub mod error;
pub mod inbound;
pub mod kinds;
pub mod kms;
pub mod ledger;
pub mod lineage;
#[cfg(feature = "memory")]
pub mod memory;
pub mod naming;
pub mod permissions;
pub mod ports;
pub mod publish;
pub mod retention;
pub mod routing;
pub mod select;
pub mod slots;
pub mod sqs;
pub mod step;
pub mod store;
pub mod sweep;
pub mod tags;

pub use error::{Error, Result};
pub use events::ResourceKind;
