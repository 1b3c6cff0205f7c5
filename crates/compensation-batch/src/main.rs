use std::process::ExitCode;

use clap::Parser;
use compensation_batch::{Cli, Completion, EXIT_NEEDS_ATTENTION};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let settings = cli.config.load_for(cli.command.needs())?;
        let telemetry = couponrush_telemetry::init(&settings, "compensation-batch")?;
        let result = compensation_batch::run(&cli.command, &settings).await;
        telemetry.shutdown();
        result
    };
    match result.await {
        Ok(Completion {
            needs_attention: true,
            ..
        }) => ExitCode::from(EXIT_NEEDS_ATTENTION),
        other => couponrush_telemetry::exit_code("compensation-batch", other.map(drop)),
    }
}
