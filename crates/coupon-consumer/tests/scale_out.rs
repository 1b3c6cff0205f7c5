//! Three consumer processes share a three-partition topic; one is SIGKILLed mid-stream. The
//! survivors take its partitions over, its uncommitted batch is re-delivered, and MySQL ends
//! exact: every request issued once, none twice, stock decremented by exactly that; with the
//! API in front, everything users were told holds (the ledger's invariants).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use couponrush_domain::CouponSpec;
use couponrush_storage::{CouponStore, Database};
use couponrush_testkit::{TestEnv, closed_port, eventually, issue_request};
use time::OffsetDateTime;

const BINARY: &str = env!("CARGO_BIN_EXE_coupon-consumer");

/// A consumer process, killed if the test ends early so no orphan keeps consuming.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
}

fn spawn_consumer(env: &TestEnv, name: &str) -> anyhow::Result<Member> {
    let log = std::env::temp_dir().join(format!("couponrush-{}-{name}.log", env.id));
    let mut command = Command::new(Path::new(BINARY));
    for (key, _) in std::env::vars() {
        if key.starts_with("COUPON__") {
            command.env_remove(key);
        }
    }
    command
        .envs(env.env_vars())
        .env(
            "COUPON__CONSUMER__OPS_BIND",
            format!("127.0.0.1:{}", closed_port()?),
        )
        .env("COUPON__CONSUMER__BATCH_SIZE", "100")
        .env("COUPON__KAFKA__SESSION_TIMEOUT_MS", "6000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    Ok(Member(command.spawn()?))
}

/// SIGTERM, then the exit status within `bound`.
fn terminate(child: &mut Child, bound: Duration) -> anyhow::Result<std::process::ExitStatus> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        anyhow::ensure!(
            started.elapsed() < bound,
            "consumer still running {bound:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_loses_nothing_and_duplicates_nothing() -> anyhow::Result<()> {
    const USERS: usize = 3000;
    let env = TestEnv::new(3).await?;
    let db = Database::new(&env.settings.mysql)?;
    let coupons = CouponStore::new(db);
    let now = OffsetDateTime::now_utc();
    let coupon = coupons
        .create(&CouponSpec {
            name: "scale-out".into(),
            discount_amount: 1000,
            total_quantity: 5000,
            issue_starts_at: now - time::Duration::hours(1),
            issue_ends_at: now + time::Duration::hours(1),
            expiry_days: 7,
            rate_limit: Default::default(),
        })
        .await?
        .id;

    let mut consumers = vec![
        spawn_consumer(&env, "c1")?,
        spawn_consumer(&env, "c2")?,
        spawn_consumer(&env, "c3")?,
    ];

    let messages: Vec<(String, Vec<u8>)> = (0..USERS)
        .map(|i| {
            let user = format!("user-{i}");
            let request = issue_request(coupon, &user)?;
            Ok((user, request.encode()))
        })
        .collect::<anyhow::Result<_>>()?;
    // First half now; the member dies mid-stream; the second half after.
    let (first, second) = messages.split_at(USERS / 2);
    env.produce_many(first).await?;
    eventually(Duration::from_secs(60), "consumers at work", async || {
        (coupons.issued_count(coupon).await.ok()? >= 300).then_some(())
    })
    .await?;
    // SIGKILL: no commit, no goodbye to the group.
    drop(consumers.remove(0));
    env.produce_many(second).await?;

    let issued = eventually(
        Duration::from_secs(90),
        "every request issued",
        async || {
            let n = coupons.issued_count(coupon).await.ok()?;
            (n >= u64::try_from(USERS).ok()?).then_some(n)
        },
    )
    .await?;
    // Give stragglers (re-deliveries) a moment to prove they change nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(issued, 3000);
    assert_eq!(coupons.issued_count(coupon).await?, 3000, "none twice");
    let record = coupons.find(coupon).await?;
    assert_eq!(
        record.map(|c| c.available_quantity),
        Some(2000),
        "stock exact"
    );

    // Graceful shutdown: finish, commit, leave, exit 0 within the bound.
    for consumer in &mut consumers {
        let status = terminate(&mut consumer.0, Duration::from_secs(20))?;
        assert!(status.success(), "{status}");
    }
    Ok(())
}

/// The same kill with people in front: 3,000 of them through the API for 2,000 coupons, one
/// of three consumer processes SIGKILLed mid-drain, and every answer they got still true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_drain_contradicts_no_answer() -> anyhow::Result<()> {
    const STOCK: u32 = 2_000;
    let env = TestEnv::new(3).await?;
    let running = couponrush_e2e::Running::api_only(&env).await?;
    let coupon = running.create_coupon(STOCK).await?;
    let coupons = CouponStore::new(Database::new(&env.settings.mysql)?);
    let mut consumers = vec![
        spawn_consumer(&env, "k1")?,
        spawn_consumer(&env, "k2")?,
        spawn_consumer(&env, "k3")?,
    ];
    let users: Vec<String> = (0..3_000).map(|i| format!("fan-{i}")).collect();
    let (first, second) = users.split_at(1_500);
    running
        .drive(coupon, first, 32, 20, Duration::from_millis(200))
        .await;
    eventually(Duration::from_secs(60), "consumers at work", async || {
        (coupons.issued_count(coupon).await.ok()? >= 300).then_some(())
    })
    .await?;
    drop(consumers.remove(0));
    running
        .drive(coupon, second, 32, 20, Duration::from_millis(200))
        .await;

    let verdict = running.verify(&env, coupon, STOCK).await?;
    eprintln!("killed mid-drain: {verdict:?}");
    assert_eq!(verdict.issued, usize::try_from(STOCK)?, "{verdict:?}");
    for consumer in &mut consumers {
        let status = terminate(&mut consumer.0, Duration::from_secs(20))?;
        assert!(status.success(), "{status}");
    }
    running.stop().await?;
    Ok(())
}
