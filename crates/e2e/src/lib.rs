//! Support for the end-to-end tests in `tests/`: the real API and consumer, in-process.

pub mod ledger;

use std::time::Duration;

use anyhow::Context;
use couponrush_domain::CouponId;
use couponrush_testkit::TestEnv;
use futures::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The API and one consumer, running in this process against a test's slice of the stack.
#[derive(Debug)]
pub struct Running {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    pub api: issuer_api::RunningApi,
    pub consumer: Option<coupon_consumer::RunningConsumer>,
    /// Every answer to an issue request made through [`Self::issue`].
    pub ledger: ledger::Ledger,
}

impl Running {
    /// The API and one consumer.
    pub async fn start(env: &TestEnv) -> anyhow::Result<Self> {
        let mut running = Self::api_only(env).await?;
        running.consumer = Some(coupon_consumer::start(env.settings.clone()).await?);
        Ok(running)
    }

    /// The API alone (tests of what the API answers while the pipeline behind it fails).
    pub async fn api_only(env: &TestEnv) -> anyhow::Result<Self> {
        let api = issuer_api::start(env.settings.clone()).await?;
        Ok(Self {
            base: format!("http://{}", api.addr),
            token: env.settings.admin.token.expose().to_owned(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            api,
            consumer: None,
            ledger: ledger::Ledger::default(),
        })
    }

    /// Starts this test's consumer (for tests that ran the API alone through a fault).
    pub async fn start_consumer(&mut self, env: &TestEnv) -> anyhow::Result<()> {
        anyhow::ensure!(self.consumer.is_none(), "a consumer is already running");
        self.consumer = Some(coupon_consumer::start(env.settings.clone()).await?);
        Ok(())
    }

    /// Creates an event open from a minute ago for an hour, with `total` coupons.
    pub async fn create_coupon(&self, total: u32) -> anyhow::Result<CouponId> {
        let now = OffsetDateTime::now_utc();
        self.create_coupon_in_window(
            total,
            now - Duration::from_secs(60),
            now + Duration::from_secs(3600),
        )
        .await
    }

    pub async fn create_coupon_in_window(
        &self,
        total: u32,
        starts: OffsetDateTime,
        ends: OffsetDateTime,
    ) -> anyhow::Result<CouponId> {
        let fmt = &time::format_description::well_known::Rfc3339;
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/admin/coupons",
                Some(json!({
                    "name": "Christmas 5,000 KRW",
                    "discount_amount": 5000,
                    "total_quantity": total,
                    "issue_starts_at": starts.format(fmt)?,
                    "issue_ends_at": ends.format(fmt)?,
                    "expiry_days": 30,
                })),
            )
            .await?;
        anyhow::ensure!(status == 201, "create: {status} {body}");
        let id = body["couponId"].as_u64().context("couponId")?;
        Ok(CouponId::new(id)?)
    }

    /// Calls an admin endpoint with the configured bearer token.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// GET on the API: status and body text.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// `user`'s status for `coupon`, asked as that user (the status endpoint answers only the
    /// caller's own user): status and body text.
    pub async fn status(&self, coupon: CouponId, user: &str) -> anyhow::Result<(u16, String)> {
        let response = self
            .client
            .get(format!("{}/coupons/{coupon}/issuances/{user}", self.base))
            .header("userId", user)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// The API's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let (status, text) = self.get("/metrics").await?;
        anyhow::ensure!(status == 200, "/metrics answered {status}");
        Ok(text)
    }

    /// One sample of the API's `/metrics`; a series it has not exported yet reads 0.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        Ok(sample(&self.metrics().await?, series).unwrap_or(0.0))
    }

    /// One issue request; its answer goes into the ledger.
    pub async fn issue(&self, coupon: CouponId, user: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .post(format!("{}/coupons/{coupon}/issue", self.base))
            .header("userId", user)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        self.ledger.record(coupon, user, status, &body);
        Ok((status, body))
    }

    /// Sends one request per user, `concurrency` at a time; a user told 503 tries again after
    /// `retry_after` up to `tries` times in all, as a persistent person would.
    pub async fn drive(
        &self,
        coupon: CouponId,
        users: &[String],
        concurrency: usize,
        tries: u32,
        retry_after: Duration,
    ) {
        futures::stream::iter(users)
            .for_each_concurrent(concurrency, |user| async move {
                for _ in 0..tries {
                    match self.issue(coupon, user).await {
                        Ok((status, _)) if status != 503 => return,
                        _ => tokio::time::sleep(retry_after).await,
                    }
                }
            })
            .await;
    }

    /// The ledger's invariants for `coupon` once the pipeline settled (see
    /// [`ledger::Ledger::verify`]); needs a consumer.
    pub async fn verify(
        &self,
        env: &TestEnv,
        coupon: CouponId,
        stock: u32,
    ) -> anyhow::Result<ledger::Verdict> {
        self.ledger.verify(self, env, coupon, stock).await
    }

    /// Like [`Self::issue`], but retries `503 STOCK_HELD` as a client honouring `Retry-After`
    /// would (sooner, to keep tests short) until the answer is final: what the user ends up
    /// being told once the last publishes are decided.
    pub async fn issue_final(&self, coupon: CouponId, user: &str) -> anyhow::Result<(u16, Value)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.issue(coupon, user).await?;
            if answer.0 != 503 || answer.1["code"] != json!("STOCK_HELD") {
                return Ok(answer);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "still STOCK_HELD after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The smallest whole event, for tests that run it through some other path to a backend
    /// (an ACL user, TLS): a coupon of 2, `alice` and `bob` accepted, `carol` told SOLD_OUT,
    /// and the ledger's invariants once settled with both issued. Returns the coupon.
    pub async fn two_issued_then_sold_out(&self, env: &TestEnv) -> anyhow::Result<CouponId> {
        let coupon = self.create_coupon(2).await?;
        for user in ["alice", "bob"] {
            let (status, body) = self.issue(coupon, user).await?;
            anyhow::ensure!(status == 202, "{user}: {status} {body}");
        }
        let (status, body) = self.issue_final(coupon, "carol").await?;
        anyhow::ensure!(
            (status, body["code"].as_str()) == (409, Some("SOLD_OUT")),
            "carol: {status} {body}"
        );
        let verdict = self.verify(env, coupon, 2).await?;
        anyhow::ensure!(verdict.issued == 2, "{verdict:?}");
        Ok(coupon)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.api.handle.stop(true).await;
        if let Some(consumer) = self.consumer {
            consumer.stop().await?;
        }
        Ok(())
    }
}

