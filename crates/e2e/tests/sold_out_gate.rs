//! The sold-out gate on the real API, Redis, broker and consumer: once Redis said SOLD_OUT the
//! API answers it without Redis (counted), a holder is still told their own request, a unit
//! given back is won by exactly one newcomer, who is never told SOLD_OUT afterwards, and every
//! answer (gated ones too) is in the participation log, with reconciliation CONSISTENT.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_domain::{CouponId, RequestId, Reservation, UserId};
use couponrush_e2e::Running;
use couponrush_testkit::{TestEnv, eventually};
use serde_json::json;
use time::OffsetDateTime;

const LEASE_MS: u64 = 200;

/// A reservation whose publish will fail, made beside the API (so no user was told 202), its
/// hold settled: its unit comes back when the test releases it.
async fn ghost_reservation(
    store: &ReservationStore,
    coupon: CouponId,
) -> anyhow::Result<(UserId, RequestId, Reservation)> {
    let ghost = UserId::parse("ghost")?;
    let request = RequestId::generate();
    let reserved = store
        .reserve(
            coupon,
            &ghost,
            request,
            OffsetDateTime::now_utc(),
            Duration::from_secs(5),
            None,
        )
        .await?;
    store.settle(coupon, &[request]).await?;
    Ok((ghost, request, reserved))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_is_answered_locally_but_never_to_a_holder() -> anyhow::Result<()> {
    let mut env = TestEnv::new(1).await?;
    env.settings.sold_out_gate.lease_ms = LEASE_MS;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(3).await?;
    let store = ReservationStore::new(&env.settings.redis)?;

    let (ghost, ghost_request, reserved) = ghost_reservation(&store, coupon).await?;
    assert_eq!(reserved, Reservation::Accepted { remaining: 2 });
    for user in ["ann", "ben"] {
        let (status, body) = running.issue_final(coupon, user).await?;
        assert_eq!(status, 202, "{user}: {body}");
    }
    let (status, body) = running.issue_final(coupon, "late-0").await?;
    assert_eq!(
        (status, &body["status"]),
        (409, &json!("SOLD_OUT")),
        "{body}"
    );

    // Redis said it once; soon the API says it by itself.
    let gated = "couponrush_api_sold_out_gate_answers_total";
    let late = AtomicUsize::new(1);
    eventually(
        Duration::from_secs(10),
        "answers from the gate",
        async || {
            let user = format!("late-{}", late.fetch_add(1, Ordering::Relaxed));
            let (status, body) = running.issue(coupon, &user).await.ok()?;
            assert_eq!(
                (status, &body["status"]),
                (409, &json!("SOLD_OUT")),
                "{body}"
            );
            (running.metric(gated).await.ok()? > 0.0).then_some(())
        },
    )
    .await?;
    // Holders are told their own request, not SOLD_OUT.
    for user in ["ann", "ben"] {
        let (status, body) = running.issue(coupon, user).await?;
        assert_eq!(
            (status, &body["code"]),
            (409, &json!("ALREADY_REQUESTED")),
            "{user}: {body}"
        );
    }

    // The ghost's publish fails: its unit goes back while newcomers keep arriving. Exactly one
    // of them wins it (after the leases ended) and from then on is never told SOLD_OUT.
    assert!(store.release(coupon, &ghost, ghost_request).await?);
    let winner = std::sync::Mutex::new(None::<String>);
    let stop = AtomicBool::new(false);
    let winners = AtomicUsize::new(0);
    let crowd = (0..4).map(|lane| {
        let (running, winner, stop, winners, late) = (&running, &winner, &stop, &winners, &late);
        async move {
            while !stop.load(Ordering::Relaxed) {
                let user = format!("crowd-{lane}-{}", late.fetch_add(1, Ordering::Relaxed));
                let (status, body) = running.issue(coupon, &user).await?;
                match (status, body["status"].as_str().or(body["code"].as_str())) {
                    (202, _) => {
                        winners.fetch_add(1, Ordering::Relaxed);
                        *winner.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(user);
                    }
                    (409, Some("SOLD_OUT")) | (503, Some("STOCK_HELD")) => {}
                    other => anyhow::bail!("{user} was answered {other:?}: {body}"),
                }
                // The winner asks again at once, and again, while the crowd goes on.
                let won = winner
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .clone();
                if let Some(won) = won {
                    let (status, body) = running.issue(coupon, &won).await?;
                    anyhow::ensure!(
                        status == 409 && body["code"] == json!("ALREADY_REQUESTED"),
                        "the winner {won} was answered {status}: {body}"
                    );
                }
            }
            anyhow::Ok(())
        }
    });
    let watch = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while winners.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Long enough for the gate to copy the participants again and answer from the copy.
        tokio::time::sleep(Duration::from_millis(LEASE_MS * 5)).await;
        stop.store(true, Ordering::Relaxed);
    };
    let (lanes, ()) = tokio::join!(futures::future::join_all(crowd), watch);
    for lane in lanes {
        lane?;
    }
    assert_eq!(winners.load(Ordering::Relaxed), 1, "one unit came back");
    let won = winner
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone()
        .context("a winner")?;
    let answered_by_gate = running.metric(gated).await?;

    let verdict = running.verify(&env, coupon, 3).await?;
    assert_eq!(verdict.issued, 3, "ann, ben and {won}");
    assert!(answered_by_gate >= 1.0);
    eprintln!(
        "{} answers, {answered_by_gate} from the gate; winner {won}; {:?}",
        verdict.answers, verdict.by_code
    );
    Ok(())
}

