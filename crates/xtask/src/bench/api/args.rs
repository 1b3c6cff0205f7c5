//! The settings of `cargo xtask bench api`: each an option and a `BENCH_*` variable, with the
//! defaults `scripts/bench-api.sh` had.

use std::str::FromStr;

use anyhow::Context;

use crate::bench::run_args::RunArgs;
use crate::run_env::check_database_name;

/// Settings of an issuer-api benchmark run (each also read from its `BENCH_*` variable). Any
/// `COUPON__*` variable (e.g. `COUPON__REDIS__POOL_SIZE`) is passed to issuer-api; the stack's
/// addresses, topic, key prefix, bind, workers and logging are set by the run. `STACK_*`
/// variables reach `scripts/stack.sh` (hosts, ports, credentials).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Measured seconds of each HTTP phase.
    #[arg(long, env = "BENCH_DURATION", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Unmeasured seconds before each HTTP phase (same coupon, its own users); 0: none.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 3)]
    pub warmup: u64,
    /// Connections of the accepted-path phases, space-separated ("32 64 128 256").
    #[arg(long, env = "BENCH_CONCURRENCIES", default_value = "32 64 128 256")]
    pub concurrencies: Concurrencies,
    /// Connections of the sold-out phase and the HTTP floor: a number, or "best" (those of
    /// the best accepted phase).
    #[arg(long, env = "BENCH_SOLDOUT_CONCURRENCY", default_value = "best")]
    pub soldout_concurrency: SoldOutConcurrency,
    /// Seconds of GET /health/live at the sold-out concurrency: the HTTP floor (actix + wrk,
    /// no Redis, no broker); 0 skips it.
    #[arg(long, env = "BENCH_FLOOR_SECONDS", default_value_t = 10)]
    pub floor_seconds: u64,
    /// issuer-api's actix workers (COUPON__HTTP__WORKERS).
    #[arg(long, env = "BENCH_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,
    /// wrk threads.
    #[arg(long, env = "BENCH_WRK_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub wrk_threads: u32,
    /// Stock of the accepted-path coupon (must exceed the requests).
    #[arg(long, env = "BENCH_STOCK", default_value_t = 10_000_000,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub stock: u32,
    /// EVALSHA calls per Lua phase.
    #[arg(long, env = "BENCH_LUA_REQUESTS", default_value_t = 500_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lua_requests: u64,
    /// redis-benchmark connections (-c), no pipelining (-P 1).
    #[arg(long, env = "BENCH_LUA_CLIENTS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub lua_clients: u32,
    /// The run's database, dropped and recreated each run (must contain "bench").
    #[arg(long, env = "BENCH_DATABASE", default_value = "couponrush_bench")]
    pub database: String,
    /// issuer-api's address (host:port).
    #[arg(long, env = "BENCH_HTTP_BIND", default_value = "127.0.0.1:18081")]
    pub http_bind: String,
    /// Partitions of the run's topic.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Seconds for issuer-api to become ready.
    #[arg(long, env = "BENCH_READY_TIMEOUT", default_value_t = 60)]
    pub ready_timeout: u64,
    /// Seconds to wait, before measuring, for other processes to use less than
    /// --quiet-pct % of one core (0: do not wait); the background load is printed either way.
    #[arg(long, env = "BENCH_QUIET_WAIT", default_value_t = 0)]
    pub quiet_wait: u64,
    /// See --quiet-wait.
    #[arg(long, env = "BENCH_QUIET_PCT", default_value_t = 20)]
    pub quiet_pct: u32,
    /// The tracing cost: the best accepted phase again with traces exported at this sample
    /// ratio to a real OTLP receiver, bracketed by the same phase with tracing off (a fresh
    /// API each); "off" skips it.
    #[arg(long, env = "BENCH_TRACED_RATIO", default_value = "0.01")]
    pub traced_ratio: TracedRatio,
    /// The abuse limits' cost: the best accepted phase again with `rate_limit` on (checked and
    /// counted for every request, none refused), bracketed by the same phase with limits off
    /// (a fresh API each).
    #[arg(long, env = "BENCH_LIMITS_COST", default_value_t = true, action = clap::ArgAction::Set)]
    pub limits_cost: bool,
    /// The cost of replica-acknowledged reservations: on a private Redis master with one
    /// replica, the best accepted phase with `redis.min_replica_acks = 1` (a WAIT after every
    /// reservation), bracketed by the same phase without (a fresh API each, all on that pair).
    #[arg(long, env = "BENCH_REPLICA_COST", default_value_t = true, action = clap::ArgAction::Set)]
    pub replica_cost: bool,
    /// Idle connections per flood: after the HTTP phases, clients connect to issuer-api, send
    /// nothing, hold for 2 s and leave, while its resident set is read (before, highest, after).
    #[arg(long, env = "BENCH_FLOOD_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub flood_connections: u32,
    /// Floods in a row (memory a server keeps after each shows as a rising "after"); 0: none.
    #[arg(long, env = "BENCH_FLOODS", default_value_t = 3)]
    pub floods: u32,
    /// Keep, build and the run directory ([default: <repo>/.stack/bench]).
    #[command(flatten)]
    pub run: RunArgs,
}

