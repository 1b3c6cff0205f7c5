//! A failover under load: a real Redis Cluster of 3 masters with one replica each, issue
//! requests flowing, and `CLUSTER FAILOVER` on the replica of the master that holds the
//! event's slot. What users are told during the switch is recorded and checked: 202 only for
//! a reservation that ends in MySQL, 503 with a code when Redis could not answer, never
//! SOLD_OUT while stock is left, never "already requested" naming anything but what the user
//! holds; afterwards reconcile says CONSISTENT and the promoted replica serves the event.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::{KeySpace, ReservationStore};
use couponrush_e2e::{Running, on_redis_cluster};
use couponrush_storage::{Database, IssuanceStore};
use couponrush_testkit::eventually;
use futures::StreamExt;

/// More than the load can take: any SOLD_OUT answer would be false.
const STOCK: u32 = 5000;
/// Requests in flight at once.
const CONCURRENCY: usize = 12;
/// Reservations the new master must take after the switch before the load stops.
const AFTER: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_under_load_tells_users_only_the_truth() -> anyhow::Result<()> {
    let (cluster, env) = on_redis_cluster(3, 1).await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(STOCK).await?;
    let keys = KeySpace::new(env.settings.redis.key_prefix.clone());
    let slot = cluster.slot_of(&keys.stock(coupon)).await?;
    let before = cluster.range_of(slot).await?;
    let replica = before.replicas.first().context("a replica")?.clone();
    let redis = ReservationStore::new(&env.settings.redis)?;
    let participants = async || {
        redis
            .counters(coupon)
            .await
            .ok()
            .flatten()
            .map(|c| c.participants)
    };

    // The load: new users one after another, CONCURRENCY at a time, until told to stop; a
    // user told 503 tries again (as Retry-After asks), up to 3 times.
    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    // Answers by phase: before the switch, while it runs, after it.
    let told = Mutex::new([(); 3].map(|()| BTreeMap::<String, usize>::new()));
    let phase = AtomicU8::new(0);
    let load = futures::stream::iter(0..)
        .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
        .for_each_concurrent(CONCURRENCY, |i| {
            let (running, sent, told, phase) = (&running, &sent, &told, &phase);
            async move {
                let user = format!("rush-{i}");
                for _ in 0..3 {
                    sent.fetch_add(1, Ordering::Relaxed);
                    let answer = running.issue(coupon, &user).await;
                    let label = match &answer {
                        Ok((status, body)) => format!(
                            "{status} {}",
                            body["code"]
                                .as_str()
                                .or(body["status"].as_str())
                                .unwrap_or("?")
                        ),
                        Err(error) => format!("no answer: {error}"),
                    };
                    let now = usize::from(phase.load(Ordering::Relaxed));
                    if let Ok(mut told) = told.lock()
                        && let Some(told) = told.get_mut(now)
                    {
                        *told.entry(label).or_default() += 1;
                    }
                    match answer {
                        Ok((503, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
                        _ => return,
                    }
                }
            }
        });
    // The switch, once the load runs; the load stops once the new master took AFTER more.
    let switch = async {
        let started = eventually(Duration::from_secs(30), "the load to start", async || {
            participants().await.filter(|n| *n >= 200)
        })
        .await;
        phase.store(1, Ordering::Relaxed);
        let switched = cluster.failover(&replica).await;
        phase.store(2, Ordering::Relaxed);
        let at_switch = participants().await.unwrap_or(0);
        let after = eventually(
            Duration::from_secs(30),
            "reservations after the switch",
            async || participants().await.filter(|n| *n >= at_switch + AFTER),
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        started.and(switched).and(after)
    };
    let ((), switched) = tokio::join!(load, switch);
    let [before_switch, during, after_switch] =
        told.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    eprintln!(
        "failover of slot {slot} from {} to {replica}: {} requests sent; answers before it: \
         {before_switch:?}, while it ran: {during:?}, after it: {after_switch:?}",
        before.master,
        sent.load(Ordering::Relaxed)
    );
    switched?;

    // The promoted replica serves the slot; the old master follows it (once its link to the
    // new master is up, CLUSTER SLOTS lists it as that master's replica).
    let after = eventually(
        Duration::from_secs(30),
        "the old master to follow",
        async || {
            cluster
                .range_of(slot)
                .await
                .ok()
                .filter(|range| range.replicas == [before.master.clone()])
        },
    )
    .await?;
    assert_eq!(after.master, replica);
    assert!(
        during.values().sum::<usize>() > 0,
        "no answer during the switch"
    );

    // Every answer is one a user may be told, and the pipeline settles with each borne out:
    // 202 ends as that request's row, nobody holds anything without a 202 or an UNCONFIRMED
    // naming it, every attempt logged, reconcile CONSISTENT.
    let verdict = running.verify(&env, coupon, STOCK).await?;
    eprintln!("all answers: {:?}", verdict.by_code);
    for code in verdict.by_code.keys() {
        assert!(
            ["QUEUED", "UNAVAILABLE", "UNCONFIRMED", "ALREADY_REQUESTED"].contains(&code.as_str()),
            "an answer a failover must not give (stock was left all along): {code}, {:?}",
            verdict.by_code
        );
    }
    // "Already requested" named exactly the request the user holds.
    let holders = IssuanceStore::new(Database::new(&env.settings.mysql)?)
        .holders(coupon)
        .await?
        .context("coupon row")?;
    for (user, told) in running.ledger.answers(coupon) {
        for answer in told.iter().filter(|t| t.code == "ALREADY_REQUESTED") {
            let held = holders
                .holders
                .get(&user)
                .and_then(|c| c.request_id)
                .map(|r| r.to_string());
            assert_eq!(held, answer.request_id, "{user}: {told:?}");
        }
    }
    assert_eq!(
        u64::try_from(verdict.issued)?,
        participants().await.unwrap_or(0)
    );

    running.stop().await?;
    Ok(())
}
