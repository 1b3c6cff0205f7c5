//! Poison messages never hold a partition: a message too large for the dead-letter topic goes
//! there truncated, a flood of garbage is dead-lettered in batches, a schema this build does
//! not read is refused unread, and a request id reused for another user issues nothing.

use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_domain::{CouponId, IssueRequested, UserId};
use couponrush_e2e::{Running, consumer_metric, ops_get};
use couponrush_storage::{Database, IssuanceStore};
use couponrush_testkit::{TestEnv, eventually, issue_request};

async fn holders(env: &TestEnv, coupon: CouponId) -> anyhow::Result<Vec<String>> {
    let store = IssuanceStore::new(Database::new(&env.settings.mysql)?);
    let holders = store.holders(coupon).await?.context("coupon in MySQL")?;
    let mut users: Vec<String> = holders.holders.into_keys().collect();
    users.sort();
    Ok(users)
}

async fn issued(env: &TestEnv, coupon: CouponId, count: usize) -> anyhow::Result<()> {
    eventually(Duration::from_secs(30), "issued", async || {
        (holders(env, coupon).await.ok()?.len() == count).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_for_the_dead_letter_topic_goes_truncated() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(5).await?;
    // Larger than the dead-letter producer's `message.max.bytes` (librdkafka's 1,000,000):
    // it used to be retried for ever, holding the partition.
    let huge = vec![b'x'; 1_200_000];
    env.produce_with_headers("u-huge", &huge, &[("trace", "kept")])
        .await?;
    assert_eq!(running.issue(coupon, "behind").await?.0, 202);
    issued(&env, coupon, 1).await?;

    let letters = env
        .read_topic(&env.settings.kafka.dlq_topic, 1, Duration::from_secs(30))
        .await?;
    let letter = &letters[0];
    assert_eq!(letter.key.as_deref(), Some(&b"u-huge"[..]));
    assert_eq!(letter.payload.as_ref().map(Vec::len), Some(1024));
    let header = |name: &str| letter.headers.get(name).map(String::as_str);
    assert_eq!(header("dlq-reason"), Some("undecodable"));
    assert_eq!(header("dlq-original-size"), Some("1200000"));
    assert_eq!(header("trace"), Some("kept"));
    assert!(
        header("dlq-sha256").is_some_and(|h| h.len() == 64),
        "{:?}",
        letter.headers
    );
    // A truncated letter holds only the first bytes: replaying it would re-send a cut
    // message. It is counted, not replayed, and left for a person.
    let replay = couponrush_e2e::batch(&env, &["replay-dlq", "--output", "json"]).await?;
    assert_eq!(
        (
            &replay.summary["truncated"],
            &replay.summary["replayed"],
            replay.needs_attention
        ),
        (&serde_json::json!(1), &serde_json::json!(0), true),
        "{}",
        replay.summary
    );
    running.verify(&env, coupon, 5).await?;
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_flood_is_dead_lettered_in_batches() -> anyhow::Result<()> {
    const GARBAGE: usize = 2000;
    let env = TestEnv::new(1).await?;
    let mut running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let garbage: Vec<(String, Vec<u8>)> = (0..GARBAGE)
        .map(|i| (format!("g-{i}"), format!("garbage {i}").into_bytes()))
        .collect();
    env.produce_many(&garbage).await?;
    for user in ["a", "b", "c"] {
        assert_eq!(running.issue(coupon, user).await?.0, 202);
    }
    // The whole flood waits on the topic, the good requests behind it.
    let started = Instant::now();
    running.consumer = Some(coupon_consumer::start(env.settings.clone()).await?);
    let consumer = running.consumer.as_ref().context("a consumer")?;
    // Joining the group is not draining: time from the assignment on.
    eventually(Duration::from_secs(30), "an assignment", async || {
        let (status, _) = ops_get(&running.client, consumer, "/health/ready").await?;
        (status == 200).then_some(())
    })
    .await?;
    let assigned_after = started.elapsed();
    let series = "coupon_consumer_dead_letters_total{reason=\"undecodable\"}";
    let letters = eventually(Duration::from_secs(30), "dead letters", async || {
        consumer_metric(&running.client, consumer, series)
            .await
            .filter(|n| *n >= 2000.0)
    })
    .await?;
    let drained_after = started.elapsed();
    issued(&env, coupon, 3).await?;
    eprintln!(
        "garbage flood: {GARBAGE} dead-lettered and the good requests among them issued \
         {:.1?} after the consumer was assigned the partition ({:.1?} after it started)",
        drained_after.saturating_sub(assigned_after),
        drained_after
    );
    assert_eq!(letters, 2000.0);
    running.verify(&env, coupon, 10).await?;
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_schemas_and_reused_request_ids_issue_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let v1 = [("schema-version", "1")];

    let alice = issue_request(coupon, "alice")?;
    let reused = |user: &str| -> anyhow::Result<IssueRequested> {
        Ok(IssueRequested {
            user_id: UserId::parse(user)?,
            ..alice.clone()
        })
    };
    // In one batch: alice's request, then bob's with alice's request id.
    env.produce_with_headers("alice", &alice.encode(), &v1)
        .await?;
    env.produce_with_headers("bob", &reused("bob")?.encode(), &v1)
        .await?;
    // A readable payload under a header that declares a schema this build does not read.
    let carol = issue_request(coupon, "carol")?;
    env.produce_with_headers("carol", &carol.encode(), &[("schema-version", "2")])
        .await?;
    env.produce_with_headers("dave", &issue_request(coupon, "dave")?.encode(), &v1)
        .await?;
    issued(&env, coupon, 2).await?;
    // Later, in a batch of its own: alice's request id once more, for erin.
    env.produce_with_headers("erin", &reused("erin")?.encode(), &v1)
        .await?;
    env.produce_with_headers("fay", &issue_request(coupon, "fay")?.encode(), &v1)
        .await?;
    issued(&env, coupon, 3).await?;
    assert_eq!(holders(&env, coupon).await?, ["alice", "dave", "fay"]);

    let letters = env
        .read_topic(&env.settings.kafka.dlq_topic, 3, Duration::from_secs(30))
        .await?;
    let mut reasons: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            let key = String::from_utf8_lossy(l.key.as_deref().unwrap_or_default()).into_owned();
            (
                key,
                l.headers.get("dlq-reason").cloned().unwrap_or_default(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("bob", "request-id-conflict"),
            ("carol", "unsupported-schema"),
            ("erin", "request-id-conflict"),
        ]
        .map(|(k, r)| (k.to_owned(), r.to_owned()))
    );
    // No ledger check: every message here was written around the API and Redis on purpose.
    running.stop().await?;
    Ok(())
}
