//! `coupon_time_to_issuance_seconds`, the SLI of "99 % issued within 5 s" (deploy/prometheus/
//! slo.yaml): one observation per coupon a committed batch newly issued, measured from the
//! request's `requested_at`; duplicates and dead letters add none, and a request stamped by a
//! clock ahead of the consumer's counts as 0 s, not negative. Read from the consumer's own
//! `/metrics`, as Prometheus reads it.

use std::time::Duration;

use couponrush_domain::{CouponId, CouponSpec, IssueRequested, RequestId, UserId};
use couponrush_e2e::{consumer_metric, ops_get, sample};
use couponrush_storage::{CouponStore, Database};
use couponrush_testkit::{TestEnv, eventually};
use time::OffsetDateTime;

const HISTOGRAM: &str = "coupon_time_to_issuance_seconds";

fn message(request: &IssueRequested) -> (String, Vec<u8>) {
    (request.user_id.to_string(), request.encode())
}

fn request(
    coupon: CouponId,
    user: &str,
    requested_at: OffsetDateTime,
) -> anyhow::Result<IssueRequested> {
    Ok(IssueRequested::new(
        RequestId::generate(),
        coupon,
        UserId::parse(user)?,
        requested_at,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_issuance_is_observed_once_per_issued_coupon() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let coupons = CouponStore::new(Database::new(&env.settings.mysql)?);
    let now = OffsetDateTime::now_utc();
    let coupon = coupons
        .create(&CouponSpec {
            name: "time-to-issuance".into(),
            discount_amount: 1000,
            total_quantity: 2,
            issue_starts_at: now - time::Duration::hours(1),
            issue_ends_at: now + time::Duration::hours(1),
            expiry_days: 7,
            rate_limit: Default::default(),
        })
        .await?
        .id;
    let consumer = coupon_consumer::start(env.settings.clone()).await?;
    let client = reqwest::Client::new();
    let metric = async |series: &str| consumer_metric(&client, &consumer, series).await;

    // Accepted 3 s ago (waited in the queue), and one stamped by an API whose clock runs an
    // hour ahead of this host's.
    let waited = request(coupon, "waited", now - time::Duration::seconds(3))?;
    let skewed = request(coupon, "skewed", now + time::Duration::hours(1))?;
    env.produce_many(&[message(&waited), message(&skewed)])
        .await?;
    eventually(Duration::from_secs(30), "two coupons issued", async || {
        (metric("coupon_consumer_issued_total").await? == 2.0).then_some(())
    })
    .await?;

    // Not issued: a re-delivery, a request beyond the stock and one for an unknown coupon.
    let sold_out = request(coupon, "late", OffsetDateTime::now_utc())?;
    let unknown = request(
        CouponId::new(CouponId::MAX)?,
        "lost",
        OffsetDateTime::now_utc(),
    )?;
    env.produce_many(&[message(&waited), message(&sold_out), message(&unknown)])
        .await?;
    eventually(
        Duration::from_secs(30),
        "the duplicate and dead letters",
        async || {
            let duplicates = metric("coupon_consumer_duplicates_total").await?;
            let dead = metric("coupon_consumer_dead_letters_total{reason=\"out-of-stock\"}")
                .await?
                + metric("coupon_consumer_dead_letters_total{reason=\"unknown-coupon\"}").await?;
            (duplicates == 1.0 && dead == 2.0).then_some(())
        },
    )
    .await?;

    let (_, text) = ops_get(&client, &consumer, "/metrics")
        .await
        .ok_or_else(|| anyhow::anyhow!("no /metrics from the consumer"))?;
    let read = |suffix: &str| {
        sample(&text, &format!("{HISTOGRAM}{suffix}"))
            .ok_or_else(|| anyhow::anyhow!("no {HISTOGRAM}{suffix} in\n{text}"))
    };
    assert_eq!(read("_count")?, 2.0, "one per issued coupon, no more");
    // The skewed one, clamped to 0 s: the only one in the lowest bucket.
    assert_eq!(read("_bucket{le=\"0.05\"}")?, 1.0);
    // The other waited at least its 3 s before the commit: above the 2 s bound, within 60.
    assert_eq!(read("_bucket{le=\"2.0\"}")?, 1.0);
    assert_eq!(read("_bucket{le=\"60.0\"}")?, 2.0);
    let sum = read("_sum")?;
    assert!(
        (3.0..60.0).contains(&sum),
        "sum {sum}: only the waited one adds"
    );

    consumer.stop().await?;
    Ok(())
}
