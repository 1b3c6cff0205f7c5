//! Every Lua script of the reservation store, run on the real Redis the configuration points
//! at (`scripts/stack.sh up`), each test under a key prefix of its own: the issuance window,
//! duplicates, sold out versus held, release's and void's compare-and-set on the request id,
//! confirmation, and restore's idempotence.

mod common;

use std::time::Duration;

use common::open;
use couponrush_cache::{LimitCheck, LoadOutcome, ReservationStore};
use couponrush_config::{ConfigArgs, RedisSettings};
use couponrush_domain::{
    CouponId, CouponSpec, LimitedBy, ParticipantState, RateLimitOverride, RateLimits, RequestId,
    Reservation, UserId,
};
use couponrush_testkit::{RedisKeys, TEST_KEY_PREFIX};
use time::OffsetDateTime;

/// How long a reservation's publish may take to be decided, in these tests.
const HOLD: Duration = Duration::from_secs(5);

/// A store on its own key prefix, whose keys are deleted when it is dropped.
struct Scratch {
    store: ReservationStore,
    settings: RedisSettings,
    _keys: RedisKeys,
}

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let mut settings = ConfigArgs::default().load()?.redis;
        let id = uuid::Uuid::now_v7().simple().to_string();
        settings.key_prefix = format!("{TEST_KEY_PREFIX}cache:{}:", &id[20..]);
        Ok(Self {
            store: ReservationStore::new(&settings)?,
            _keys: RedisKeys::new(&settings)?,
            settings,
        })
    }

    /// A store with coupon 1 loaded: `total` units, its window open now.
    async fn with_coupon(total: u32) -> anyhow::Result<(Self, CouponId)> {
        let scratch = Self::new()?;
        let id = coupon(1)?;
        scratch.store.load(id, &open(total)).await?;
        Ok((scratch, id))
    }

    /// (stock, participants) of `id`, `None` when it is not loaded.
    async fn taken(&self, id: CouponId) -> anyhow::Result<Option<(u64, u64)>> {
        let counters = self.store.counters(id).await?;
        Ok(counters.map(|c| (c.stock, c.participants)))
    }
}

fn coupon(id: u64) -> anyhow::Result<CouponId> {
    Ok(CouponId::new(id)?)
}

fn user(name: &str) -> anyhow::Result<UserId> {
    Ok(UserId::parse(name)?)
}

async fn reserve(
    store: &ReservationStore,
    id: CouponId,
    name: &str,
    request: RequestId,
) -> anyhow::Result<Reservation> {
    Ok(store
        .reserve(
            id,
            &user(name)?,
            request,
            OffsetDateTime::now_utc(),
            HOLD,
            None,
        )
        .await?)
}

#[tokio::test]
async fn load_is_idempotent_and_keeps_live_counters() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let store = &scratch.store;
    let id = coupon(1)?;
    assert_eq!(
        store.load(id, &open(3)).await?,
        LoadOutcome::Loaded { stock: 3 }
    );
    reserve(store, id, "alice", RequestId::generate()).await?;
    // Loading again must never reset a live event.
    assert_eq!(
        store.load(id, &open(3)).await?,
        LoadOutcome::AlreadyLoaded { stock: 2 }
    );
    Ok(())
}

#[tokio::test]
async fn reserve_honours_the_window_and_unknown_coupons() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let store = &scratch.store;
    let now = OffsetDateTime::now_utc();
    let later = CouponSpec {
        issue_starts_at: now + time::Duration::hours(1),
        issue_ends_at: now + time::Duration::hours(2),
        ..open(5)
    };
    let over = CouponSpec {
        issue_starts_at: now - time::Duration::hours(2),
        issue_ends_at: now - time::Duration::hours(1),
        ..open(5)
    };
    store.load(coupon(1)?, &later).await?;
    store.load(coupon(2)?, &over).await?;
    let request = RequestId::generate();
    assert_eq!(
        reserve(store, coupon(1)?, "alice", request).await?,
        Reservation::NotOpen
    );
    assert_eq!(
        reserve(store, coupon(2)?, "alice", request).await?,
        Reservation::Closed
    );
    assert_eq!(
        reserve(store, coupon(3)?, "alice", request).await?,
        Reservation::UnknownCoupon
    );
    // Nothing was taken by the refusals.
    assert_eq!(scratch.taken(coupon(1)?).await?, Some((5, 0)));
    Ok(())
}

