//! What a Lambda's AWS calls trust, over real TLS: an endpoint of this test, its certificate
//! issued by a CA of this test, reached through `Clients::from_env` as a Lambda's init
//! reaches STS when `ACCOUNT_ID` is unset.
//!
//! - By default only Amazon Trust Services' roots are trusted: the endpoint is refused,
//!   whatever the machine's own CA store holds.
//! - With `SSL_CERT_FILE` naming the test's CA (a TLS-inspecting proxy's CA, in real life),
//!   the same call goes through.
//!
//! One test in its own binary: the SDK reads `SSL_CERT_FILE` and the endpoint from the
//! process environment, which is set before any thread starts.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use snapferry::clients::Clients;
use snapferry::config::Env;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACCOUNT: &str = "111111111111";

/// STS's answer to `GetCallerIdentity`.
fn caller_identity() -> String {
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
         <Arn>arn:aws:iam::{ACCOUNT}:role/test</Arn><UserId>AROATEST</UserId><Account>{ACCOUNT}</Account>\
         </GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
    );
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{body}", body.len())
}

/// Serves STS over TLS on `listener`, with a certificate for `localhost` issued by a CA of
/// its own; the CA's PEM is returned.
fn serve(listener: std::net::TcpListener) -> String {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "snapferry test proxy CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("endpoint key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("endpoint params")
        .signed_by(&key, &ca)
        .expect("endpoint certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca.der().clone()], key)
        .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake ends here: the client said it does not trust us.
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut request = vec![0u8; 16 * 1024];
                    let _ = tls.read(&mut request).await;
                    let _ = tls.write_all(caller_identity().as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    ca.pem()
}

#[test]
fn a_lambda_trusts_amazon_trust_services_unless_told_to_trust_another_ca() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let ca_pem = serve(listener);
    let ca_file = std::env::temp_dir().join(format!("snapferry-trust-test-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca_pem).expect("write the CA");
    let ca_path = ca_file.to_string_lossy().to_string();
    // SAFETY: no other thread reads the environment yet: the endpoint's thread does not,
    // and the runtime below starts afterwards.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("https://localhost:{port}"));
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        // As Lambda sets it for the function that names the CA: the SDK's store reads it.
        std::env::set_var("SSL_CERT_FILE", &ca_path);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    // Unset in the step's environment: Amazon Trust Services' roots only, and this CA is not
    // one of them (nor is any other the machine trusts).
    let env = Env::from_pairs("copy-shared-snapshot", []).expect("env");
    let refused = runtime.block_on(Clients::from_env(&env)).err();
    let chain = format!("{:?}", refused.expect("an endpoint outside Amazon Trust Services is refused"));
    assert!(chain.contains("UnknownIssuer"), "refused for its issuer: {chain}");

    // Named: that CA is trusted, and the call goes through.
    let env = Env::from_pairs("copy-shared-snapshot", [("SSL_CERT_FILE", ca_path.as_str())]).expect("env");
    let clients = runtime.block_on(Clients::from_env(&env)).expect("trusted through SSL_CERT_FILE");
    assert_eq!(clients.account, ACCOUNT);
    let _ = std::fs::remove_file(&ca_file);
}
