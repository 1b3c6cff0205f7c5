//! `coupon-consumer`: persists accepted issue requests from Kafka into MySQL.
//!
//! One member of the consumer group `kafka.consumer_group`; run one process per partition to
//! scale out. A batch's offsets are stored only after its MySQL transaction committed, and
//! only stored offsets are committed (periodically, before partitions are revoked, and at
//! shutdown), so a crash re-delivers rather than loses; the idempotent insert makes
//! re-delivery harmless. Transient failures are retried with the partitions paused, not lost.

mod batch;
mod confirm;
mod context;
mod dead_letters;
mod hold;
mod intake;
mod message_spans;
mod metrics;
mod offsets;
mod ops;
mod readiness;
mod retry;
mod shutdown;
mod startup;
mod watch;
mod worker;

pub use shutdown::shutdown_signal;
pub use worker::{RunningConsumer, run, start};

/// Command line of the `coupon-consumer` binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "coupon-consumer",
    version,
    about = "Kafka consumer persisting coupon issuances"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: couponrush_config::ConfigArgs,
}
