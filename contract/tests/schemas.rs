//! The JSON Schemas in `contract/schemas/` are the contract other teams build against; this
//! test keeps them equal to what the Rust types generate, so they cannot drift silently.
//!
//! After an intended contract change: `SNAPFERRY_UPDATE_SCHEMAS=1 cargo test -p snapferry-contract --test schemas`.

use std::path::PathBuf;

const UPDATE_VAR: &str = "SNAPFERRY_UPDATE_SCHEMAS";

#[test]
fn committed_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os(UPDATE_VAR).is_some_and(|v| !v.is_empty() && v != "0");
    let mut stale = Vec::new();
    for (name, generated) in snapferry_contract::json_schemas() {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == generated => {}
            Ok(_) => stale.push(format!("{} differs from the generated schema", path.display())),
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nIf the contract change is intended, regenerate with:\n  {UPDATE_VAR}=1 cargo test -p snapferry-contract --test schemas\n(and bump CONTRACT_VERSION for anything but additive changes)",
        stale.join("\n")
    );
}
