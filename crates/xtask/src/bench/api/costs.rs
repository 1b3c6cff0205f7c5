//! The costs of settings: the best accepted phase again on fresh issuer-apis, without a
//! setting, with it, without it again (tracing exported, abuse limits on, replica
//! acknowledgements), so that only that setting differs and the two runs without show the
//! drift around the one with.

use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_config::Secret;
use couponrush_domain::{CouponId, CouponSpec};
use couponrush_testkit::PrivateServer;

use super::http::{HttpPhase, PhaseSpec, Wrk, WrkRun};
use super::log;
use super::measure::{Run, Var, log_accepted};
use super::summary::{Bracketed, LimitsCost, ReplicaCost, TracingCost};
use crate::bench::cpu::Watch;
use crate::otlp_receiver::OtlpReceiver;

impl Run<'_> {
    /// The accepted path at `conns` with traces exported at `ratio` to a real OTLP receiver,
    /// between two runs with tracing off.
    pub(super) async fn tracing_cost(
        &self,
        wrk: &Wrk,
        watch: &Watch,
        big: CouponId,
        conns: u32,
        ratio: f64,
    ) -> anyhow::Result<TracingCost> {
        let receiver = OtlpReceiver::start(self.log_dir, true).await?;
        let traced = [
            ("COUPON__TELEMETRY__OTLP_ENDPOINT", receiver.endpoint()),
            ("COUPON__TELEMETRY__SAMPLE_RATIO", ratio.to_string()),
        ];
        let runs = self
            .bracketed(
                wrk,
                watch,
                big,
                conns,
                ["untraced", "traced", "untraced-after"],
                (&[], &traced),
            )
            .await?;
        let spans = receiver.count()?;
        anyhow::ensure!(
            ratio == 0.0 || spans > 0,
            "tracing at ratio {ratio} exported no span: the traced phase measured nothing"
        );
        Ok(TracingCost { ratio, runs, spans })
    }

    /// The accepted path at `conns` with the abuse limits on, between two runs with them off
    /// (`rate_limit.enabled`, which the run sets false). Every request is a new user, so the
    /// per-user limit checks and counts without refusing; the per-client limit is set beyond
    /// what wrk, one client, can send, so it too checks and counts every request: the cost
    /// measured is that of the check, not of refusals. A 429 would show as a non-202 answer.
    pub(super) async fn limits_cost(
        &self,
        wrk: &Wrk,
        watch: &Watch,
        big: CouponId,
        conns: u32,
    ) -> anyhow::Result<LimitsCost> {
        let limited = [
            ("COUPON__RATE_LIMIT__ENABLED", "true".to_owned()),
            ("COUPON__RATE_LIMIT__PER_USER", "10".to_owned()),
            ("COUPON__RATE_LIMIT__PER_CLIENT", "1000000".to_owned()),
            ("COUPON__RATE_LIMIT__WINDOW_MS", "10000".to_owned()),
        ];
        let runs = self
            .bracketed(
                wrk,
                watch,
                big,
                conns,
                ["unlimited", "limited", "unlimited-after"],
                (&[], &limited),
            )
            .await?;
        let other = runs.with.wrk.requests.saturating_sub(runs.with.wrk.s202);
        if other > 0 {
            log(&format!(
                "warning: the limited phase had {other} answers other than 202 (429s would \
                 mean it measured refusals, not the check: see its wrk log)"
            ));
        }
        Ok(LimitsCost { runs })
    }

    /// The accepted path at `conns` on a private Redis master with one real replica (both
    /// started here, stopped on return): with `redis.min_replica_acks = 1`, every reservation
    /// waits for the replica's acknowledgement (WAIT) before its publish, bracketed by runs
    /// without. All three use the pair, so only the WAIT differs. The coupon is loaded there
    /// first, as a warm-up would.
    pub(super) async fn replica_cost(
        &self,
        wrk: &Wrk,
        watch: &Watch,
        (big, spec): (CouponId, &CouponSpec),
        conns: u32,
    ) -> anyhow::Result<ReplicaCost> {
        let master = PrivateServer::redis().await?;
        let replica = PrivateServer::redis_replica_of(&master).await?;
        let url = format!("redis://{}", master.address());
        let mut settings = self.env.settings().redis.clone();
        settings.url = Secret::new(url.clone());
        ReservationStore::new(&settings)?.load(big, spec).await?;
        log(&format!(
            "replica cost: Redis master {} with replica {}",
            master.address(),
            replica.address()
        ));
        let mut watch = watch.clone();
        for (name, server) in [("redis-master", &master), ("redis-replica", &replica)] {
            if let Some(pid) = server.pid() {
                watch = watch.with(name, pid);
            }
        }
        let on_pair = [("COUPON__REDIS__URL", url)];
        let acked = [("COUPON__REDIS__MIN_REPLICA_ACKS", "1".to_owned())];
        let runs = self
            .bracketed(
                wrk,
                &watch,
                big,
                conns,
                ["unreplicated", "replicated", "unreplicated-after"],
                (&on_pair, &acked),
            )
            .await?;
        let other = runs.with.wrk.requests.saturating_sub(runs.with.wrk.s202);
        if other > 0 {
            log(&format!(
                "warning: the replicated phase had {other} answers other than 202 (503s: the \
                 replica did not acknowledge within redis.replica_ack_timeout_ms; see its wrk log)"
            ));
        }
        Ok(ReplicaCost { runs })
    }

    /// The accepted path at `conns` three times, each on a fresh issuer-api with the `base`
    /// variables: without `with`, with them, without them again (`labels` name the three), so
    /// that only those settings differ, and the two runs without show the drift around the one
    /// with.
    async fn bracketed(
        &self,
        wrk: &Wrk,
        watch: &Watch,
        big: CouponId,
        conns: u32,
        labels: [&str; 3],
        (base, with): (&[Var], &[Var]),
    ) -> anyhow::Result<Bracketed> {
        let args = self.args;
        let tag = &self.secrets.user_tag;
        let coupon = big.to_string();
        let mut phases = Vec::new();
        for (label, extra) in [
            (labels[0], &[][..]),
            (labels[1], with),
            (labels[2], &[][..]),
        ] {
            let log_dir = self.log_dir.join(label);
            std::fs::create_dir_all(&log_dir)?;
            let vars: Vec<_> = base.iter().chain(extra).cloned().collect();
            let mut apps = self.api_apps(&vars);
            apps.start_api(self.env, &args.http_bind, &log_dir)?;
            apps.wait_ready(Duration::from_secs(args.ready_timeout))
                .await?;
            let watch = match apps.api()?.service().pid() {
                Some(pid) => watch.with("api", pid),
                None => watch.clone(),
            };
            let name = format!("{label}-c{conns}");
            let phase = wrk
                .phase(
                    &watch,
                    PhaseSpec {
                        name: &name,
                        coupon: &coupon,
                        warmup_users: &format!("{tag}{label}w"),
                        users: &format!("{tag}{label}a"),
                        conns,
                        warmup: args.warmup,
                        secs: args.duration,
                        count: |run: &WrkRun| run.s202,
                    },
                )
                .await?;
            apps.check_alive()?;
            log_accepted(&name, &phase);
            // Stopping flushes the spans still queued.
            apps.stop_all().await;
            phases.push(phase);
        }
        let [before, with, after]: [HttpPhase; 3] = phases
            .try_into()
            .map_err(|_| anyhow::anyhow!("three bracketed phases expected"))?;
        Ok(Bracketed {
            before,
            with,
            after,
        })
    }
}