#[tokio::test]
async fn a_second_request_names_the_first_and_takes_nothing() -> anyhow::Result<()> {
    let (scratch, id) = Scratch::with_coupon(5).await?;
    let store = &scratch.store;
    let first = RequestId::generate();
    assert_eq!(
        reserve(store, id, "alice", first).await?,
        Reservation::Accepted { remaining: 4 }
    );
    match reserve(store, id, "alice", RequestId::generate()).await? {
        Reservation::AlreadyRequested(ParticipantState::Pending { request_id, .. }) => {
            assert_eq!(request_id, first);
        }
        other => anyhow::bail!("a duplicate answered {other:?}"),
    }
    assert_eq!(scratch.taken(id).await?, Some((4, 1)));
    Ok(())
}

#[tokio::test]
async fn stock_held_by_an_undecided_publish_is_held_then_sold_out() -> anyhow::Result<()> {
    let (scratch, id) = Scratch::with_coupon(1).await?;
    let store = &scratch.store;
    let last = RequestId::generate();
    assert_eq!(
        reserve(store, id, "alice", last).await?,
        Reservation::Accepted { remaining: 0 }
    );
    // alice's publish is not decided yet: the unit may come back.
    assert_eq!(
        reserve(store, id, "bob", RequestId::generate()).await?,
        Reservation::Held
    );
    store.settle(id, &[last]).await?;
    assert!(matches!(
        reserve(store, id, "bob", RequestId::generate()).await?,
        Reservation::SoldOut { .. }
    ));
    Ok(())
}

#[tokio::test]
async fn release_gives_back_only_the_request_it_names_and_only_once() -> anyhow::Result<()> {
    let (scratch, id) = Scratch::with_coupon(2).await?;
    let store = &scratch.store;
    let alice = user("alice")?;
    let request = RequestId::generate();
    reserve(store, id, "alice", request).await?;

    assert!(
        !store.release(id, &alice, RequestId::generate()).await?,
        "another id"
    );
    assert!(store.state(id, &alice).await?.is_some(), "left untouched");
    assert!(store.release(id, &alice, request).await?);
    assert!(store.state(id, &alice).await?.is_none());
    assert!(
        !store.release(id, &alice, request).await?,
        "a second release"
    );
    assert_eq!(scratch.taken(id).await?, Some((2, 0)));
    Ok(())
}

#[tokio::test]
async fn a_voided_request_takes_nothing_when_its_reserve_runs_late() -> anyhow::Result<()> {
    let (scratch, id) = Scratch::with_coupon(2).await?;
    let store = &scratch.store;
    let alice = user("alice")?;
    let request = RequestId::generate();
    // The API gave the call up before Redis ran it: nothing to give back yet.
    assert!(!store.void(id, &alice, request).await?);
    assert_eq!(
        reserve(store, id, "alice", request).await?,
        Reservation::Void
    );
    assert!(store.state(id, &alice).await?.is_none());
    // Voided after it ran: the unit comes back.
    let bob = user("bob")?;
    let late = RequestId::generate();
    reserve(store, id, "bob", late).await?;
    assert!(store.void(id, &bob, late).await?);
    assert_eq!(scratch.taken(id).await?, Some((2, 0)));
    Ok(())
}

#[tokio::test]
async fn confirmation_moves_only_the_matching_request_to_issued() -> anyhow::Result<()> {
    let (scratch, id) = Scratch::with_coupon(5).await?;
    let store = &scratch.store;
    let (alice, bob) = (user("alice")?, user("bob")?);
    let (first, second) = (RequestId::generate(), RequestId::generate());
    reserve(store, id, "alice", first).await?;
    reserve(store, id, "bob", second).await?;
    let at = OffsetDateTime::now_utc();
    // bob's confirmation carries another request id (a replayed stranger): not his.
    let moved = store
        .mark_issued_many(&[
            (id, &alice, first, at),
            (id, &bob, RequestId::generate(), at),
        ])
        .await?;
    assert_eq!(moved, 1);
    assert!(matches!(
        store.state(id, &alice).await?,
        Some(ParticipantState::Issued { request_id, .. }) if request_id == first
    ));
    assert!(matches!(
        store.state(id, &bob).await?,
        Some(ParticipantState::Pending { request_id, .. }) if request_id == second
    ));
    // Repeating a confirmation changes nothing.
    assert_eq!(store.mark_issued_many(&[(id, &alice, first, at)]).await?, 0);
    assert_eq!(store.counters(id).await?.map(|c| c.issued), Some(1));
    Ok(())
}

