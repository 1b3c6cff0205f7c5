//! The measurement itself: build, migrate, start issuer-api, the HTTP phases, then the Lua
//! ceiling; everything it starts is stopped when it returns or is dropped.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_domain::CouponId;

use super::args::{SoldOutConcurrency, TracedRatio};
use super::http::{self, HttpPhase, PhaseSpec, Wrk, WrkRun};
use super::lua::LuaBench;
use super::memory;
use super::summary::{self, Results};
use super::{Args, Tools, log};
use crate::apps::Apps;
use crate::bench::cpu::{self, Watch};
use crate::bench::run_info::services;
use crate::binaries::{build_release, release_binary};
use crate::coupon;
use crate::process::{run_to_end, tail};
use crate::run_env::RunEnv;

/// An environment variable given to issuer-api.
pub(super) type Var = (&'static str, String);

/// What only this run knows, made before the stack is up.
#[derive(Debug)]
pub(super) struct RunSecrets {
    /// The Lua ceiling's scratch keys (a scratch prefix of the run: removed with its keys).
    pub(super) lua_prefix: String,
    /// Every user id of the run starts with it (then phase, wrk thread, counter).
    pub(super) user_tag: String,
}

/// What the measurement works with.
#[derive(Debug)]
pub(super) struct Run<'a> {
    pub(super) args: &'a Args,
    pub(super) env: &'a RunEnv,
    pub(super) secrets: &'a RunSecrets,
    pub(super) log_dir: &'a Path,
    pub(super) tools: &'a Tools,
}

