//! Messages the consumer cannot issue go to the dead-letter topic with their reason and
//! original payload, at once, and never block the partition behind them.

use std::time::Duration;

use couponrush_domain::CouponId;
use couponrush_e2e::Running;
use couponrush_storage::{CouponStore, Database};
use couponrush_testkit::{TestEnv, eventually, issue_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_partition_moves_on() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;
    let scarce = running.create_coupon(1).await?;
    let open = running.create_coupon(5).await?;

    // A buggy producer, a newer producer, a coupon MySQL never heard of, and two requests that
    // bypassed Redis for the last coupon of `scarce`.
    env.produce_raw("u-garbage", b"not json at all").await?;
    env.produce_raw("u-future", br#"{"version":2,"requestId":"x"}"#)
        .await?;
    let unknown = issue_request(CouponId::new(987_654)?, "u-unknown")?;
    env.produce_raw("u-unknown", &unknown.encode()).await?;
    env.produce_raw("x", &issue_request(scarce, "x")?.encode())
        .await?;
    env.produce_raw("y", &issue_request(scarce, "y")?.encode())
        .await?;
    // Then an ordinary request through the API, behind all of them on the one partition.
    assert_eq!(running.issue(open, "zed").await?.0, 202);

    let coupons = CouponStore::new(Database::new(&env.settings.mysql)?);
    eventually(
        Duration::from_secs(30),
        "the ordinary request issued",
        async || (coupons.issued_count(open).await.ok()? == 1).then_some(()),
    )
    .await?;
    assert_eq!(
        coupons.issued_count(scarce).await?,
        1,
        "never beyond the stock"
    );
    assert_eq!(
        coupons.find(scarce).await?.map(|c| c.available_quantity),
        Some(0)
    );

    let letters = env
        .read_topic(&env.settings.kafka.dlq_topic, 4, Duration::from_secs(30))
        .await?;
    let mut reasons: Vec<&str> = letters
        .iter()
        .map(|l| l.headers.get("dlq-reason").map_or("?", String::as_str))
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "out-of-stock",
            "undecodable",
            "unknown-coupon",
            "unsupported-schema"
        ]
    );
    let garbage = letters
        .iter()
        .find(|l| l.key.as_deref() == Some(&b"u-garbage"[..]))
        .ok_or_else(|| anyhow::anyhow!("garbage letter"))?;
    assert_eq!(garbage.payload.as_deref(), Some(&b"not json at all"[..]));
    assert!(
        garbage
            .headers
            .get("dlq-source")
            .is_some_and(|s| s.contains('@')),
        "{:?}",
        garbage.headers
    );
    assert!(garbage.headers.contains_key("dlq-error"));

    // `scarce` was written around Redis on purpose (reconcile rightly flags it); `open` is
    // what users went through.
    running.verify(&env, open, 5).await?;
    running.stop().await?;
    Ok(())
}
