use clap::Parser;
use compensation_batch::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.config.load()?;
    couponrush_telemetry::init(&settings, "compensation-batch");
    compensation_batch::run(cli.command, settings).await
}
