// The server's future (every route, the Redis connection of either mode) nests deeper than
// rustc's default query depth of 128 allows when computing its layout.
#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;
use issuer_api::Cli;

// mimalloc gives freed pages back to the OS: with glibc's allocator the workers' arenas kept
// what a flood of idle connections made them allocate, and repeated floods only added to it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = async {
        // The admin endpoints are served here, issue messages signed and callers identified:
        // production refuses to start without an admin token, a signing key or an auth mode.
        let settings = cli.config.load_for(couponrush_config::Needs {
            admin_token: true,
            signing_key: true,
            auth: true,
        })?;
        let telemetry = couponrush_telemetry::init(&settings, "issuer-api")?;
        let result = issuer_api::run(settings).await;
        telemetry.shutdown();
        result
    };
    couponrush_telemetry::exit_code("issuer-api", result.await)
}
