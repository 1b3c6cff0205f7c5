//! `migrate` refuses to run, loudly, when MySQL is missing or production points at localhost.

use std::path::Path;

use couponrush_testkit::Refusal;

const BINARY: &str = env!("CARGO_BIN_EXE_compensation-batch");

#[test]
fn migrate_refuses_unreachable_mysql() -> anyhow::Result<()> {
    Refusal::unreachable("MySQL")?.assert_refused(Path::new(BINARY), &["migrate"], &[])
}

#[test]
fn migrate_refuses_production_with_loopback_hosts() -> anyhow::Result<()> {
    Refusal::production_with_loopback().assert_refused(Path::new(BINARY), &["migrate"], &[])
}
