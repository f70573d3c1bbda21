//! The contract must be publishable on its own: no AWS SDK crate and no other snapferry
//! crate among its dependencies.

#[test]
fn the_contract_depends_on_no_sdk_and_no_snapferry_crate() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    let names: Vec<&str> =
        deps.lines().filter_map(|l| l.split(['.', '=', ' ']).next()).filter(|n| !n.is_empty()).collect();
    assert!(!names.is_empty(), "dependencies are read: {deps}");
    for name in names {
        assert!(
            !name.starts_with("aws") && !name.starts_with("snapferry") && !name.starts_with("lambda"),
            "the contract depends on {name}"
        );
    }
}
