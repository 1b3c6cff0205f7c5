//! With `outbox.enabled`, the pipeline writes what the rest of the company will learn: one
//! `CouponIssued` event per coupon issued through the API, and none for the sold-out or
//! duplicate attempts around it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use couponrush_domain::{CouponEvent, CouponEventType};
use couponrush_e2e::Running;
use couponrush_storage::schema::{coupon_user, outbox};
use couponrush_storage::{CouponStore, Database};
use couponrush_testkit::{TestEnv, eventually};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures::future::join_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_event_per_coupon_issued_through_the_api_and_none_for_refusals() -> anyhow::Result<()> {
    const STOCK: u32 = 30;
    let mut env = TestEnv::new(3).await?;
    env.settings.outbox.enabled = true;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(STOCK).await?;

    // 60 users and 20 repeats of theirs, all at once.
    let mut users: Vec<String> = (0..60).map(|i| format!("user-{i}")).collect();
    users.extend((0..20).map(|i| format!("user-{}", i * 2)));
    let answers = join_all(users.iter().map(|user| running.issue_final(coupon, user))).await;
    let mut accepted = 0;
    for answer in answers {
        if answer?.0 == 202 {
            accepted += 1;
        }
    }
    assert_eq!(accepted, STOCK);

    let db = Database::new(&env.settings.mysql)?;
    let coupons = CouponStore::new(db);
    eventually(Duration::from_secs(60), "30 rows in MySQL", async || {
        (coupons.issued_count(coupon).await.ok()? == u64::from(STOCK)).then_some(())
    })
    .await?;

    let mut conn = couponrush_storage::connect(&env.settings.mysql, true).await?;
    let holders: BTreeMap<String, String> = coupon_user::table
        .filter(coupon_user::coupon_id.eq(coupon.as_i64()))
        .select((coupon_user::user_id, coupon_user::request_id))
        .load::<(String, String)>(&mut conn)
        .await?
        .into_iter()
        .collect();
    let rows: Vec<(String, String, String)> = outbox::table
        .filter(outbox::coupon_id.eq(coupon.as_i64()))
        .select((outbox::id, outbox::aggregateid, outbox::payload))
        .load(&mut conn)
        .await?;
    assert_eq!(rows.len(), holders.len(), "one event per coupon issued");
    let mut ids = HashSet::new();
    for (id, key, payload) in &rows {
        let event = CouponEvent::decode(payload.as_bytes())?;
        assert_eq!(event.event_type, CouponEventType::CouponIssued);
        assert_eq!(&event.event_id.to_string(), id);
        assert_eq!(event.user_id.as_str(), key);
        assert_eq!(
            holders.get(key),
            Some(&event.request_id.to_string()),
            "{event:?} is for a row that exists"
        );
        assert!(ids.insert(id.clone()), "event id {id} twice");
    }
    assert!(rows.iter().all(|(_, key, _)| holders.contains_key(key)));

    running.stop().await?;
    Ok(())
}
