//! `replay-dlq` re-drives dead letters once their cause is fixed: filtered by reason, with a
//! dry run that changes nothing, committing so a second pass finds nothing new, and the
//! consumer's idempotency making a replay of an issued request harmless.

use std::time::Duration;

use couponrush_domain::{CouponId, UserId};
use couponrush_e2e::{Running, batch};
use couponrush_storage::{CouponStore, Database, IssuanceStore};
use couponrush_testkit::{TestEnv, eventually, issue_request};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Replays the letters dead-lettered for an unknown coupon; the summary.
async fn replay_unknown_coupons(env: &TestEnv) -> anyhow::Result<serde_json::Value> {
    let args = [
        "replay-dlq",
        "--reason",
        "unknown-coupon",
        "--output",
        "json",
    ];
    Ok(batch(env, &args).await?.summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_by_reason_once_the_cause_is_fixed() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;
    let first = running.create_coupon(5).await?;
    // A request for the coupon that will be created next, sent before it exists (an event
    // published before its coupon reached MySQL), and a message nobody can read.
    let next = CouponId::new(first.get() + 1)?;
    // It carries a caller's trace context: the dead letter and the replay keep it, so the
    // request stays in its trace.
    let early = issue_request(next, "early")?;
    env.produce_with_headers("early", &early.encode(), &[("traceparent", TRACEPARENT)])
        .await?;
    env.produce_raw("garbage", b"not json").await?;
    let letters = env
        .read_topic(&env.settings.kafka.dlq_topic, 2, Duration::from_secs(30))
        .await?;
    assert_eq!(letters.len(), 2);
    let early_letter = letters
        .iter()
        .find(|l| l.key.as_deref() == Some(&b"early"[..]))
        .ok_or_else(|| anyhow::anyhow!("no dead letter for the early request"))?;
    assert_eq!(
        early_letter.headers.get("traceparent").map(String::as_str),
        Some(TRACEPARENT)
    );

    // The cause is fixed: the coupon now exists.
    assert_eq!(running.create_coupon(5).await?, next);

    // A dry run counts and changes nothing.
    let dry = batch(
        &env,
        &[
            "replay-dlq",
            "--reason",
            "unknown-coupon",
            "--dry-run",
            "--output",
            "json",
        ],
    )
    .await?
    .summary;
    assert_eq!(
        (&dry["read"], &dry["replayed"], &dry["skipped"]),
        (&2.into(), &1.into(), &1.into()),
        "{dry}"
    );
    let db = Database::new(&env.settings.mysql)?;
    let coupons = CouponStore::new(db.clone());
    assert_eq!(coupons.issued_count(next).await?, 0);

    let replayed = replay_unknown_coupons(&env).await?;
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    let topic = env
        .read_topic(&env.settings.kafka.topic, 3, Duration::from_secs(30))
        .await?;
    let copy = topic
        .iter()
        .find(|m| m.headers.contains_key("dlq-replayed-from"))
        .ok_or_else(|| anyhow::anyhow!("no replayed copy on the issue topic: {topic:?}"))?;
    assert_eq!(
        copy.headers.get("traceparent").map(String::as_str),
        Some(TRACEPARENT),
        "the replayed request stays in its trace"
    );
    assert_eq!(replayed["by_reason"]["undecodable"], 1);
    eventually(
        Duration::from_secs(30),
        "the replayed request issued",
        async || (coupons.issued_count(next).await.ok()? == 1).then_some(()),
    )
    .await?;
    let held = IssuanceStore::new(db)
        .find(next, &UserId::parse("early")?)
        .await?;
    assert_eq!(
        held.and_then(|h| h.request_id),
        Some(early.request_id),
        "issued under its original request id"
    );

    // Committed: the same filter finds nothing new.
    let again = replay_unknown_coupons(&env).await?;
    assert_eq!(
        (&again["read"], &again["replayed"]),
        (&0.into(), &0.into()),
        "{again}"
    );

    // Replaying everything (its own group) re-sends both: the issued request changes nothing,
    // the unreadable one is dead-lettered again with the replay's origin.
    let all = batch(&env, &["replay-dlq", "--output", "json"])
        .await?
        .summary;
    assert_eq!(all["replayed"], 2, "{all}");
    let letters = env
        .read_topic(&env.settings.kafka.dlq_topic, 3, Duration::from_secs(30))
        .await?;
    let resent = letters
        .iter()
        .find(|l| l.headers.contains_key("dlq-replayed-from"))
        .ok_or_else(|| anyhow::anyhow!("no re-dead-lettered replay among {letters:?}"))?;
    assert_eq!(resent.payload.as_deref(), Some(&b"not json"[..]));
    assert_eq!(
        resent.headers.get("dlq-reason").map(String::as_str),
        Some("undecodable")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(coupons.issued_count(next).await?, 1, "still exactly one");

    running.stop().await?;
    Ok(())
}
