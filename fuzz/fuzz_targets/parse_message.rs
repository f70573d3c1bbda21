//! Any bytes as a message body: `parse_message` returns a message or a classified error
//! with a reason, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    if let Err(e) = snapferry::inbound::parse_message(&body) {
        assert!(!e.to_string().is_empty(), "an error without a reason");
    }
});
