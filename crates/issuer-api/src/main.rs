use clap::Parser;
use issuer_api::Cli;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.config.load()?;
    couponrush_telemetry::init(&settings, "issuer-api");
    issuer_api::run(settings).await
}
