//! The whole path on the real stack: concurrent HTTP requests, the atomic Redis reservation,
//! acknowledged Kafka publishes, the consumer group, MySQL.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_e2e::Running;
use couponrush_storage::{CouponStore, Database, IssuanceStore};
use couponrush_testkit::{TestEnv, eventually};
use futures::future::join_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_come_first_served_exactly_once_end_to_end() -> anyhow::Result<()> {
    const STOCK: u32 = 100;
    let env = TestEnv::new(3).await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(STOCK).await?;

    // 300 distinct users, plus 100 repeated requests by some of them, all at once. Whoever is
    // told STOCK_HELD (the last units were reserved, their publishes not acknowledged yet)
    // retries, as Retry-After asks; the final answers are counted.
    let mut users: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
    users.extend((0..100).map(|i| format!("user-{}", i * 3)));
    let answers = join_all(users.iter().map(|user| running.issue_final(coupon, user))).await;

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
    let coupons = CouponStore::new(db.clone());
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

    // Every attempt reached the participation log, through Kafka, without the API waiting:
    // the 401 above plus each STOCK_HELD answer (logged UNAVAILABLE: the user was not served).
    let held = running
        .metric("couponrush_api_issue_outcomes_total{outcome=\"STOCK_HELD\"}")
        .await?;
    let issuances = IssuanceStore::new(db);
    let counts = eventually(
        Duration::from_secs(30),
        "every attempt logged",
        async || {
            let counts = issuances.participation_counts(coupon).await.ok()?;
            let unavailable = counts.get("UNAVAILABLE").copied().unwrap_or(0);
            (counts.values().sum::<u64>() == 401 + unavailable
                && f64::from(u32::try_from(unavailable).ok()?) == held)
                .then_some(counts)
        },
    )
    .await?;
    assert_eq!(counts.get("ACCEPTED"), Some(&100), "{counts:?}");
    let refused = counts.get("DUPLICATE").copied().unwrap_or(0)
        + counts.get("SOLD_OUT").copied().unwrap_or(0);
    assert_eq!(
        refused, 301,
        "300 refusals and the winner's repeat: {counts:?}"
    );

    // Stats endpoint shows the same numbers from both stores.
    let (_, stats) = running
        .admin(
            reqwest::Method::GET,
            &format!("/admin/coupons/{coupon}/stats"),
            None,
        )
        .await?;
    assert_eq!(stats["mysql"]["issued"], 100, "{stats}");
    assert_eq!(stats["redis"]["pending"], 0, "{stats}");

    running.stop().await?;
    Ok(())
}
