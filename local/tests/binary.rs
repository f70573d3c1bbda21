//! The `snapferry-local` binary as the infra tests run it: `local-env` prints every step's
//! environment as the local host renders it, and `check-env` accepts exactly those and
//! refuses one its step would refuse, naming the variable.

use std::io::Write;
use std::process::{Command, Stdio};

fn snapferry_local(args: &[&str], input: &[u8]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snapferry-local"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run snapferry-local");
    child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn check_env_accepts_the_local_hosts_environments_and_refuses_a_bad_one() {
    let (ok, rendered) = snapferry_local(&["local-env"], b"");
    assert!(ok, "local-env failed");
    let steps: Vec<serde_json::Value> = serde_json::from_str(&rendered).expect("local-env prints JSON");
    assert_eq!(steps.len(), 8, "one environment per step");

    let (ok, out) = snapferry_local(&["check-env"], rendered.as_bytes());
    assert!(ok, "{out}");
    assert!(out.contains("8 environment(s) checked, 0 refused"), "{out}");

    let bad = serde_json::json!([{"function": "snapferry-restore", "step": "restore",
        "environment": {"QUEUE_URL": "q", "DLQ_URL": "d", "RESTORE_EVERY_NTH": "0"}}]);
    let (ok, out) = snapferry_local(&["check-env"], bad.to_string().as_bytes());
    assert!(!ok, "{out}");
    assert!(out.contains("REFUSED") && out.contains("RESTORE_EVERY_NTH"), "{out}");
}
