//! The consumer's transaction against real MariaDB: exactly-once rows, stock never below zero,
//! re-delivery changes nothing.

use couponrush_domain::{
    CouponId, IssueRequested, ParticipationOutcome, ParticipationRecorded, RequestId, UserId,
};
use couponrush_storage::{CouponStore, Database, IssuanceStore, Persisted};
use couponrush_testkit::{TestEnv, issue_request};

mod common;
use common::open_coupon;
use time::{Duration, OffsetDateTime};

/// The coupon and issuance stores on the test's database.
fn stores(env: &TestEnv) -> anyhow::Result<(CouponStore, IssuanceStore)> {
    let db = Database::new(&env.settings.mysql)?;
    Ok((CouponStore::new(db.clone()), IssuanceStore::new(db)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_issues_once_within_stock_and_a_redelivery_changes_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let (coupons, issuances) = stores(&env)?;
    let now = OffsetDateTime::now_utc();
    let coupon = open_coupon(&coupons, "batch", 3).await?;

    let batch = vec![
        issue_request(coupon, "u1")?,
        issue_request(coupon, "u2")?,
        issue_request(coupon, "u1")?, // the same user twice in one batch
        issue_request(coupon, "u3")?,
        issue_request(coupon, "u4")?, // beyond the stock of 3
        issue_request(CouponId::new(999_999)?, "u1")?,
    ];
    let sold_out = ParticipationRecorded::new(
        RequestId::generate(),
        coupon,
        UserId::parse("u9")?,
        ParticipationOutcome::SoldOut,
        now,
    );
    let first = issuances
        .persist_batch(&batch, std::slice::from_ref(&sold_out), now)
        .await?;
    let kinds: Vec<&str> = first
        .iter()
        .map(|p| match p {
            Persisted::Issued { .. } => "issued",
            Persisted::AlreadyIssued { .. } => "already",
            Persisted::OutOfStock => "out-of-stock",
            Persisted::UnknownCoupon => "unknown",
            Persisted::RequestIdConflict => "request-id-conflict",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "issued",
            "issued",
            "already",
            "issued",
            "out-of-stock",
            "unknown"
        ]
    );
    let record = coupons.find(coupon).await?;
    assert_eq!(record.map(|r| r.available_quantity), Some(0));
    assert_eq!(coupons.issued_count(coupon).await?, 3);

    // Re-delivery of the whole batch: nothing new, same issue times.
    let again = issuances
        .persist_batch(
            &batch,
            std::slice::from_ref(&sold_out),
            now + Duration::minutes(5),
        )
        .await?;
    assert_eq!(
        again[0],
        Persisted::AlreadyIssued {
            issued_at: match first[0] {
                Persisted::Issued { issued_at } => issued_at,
                other => anyhow::bail!("unexpected {other:?}"),
            }
        }
    );
    assert_eq!(again[4], Persisted::OutOfStock);
    assert_eq!(coupons.issued_count(coupon).await?, 3);
    assert_eq!(
        coupons.find(coupon).await?.map(|r| r.available_quantity),
        Some(0)
    );

    // A re-delivery mixed with new users while stock remains: the insert-first attempt sees
    // fewer rows go in, is undone, and the batch is redone knowing who holds the coupon.
    let roomy = open_coupon(&coupons, "roomy", 10).await?;
    let early = issuances
        .persist_batch(
            &[issue_request(roomy, "a")?, issue_request(roomy, "b")?],
            &[],
            now,
        )
        .await?;
    let mixed = issuances
        .persist_batch(
            &[issue_request(roomy, "b")?, issue_request(roomy, "c")?],
            &[],
            now + Duration::minutes(1),
        )
        .await?;
    let Persisted::Issued { issued_at: b_at } = early[1] else {
        anyhow::bail!("unexpected {early:?}");
    };
    assert_eq!(mixed[0], Persisted::AlreadyIssued { issued_at: b_at });
    assert!(
        matches!(mixed[1], Persisted::Issued { issued_at } if issued_at > b_at),
        "{mixed:?}"
    );
    assert_eq!(coupons.issued_count(roomy).await?, 3);
    assert_eq!(
        coupons.find(roomy).await?.map(|r| r.available_quantity),
        Some(7)
    );

    // An id another user's request already holds issues nothing; the rest of the batch does.
    let thief = IssueRequested::new(batch[1].request_id, roomy, UserId::parse("thief")?, now);
    let reused = issuances
        .persist_batch(&[thief, issue_request(roomy, "d")?], &[], now)
        .await?;
    assert_eq!(reused[0], Persisted::RequestIdConflict);
    assert!(matches!(reused[1], Persisted::Issued { .. }), "{reused:?}");
    assert_eq!(coupons.issued_count(roomy).await?, 4);

    // The log holds each attempt once: 5 accepted requests of this coupon, 1 sold-out record.
    let counts = issuances.participation_counts(coupon).await?;
    assert_eq!(counts.get("ACCEPTED"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("SOLD_OUT"), Some(&1), "{counts:?}");

    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_issuance_alone_issues_within_stock_and_logs_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let (coupons, issuances) = stores(&env)?;
    let coupon = open_coupon(&coupons, "plain", 2).await?;
    let batch = vec![
        issue_request(coupon, "u1")?,
        issue_request(coupon, "u1")?,
        issue_request(coupon, "u2")?,
        issue_request(coupon, "u3")?,
    ];
    let outcomes = issuances
        .issue_without_log(&batch, OffsetDateTime::now_utc())
        .await?;
    let issued = outcomes
        .iter()
        .filter(|p| matches!(p, Persisted::Issued { .. }))
        .count();
    assert_eq!(issued, 2);
    assert_eq!(
        outcomes[1],
        Persisted::AlreadyIssued {
            issued_at: match outcomes[0] {
                Persisted::Issued { issued_at } => issued_at,
                other => anyhow::bail!("first request: {other:?}"),
            }
        }
    );
    assert_eq!(outcomes[3], Persisted::OutOfStock);
    assert_eq!(
        coupons.find(coupon).await?.map(|r| r.available_quantity),
        Some(0)
    );
    assert_eq!(coupons.issued_count(coupon).await?, 2);
    assert!(issuances.participation_counts(coupon).await?.is_empty());
    Ok(())
}

/// The log's and the issuance's transactions run at once, and the issuance commits only after
/// the log has: a batch whose log cannot be written (here a row lock on one of its request ids
/// outlasts the lock wait) issues nothing, and goes through once the lock is gone.
#[tokio::test(flavor = "multi_thread")]
async fn an_issuance_never_commits_without_its_participation_log() -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl;
    let mut env = TestEnv::new(1).await?;
    env.settings.mysql.lock_wait_timeout_s = 1;
    let (coupons, issuances) = stores(&env)?;
    let coupon = open_coupon(&coupons, "log first", 10).await?;
    let batch = vec![
        issue_request(coupon, "u1")?,
        issue_request(coupon, "u2")?,
        issue_request(coupon, "u3")?,
    ];

    // Another session is inserting u3's attempt under the same request id, uncommitted.
    let mut locker = couponrush_storage::connect(&env.settings.mysql, true).await?;
    diesel::sql_query("BEGIN").execute(&mut locker).await?;
    diesel::sql_query(format!(
        "INSERT INTO event_participation_log (coupon_id, user_id, outcome, request_id, occurred_at) \
         VALUES ({coupon}, 'u3', 'ACCEPTED', '{}', NOW(3))",
        batch[2].request_id
    ))
    .execute(&mut locker)
    .await?;

    let refused = issuances
        .persist_batch(&batch, &[], OffsetDateTime::now_utc())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(coupons.issued_count(coupon).await?, 0);
    assert_eq!(
        coupons.find(coupon).await?.map(|r| r.available_quantity),
        Some(10)
    );
    assert!(issuances.participation_counts(coupon).await?.is_empty());

    diesel::sql_query("ROLLBACK").execute(&mut locker).await?;
    let outcomes = issuances
        .persist_batch(&batch, &[], OffsetDateTime::now_utc())
        .await?;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Persisted::Issued { .. })),
        "{outcomes:?}"
    );
    assert_eq!(coupons.issued_count(coupon).await?, 3);
    let counts = issuances.participation_counts(coupon).await?;
    assert_eq!(counts.get("ACCEPTED"), Some(&3), "{counts:?}");
    Ok(())
}
