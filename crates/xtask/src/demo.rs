//! `cargo xtask demo`: the incident's event replayed on this machine.

use std::process::ExitCode;

/// Settings of a demo run (each also read from its `DEMO_*` variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Coupons in the event.
    #[arg(long, env = "DEMO_STOCK", default_value_t = 5000)]
    pub stock: u32,
}

pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the demo is being moved here from scripts/demo.sh")
}
