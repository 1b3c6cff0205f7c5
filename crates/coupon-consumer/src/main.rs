use std::process::ExitCode;

use clap::Parser;
use coupon_consumer::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        // It verifies issue messages: production refuses to start without a signing key.
        let settings = cli.config.load_for(couponrush_config::Needs {
            signing_key: true,
            ..couponrush_config::Needs::default()
        })?;
        let telemetry = couponrush_telemetry::init(&settings, "coupon-consumer")?;
        let result = coupon_consumer::run(settings, coupon_consumer::shutdown_signal()).await;
        telemetry.shutdown();
        result
    };
    couponrush_telemetry::exit_code("coupon-consumer", result.await)
}
