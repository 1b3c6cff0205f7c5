//! The whole path on the real stack: concurrent HTTP requests, the atomic Redis reservation,
//! acknowledged Kafka publishes, the consumer group, MySQL.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_domain::CouponId;
use couponrush_storage::{CouponStore, Database};
use couponrush_testkit::{TestEnv, eventually};
use futures::future::join_all;
use serde_json::{Value, json};
use time::OffsetDateTime;

struct Running {
    base: String,
    token: String,
    client: reqwest::Client,
    api: issuer_api::RunningApi,
    stop_consumer: tokio::sync::oneshot::Sender<()>,
    consumer: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(env: &TestEnv) -> anyhow::Result<Running> {
    let api = issuer_api::start(env.settings.clone()).await?;
    let (stop_consumer, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(coupon_consumer::run(env.settings.clone(), async move {
        stopped.await.ok();
    }));
    Ok(Running {
        base: format!("http://{}", api.addr),
        token: env.settings.admin.token.expose().to_owned(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        api,
        stop_consumer,
        consumer,
    })
}

impl Running {
    async fn create_coupon(&self, total: u32) -> anyhow::Result<CouponId> {
        let now = OffsetDateTime::now_utc();
        let fmt = &time::format_description::well_known::Rfc3339;
        let response = self
            .client
            .post(format!("{}/admin/coupons", self.base))
            .bearer_auth(&self.token)
            .json(&json!({
                "name": "Christmas 5,000 KRW",
                "discount_amount": 5000,
                "total_quantity": total,
                "issue_starts_at": (now - Duration::from_secs(60)).format(fmt)?,
                "issue_ends_at": (now + Duration::from_secs(3600)).format(fmt)?,
                "expiry_days": 30,
            }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "create: {}",
            response.text().await?
        );
        let body: Value = response.json().await?;
        let id = body["couponId"].as_u64().context("couponId")?;
        Ok(CouponId::new(id)?)
    }

    async fn issue(&self, coupon: CouponId, user: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .post(format!("{}/coupons/{coupon}/issue", self.base))
            .header("userId", user)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.api.handle.stop(true).await;
        self.stop_consumer.send(()).ok();
        self.consumer.await??;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_come_first_served_exactly_once_end_to_end() -> anyhow::Result<()> {
    const STOCK: u32 = 100;
    let env = TestEnv::new(3).await?;
    let running = start(&env).await?;
    let coupon = running.create_coupon(STOCK).await?;

    // 300 distinct users, plus 100 repeated requests by some of them, all at once.
    let mut users: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
    users.extend((0..100).map(|i| format!("user-{}", i * 3)));
    let answers = join_all(users.iter().map(|user| running.issue(coupon, user))).await;

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let mut by_code: HashMap<String, usize> = HashMap::new();
    let mut winners = Vec::new();
    for (user, answer) in users.iter().zip(answers) {
        let (status, body) = answer?;
        if status == 202 {
            assert_eq!(body["status"], "QUEUED", "{body}");
            winners.push(user.clone());
        }
        *by_status.entry(status).or_default() += 1;
        let label = body["code"]
            .as_str()
            .or(body["status"].as_str())
            .unwrap_or("?");
        *by_code.entry(label.to_owned()).or_default() += 1;
    }
    assert_eq!(by_status.get(&202), Some(&100), "{by_status:?} {by_code:?}");
    assert_eq!(by_status.get(&409), Some(&300), "{by_status:?} {by_code:?}");
    assert_eq!(by_status.len(), 2, "no other answers: {by_status:?}");
    // Every one of the 100 repeats was told it already requested, or that stock is gone.
    assert_eq!(
        by_code.get("ALREADY_REQUESTED").copied().unwrap_or(0)
            + by_code.get("SOLD_OUT").copied().unwrap_or(0),
        300,
        "{by_code:?}"
    );

    // The consumer drains: MySQL ends with exactly the accepted requests.
    let db = Database::new(&env.settings.mysql)?;
    let coupons = CouponStore::new(db);
    eventually(Duration::from_secs(60), "100 rows in MySQL", async || {
        (coupons.issued_count(coupon).await.ok()? == u64::from(STOCK)).then_some(())
    })
    .await?;
    let record = coupons.find(coupon).await?.context("coupon row")?;
    assert_eq!(record.available_quantity, 0);

    // Redis agrees: no stock, 100 participants, all marked issued by the consumer.
    let redis = ReservationStore::new(&env.settings.redis)?;
    let counters = eventually(
        Duration::from_secs(30),
        "Redis to mark 100 issued",
        async || {
            redis
                .counters(coupon)
                .await
                .ok()
                .flatten()
                .filter(|c| c.issued == u64::from(STOCK))
        },
    )
    .await?;
    assert_eq!(counters.stock, 0);
    assert_eq!(counters.participants, u64::from(STOCK));

    // A repeat now reports the persisted truth, with when it was issued.
    let winner = winners.first().context("a winner")?;
    let (status, body) = running.issue(coupon, winner).await?;
    assert_eq!(status, 409);
    assert_eq!(body["status"], "ISSUED", "{body}");
    assert!(body["issuedAt"].is_string(), "{body}");

    // Stats endpoint shows the same numbers from both stores.
    let stats: Value = running
        .client
        .get(format!("{}/admin/coupons/{coupon}/stats", running.base))
        .bearer_auth(&running.token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["mysql"]["issued"], 100, "{stats}");
    assert_eq!(stats["redis"]["pending"], 0, "{stats}");

    running.stop().await?;
    env.cleanup().await
}
