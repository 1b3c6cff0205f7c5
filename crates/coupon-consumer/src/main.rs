use clap::Parser;
use coupon_consumer::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.config.load()?;
    couponrush_telemetry::init(&settings, "coupon-consumer");
    coupon_consumer::run(settings, coupon_consumer::shutdown_signal()).await
}
