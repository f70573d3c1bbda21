use snapferry::clients::Clients;
use snapferry::config::Env;
use snapferry_create_snapshot::{Config, Handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    snapferry::lambda::init_tracing();
    // A bad configuration fails the init, with a message that names the variable.
    let config = Config::from_env(&Env::from_process())?;
    let clients = Clients::from_env().await?;
    snapferry::lambda::serve(Handler::new(clients, config)).await
}
