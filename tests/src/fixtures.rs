//! Source-side fixtures: a resource of each kind and keys, through the real SDK.

use snapferry::ResourceKind;
use snapferry::clients::Clients;
use snapferry::store::{Snapshot, SnapshotStore, Status};
use std::time::Duration;

/// A CMK in `clients`' account whose policy lets `users` copy snapshots encrypted with it.
pub async fn sharing_key(clients: &Clients, users: &[String]) -> String {
    let policy = snapferry::kms::sharing_key_policy(&clients.account, &clients.region, users);
    let key = clients.kms.create_key().policy(policy.to_string()).send().await.expect("CreateKey");
    key.key_metadata().and_then(|m| m.arn()).expect("key arn").to_string()
}

/// A MySQL instance; its tags go on its snapshots, as AWS does with `CopyTagsToSnapshot`.
pub async fn db_instance(clients: &Clients, name: &str, encrypted: bool, kms_key: Option<&str>, tags: &[(&str, &str)]) {
    db_instance_request(clients, name, encrypted, kms_key, tags).send().await.expect("CreateDBInstance");
}

/// The `CreateDBInstance` call of [`db_instance`], for a test that adds to it (an option group).
pub fn db_instance_request(
    clients: &Clients,
    name: &str,
    encrypted: bool,
    kms_key: Option<&str>,
    tags: &[(&str, &str)],
) -> aws_sdk_rds::operation::create_db_instance::builders::CreateDBInstanceFluentBuilder {
    clients
        .rds
        .create_db_instance()
        .db_instance_identifier(name)
        .engine("mysql")
        .engine_version("8.0.39")
        .db_instance_class("db.t4g.micro")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .storage_encrypted(encrypted)
        .set_kms_key_id(kms_key.map(str::to_string))
        .copy_tags_to_snapshot(true)
        .set_tags(Some(
            tags.iter().map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(*k).value(*v).build()).collect(),
        ))
}

/// A database / cluster / volume of `kind`, encrypted with `kms_key` (None: the AWS-managed key).
pub async fn resource(clients: &Clients, kind: ResourceKind, name: &str, kms_key: Option<&str>) -> String {
    match kind {
        ResourceKind::DbInstance => {
            db_instance(clients, name, true, kms_key, &[]).await;
            name.to_string()
        }
        ResourceKind::DbCluster => {
            clients
                .rds
                .create_db_cluster()
                .db_cluster_identifier(name)
                .engine("aurora-postgresql")
                .engine_version("16.4")
                .master_username("admin")
                .master_user_password("not-a-secret-1")
                .storage_encrypted(true)
                .set_kms_key_id(kms_key.map(str::to_string))
                .send()
                .await
                .expect("CreateDBCluster");
            name.to_string()
        }
        ResourceKind::Ebs => {
            let v = clients
                .ec2
                .create_volume()
                .availability_zone(format!("{}a", clients.region))
                .size(8)
                .encrypted(true)
                .set_kms_key_id(kms_key.map(str::to_string))
                .send()
                .await
                .expect("CreateVolume");
            v.volume_id().expect("volume id").to_string()
        }
    }
}

/// The master password of the fixtures' databases.
pub const MASTER_PASSWORD: &str = "not-a-secret-1";

/// A PostgreSQL DB instance or Aurora PostgreSQL cluster (the emulator backs both with
/// a real PostgreSQL database) with a database `app`, on the AWS-managed key.
pub async fn postgres(clients: &Clients, kind: ResourceKind, name: &str) {
    database(clients, kind, name, ("postgres", "16.4"), ("aurora-postgresql", "16.4"), false).await
}

/// [`postgres`] whose master password RDS manages in Secrets Manager (`MasterUserSecret`).
pub async fn postgres_with_managed_secret(clients: &Clients, kind: ResourceKind, name: &str) {
    database(clients, kind, name, ("postgres", "16.4"), ("aurora-postgresql", "16.4"), true).await
}

/// A MySQL DB instance or Aurora MySQL cluster (the emulator backs both with a real
/// MariaDB database) with a database `app`, on the AWS-managed key.
pub async fn mysql(clients: &Clients, kind: ResourceKind, name: &str) {
    database(clients, kind, name, ("mysql", "8.0.39"), ("aurora-mysql", "8.0.mysql_aurora.3.07.1"), false).await
}

