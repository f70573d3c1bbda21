//! snapferry's shared library: everything the Lambdas and the operator CLI have in common.
//!
//! - [`events`]: the versioned pipeline event contract (and its JSON Schemas).
//! - [`native`]: parsers for the native `aws.rds` / `aws.ec2` snapshot events.
//! - [`kind`]: the one abstraction over the three resource kinds, and its adapters.
//! - [`error`]: retryable vs permanent errors, mapped from AWS error codes.
//! - [`sqs`]: the SQS batch helper (partial batch responses, DLQ routing, delayed re-checks).
//! - [`publish`]: the EventBridge publisher (chunking, `FailedEntryCount`, retries).
//! - [`config`] and [`clients`]: environment configuration and AWS clients, built once.
//! - [`naming`] and [`tags`]: deterministic identifiers and the tags that mark what we manage.

pub mod clients;
pub mod config;
pub mod error;
pub mod events;
pub mod kind;
pub mod kms;
pub mod lambda;
pub mod naming;
pub mod native;
pub mod publish;
pub mod routing;
pub mod select;
pub mod sqs;
pub mod tags;

pub use error::{Error, Result};
pub use kind::ResourceKind;