#[tokio::test]
async fn a_confirmation_larger_than_one_script_call_marks_every_request_once() -> anyhow::Result<()>
{
    // More requests than one script call takes, with a stranger's request among them.
    let (scratch, id) = Scratch::with_coupon(1_300).await?;
    let store = &scratch.store;
    let at = OffsetDateTime::now_utc();
    let mut confirmed = Vec::new();
    for n in 0..1_201 {
        let name = format!("user-{n}");
        let request = RequestId::generate();
        reserve(store, id, &name, request).await?;
        confirmed.push((user(&name)?, request));
    }
    confirmed[700].1 = RequestId::generate();
    let issued: Vec<_> = confirmed
        .iter()
        .map(|(user, request)| (id, user, *request, at))
        .collect();
    assert_eq!(store.mark_issued_many(&issued).await?, 1_200);
    assert_eq!(store.mark_issued_many(&issued).await?, 0);
    assert_eq!(store.counters(id).await?.map(|c| c.issued), Some(1_200));
    assert!(matches!(
        store.state(id, &confirmed[700].0).await?,
        Some(ParticipantState::Pending { .. })
    ));
    assert!(matches!(
        store.state(id, &confirmed[1_200].0).await?,
        Some(ParticipantState::Issued { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn restore_rebuilds_a_lost_coupon_once() -> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let store = &scratch.store;
    let id = coupon(1)?;
    let spec = open(10);
    let at = OffsetDateTime::now_utc();
    let holders = [(
        user("alice")?,
        ParticipantState::Issued {
            request_id: RequestId::generate(),
            at,
        },
    )];
    let pending = [(
        user("carol")?,
        ParticipantState::Pending {
            request_id: RequestId::generate(),
            at,
        },
    )];
    let rebuilt = store.rebuild_lost(id, &spec, &holders, &pending).await?;
    assert!(rebuilt.restored.loaded);
    assert_eq!((rebuilt.stock, rebuilt.restored.holders), (8, 2));
    // Again: the coupon is live now, everyone is known, nothing changes.
    let again = store.rebuild_lost(id, &spec, &holders, &pending).await?;
    assert!(!again.restored.loaded);
    assert_eq!(again.restored.holders, 0);
    let counters = store.counters(id).await?;
    assert_eq!(
        counters.map(|c| (c.stock, c.participants, c.issued)),
        Some((8, 2, 1))
    );
    // carol is pending (her request is still in flight), alice is issued: neither accepted again.
    assert!(matches!(
        reserve(store, id, "carol", RequestId::generate()).await?,
        Reservation::AlreadyRequested(ParticipantState::Pending { .. })
    ));
    assert!(matches!(
        reserve(store, id, "alice", RequestId::generate()).await?,
        Reservation::AlreadyRequested(ParticipantState::Issued { .. })
    ));
    Ok(())
}

/// One reservation of `name` from `client` under the limits `defaults`.
async fn reserve_limited(
    store: &ReservationStore,
    id: CouponId,
    name: &str,
    client: &str,
    defaults: RateLimits,
) -> anyhow::Result<Reservation> {
    let limit = LimitCheck { client, defaults };
    Ok(store
        .reserve(
            id,
            &user(name)?,
            RequestId::generate(),
            OffsetDateTime::now_utc(),
            HOLD,
            Some(limit),
        )
        .await?)
}

#[tokio::test]
async fn limits_come_first_take_nothing_and_an_events_own_survive_a_rebuild() -> anyhow::Result<()>
{
    let scratch = Scratch::new()?;
    let store = &scratch.store;
    let defaults = RateLimits {
        per_user: 5,
        per_client: 2,
        window_ms: 60_000,
    };
    let id = coupon(1)?;
    store.load(id, &open(10)).await?;
    for name in ["u1", "u2"] {
        assert!(matches!(
            reserve_limited(store, id, name, "c1", defaults).await?,
            Reservation::Accepted { .. }
        ));
    }
    let Reservation::RateLimited { by, retry_after_ms } =
        reserve_limited(store, id, "u3", "c1", defaults).await?
    else {
        anyhow::bail!("the third request of client c1 must be limited");
    };
    assert_eq!(by, LimitedBy::Client);
    // One request frees every 60 s / 2 = 30 s.
    assert!((1..=30_000).contains(&retry_after_ms), "{retry_after_ms}");
    assert_eq!(
        scratch.taken(id).await?,
        Some((8, 2)),
        "the refusal took nothing"
    );

    // An event's own limit (per client 3) is loaded with it, and a rebuild after a loss
    // writes it again.
    let own = CouponSpec {
        rate_limit: RateLimitOverride {
            per_client: Some(3),
            ..RateLimitOverride::default()
        },
        ..open(10)
    };
    let lost = coupon(2)?;
    store.rebuild_lost(lost, &own, &[], &[]).await?;
    let mut answers = Vec::new();
    for name in ["v1", "v2", "v3", "v4"] {
        answers.push(reserve_limited(store, lost, name, "c2", defaults).await?);
    }
    assert!(
        matches!(answers[2], Reservation::Accepted { .. }),
        "{answers:?}"
    );
    assert!(
        matches!(
            answers[3],
            Reservation::RateLimited {
                by: LimitedBy::Client,
                ..
            }
        ),
        "{answers:?}"
    );
    Ok(())
}

/// (fields, milliseconds to live) of coupon `id`'s limits hash.
async fn limits_hash(scratch: &Scratch, id: CouponId) -> anyhow::Result<(Vec<String>, i64)> {
    let key = scratch.store.keys().limits(id);
    let mut conn = couponrush_cache::client(&scratch.settings)?
        .get_multiplexed_async_connection()
        .await?;
    let fields: Vec<String> = redis::cmd("HKEYS").arg(&key).query_async(&mut conn).await?;
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await?;
    Ok((fields, ttl))
}

#[tokio::test]
async fn the_limits_hash_expires_after_the_event_and_an_ended_event_counts_nothing()
-> anyhow::Result<()> {
    let scratch = Scratch::new()?;
    let store = &scratch.store;
    let defaults = RateLimits {
        per_user: 1,
        per_client: 1,
        window_ms: 60_000,
    };
    // Loaded, the hash already has its expiry: the event's end (an hour from now) plus an hour.
    let id = coupon(1)?;
    store.load(id, &open(10)).await?;
    let (fields, ttl) = limits_hash(&scratch, id).await?;
    assert_eq!(fields, ["_"]);
    let hour = 3_600_000;
    assert!((2 * hour - 60_000..=2 * hour).contains(&ttl), "{ttl}");
    // Both subjects are counted in it, and the hash keeps its expiry.
    assert!(matches!(
        reserve_limited(store, id, "u1", "c1", defaults).await?,
        Reservation::Accepted { .. }
    ));
    let (mut fields, ttl) = limits_hash(&scratch, id).await?;
    fields.sort();
    assert_eq!(fields, ["_", "c:c1", "u:u1"]);
    assert!(ttl > 2 * hour - 60_000, "{ttl}");

    // Ended: every answer is CLOSED and nothing is counted, past any limit (1 per minute).
    let now = OffsetDateTime::now_utc();
    let ended = CouponSpec {
        issue_starts_at: now - time::Duration::hours(2),
        issue_ends_at: now - time::Duration::hours(1),
        ..open(10)
    };
    let over = coupon(2)?;
    store.rebuild_lost(over, &ended, &[], &[]).await?;
    // A rebuild gives the hash its expiry too: here the end plus an hour is now.
    let (_, ttl) = limits_hash(&scratch, over).await?;
    assert!(ttl < 1_000, "{ttl}");
    for _ in 0..3 {
        assert!(matches!(
            reserve_limited(store, over, "u1", "c1", defaults).await?,
            Reservation::Closed
        ));
    }
    let (fields, ttl) = limits_hash(&scratch, over).await?;
    assert!(fields.is_empty() && ttl == -2, "{fields:?} {ttl}");
    Ok(())
}
