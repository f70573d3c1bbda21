//! The local Lambda host: what the CDK stacks and the Lambda service do in AWS, done
//! against the emulator so the whole pipeline runs on one machine (`snapferry local`, the
//! demo and the end-to-end tests).
//!
//! - [`deploy`] creates the event topology of `shared/routing.json` (pipeline buses,
//!   queues with their DLQs and redrive policies, rules, the cross-account forwarding and
//!   the bus policies that admit it). It is idempotent, like a CloudFormation update.
//! - [`Host`] plays Lambda's SQS event source mapping: it receives a batch per function,
//!   calls the step's [`BatchHandler`], and deletes exactly the records that did not fail
//!   (`ReportBatchItemFailures`). Failed records stay in the queue, come back after their
//!   visibility timeout and reach the DLQ through SQS's own redrive, as in AWS.

mod deploy;
mod host;

pub use deploy::queue_arn;
pub use deploy::{DeployOptions, DeployedQueue, DeployedSchedule, Deployment, deploy, queue_policy, step_role};
pub use host::Host;
