//! The outbox's relay side against real MariaDB: rows claimed oldest first, only the published
//! ones marked, two relays at once never claim one row, lag, and the purge.

use std::collections::HashSet;
use std::time::Duration;

use couponrush_domain::IssueRequested;
use couponrush_storage::{CouponStore, Database, IssuanceStore, OutboxStore, PendingEvent};
use couponrush_testkit::{TestEnv, issue_request};
use time::OffsetDateTime;

mod common;
use common::open_coupon;

/// An outbox with `count` CouponIssued events, and the store that reads it.
async fn outbox_with(env: &TestEnv, count: usize) -> anyhow::Result<OutboxStore> {
    let db = Database::new(&env.settings.mysql)?;
    let coupon = open_coupon(&CouponStore::new(db.clone()), "relay", 1000).await?;
    let requests: Vec<IssueRequested> = (0..count)
        .map(|n| issue_request(coupon, &format!("user-{n}")))
        .collect::<Result<_, _>>()?;
    IssuanceStore::new(db.clone())
        .with_outbox(true)
        .persist_batch(&requests, &[], OffsetDateTime::now_utc())
        .await?;
    Ok(OutboxStore::new(db))
}

const BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn rows_go_oldest_first_and_only_the_published_are_marked() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let store = outbox_with(&env, 5).await?;
    let lag = store.lag().await?;
    assert_eq!(lag.pending, 5);
    assert!(lag.oldest.is_some());

    // Three claimed; the middle one's publish fails.
    let mut seen: Vec<PendingEvent> = Vec::new();
    let marked = store
        .relay(3, BOUND, |events| {
            seen = events;
            async { vec![true, false, true] }
        })
        .await?;
    assert_eq!(marked, 2);
    let seqs: Vec<i64> = seen.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(store.lag().await?.pending, 3);

    // The failed one comes back first, with the same event id; then the two never claimed.
    let mut again: Vec<PendingEvent> = Vec::new();
    let marked = store
        .relay(10, BOUND, |events| {
            let count = events.len();
            again = events;
            async move { vec![true; count] }
        })
        .await?;
    assert_eq!(marked, 3);
    assert_eq!(again[0].id, seen[1].id);
    assert_eq!(again[0].seq, seen[1].seq);
    assert_eq!(store.lag().await?, Default::default());

    // Nothing pending: nothing handed to the publisher.
    let marked = store
        .relay(10, BOUND, |events| async move {
            panic!("called with {} events", events.len())
        })
        .await?;
    assert_eq!(marked, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_relays_at_once_never_claim_the_same_row() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let store = outbox_with(&env, 6).await?;
    let (claimed_tx, claimed_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();

    // The first relay claims four rows and holds them until released.
    let first_store = store.clone();
    let first = tokio::spawn(async move {
        let mut ids = Vec::new();
        let marked = first_store
            .relay(4, BOUND, |events| {
                ids = events.iter().map(|e| e.id.clone()).collect();
                claimed_tx.send(()).ok();
                async move {
                    release_rx.await.ok();
                    vec![true; events.len()]
                }
            })
            .await;
        marked.map(|marked| (marked, ids))
    });
    claimed_rx.await?;

    // Meanwhile a second relay skips the held rows and takes the other two.
    let mut second_ids = Vec::new();
    let marked = store
        .relay(10, BOUND, |events| {
            second_ids = events.iter().map(|e| e.id.clone()).collect();
            async move { vec![true; events.len()] }
        })
        .await?;
    assert_eq!(marked, 2);
    release_tx.send(()).ok();
    let (first_marked, first_ids) = first.await??;
    assert_eq!(first_marked, 4);

    let all: HashSet<&String> = first_ids.iter().chain(&second_ids).collect();
    assert_eq!(all.len(), 6, "{first_ids:?} {second_ids:?}");
    assert_eq!(store.lag().await?.pending, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_purge_takes_published_rows_in_batches_and_leaves_pending_ones() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let store = outbox_with(&env, 5).await?;
    store
        .relay(3, BOUND, |events| async move { vec![true; events.len()] })
        .await?;
    let later = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let earlier = OffsetDateTime::now_utc() - time::Duration::minutes(1);

    // Nothing was published before a minute ago.
    assert_eq!(store.purge(earlier, false, 10).await?, 0);
    // The three published go, two per call; the two pending stay.
    assert_eq!(store.purge(later, false, 2).await?, 2);
    assert_eq!(store.purge(later, false, 2).await?, 1);
    assert_eq!(store.purge(later, false, 2).await?, 0);
    assert_eq!(store.lag().await?.pending, 2);
    // Where Debezium publishes, rows are purged by age whether marked or not.
    assert_eq!(store.purge(later, true, 10).await?, 2);
    assert_eq!(store.lag().await?.pending, 0);
    Ok(())
}
