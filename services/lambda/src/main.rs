//! Every step's Lambda is this one binary: a custom-runtime function is told its handler
//! setting in `_HANDLER`, and the CDK stacks set it to the step's name, so each function
//! keeps its own queue, role and configuration while the steps are built (and linked
//! against the SDK) once. The registry of steps is the library's [`snapferry_lambda::handler`].

use snapferry::clients::Clients;
use snapferry::config::Env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    snapferry::step::init_tracing();
    // Lambda sets it from the function's Handler; it is not part of the step's own environment.
    let step =
        std::env::var("_HANDLER").map_err(|_| "_HANDLER is not set: the function's handler must name its step")?;
    // A bad configuration fails the init, with a message that names the variable.
    let env = Env::from_process(&step)?;
    let clients = Clients::from_env(&env).await?;
    snapferry::step::serve(snapferry_lambda::handler(&env, &clients)?).await
}