/// The race the quarantine closes, with two API processes: API `a` trusts a copy of the
/// participants for its lease; a unit comes back; a newcomer takes it through API `b`, then asks
/// `a`, whose copy lacks them. Redis offers the unit again only after every lease ended, so `a`
/// has stopped trusting its copy by then, and the newcomer hears their own request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_given_back_reaches_a_newcomer_only_after_other_gates_stopped_trusting()
-> anyhow::Result<()> {
    // A long lease: the newcomer would ask well within it, were the unit offered at once.
    const LEASE_MS: u64 = 1500;
    let mut env = TestEnv::new(1).await?;
    env.settings.sold_out_gate.lease_ms = LEASE_MS;
    let a = Running::api_only(&env).await?;
    let b = Running::api_only(&env).await?;
    let coupon = a.create_coupon(2).await?;
    let store = ReservationStore::new(&env.settings.redis)?;
    let (ghost, ghost_request, reserved) = ghost_reservation(&store, coupon).await?;
    assert_eq!(reserved, Reservation::Accepted { remaining: 1 });
    assert_eq!(a.issue_final(coupon, "ann").await?.0, 202);

    // `a` hears SOLD_OUT and soon answers from its copy (ghost, ann).
    let gated = "couponrush_api_sold_out_gate_answers_total";
    let late = AtomicUsize::new(0);
    eventually(
        Duration::from_secs(5),
        "answers from a's gate",
        async || {
            let user = format!("late-{}", late.fetch_add(1, Ordering::Relaxed));
            // Final: ann's hold is settled a few ms after her 202.
            let (status, body) = a.issue_final(coupon, &user).await.ok()?;
            assert_eq!(
                (status, &body["status"]),
                (409, &json!("SOLD_OUT")),
                "{body}"
            );
            (a.metric(gated).await.ok()? > 0.0).then_some(())
        },
    )
    .await?;

    // ghost's unit comes back; nick takes it through `b` as soon as Redis offers it, then asks
    // `a` at once, and again.
    let released_at = std::time::Instant::now();
    assert!(store.release(coupon, &ghost, ghost_request).await?);
    let (status, body) = b.issue_final(coupon, "nick").await?;
    assert_eq!(status, 202, "{body}");
    let waited = released_at.elapsed();
    for _ in 0..5 {
        let (status, body) = a.issue(coupon, "nick").await?;
        assert_eq!(
            (status, &body["code"]),
            (409, &json!("ALREADY_REQUESTED")),
            "nick, holding the unit, asked the API whose copy lacks him: {body}"
        );
    }
    eprintln!("nick's 202 came {waited:?} after the release (lease {LEASE_MS} ms)");
    b.stop().await?;
    a.stop().await
}
