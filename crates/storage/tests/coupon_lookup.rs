//! `find_open_by_name`, the smoke test's lookup of its own coupon: only a coupon of that name,
//! open now and for long enough, with the units asked for left in MySQL.

use couponrush_domain::CouponSpec;
use couponrush_storage::{CouponStore, Database};
use couponrush_testkit::TestEnv;
use time::{Duration, OffsetDateTime};

fn spec(name: &str, total: u32, starts: OffsetDateTime, ends: OffsetDateTime) -> CouponSpec {
    CouponSpec {
        name: name.to_owned(),
        discount_amount: 1,
        total_quantity: total,
        issue_starts_at: starts,
        issue_ends_at: ends,
        expiry_days: 1,
        rate_limit: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn finds_the_oldest_open_coupon_of_that_name_with_stock_left() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let coupons = CouponStore::new(Database::new(&env.settings.mysql)?);
    let now = OffsetDateTime::now_utc();
    let (hour, day) = (Duration::hours(1), Duration::days(1));
    let find = |at_least| coupons.find_open_by_name("smoke", now, now + day, at_least);

    assert_eq!(find(5).await?, None, "nothing yet");
    // Not it: another name, a window not open yet, one closing within the day, too few units.
    coupons
        .create(&spec("event", 100, now - hour, now + 2 * day))
        .await?;
    coupons
        .create(&spec("smoke", 100, now + hour, now + 2 * day))
        .await?;
    coupons
        .create(&spec("smoke", 100, now - hour, now + hour))
        .await?;
    coupons
        .create(&spec("smoke", 4, now - hour, now + 2 * day))
        .await?;
    assert_eq!(find(5).await?, None);

    let first = coupons
        .create(&spec("smoke", 5, now - hour, now + 2 * day))
        .await?;
    coupons
        .create(&spec("smoke", 100, now - hour, now + 2 * day))
        .await?;
    assert_eq!(
        find(5).await?.map(|c| c.id),
        Some(first.id),
        "the oldest fit"
    );
    assert_ne!(
        find(6).await?.map(|c| c.id),
        Some(first.id),
        "not enough left in it"
    );
    Ok(())
}
