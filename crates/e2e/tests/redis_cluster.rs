//! The whole path with `redis.mode = cluster` on a real 3-master Redis Cluster started for the
//! test (Debian's redis-server, `redis-cli --cluster create`): two events whose keys live on
//! different masters sell out exactly, at once, through the API, the consumer and MySQL; the
//! warm-up, the status endpoint, the stats and reconcile answer from the cluster.

use std::collections::HashMap;

use anyhow::Context;
use couponrush_cache::{KeySpace, ReservationStore};
use couponrush_domain::CouponId;
use couponrush_e2e::{Running, batch, on_redis_cluster};
use couponrush_testkit::{PrivateCluster, SlotRange};
use futures::future::join_all;
use serde_json::Value;

/// One event: its id, stock, slot and the range (master) serving it.
struct Event {
    coupon: CouponId,
    stock: u32,
    slot: u16,
    range: SlotRange,
}

async fn placed(
    cluster: &PrivateCluster,
    keys: &KeySpace,
    coupon: CouponId,
    stock: u32,
) -> anyhow::Result<Event> {
    let slot = cluster.slot_of(&keys.stock(coupon)).await?;
    // Every key of the coupon is in that slot, as the cluster itself computes it.
    for key in [
        keys.meta(coupon),
        keys.participants(coupon),
        keys.holds(coupon),
    ] {
        anyhow::ensure!(
            cluster.slot_of(&key).await? == slot,
            "{key} off slot {slot}"
        );
    }
    let range = cluster.range_of(slot).await?;
    Ok(Event {
        coupon,
        stock,
        slot,
        range,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_events_on_different_masters_sell_out_exactly() -> anyhow::Result<()> {
    let (cluster, env) = on_redis_cluster(3, 0).await?;
    let running = Running::start(&env).await?;
    let keys = KeySpace::new(env.settings.redis.key_prefix.clone());

    // Events until two are served by different masters (ids are this test database's own).
    let first = running.create_coupon(60).await?;
    let first = placed(&cluster, &keys, first, 60).await?;
    let mut second = None;
    for _ in 0..10 {
        let coupon = running.create_coupon(40).await?;
        let event = placed(&cluster, &keys, coupon, 40).await?;
        if event.range.master != first.range.master {
            second = Some(event);
            break;
        }
    }
    let second = second.context("no event on a second master in 10 tries")?;
    assert_ne!(first.slot, second.slot);
    assert_ne!(first.range.master, second.range.master);
    // The keys are on those masters: each node answers for its own keys only.
    for event in [&first, &second] {
        let total: Option<String> = cluster
            .query_node(
                &event.range.master,
                redis::cmd("HGET").arg(keys.meta(event.coupon)).arg("total"),
            )
            .await?;
        assert_eq!(total, Some(event.stock.to_string()));
    }

    // The admin warm-up finds each event live and leaves it alone.
    for event in [&first, &second] {
        let path = format!("/admin/coupons/{}/stock", event.coupon);
        let (status, body) = running.admin(reqwest::Method::PUT, &path, None).await?;
        assert_eq!(
            (status, &body["loaded"]),
            (200, &Value::Bool(false)),
            "{body}"
        );
    }

    // 150 distinct users and 50 repeats per event, both events at once.
    let mut calls = Vec::new();
    for event in [&first, &second] {
        let mut users: Vec<String> = (0..150).map(|i| format!("u{}-{i}", event.coupon)).collect();
        users.extend((0..50).map(|i| format!("u{}-{}", event.coupon, i * 3)));
        calls.extend(users.into_iter().map(|user| (event.coupon, user)));
    }
    let answers = join_all(
        calls
            .iter()
            .map(|(coupon, user)| running.issue_final(*coupon, user)),
    )
    .await;
    let mut by_event: HashMap<(CouponId, u16), usize> = HashMap::new();
    let mut winners: HashMap<CouponId, String> = HashMap::new();
    let mut losers: HashMap<CouponId, String> = HashMap::new();
    for ((coupon, user), answer) in calls.iter().zip(answers) {
        let (status, body) = answer?;
        *by_event.entry((*coupon, status)).or_default() += 1;
        match (status, body["code"].as_str()) {
            (202, _) => {
                winners.insert(*coupon, user.clone());
            }
            (409, Some("SOLD_OUT")) => {
                losers.insert(*coupon, user.clone());
            }
            (409, Some("ALREADY_REQUESTED")) => {}
            other => anyhow::bail!("{user}: unexpected answer {other:?} {body}"),
        }
    }
    for event in [&first, &second] {
        let stock = usize::try_from(event.stock)?;
        assert_eq!(by_event.get(&(event.coupon, 202)), Some(&stock));
        assert_eq!(by_event.get(&(event.coupon, 409)), Some(&(200 - stock)));
    }

    // Settled: every reservation in MySQL and confirmed ISSUED in Redis by the consumer, every
    // answer borne out, every attempt logged, reconcile CONSISTENT (the ledger's checks).
    let redis = ReservationStore::new(&env.settings.redis)?;
    for event in [&first, &second] {
        let verdict = running.verify(&env, event.coupon, event.stock).await?;
        assert_eq!(verdict.issued, usize::try_from(event.stock)?, "{verdict:?}");
        let counters = redis.counters(event.coupon).await?.context("loaded")?;
        assert_eq!(
            (counters.stock, counters.participants, counters.issued),
            (0, u64::from(event.stock), u64::from(event.stock))
        );
        // The status endpoint, from the cluster: a winner ISSUED, a loser SOLD_OUT.
        let winner = winners.get(&event.coupon).context("a winner")?;
        let (_, body) = running.status(event.coupon, winner).await?;
        assert!(body.contains("\"ISSUED\""), "{body}");
        let loser = losers.get(&event.coupon).context("a loser")?;
        let (_, body) = running.status(event.coupon, loser).await?;
        assert!(body.contains("\"SOLD_OUT\""), "{body}");
        // The stats: Redis's counters beside MySQL's.
        let path = format!("/admin/coupons/{}/stats", event.coupon);
        let (_, stats) = running.admin(reqwest::Method::GET, &path, None).await?;
        assert_eq!(stats["mysql"]["issued"], event.stock, "{stats}");
        assert_eq!(stats["redis"]["pending"], 0, "{stats}");
    }

    // One reconcile over every event at once (HSCAN of each event's hash on its own master).
    let all = batch(&env, &["reconcile", "--output", "json"]).await?;
    assert!(!all.needs_attention, "{}", all.summary);
    for event in [&first, &second] {
        let report = all.summary["coupons"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["coupon_id"] == event.coupon.get()))
            .context("reported")?;
        assert_eq!(report["verdict"], "CONSISTENT", "{report}");
        assert_eq!(report["counts"]["issued"], event.stock, "{report}");
    }

    running.stop().await?;
    Ok(())
}
