//! `issuer-api`: the HTTP front of a coupon event.
//!
//! `POST /coupons/{couponId}/issue` decides each request with one atomic Redis script, publishes
//! accepted requests to Kafka and answers `202 QUEUED` only once the broker acknowledged them.
//! Every other answer says what really happened (duplicate with its state, sold out, not open,
//! unknown coupon); nobody is told "issued" by this endpoint.

mod abuse_limits;
mod admin_auth;
mod auth;
mod coupon_presence;
mod error;
mod holds;
mod metrics;
mod participation;
mod readiness;
mod request_span;
mod resolver;
mod routes;
mod server;
mod sold_out_gate;
mod startup;
mod state;
mod trusted_proxies;

pub use server::{RunningApi, run, start};
pub use state::AppState;

/// Command line of the `issuer-api` binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "issuer-api",
    version,
    about = "HTTP issuance endpoint of couponrush"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: couponrush_config::ConfigArgs,
}
