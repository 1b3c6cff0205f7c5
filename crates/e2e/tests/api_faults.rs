//! What the API tells users while the broker or Redis misbehaves, and what happens next: no
//! answer is ever contradicted. Private brokers and Redis servers are frozen (SIGSTOP) or
//! killed; the machine's shared services are never touched.

use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_domain::{CouponId, UserId};
use couponrush_e2e::{Running, batch};
use couponrush_testkit::{PrivateServer, TestEnv, eventually};
use serde_json::{Value, json};

async fn status_of(running: &Running, coupon: CouponId, user: &str) -> anyhow::Result<Value> {
    let (_, body) = running.status(coupon, user).await?;
    Ok(serde_json::from_str(&body)?)
}

/// Polls the status endpoint until `user` is ISSUED (20 s at most); that answer.
async fn until_issued(running: &Running, coupon: CouponId, user: &str) -> anyhow::Result<Value> {
    eventually(Duration::from_secs(20), "the request issued", async || {
        let status = status_of(running, coupon, user).await.ok()?;
        (status["status"] == "ISSUED").then_some(status)
    })
    .await
}

/// A test on a private broker (so it can be frozen) with a short publish timeout.
async fn env_on(broker: &PrivateServer) -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::new(1).await?;
    env.use_broker(broker.address(), 1).await?;
    env.settings.kafka.publish_timeout_ms = 1500;
    Ok(env)
}

/// The incident's other half. A publish the broker never acknowledged may still be in the
/// topic, so the user is told UNCONFIRMED (with the request id and where to follow it), keeps
/// the place, and the request is published again until acknowledged. Meanwhile nobody else is
/// reserved stock that could not be published, and after the broker returns the producer
/// serves again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_publish_keeps_its_place_and_is_published_later() -> anyhow::Result<()> {
    let broker = PrivateServer::tansu().await?;
    let env = env_on(&broker).await?;
    let mut running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(3).await?;
    let redis = ReservationStore::new(&env.settings.redis)?;

    broker.freeze()?;
    let (status, body) = running.issue(coupon, "unlucky").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("UNCONFIRMED")),
        "{body}"
    );
    let request_id = body["requestId"].as_str().context("requestId")?.to_owned();
    assert_eq!(
        body["statusUrl"],
        json!(format!("/coupons/{coupon}/issuances/unlucky"))
    );
    let counters = redis.counters(coupon).await?.context("loaded")?;
    assert_eq!(
        (counters.stock, counters.participants),
        (2, 1),
        "place kept"
    );
    let pending = status_of(&running, coupon, "unlucky").await?;
    assert_eq!(
        (&pending["status"], &pending["requestId"]),
        (&json!("PENDING"), &json!(request_id))
    );

    // The producer is known not to publish now: refused at once, nothing reserved.
    let (status, body) = running.issue(coupon, "second").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{body}"
    );
    let counters = redis.counters(coupon).await?.context("loaded")?;
    assert_eq!((counters.stock, counters.participants), (2, 1));
    let (ready, body) = running.get("/health/ready").await?;
    assert_eq!(ready, 503, "{body}");

    broker.thaw()?;
    let thawed = Instant::now();
    let (status, body) = eventually(
        Duration::from_secs(15),
        "a 202 after the stall",
        async || {
            let answer = running.issue(coupon, "second").await.ok()?;
            (answer.0 != 503).then_some(answer)
        },
    )
    .await?;
    assert_eq!(status, 202, "{body}");
    eprintln!("first 202 {:?} after the broker resumed", thawed.elapsed());
    eventually(Duration::from_secs(10), "readiness back", async || {
        (running.get("/health/ready").await.ok()?.0 == 200).then_some(())
    })
    .await?;
    eventually(
        Duration::from_secs(15),
        "the unconfirmed request published",
        async || {
            let published = running
                .metric("couponrush_api_issue_resolutions_total{outcome=\"published\"}")
                .await
                .ok()?;
            (published >= 1.0).then_some(())
        },
    )
    .await?;
    assert_eq!(
        running.metric("couponrush_api_issue_unresolved ").await?,
        0.0
    );

    // The first user is still told the truth about the same request.
    let (status, body) = running.issue(coupon, "unlucky").await?;
    assert_eq!(
        (status, &body["status"], &body["requestId"]),
        (409, &json!("PENDING"), &json!(request_id))
    );

    // A consumer issues it under that request id (the topic may hold it twice: the stalled
    // broker may have written the first copy too).
    running.start_consumer(&env).await?;
    let issued = until_issued(&running, coupon, "unlucky").await?;
    assert_eq!(issued["requestId"], json!(request_id), "{issued}");
    running.verify(&env, coupon, 3).await?;
    running.stop().await?;
    Ok(())
}

