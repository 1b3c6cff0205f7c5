use std::process::ExitCode;

use clap::Parser;
use issuer_api::Cli;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let settings = cli.config.load()?;
        couponrush_telemetry::init(&settings, "issuer-api");
        issuer_api::run(settings).await
    };
    couponrush_telemetry::exit_code("issuer-api", result.await)
}