/// A test's slice of the stack whose Redis is a private Redis Cluster of `masters` masters with
/// `replicas` replicas each (`redis.mode = cluster`, every node a seed). Keep the cluster as
/// long as the test runs: dropping it kills the nodes.
pub async fn on_redis_cluster(
    masters: usize,
    replicas: usize,
) -> anyhow::Result<(couponrush_testkit::PrivateCluster, TestEnv)> {
    let cluster = couponrush_testkit::PrivateCluster::start(masters, replicas).await?;
    let mut env = TestEnv::new(3).await?;
    cluster.point(&mut env.settings.redis);
    Ok((cluster, env))
}

/// Runs a `compensation-batch` job in this process, from its command line (without the binary
/// name), against the test's slice of the stack.
pub async fn batch(env: &TestEnv, args: &[&str]) -> anyhow::Result<compensation_batch::Completion> {
    use clap::Parser;
    let cli = compensation_batch::Cli::try_parse_from(
        std::iter::once("compensation-batch").chain(args.iter().copied()),
    )?;
    compensation_batch::run(&cli.command, &env.settings).await
}

/// GET on a consumer's ops port: status and body, `None` when it does not answer.
pub async fn ops_get(
    client: &reqwest::Client,
    consumer: &coupon_consumer::RunningConsumer,
    path: &str,
) -> Option<(u16, String)> {
    let response = client
        .get(format!("http://{}{path}", consumer.ops_addr))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Polls a consumer's `/health/ready` until it answers `status`, for at most `within`; the
/// body of that answer.
pub async fn consumer_ready_is(
    client: &reqwest::Client,
    consumer: &coupon_consumer::RunningConsumer,
    status: u16,
    within: Duration,
) -> anyhow::Result<String> {
    couponrush_testkit::eventually(within, "consumer readiness", async || {
        ops_get(client, consumer, "/health/ready")
            .await
            .filter(|(got, _)| *got == status)
            .map(|(_, body)| body)
    })
    .await
}

/// One sample of a consumer's `/metrics`; a series it has not exported yet reads 0.
pub async fn consumer_metric(
    client: &reqwest::Client,
    consumer: &coupon_consumer::RunningConsumer,
    series: &str,
) -> Option<f64> {
    let (_, text) = ops_get(client, consumer, "/metrics").await?;
    Some(sample(&text, series).unwrap_or(0.0))
}

/// The value of the first Prometheus sample line starting with `series`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A coupon row locked by someone else's open transaction (`SELECT … FOR UPDATE`): MySQL
/// answers, but no batch of that coupon can commit until [`RowLock::release`].
pub struct RowLock(diesel_async::AsyncMysqlConnection);

impl std::fmt::Debug for RowLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowLock")
    }
}

impl RowLock {
    pub async fn coupon(env: &TestEnv, coupon: CouponId) -> anyhow::Result<Self> {
        use diesel_async::RunQueryDsl;
        let mut conn = couponrush_storage::connect(&env.settings.mysql, true).await?;
        diesel::sql_query("BEGIN").execute(&mut conn).await?;
        diesel::sql_query(format!(
            "SELECT id FROM coupon WHERE id = {coupon} FOR UPDATE"
        ))
        .execute(&mut conn)
        .await?;
        Ok(Self(conn))
    }

    pub async fn release(mut self) -> anyhow::Result<()> {
        use diesel_async::RunQueryDsl;
        diesel::sql_query("ROLLBACK").execute(&mut self.0).await?;
        Ok(())
    }
}