/// A broker restarted (empty, its topic recreated by the operator) does not know the API's
/// idempotent producer any more (UNKNOWN_PRODUCER_ID, fenced): the API replaces its producer
/// and serves 202 again within seconds, without a restart. What the empty broker lost (an
/// accepted request and its participation record, published before the restart) is the
/// runbook's: `reconcile --repair` publishes the request again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_is_served_again_without_restarting_the_api() -> anyhow::Result<()> {
    let mut broker = PrivateServer::tansu().await?;
    let env = env_on(&broker).await?;
    let mut running = Running::api_only(&env).await?;
    // Before the restart on one coupon, after it on another: the ledger checks the second.
    let lost = running.create_coupon(1).await?;
    let coupon = running.create_coupon(100).await?;
    assert_eq!(running.issue(lost, "before").await?.0, 202);

    broker.kill();
    broker.resume().await?;
    env.ensure_topic(1).await?;
    let back = Instant::now();
    let mut tries = 0;
    eventually(
        Duration::from_secs(10),
        "a 202 after the restart",
        async || {
            tries += 1;
            let (status, _) = running
                .issue(coupon, &format!("after-{tries}"))
                .await
                .ok()?;
            (status == 202).then_some(())
        },
    )
    .await?;
    eprintln!(
        "202 again {:?} after the topic was back ({tries} tries); producer rebuilds {}",
        back.elapsed(),
        running
            .metric("couponrush_api_kafka_producer_rebuilds_total{producer=\"issue\"}")
            .await?
    );
    eventually(Duration::from_secs(10), "readiness back", async || {
        (running.get("/health/ready").await.ok()?.0 == 200).then_some(())
    })
    .await?;
    running.start_consumer(&env).await?;
    running.verify(&env, coupon, 100).await?;

    let id = lost.to_string();
    batch(
        &env,
        &["reconcile", "--coupon", &id, "--grace-ms", "0", "--repair"],
    )
    .await?;
    let issued = until_issued(&running, lost, "before").await?;
    eprintln!("lost with the broker, repaired: {issued}");
    running.stop().await?;
    Ok(())
}

/// Stock held by a publish that is not decided yet is not "sold out": the last unit might
/// come back. Once that publish is decided (here: unconfirmed, so the unit stays with its
/// user), the answer is SOLD_OUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_held_by_an_undecided_publish_is_not_sold_out() -> anyhow::Result<()> {
    let broker = PrivateServer::tansu().await?;
    let env = env_on(&broker).await?;
    let running = std::sync::Arc::new(Running::api_only(&env).await?);
    let coupon = running.create_coupon(1).await?;
    let redis = ReservationStore::new(&env.settings.redis)?;

    broker.freeze()?;
    let first = tokio::spawn({
        let running = running.clone();
        async move { running.issue(coupon, "first").await }
    });
    eventually(Duration::from_secs(5), "the unit reserved", async || {
        let counters = redis.counters(coupon).await.ok()??;
        (counters.participants == 1).then_some(())
    })
    .await?;
    let (status, body) = running.issue(coupon, "second").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("STOCK_HELD")),
        "{body}"
    );
    let (status, body) = first.await??;
    assert_eq!((status, body["code"].as_str()), (503, Some("UNCONFIRMED")));
    // Decided holds are cleared in batches every few milliseconds: until then STOCK_HELD.
    let (status, body) = running.issue_final(coupon, "second").await?;
    assert_eq!(
        (status, &body["status"]),
        (409, &json!("SOLD_OUT")),
        "{body}"
    );
    broker.thaw()?;
    let mut running = std::sync::Arc::into_inner(running).context("no other handle")?;
    running.start_consumer(&env).await?;
    running.verify(&env, coupon, 1).await?;
    running.stop().await?;
    Ok(())
}