impl Run<'_> {
    pub(super) async fn measure(&self) -> anyhow::Result<Box<Results>> {
        let args = self.args;
        if args.run.build {
            log("building release binaries");
            build_release(&["issuer-api", "compensation-batch"]).await?;
        } else {
            log("BENCH_BUILD=0: using the release binaries as they are");
        }
        release_binary("issuer-api")?;
        let batch_binary = release_binary("compensation-batch")?;
        self.env.empty_database().await?;
        let logging = [
            ("COUPON__LOG__FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        self.migrate(&batch_binary, &self.env.vars_with(&logging))
            .await?;

        let mut apps = self.api_apps(&[]);
        apps.start_api(self.env, &args.http_bind, self.log_dir)?;
        log(&format!(
            "started issuer-api ({} worker(s), log {})",
            args.workers,
            apps.api()?.service().log().display()
        ));
        apps.wait_ready(Duration::from_secs(args.ready_timeout))
            .await?;
        let api = apps.api()?;
        let base_url = api.base_url().to_owned();
        // The servers listening on the stack's ports, and issuer-api.
        let (services, service_versions) = services(self.env.settings()).await;
        let mut watch = match api.service().pid() {
            Some(pid) => services.with("api", pid),
            None => services,
        };
        let background = cpu::wait_until_quiet(
            Duration::from_secs(args.quiet_wait),
            f64::from(args.quiet_pct),
            "BENCH_QUIET_WAIT",
        )
        .await?;

        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let run_id = &self.env.names().run_id;
        // Open for a day, each coupon 1,000 off, expiring 30 days after issue.
        let event =
            |name: String, stock| coupon::open_now(name, 1000, stock, 30, time::Duration::days(1));
        let big_spec = event(format!("bench {run_id} stock {}", args.stock), args.stock);
        let big = api.create_coupon(&big_spec).await?;
        let one = event(format!("bench {run_id} stock 1"), 1);
        let one = api.create_coupon(&one).await?;
        let tag = &self.secrets.user_tag;
        let first = http::issue(&client, &base_url, one, &format!("{tag}first")).await?;
        anyhow::ensure!(
            first == 202,
            "taking the only unit of coupon {one} answered {first}, not 202"
        );
        log(&format!(
            "coupons: {big} (stock {}), {one} (stock 1, taken)",
            args.stock
        ));

        let wrk = Wrk {
            program: self.tools.wrk.clone(),
            threads: args.wrk_threads,
            base_url: base_url.clone(),
            log_dir: self.log_dir.to_owned(),
        };
        let store = ReservationStore::new(&self.env.settings().redis)?;
        let (accepted, stock_left) = self.accepted(&wrk, &watch, &store, big).await?;
        apps.check_alive()?;
        let best = summary::best(&accepted).map_or(1, |best| best.conns);
        let conns = match args.soldout_concurrency {
            SoldOutConcurrency::Best => best,
            SoldOutConcurrency::Connections(conns) => conns,
        };
        let (sold_out, floor) = self.sold_out(&wrk, &watch, one, conns).await?;
        apps.check_alive()?;
        let memory = memory::measure(
            apps.api()?.service().pid(),
            crate::apps::loopback_address(&args.http_bind)?,
            usize::try_from(args.flood_connections)?,
            args.floods,
        )
        .await?;
        apps.check_alive()?;
        // The API is no longer needed: stopped, the Lua phases run on a quieter machine.
        apps.stop_all().await;
        watch.remove("api");
        let tracing = match args.traced_ratio {
            TracedRatio::Off => None,
            TracedRatio::Ratio(ratio) => {
                Some(self.tracing_cost(&wrk, &watch, big, best, ratio).await?)
            }
        };
        let limits = if args.limits_cost {
            Some(self.limits_cost(&wrk, &watch, big, best).await?)
        } else {
            None
        };
        let replicas = if args.replica_cost {
            Some(
                self.replica_cost(&wrk, &watch, (big, &big_spec), best)
                    .await?,
            )
        } else {
            None
        };

        let lua = LuaBench {
            program: self.tools.redis_benchmark.clone(),
            redis: self.env.redis_under(&self.secrets.lua_prefix),
            requests: args.lua_requests,
            clients: args.lua_clients,
            log_dir: self.log_dir.to_owned(),
        };
        let sha = lua.load_script().await?;
        let lua_accept = lua.run(&watch, "lua-accept", &sha, 1, args.stock).await?;
        let lua_sold_out = lua.run(&watch, "lua-soldout", &sha, 2, 0).await?;
        let versions = format!(
            "wrk {} ({} thread(s)), {service_versions}",
            http::wrk_version(&self.tools.wrk).await,
            args.wrk_threads
        );
        Ok(Box::new(Results {
            accepted,
            sold_out,
            floor,
            lua_accept,
            lua_sold_out,
            stock_left,
            background,
            tracing,
            limits,
            replicas,
            memory,
            versions,
            redis_pool: self.env.settings().redis.pool_size,
        }))
    }

    /// issuer-api as every phase runs it (workers, JSON logs at warn), plus `extra` variables.
    pub(super) fn api_apps(&self, extra: &[Var]) -> Apps {
        let mut vars = vec![
            ("COUPON__HTTP__WORKERS", self.args.workers.to_string()),
            ("COUPON__LOG__FORMAT", "json".to_owned()),
        ];
        vars.extend(extra.iter().cloned());
        Apps::new(Some("warn".to_owned())).with_vars(vars)
    }

    /// `compensation-batch migrate` of the binaries under test, on the run's database.
    async fn migrate(&self, binary: &Path, env: &[(String, String)]) -> anyhow::Result<()> {
        let migrate = run_to_end("migrate", binary, ["migrate"], env, self.log_dir).await?;
        anyhow::ensure!(
            migrate.status.success(),
            "migrate failed ({}):\n{}",
            migrate.status,
            tail(&self.log_dir.join("migrate.log"), 20)
        );
        Ok(())
    }

    /// The accepted path at each concurrency, with the new users Redis recorded in each;
    /// then the stock left.
    async fn accepted(
        &self,
        wrk: &Wrk,
        watch: &Watch,
        store: &ReservationStore,
        big: CouponId,
    ) -> anyhow::Result<(Vec<(HttpPhase, u64)>, u64)> {
        let args = self.args;
        let tag = &self.secrets.user_tag;
        let coupon = big.to_string();
        let participants = async || -> anyhow::Result<(u64, u64)> {
            let counters = store
                .counters(big)
                .await?
                .context("the accepted-path coupon is not in Redis")?;
            Ok((counters.participants, counters.stock))
        };
        let mut phases = Vec::new();
        for &conns in &args.concurrencies.0 {
            let name = format!("accepted-c{conns}");
            let warmup_users = format!("{tag}w{conns}t");
            let users = format!("{tag}a{conns}t");
            let spec = PhaseSpec {
                name: &name,
                coupon: &coupon,
                warmup_users: &warmup_users,
                users: &users,
                conns,
                warmup: args.warmup,
                secs: args.duration,
                count: |run: &WrkRun| run.s202,
            };
            wrk.warm_up(watch, spec).await?;
            // Counted after the warm-up, whose users are not the phase's.
            let (users_before, _) = participants().await?;
            let phase = wrk.measure(watch, spec).await?;
            let (users_after, _) = participants().await?;
            let recorded = users_after.saturating_sub(users_before);
            if recorded < phase.wrk.s202 || recorded > phase.wrk.s202 + u64::from(conns) {
                log(&format!(
                    "warning: {name}: Redis recorded {recorded} new users for {} 202s seen by wrk \
                     (expected at most one more per connection)",
                    phase.wrk.s202
                ));
            }
            log_accepted(&name, &phase);
            phases.push((phase, recorded));
        }
        let (_, stock_left) = participants().await?;
        Ok((phases, stock_left))
    }

    /// The sold-out path at `conns` connections, then the HTTP floor (unless skipped).
    async fn sold_out(
        &self,
        wrk: &Wrk,
        watch: &Watch,
        one: CouponId,
        conns: u32,
    ) -> anyhow::Result<(HttpPhase, Option<HttpPhase>)> {
        let args = self.args;
        let tag = &self.secrets.user_tag;
        let name = format!("soldout-c{conns}");
        let sold_out = wrk
            .phase(
                watch,
                PhaseSpec {
                    name: &name,
                    coupon: &one.to_string(),
                    warmup_users: &format!("{tag}v{conns}t"),
                    users: &format!("{tag}s{conns}t"),
                    conns,
                    warmup: args.warmup,
                    secs: args.duration,
                    count: |run: &WrkRun| run.s409,
                },
            )
            .await?;
        log(&format!(
            "{name}: {} sold-out answers/s, p99 {} ms ({})",
            sold_out.rps,
            http::ms(sold_out.wrk.p99_us),
            sold_out.cpu
        ));
        if args.floor_seconds == 0 {
            return Ok((sold_out, None));
        }
        // The HTTP floor: GET /health/live, no Redis, no broker.
        let name = format!("health-c{conns}");
        let floor = wrk
            .phase(
                watch,
                PhaseSpec {
                    name: &name,
                    coupon: "health",
                    warmup_users: "",
                    users: &format!("{tag}h"),
                    conns,
                    warmup: 0,
                    secs: args.floor_seconds,
                    count: |run: &WrkRun| run.s200,
                },
            )
            .await?;
        log(&format!("{name}: {} answers/s ({})", floor.rps, floor.cpu));
        Ok((sold_out, Some(floor)))
    }
}

/// The progress line of an accepted-path phase.
pub(super) fn log_accepted(name: &str, phase: &HttpPhase) {
    log(&format!(
        "{name}: {} accepted/s, p99 {} ms ({})",
        phase.rps,
        http::ms(phase.wrk.p99_us),
        phase.cpu
    ));
}
