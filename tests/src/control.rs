//! The emulator's control API (`/_snapferry/...`), over plain HTTP/1.1 on loopback.

use crate::*;
use std::io::{Read, Write};
use std::net::TcpStream;

/// Calls the control API and returns its JSON answer; panics on a non-2xx status.
pub fn call(method: &str, path: &str, body: Option<Value>) -> Value {
    let endpoint = &emulator().endpoint;
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).expect("connect to the emulator");
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write the request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (head, payload) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((200..300).contains(&status), "{method} {path} answered {status}: {payload}");
    if payload.trim().is_empty() { Value::Null } else { serde_json::from_str(payload).expect("JSON answer") }
}

/// Sets `account`'s own maximums of the emulator's quotas (`{"manual_db_snapshots": 3}`):
/// AWS's quotas are per account, so tests that lower one share the emulator with the rest.
pub fn quotas(account: &str, quotas: Value) {
    call("POST", "/_snapferry/config", Some(serde_json::json!({ "account": account, "quotas": quotas })));
}

/// "The next `count` calls of `operation` by `account` fail with `code`."
pub fn fault(operation: &str, account: Option<&str>, count: u32, code: &str, status: u16) {
    call(
        "POST",
        "/_snapferry/faults",
        Some(serde_json::json!({
            "operation": operation, "account": account, "count": count, "error_code": code, "status": status
        })),
    );
}

/// The emulator's request log entries of `account`.
fn logged(account: &str) -> Vec<Value> {
    call("GET", "/_snapferry/requests", None)["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["account"] == account)
        .collect()
}

/// AWS calls the emulator saw from `account`: (operation, error code).
pub fn requests(account: &str) -> Vec<(String, Option<String>)> {
    logged(account)
        .into_iter()
        .map(|r| {
            (r["operation"].as_str().unwrap_or_default().to_string(), r["error_code"].as_str().map(str::to_string))
        })
        .collect()
}

/// AWS calls the emulator saw from `account`, with the role that made each:
/// (IAM action `service:Operation`, role name, error code).
pub fn calls(account: &str) -> Vec<(String, Option<String>, Option<String>)> {
    logged(account)
        .into_iter()
        .flat_map(|r| {
            // The IAM actions the call needed, as the emulator authorized it: a batch call
            // is its single-message action (there is no sqs:SendMessageBatch), a DynamoDB
            // transaction each of its items' actions (there is no dynamodb:TransactWriteItems).
            let actions: Vec<String> = r["actions"]
                .as_array()
                .map(|a| a.iter().filter_map(|a| a.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let (principal, error) =
                (r["principal"].as_str().map(str::to_string), r["error_code"].as_str().map(str::to_string));
            actions.into_iter().map(move |action| (action, principal.clone(), error.clone()))
        })
        .collect()
}

/// Native events the emulator emitted for `account` (dropped ones included, flagged).
pub fn events(account: &str) -> Vec<Value> {
    call("GET", "/_snapferry/events", None)
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["account"] == account)
        .collect()
}