/// A Redis call that got no answer may still run when Redis resumes. The user is told
/// UNCONFIRMED; the request is voided by compare-and-set on its id, so it ends holding
/// nothing whatever Redis ran, and a retry is decided afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_call_without_answer_is_voided_once_redis_answers() -> anyhow::Result<()> {
    let redis_server = PrivateServer::redis().await?;
    let mut env = TestEnv::new(1).await?;
    env.settings.redis.url =
        couponrush_config::Secret::new(format!("redis://{}", redis_server.address()));
    env.settings.redis.timeout_ms = 300;
    let mut running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(2).await?;
    let redis = ReservationStore::new(&env.settings.redis)?;

    redis_server.freeze()?;
    let (status, body) = running.issue(coupon, "patient").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("UNCONFIRMED")),
        "{body}"
    );
    assert!(body["requestId"].is_string(), "{body}");
    redis_server.thaw()?;

    let thawed = Instant::now();
    eventually(Duration::from_secs(10), "the request voided", async || {
        let counters = redis.counters(coupon).await.ok()??;
        let user = UserId::parse("patient").ok()?;
        let state = redis.state(coupon, &user).await.ok()?;
        (counters.stock == 2 && counters.participants == 0 && state.is_none()).then_some(())
    })
    .await?;
    eventually(Duration::from_secs(10), "the void applied", async || {
        let voided = running
            .metric("couponrush_api_issue_resolutions_total{outcome=\"voided\"}")
            .await
            .ok()?;
        (voided == 1.0).then_some(())
    })
    .await?;
    eprintln!("voided {:?} after Redis resumed", thawed.elapsed());
    let status = status_of(&running, coupon, "patient").await?;
    assert_eq!(status["status"], json!("NOT_REQUESTED"), "{status}");
    let (code, body) = running.issue(coupon, "patient").await?;
    assert_eq!(code, 202, "{body}");
    running.start_consumer(&env).await?;
    running.verify(&env, coupon, 2).await?;
    running.stop().await?;
    Ok(())
}

/// An empty broker restart must not bring the issue topic back with the broker's default
/// partition count because a client asked for its metadata; and the API, seeing its topic
/// gone, stops accepting (certainly unpublished, nothing kept) instead of producing into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_creates_the_topic_on_an_empty_broker() -> anyhow::Result<()> {
    let mut broker = PrivateServer::tansu().await?;
    let env = env_on(&broker).await?;
    let mut running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(1000).await?;

    broker.kill();
    broker.resume().await?;
    let kafka = &env.settings.kafka;
    let mut answers = Vec::new();
    let refusing = eventually(Duration::from_secs(10), "the API to refuse", async || {
        let (status, body) = running
            .issue(coupon, &format!("u{}", answers.len()))
            .await
            .ok()?;
        answers.push(status);
        (status == 503 && body["code"] == json!("UNAVAILABLE")).then_some(())
    })
    .await;
    eprintln!("answers after the empty restart: {answers:?}");
    refusing?;
    let (ready, body) = running.get("/health/ready").await?;
    assert_eq!(ready, 503, "{body}");
    assert!(body.contains(&kafka.topic), "{body}");
    for _ in 0..10 {
        let (status, _) = running.issue(coupon, "late").await?;
        assert_eq!(status, 503);
    }
    let probe =
        couponrush_messaging::probe_topic(kafka, &kafka.topic, Duration::from_secs(2)).await;
    assert!(probe.is_err(), "the topic came back by itself: {probe:?}");

    // The operator recreates the topic: the refusals' participation records, held by the API
    // meanwhile, reach the log, and nobody told 503 holds anything.
    env.ensure_topic(1).await?;
    running.start_consumer(&env).await?;
    running.verify(&env, coupon, 1000).await?;
    running.stop().await?;
    Ok(())
}