impl Args {
    /// The checks clap cannot express; each error names the variable to fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        let threads = self.wrk_threads;
        if let Some(low) = self.concurrencies.0.iter().find(|c| **c < threads) {
            anyhow::bail!(
                "each of BENCH_CONCURRENCIES must be >= BENCH_WRK_THREADS ({threads}), got {low}"
            );
        }
        if let SoldOutConcurrency::Connections(c) = self.soldout_concurrency {
            anyhow::ensure!(
                c >= threads,
                "BENCH_SOLDOUT_CONCURRENCY must be 'best' or a number >= BENCH_WRK_THREADS ({threads}), got {c}"
            );
        }
        check_database_name(&self.database, "bench", "BENCH_DATABASE")?;
        crate::apps::loopback_address(&self.http_bind).with_context(|| {
            format!(
                "BENCH_HTTP_BIND must be host:port, got '{}'",
                self.http_bind
            )
        })?;
        Ok(())
    }
}

/// Connection counts, written space-separated (BENCH_CONCURRENCIES="32 64 128 256").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrencies(pub Vec<u32>);

impl FromStr for Concurrencies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let counts = text
            .split([' ', ','])
            .filter(|word| !word.is_empty())
            .map(|word| {
                word.parse::<u32>()
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| format!("'{word}' is not a connection count"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if counts.is_empty() {
            return Err("no concurrency given".to_owned());
        }
        Ok(Self(counts))
    }
}

/// The sold-out phase's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoldOutConcurrency {
    /// Those of the accepted phase with the most answers per second.
    Best,
    Connections(u32),
}

impl FromStr for SoldOutConcurrency {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "best" {
            return Ok(Self::Best);
        }
        text.parse()
            .ok()
            .filter(|c| *c > 0)
            .map(Self::Connections)
            .ok_or_else(|| format!("expected 'best' or a connection count, got '{text}'"))
    }
}

/// The sample ratio of the traced phase, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TracedRatio {
    Off,
    Ratio(f64),
}

impl FromStr for TracedRatio {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "off" {
            return Ok(Self::Off);
        }
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .map(Self::Ratio)
            .ok_or_else(|| format!("'{text}' is neither \"off\" nor a ratio from 0 to 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_parse_as_the_script_read_them() {
        assert_eq!("32 64  128".parse(), Ok(Concurrencies(vec![32, 64, 128])));
        assert!("32 x".parse::<Concurrencies>().is_err());
        assert!("".parse::<Concurrencies>().is_err());
        assert_eq!("best".parse(), Ok(SoldOutConcurrency::Best));
        assert_eq!("64".parse(), Ok(SoldOutConcurrency::Connections(64)));
        assert!("0".parse::<SoldOutConcurrency>().is_err());
        assert_eq!("off".parse(), Ok(TracedRatio::Off));
        assert_eq!("0.01".parse(), Ok(TracedRatio::Ratio(0.01)));
        assert!("1.5".parse::<TracedRatio>().is_err());
        assert!("some".parse::<TracedRatio>().is_err());
    }
}
