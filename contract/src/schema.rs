//! The committed JSON Schemas of the contract, generated from the types.

use crate::{BackupRequest, PipelineEvent, Recheck};
use schemars::Schema;
use serde_json::Value;

/// The committed JSON Schemas: `(file name in contract/schemas/, pretty JSON with a trailing
/// newline)`. The `schemas` integration test keeps the files equal to this.
///
/// Object keys are sorted: whether serde_json keeps insertion order depends on its
/// `preserve_order` feature, which any crate in the build may switch on, and the files
/// must not change with what else happens to be compiled.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    let render = |schema: Schema| {
        let value = canonical(schema.to_value());
        // Serializing a `Value` to a string cannot fail.
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        ("pipeline-event.v1.json", render(schemars::schema_for!(PipelineEvent))),
        ("backup-request.v1.json", render(schemars::schema_for!(BackupRequest))),
        ("recheck.v1.json", render(schemars::schema_for!(Recheck))),
    ]
}

/// `value` with the keys of every object in sorted order (arrays keep theirs).
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}
