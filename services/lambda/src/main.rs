//! Every step's Lambda is this one binary: a custom-runtime function is told its handler
//! setting in `_HANDLER`, and the CDK stacks set it to the step's name, so each function
//! keeps its own queue, role and configuration while the steps are built (and linked
//! against the SDK) once.

use snapferry::clients::Clients;
use snapferry::config::Env;
use snapferry::sqs::BatchHandler;
use snapferry::step::StepContext;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    snapferry::step::init_tracing();
    // Lambda sets it from the function's Handler; it is not part of the step's own environment.
    let step =
        std::env::var("_HANDLER").map_err(|_| "_HANDLER is not set: the function's handler must name its step")?;
    // A bad configuration fails the init, with a message that names the variable.
    let env = Env::from_process(&step)?;
    let clients = Clients::from_env(&env).await?;
    let ports = |step_env| StepContext::aws(&clients, step_env);
    let handler: Arc<dyn BatchHandler> = match step.as_str() {
        snapferry_create_snapshot::STEP => Arc::new(snapferry_create_snapshot::Handler::from_env(&env, ports)?),
        snapferry_share_snapshot::STEP => {
            Arc::new(snapferry_share_snapshot::Handler::from_env(&env, ports, &clients.config)?)
        }
        snapferry_copy_shared_snapshot::STEP => {
            Arc::new(snapferry_copy_shared_snapshot::Handler::from_env(&env, ports)?)
        }
        snapferry_restore::STEP => Arc::new(snapferry_restore::Handler::from_env(&env, ports)?),
        snapferry_expire_snapshots::SOURCE_STEP | snapferry_expire_snapshots::BACKUP_STEP => {
            Arc::new(snapferry_expire_snapshots::Handler::from_env(&env, ports)?)
        }
        snapferry_reconcile::SOURCE_STEP | snapferry_reconcile::BACKUP_STEP => {
            Arc::new(snapferry_reconcile::Handler::from_env(&env, ports)?)
        }
        other => return Err(format!("_HANDLER={other:?} names no snapferry step").into()),
    };
    snapferry::step::serve(handler).await
}