/// The master password RDS manages for `name`, read from its secret.
pub async fn managed_password(clients: &Clients, kind: ResourceKind, name: &str) -> String {
    let database = snapferry::store::Stores::store(clients, kind).database(name).await.expect("describe");
    let arn = database.and_then(|d| d.master_secret_arn).expect("a managed master secret");
    let secrets = snapferry_data::secrets::Secrets::new(&clients.config);
    secrets.credentials(&arn).await.expect("the secret").password.expose().to_string()
}

/// A DB instance or cluster of the engine and version given for its kind, with a
/// database `app` and the master user `owner`; its password [`MASTER_PASSWORD`], or one
/// RDS manages (`managed`).
async fn database(
    clients: &Clients,
    kind: ResourceKind,
    name: &str,
    (instance_engine, instance_version): (&str, &str),
    (cluster_engine, cluster_version): (&str, &str),
    managed: bool,
) {
    let password = (!managed).then(|| MASTER_PASSWORD.to_string());
    match kind {
        ResourceKind::DbInstance => {
            clients
                .rds
                .create_db_instance()
                .db_instance_identifier(name)
                .engine(instance_engine)
                .engine_version(instance_version)
                .db_instance_class("db.t4g.micro")
                .allocated_storage(20)
                .db_name("app")
                .master_username("owner")
                .set_master_user_password(password)
                .set_manage_master_user_password(managed.then_some(true))
                .storage_encrypted(true)
                .send()
                .await
                .expect("CreateDBInstance");
        }
        ResourceKind::DbCluster => {
            clients
                .rds
                .create_db_cluster()
                .db_cluster_identifier(name)
                .engine(cluster_engine)
                .engine_version(cluster_version)
                .database_name("app")
                .master_username("owner")
                .set_master_user_password(password)
                .set_manage_master_user_password(managed.then_some(true))
                .storage_encrypted(true)
                .send()
                .await
                .expect("CreateDBCluster");
        }
        ResourceKind::Ebs => panic!("a volume has no database"),
    }
}

/// Runs `sql` in the database `app` of the PostgreSQL instance or cluster `name`, as its
/// master user (in clear text: the emulator does not require TLS, as RDS does not by default).
pub async fn sql(clients: &Clients, kind: ResourceKind, name: &str, sql: &str) {
    sql_as(clients, kind, name, MASTER_PASSWORD, sql).await
}

/// [`sql`] with the master user's `password`.
pub async fn sql_as(clients: &Clients, kind: ResourceKind, name: &str, password: &str, sql: &str) {
    // Described by the store, as the restore step's data checks find a restored one.
    let restored = snapferry::store::Stores::store(clients, kind).restore_status(name).await.expect("describe");
    let endpoint = restored.and_then(|r| r.endpoint).expect("an endpoint");
    let (host, port) = (endpoint.host, endpoint.port);
    let conn = format!("host={host} port={port} user=owner password={password} dbname=app");
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// Runs each of `statements` in the database `app` of the MySQL instance or cluster
/// `name`, as its master user (in clear text, as [`sql`]).
pub async fn mysql_sql(clients: &Clients, kind: ResourceKind, name: &str, statements: &[String]) {
    use mysql_async::prelude::Queryable;
    let restored = snapferry::store::Stores::store(clients, kind).restore_status(name).await.expect("describe");
    let endpoint = restored.and_then(|r| r.endpoint).expect("an endpoint");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(endpoint.host)
        .tcp_port(endpoint.port)
        .user(Some("owner"))
        .pass(Some(MASTER_PASSWORD))
        .db_name(Some("app"))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
    for sql in statements {
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.disconnect().await.expect("disconnect");
}

/// Waits (with a deadline) until the snapshot is available.
pub async fn available(store: &dyn SnapshotStore, id: &str) -> Snapshot {
    crate::eventually(&format!("{id} to become available"), Duration::from_secs(30), || async {
        match store.describe(id).await.expect("describe") {
            Some(s) if s.status == Status::Available => Some(s),
            Some(Snapshot { status: Status::Failed(why), .. }) => panic!("{id} failed: {why}"),
            _ => None,
        }
    })
    .await
}
