use std::process::ExitCode;

use clap::Parser;
use compensation_batch::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let settings = cli.config.load()?;
        couponrush_telemetry::init(&settings, "compensation-batch");
        compensation_batch::run(cli.command, settings).await
    };
    couponrush_telemetry::exit_code("compensation-batch", result.await)
}
