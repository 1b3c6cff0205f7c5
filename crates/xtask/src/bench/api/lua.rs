//! The Lua ceiling: the cache crate's reservation script, loaded with `SCRIPT LOAD` and run
//! directly by `redis-benchmark` (EVALSHA, a random user and request id per call), on scratch
//! keys of the cache crate's own key space: once with a big stock, once with stock 0.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::{RESERVE_LUA, ReservationStore, ReserveCall};
use couponrush_config::RedisSettings;
use couponrush_domain::{CouponId, RequestId};

use super::log;
use crate::bench::cpu::{Usage, Watch};
use crate::coupon;

/// redis-benchmark's `-r`: `__rand_int__` becomes a number below it (12 digits), so each call
/// is almost always a new user.
const RAND_RANGE: &str = "2000000000";

/// Holds older than this count as abandoned, as an API with a 5 s publish wait would pass.
const HOLD_FOR: Duration = Duration::from_secs(5);

/// One Lua phase's results.
#[derive(Debug, Clone)]
pub struct LuaPhase {
    pub rps: u64,
    /// redis-benchmark's own p50 and p99 (ms), as it prints them.
    pub p50: String,
    pub p99: String,
    /// Users the script recorded and stock left on the scratch coupon.
    pub users: u64,
    pub stock: u64,
    pub cpu: Usage,
}

/// How redis-benchmark is run: the same for both phases.
#[derive(Debug)]
pub struct LuaBench {
    pub program: PathBuf,
    /// Scratch keys live under their own prefix inside the run's.
    pub redis: RedisSettings,
    pub requests: u64,
    pub clients: u32,
    pub log_dir: PathBuf,
}

impl LuaBench {
    /// `SCRIPT LOAD` of reserve.lua; its sha.
    pub async fn load_script(&self) -> anyhow::Result<String> {
        let client = couponrush_cache::client(&self.redis).context("redis client")?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .context("connect to Redis")?;
        let sha: String = redis::Script::new(RESERVE_LUA)
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .context("SCRIPT LOAD reserve.lua")?;
        anyhow::ensure!(
            sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "SCRIPT LOAD answered '{sha}'"
        );
        Ok(sha)
    }

    /// Loads a scratch coupon `tag` with `stock` and an open window, then runs the benchmark.
    pub async fn run(
        &self,
        watch: &Watch,
        phase: &str,
        sha: &str,
        tag: u64,
        stock: u32,
    ) -> anyhow::Result<LuaPhase> {
        let store = ReservationStore::new(&self.redis)?;
        let coupon = CouponId::new(tag)?;
        let spec = coupon::open_now(
            format!("bench lua {phase}"),
            1000,
            stock,
            30,
            time::Duration::days(1),
        );
        store.load(coupon, &spec).await?;
        // A pending state of the real shape; redis-benchmark fills in each __rand_int__.
        let call = ReserveCall::new(
            store.keys(),
            coupon,
            "u__rand_int__",
            "r__rand_int__",
            RequestId::generate(),
            time::OffsetDateTime::now_utc(),
            HOLD_FOR,
        );
        let mut args: Vec<String> = [
            "-u",
            self.redis.url.expose(),
            "-n",
            &self.requests.to_string(),
            "-c",
            &self.clients.to_string(),
            "-P",
            "1",
            "-r",
            RAND_RANGE,
            "--csv",
            "EVALSHA",
            sha,
            &call.keys.len().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(call.keys);
        args.extend(call.args);
        log(&format!(
            "{phase}: redis-benchmark -n {} -c {} -P 1 EVALSHA reserve.lua (stock {stock})",
            self.requests, self.clients
        ));
        let name = format!("redis-benchmark-{phase}");
        let (output, cpu) = watch
            .measure(&name, &self.program, &args, &self.log_dir)
            .await?;
        let (rps, p50, p99) = parse_csv(&output).with_context(|| {
            format!(
                "no result from redis-benchmark (see {}.log)",
                self.log_dir.join(&name).display()
            )
        })?;
        let counters = store
            .counters(coupon)
            .await?
            .context("the scratch coupon vanished from Redis")?;
        log(&format!("{phase}: {rps} evals/s ({})", cpu));
        Ok(LuaPhase {
            rps,
            p50,
            p99,
            users: counters.participants,
            stock: counters.stock,
            cpu,
        })
    }
}

/// `--csv`: a header line, then `"test","rps","avg_latency_ms","min_latency_ms",
/// "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`; rps rounded, p50 and
/// p99 as printed.
fn parse_csv(output: &str) -> Option<(u64, String, String)> {
    let row: Vec<&str> = output
        .lines()
        .filter(|line| line.starts_with('"'))
        .nth(1)?
        .split("\",\"")
        .collect();
    let rps: f64 = row.get(1)?.parse().ok()?;
    let whole = format!("{rps:.0}").parse().ok()?;
    Some((whole, (*row.get(4)?).to_owned(), (*row.get(6)?).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_benchmarks_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                   \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"EVALSHA abc 5 k1\",\"43211.41\",\"1.100\",\"0.300\",\"0.767\",\"1.100\",\
                   \"1.287\",\"5.000\"\n";
        assert_eq!(
            parse_csv(out),
            Some((43211, "0.767".to_owned(), "1.287".to_owned()))
        );
        assert_eq!(parse_csv("ERR unknown command"), None);
    }
}
