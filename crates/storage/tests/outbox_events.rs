//! The outbox against real MariaDB: one event per row actually issued or granted, in the same
//! transaction; none for a re-delivery, a refused request, or a user who already held the
//! coupon.

use std::collections::{BTreeMap, HashSet};

use couponrush_domain::{
    CompensationSource, CouponEvent, CouponEventType, CouponId, IssueRequested,
};
use couponrush_storage::schema::{coupon_user, outbox};
use couponrush_storage::{CompensationStore, CouponStore, Database, IssuanceStore, Persisted};
use couponrush_testkit::{TestEnv, issue_request};

mod common;
use common::open_coupon;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use time::{Duration, OffsetDateTime};

/// One outbox row as stored: its columns and its payload, decoded.
#[derive(Debug)]
struct Stored {
    id: String,
    aggregateid: String,
    event_type: String,
    coupon_id: i64,
    event: CouponEvent,
}

/// Every outbox row of `coupon`, in `seq` order.
async fn events_of(env: &TestEnv, coupon: CouponId) -> anyhow::Result<Vec<Stored>> {
    let mut conn = couponrush_storage::connect(&env.settings.mysql, true).await?;
    let rows: Vec<(String, String, String, String, i64)> = outbox::table
        .filter(outbox::coupon_id.eq(coupon.as_i64()))
        .order(outbox::seq)
        .select((
            outbox::id,
            outbox::aggregateid,
            outbox::event_type,
            outbox::payload,
            outbox::coupon_id,
        ))
        .load(&mut conn)
        .await?;
    rows.into_iter()
        .map(|(id, aggregateid, event_type, payload, coupon_id)| {
            Ok(Stored {
                id,
                aggregateid,
                event_type,
                coupon_id,
                event: CouponEvent::decode(payload.as_bytes())?,
            })
        })
        .collect()
}

/// user → request id of every `coupon_user` row of `coupon`.
async fn holders(env: &TestEnv, coupon: CouponId) -> anyhow::Result<BTreeMap<String, String>> {
    let mut conn = couponrush_storage::connect(&env.settings.mysql, true).await?;
    Ok(coupon_user::table
        .filter(coupon_user::coupon_id.eq(coupon.as_i64()))
        .select((coupon_user::user_id, coupon_user::request_id))
        .load::<(String, String)>(&mut conn)
        .await?
        .into_iter()
        .collect())
}

/// Each event matches its columns and a `coupon_user` row (user, request id), and no two share
/// an event id; returns the users, in order.
fn check_against_rows(
    stored: &[Stored],
    rows: &BTreeMap<String, String>,
    kind: CouponEventType,
) -> Vec<String> {
    let ids: HashSet<&str> = stored.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "event ids repeat: {stored:?}");
    stored
        .iter()
        .map(|s| {
            let user = s.event.user_id.as_str();
            assert_eq!(s.id, s.event.event_id.to_string());
            assert_eq!(s.aggregateid, user);
            assert_eq!(s.event_type, kind.as_str());
            assert_eq!(s.event.event_type, kind);
            assert_eq!(s.coupon_id, s.event.coupon_id.as_i64());
            assert_eq!(
                rows.get(user),
                Some(&s.event.request_id.to_string()),
                "{s:?} has no row"
            );
            assert!(s.event.expires_at > s.event.issued_at);
            user.to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_issued_row_gets_one_event_and_nothing_else_does() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let db = Database::new(&env.settings.mysql)?;
    let coupons = CouponStore::new(db.clone());
    let issuances = IssuanceStore::new(db).with_outbox(true);
    let coupon = open_coupon(&coupons, "outbox", 4).await?;
    let now = OffsetDateTime::now_utc();

    let batch = vec![
        issue_request(coupon, "u1")?,
        issue_request(coupon, "u2")?,
        issue_request(coupon, "u1")?, // the same user twice in one batch
        issue_request(coupon, "u3")?,
        issue_request(CouponId::new(999_999)?, "u1")?, // unknown coupon
    ];
    issuances.persist_batch(&batch, &[], now).await?;
    let stored = events_of(&env, coupon).await?;
    let users = check_against_rows(
        &stored,
        &holders(&env, coupon).await?,
        CouponEventType::CouponIssued,
    );
    assert_eq!(users, ["u1", "u2", "u3"]);

    // A re-delivery of the batch, with one first delivery and one request beyond the stock:
    // some log rows exist already, so the first issuance attempt is undone and redone. Only
    // the new user gets an event.
    let mut again = batch.clone();
    again.push(issue_request(coupon, "u4")?);
    again.push(issue_request(coupon, "u5")?);
    let outcomes = issuances.persist_batch(&again, &[], now).await?;
    assert!(
        matches!(outcomes[5], Persisted::Issued { .. }),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[6], Persisted::OutOfStock);
    let stored = events_of(&env, coupon).await?;
    let users = check_against_rows(
        &stored,
        &holders(&env, coupon).await?,
        CouponEventType::CouponIssued,
    );
    assert_eq!(users, ["u1", "u2", "u3", "u4"]);

    // Without the outbox (the store's default), rows are issued and no event is written.
    let quiet = IssuanceStore::new(Database::new(&env.settings.mysql)?);
    let other = open_coupon(&coupons, "quiet", 2).await?;
    let requests: Vec<IssueRequested> = vec![issue_request(other, "u1")?];
    quiet.persist_batch(&requests, &[], now).await?;
    assert_eq!(coupons.issued_count(other).await?, 1);
    assert!(events_of(&env, other).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_granted_row_gets_one_event_naming_its_compensation() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let db = Database::new(&env.settings.mysql)?;
    let coupons = CouponStore::new(db.clone());
    let compensations = CompensationStore::new(db).with_outbox(true);
    let source_coupon = open_coupon(&coupons, "source", 1).await?;
    let granted = open_coupon(&coupons, "granted", 0).await?;
    let now = OffsetDateTime::now_utc();
    let source = CompensationSource {
        source_coupon_id: source_coupon,
        window_starts_at: now - Duration::minutes(30),
        window_ends_at: now - Duration::minutes(10),
    };

    let first = ["a".to_owned(), "b".to_owned()];
    assert_eq!(compensations.grant(granted, source, &first, now).await?, 2);
    // A second run overlapping the first: only c is new.
    let second = ["b".to_owned(), "c".to_owned()];
    assert_eq!(compensations.grant(granted, source, &second, now).await?, 1);

    let stored = events_of(&env, granted).await?;
    let mut users = check_against_rows(
        &stored,
        &holders(&env, granted).await?,
        CouponEventType::CouponGranted,
    );
    users.sort();
    assert_eq!(users, ["a", "b", "c"]);
    assert!(stored.iter().all(|s| s.event.compensation == Some(source)));
    Ok(())
}
