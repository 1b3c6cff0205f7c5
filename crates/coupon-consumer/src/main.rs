use std::process::ExitCode;

use clap::Parser;
use coupon_consumer::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let settings = cli.config.load()?;
        couponrush_telemetry::init(&settings, "coupon-consumer");
        coupon_consumer::run(settings, coupon_consumer::shutdown_signal()).await
    };
    couponrush_telemetry::exit_code("coupon-consumer", result.await)
}
