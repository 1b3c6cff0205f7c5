//! What the API's sold-out gate relies on, on the real Redis of `scripts/stack.sh up`: a
//! SOLD_OUT names a generation; stock that comes back, or a restored participant, starts a new
//! one; stock given back while a gate's lease may run is not offered before the lease ends; and
//! the copy of the participants is read under one generation.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::open;
use couponrush_cache::{CopyRead, ReservationStore};
use couponrush_config::ConfigArgs;
use couponrush_domain::{CouponId, ParticipantState, RequestId, Reservation, UserId};
use couponrush_testkit::{RedisKeys, TEST_KEY_PREFIX};
use time::OffsetDateTime;

const HOLD: Duration = Duration::from_secs(5);
const LEASE: Duration = Duration::from_millis(300);

/// A store on a key prefix of its own (deleted when dropped), with coupon 1 of `total` loaded
/// and its window open; gated with `lease` (zero: no gate).
struct Scratch {
    store: ReservationStore,
    id: CouponId,
    _keys: RedisKeys,
}

impl Scratch {
    async fn new(total: u32, lease: Duration) -> anyhow::Result<Self> {
        let mut settings = ConfigArgs::default().load()?.redis;
        let run = uuid::Uuid::now_v7().simple().to_string();
        settings.key_prefix = format!("{TEST_KEY_PREFIX}gate:{}:", &run[20..]);
        let store = ReservationStore::new(&settings)?.with_sold_out_lease(lease);
        let id = CouponId::new(1)?;
        store.load(id, &open(total)).await?;
        Ok(Self {
            store,
            id,
            _keys: RedisKeys::new(&settings)?,
        })
    }

    /// `name`'s request now; an accepted one is settled (its publish acknowledged).
    async fn reserve(&self, name: &str) -> anyhow::Result<(Reservation, RequestId)> {
        let request = RequestId::generate();
        let answer = self
            .store
            .reserve(
                self.id,
                &UserId::parse(name)?,
                request,
                OffsetDateTime::now_utc(),
                HOLD,
                None,
            )
            .await?;
        if let Reservation::Accepted { .. } = answer {
            self.store.settle(self.id, &[request]).await?;
        }
        Ok((answer, request))
    }

    /// Gives back `name`'s reservation `request` (its publish failed); whether it did.
    async fn release(&self, name: &str, request: RequestId) -> anyhow::Result<bool> {
        Ok(self
            .store
            .release(self.id, &UserId::parse(name)?, request)
            .await?)
    }

    async fn sold_out(&self, name: &str) -> anyhow::Result<u64> {
        match self.reserve(name).await?.0 {
            Reservation::SoldOut { generation } => Ok(generation),
            other => anyhow::bail!("{name} was answered {other:?}, not SOLD_OUT"),
        }
    }

    async fn copy(&self) -> anyhow::Result<(u64, HashSet<String>)> {
        match self.store.sold_out_copy(self.id, 100).await? {
            CopyRead::Copied(copy) => Ok((copy.generation, copy.participants)),
            other => anyhow::bail!("copy read {other:?}"),
        }
    }
}

fn names(list: &[&str]) -> HashSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn stock_given_back_during_a_lease_waits_for_its_end_under_a_new_generation()
-> anyhow::Result<()> {
    let scratch = Scratch::new(1, LEASE).await?;
    let (_, alice_request) = scratch.reserve("alice").await?;
    let first = scratch.sold_out("bob").await?;
    assert_eq!(scratch.sold_out("carol").await?, first, "nothing changed");
    assert_eq!(scratch.copy().await?, (first, names(&["alice"])));

    // alice's unit comes back while a gate may still answer from a copy that lists her.
    assert!(scratch.release("alice", alice_request).await?);
    let (held, _) = scratch.reserve("carol").await?;
    assert_eq!(held, Reservation::Held, "not offered before the lease ends");
    let counters = scratch.store.counters(scratch.id).await?;
    assert_eq!(counters.map(|c| (c.stock, c.participants)), Some((1, 0)));

    // Redis keeps it back for twice the lease: room for clocks that differ.
    tokio::time::sleep(LEASE * 2 + Duration::from_millis(50)).await;
    let (taken, _) = scratch.reserve("carol").await?;
    assert_eq!(taken, Reservation::Accepted { remaining: 0 });
    let after = scratch.sold_out("dave").await?;
    assert_ne!(after, first, "a copy without carol must not be trusted");
    assert_eq!(scratch.copy().await?, (after, names(&["carol"])));
    Ok(())
}

#[tokio::test]
async fn without_a_gate_stock_comes_back_at_once_and_still_changes_the_generation()
-> anyhow::Result<()> {
    let scratch = Scratch::new(1, Duration::ZERO).await?;
    let (_, alice_request) = scratch.reserve("alice").await?;
    let first = scratch.sold_out("bob").await?;
    assert!(scratch.release("alice", alice_request).await?);
    let (taken, _) = scratch.reserve("carol").await?;
    assert_eq!(taken, Reservation::Accepted { remaining: 0 });
    assert_ne!(scratch.sold_out("dave").await?, first);
    Ok(())
}

#[tokio::test]
async fn a_restored_participant_changes_the_generation() -> anyhow::Result<()> {
    let scratch = Scratch::new(2, LEASE).await?;
    scratch.reserve("alice").await?;
    scratch.reserve("bob").await?;
    let first = scratch.sold_out("carol").await?;
    // Reconciliation restores a holder MySQL has and Redis lost (no stock left to take).
    let zed = UserId::parse("zed")?;
    let issued = ParticipantState::Issued {
        request_id: RequestId::generate(),
        at: OffsetDateTime::now_utc(),
    };
    let restored = scratch
        .store
        .restore(scratch.id, &open(2), 0, &[(&zed, issued)])
        .await?;
    assert_eq!(restored.holders, 1);
    let (generation, participants) = scratch.copy().await?;
    assert_ne!(generation, first);
    assert_eq!(participants, names(&["alice", "bob", "zed"]));
    assert_eq!(scratch.sold_out("carol").await?, generation);
    Ok(())
}

#[tokio::test]
async fn a_coupon_loaded_again_starts_a_generation_unlike_before() -> anyhow::Result<()> {
    let scratch = Scratch::new(1, LEASE).await?;
    scratch.reserve("alice").await?;
    let first = scratch.sold_out("bob").await?;
    // Redis loses the coupon and it is loaded afresh (a warm-up after a restart).
    let keys = scratch.store.keys().clone();
    let mut conn = couponrush_cache::connect(&ConfigArgs::default().load()?.redis).await?;
    let _: () = redis::cmd("DEL")
        .arg(keys.meta(scratch.id))
        .arg(keys.stock(scratch.id))
        .arg(keys.participants(scratch.id))
        .query_async(&mut conn)
        .await?;
    scratch.store.load(scratch.id, &open(1)).await?;
    scratch.reserve("carol").await?;
    assert_ne!(scratch.sold_out("dave").await?, first);
    Ok(())
}

#[tokio::test]
async fn a_copy_too_large_or_of_a_missing_coupon_is_not_kept() -> anyhow::Result<()> {
    let scratch = Scratch::new(3, LEASE).await?;
    for name in ["a", "b", "c"] {
        scratch.reserve(name).await?;
    }
    assert_eq!(
        scratch.store.sold_out_copy(scratch.id, 2).await?,
        CopyRead::TooMany(3)
    );
    assert_eq!(
        scratch.store.sold_out_copy(CouponId::new(99)?, 2).await?,
        CopyRead::Missing
    );
    Ok(())
}
