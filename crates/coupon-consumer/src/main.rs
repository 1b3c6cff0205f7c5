use std::process::ExitCode;

use clap::Parser;
use coupon_consumer::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        let settings = cli.config.load()?;
        let telemetry = couponrush_telemetry::init(&settings, "coupon-consumer")?;
        let result = coupon_consumer::run(settings, coupon_consumer::shutdown_signal()).await;
        telemetry.shutdown();
        result
    };
    couponrush_telemetry::exit_code("coupon-consumer", result.await)
}
