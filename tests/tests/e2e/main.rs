//! The end-to-end tests that share one emulator: each makes accounts of its own
//! ([`snapferry_e2e::new_account`]), and what it changes in the emulator (faults, dropped
//! events, failed completions, lowered quotas) it scopes to them, so they run in parallel
//! in one binary, linked once. `emulator_reset.rs` (resets the whole emulator) and
//! `fault_campaign.rs` (clears the emulator's fault and drop rules) keep an emulator of
//! their own in a binary of their own.

mod api_economy;
mod chain;
mod chain_data;
mod chain_data_mysql;
mod chain_data_source;
mod chain_ebs;
mod chain_expire;
mod chain_iam;
mod chain_quota;
mod chain_quota_full;
mod chain_reconcile;
mod cli_dlq;
mod cli_doctor;
mod cli_status;
mod data_untrusted;
mod emulator;
mod emulator_quotas;
mod ledger;
mod local_host;
mod neighbours;
mod report;
