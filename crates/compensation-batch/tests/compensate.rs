//! `compensate`, run as the real binary against MySQL: exactly one compensation coupon per
//! eligible user whatever happens to the runs (re-run, two at once, killed midway), a total
//! equal to what was granted, and clear refusals of bad input.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use couponrush_domain::{
    CouponId, CouponSpec, IssueRequested, ParticipationOutcome, ParticipationRecorded, RequestId,
    UserId,
};
use couponrush_storage::{
    CompensationStore, CompensationWindow, CouponStore, Database, IssuanceStore,
};
use couponrush_testkit::{TestEnv, eventually, run_binary};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;

const BINARY: &str = env!("CARGO_BIN_EXE_compensation-batch");
const WINDOW_FROM: OffsetDateTime = datetime!(2025-12-25 10:00:00 UTC);
const WINDOW_UNTIL: OffsetDateTime = datetime!(2025-12-25 10:45:00 UTC);

/// A source event in MySQL: `participants` users took part in the window (`p00000`...), the
/// first `holders` of them hold the source coupon, and a few more took part outside the
/// window. Returns the source coupon.
async fn seed(env: &TestEnv, participants: usize, holders: usize) -> anyhow::Result<CouponId> {
    let db = Database::new(&env.settings.mysql)?;
    let source = CouponStore::new(db.clone())
        .create(&CouponSpec {
            name: "Christmas 5,000 KRW".to_owned(),
            discount_amount: 5000,
            total_quantity: 10_000,
            issue_starts_at: WINDOW_FROM,
            issue_ends_at: WINDOW_UNTIL,
            expiry_days: 30,
            rate_limit: Default::default(),
        })
        .await?
        .id;
    let at = |i: usize| -> anyhow::Result<OffsetDateTime> {
        Ok(WINDOW_FROM + Duration::from_millis(u64::try_from(i)? * 7))
    };
    let mut log = Vec::new();
    let mut issued = Vec::new();
    for i in 0..participants {
        let user = UserId::parse(&format!("p{i:05}"))?;
        if i < holders {
            issued.push(IssueRequested::new(
                RequestId::generate(),
                source,
                user.clone(),
                at(i)?,
            ));
        }
        // Every participant tried at least once more and was told it was sold out.
        log.push(ParticipationRecorded::new(
            RequestId::generate(),
            source,
            user,
            ParticipationOutcome::SoldOut,
            at(i)?,
        ));
    }
    for (user, when) in [
        ("early-bird", WINDOW_FROM - Duration::from_millis(1)),
        ("late-comer", WINDOW_UNTIL),
    ] {
        log.push(ParticipationRecorded::new(
            RequestId::generate(),
            source,
            UserId::parse(user)?,
            ParticipationOutcome::SoldOut,
            when,
        ));
    }
    IssuanceStore::new(db)
        .persist_batch(&issued, &log, WINDOW_FROM)
        .await?;
    Ok(source)
}

fn args(source: CouponId, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "compensate",
        "--source-coupon",
        &source.to_string(),
        "--from",
        "2025-12-25T19:00:00+09:00",
        "--until",
        "2025-12-25T10:45:00Z",
        "--output",
        "json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

const NEW_COUPON: [&str; 6] = [
    "--name",
    "Sorry 3,000 KRW",
    "--discount",
    "3000",
    "--expiry-days",
    "14",
];

fn compensate(env: &TestEnv, args: &[String]) -> anyhow::Result<(Output, Value)> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_binary(
        Path::new(BINARY),
        &args,
        &env.env_vars(),
        Duration::from_secs(60),
    )?;
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    Ok((output, json))
}

fn ok(output: &Output) -> anyhow::Result<()> {
    anyhow::ensure!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Starts a compensation creating [`NEW_COUPON`] in the background (runs that must overlap, or
/// be killed), with `batch_size` users per transaction.
fn spawn(
    env: &TestEnv,
    source: CouponId,
    batch_size: &str,
    stdio: fn() -> Stdio,
) -> anyhow::Result<Child> {
    let mut command = Command::new(BINARY);
    command
        .args(args(
            source,
            &[&["--batch-size", batch_size][..], &NEW_COUPON].concat(),
        ))
        .env("COUPON__LOG__FORMAT", "text")
        .stdout(stdio())
        .stderr(stdio());
    for (key, value) in env.env_vars() {
        command.env(key, value);
    }
    Ok(command.spawn()?)
}

/// Rows held and total of the compensation coupon.
async fn granted(env: &TestEnv, coupon: CouponId) -> anyhow::Result<(u64, u32)> {
    let coupons = CouponStore::new(Database::new(&env.settings.mysql)?);
    let total = coupons
        .find(coupon)
        .await?
        .map(|c| c.spec.total_quantity)
        .ok_or_else(|| anyhow::anyhow!("coupon {coupon} missing"))?;
    Ok((coupons.issued_count(coupon).await?, total))
}

fn coupon_of(json: &Value) -> anyhow::Result<CouponId> {
    let id = json["compensation_coupon_id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no compensation_coupon_id in {json}"))?;
    Ok(CouponId::new(id)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensates_each_eligible_user_once_and_a_rerun_issues_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let source = seed(&env, 300, 120).await?;

    let (output, dry) = compensate(
        &env,
        &args(source, &[&["--dry-run"][..], &NEW_COUPON].concat()),
    )?;
    ok(&output)?;
    assert_eq!(dry["status"], "DRY_RUN");
    assert_eq!(dry["eligible"], 180, "{dry}");
    assert_eq!(dry["would_issue"], 180);
    assert_eq!(dry["issued_now"], 0);
    assert_eq!(
        dry["compensation_coupon_id"],
        Value::Null,
        "nothing created"
    );
    assert_eq!(
        CouponStore::new(Database::new(&env.settings.mysql)?)
            .list()
            .await?
            .len(),
        1
    );

    let (output, first) = compensate(
        &env,
        &args(source, &[&["--batch-size", "50"][..], &NEW_COUPON].concat()),
    )?;
    ok(&output)?;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    assert_eq!(first["eligible"], 180);
    assert_eq!(first["already_compensated"], 0);
    assert_eq!(first["issued_now"], 180);
    assert_eq!(first["compensation_coupon_created"], true);
    let coupon = coupon_of(&first)?;
    assert_eq!(granted(&env, coupon).await?, (180, 180));

    // Holders of the source and those outside the window got nothing.
    let issuances = IssuanceStore::new(Database::new(&env.settings.mysql)?);
    for user in ["p00000", "p00119", "early-bird", "late-comer"] {
        assert!(
            issuances
                .find(coupon, &UserId::parse(user)?)
                .await?
                .is_none(),
            "{user}"
        );
    }
    for user in ["p00120", "p00299"] {
        let held = issuances.find(coupon, &UserId::parse(user)?).await?;
        let held = held.ok_or_else(|| anyhow::anyhow!("{user} not compensated"))?;
        assert_eq!(held.expires_at - held.issued_at, time::Duration::days(14));
    }

    let (output, again) = compensate(&env, &args(source, &NEW_COUPON))?;
    ok(&output)?;
    assert_eq!(again["issued_now"], 0, "{again}");
    assert_eq!(again["already_compensated"], 180);
    assert_eq!(again["compensation_coupon_created"], false);
    assert_eq!(
        coupon_of(&again)?,
        coupon,
        "the same coupon, not a second one"
    );
    assert_eq!(granted(&env, coupon).await?, (180, 180));

    // Text output for people says the same.
    let text_args: Vec<String> = args(source, &NEW_COUPON)
        .into_iter()
        .map(|a| if a == "json" { "text".to_owned() } else { a })
        .collect();
    let (output, _) = compensate(&env, &text_args)?;
    ok(&output)?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("issued now               0"), "{text}");
    assert!(text.contains("already compensated      180"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_grant_each_user_once() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let source = seed(&env, 1000, 100).await?;
    let run = || spawn(&env, source, "20", Stdio::piped);
    let (a, b) = (run()?, run()?);
    let (a, b) = (a.wait_with_output()?, b.wait_with_output()?);
    ok(&a)?;
    ok(&b)?;
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&a.stdout)?,
        serde_json::from_slice(&b.stdout)?,
    );
    let coupon = coupon_of(&a)?;
    assert_eq!(coupon_of(&b)?, coupon, "both runs agreed on one coupon");
    let issued = |v: &Value| v["issued_now"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(issued(&a) + issued(&b), 900, "{a}\n{b}");
    assert_eq!(granted(&env, coupon).await?, (900, 900));
    assert_eq!(
        CouponStore::new(Database::new(&env.settings.mysql)?)
            .list()
            .await?
            .len(),
        2
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_midway_is_finished_by_the_next() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let source = seed(&env, 2000, 0).await?;
    let mut child = spawn(&env, source, "1", Stdio::null)?;

    let compensations = CompensationStore::new(Database::new(&env.settings.mysql)?);
    let window = CompensationWindow {
        from: WINDOW_FROM,
        until: WINDOW_UNTIL,
    };
    let coupon = eventually(Duration::from_secs(30), "the first grants", async || {
        let coupon = compensations.find(source, window).await.ok()??;
        (granted(&env, coupon.id).await.ok()?.0 > 0).then_some(coupon.id)
    })
    .await?;
    child.kill()?;
    child.wait()?;
    let (held, total) = granted(&env, coupon).await?;
    assert!(held < 2000, "killed before the end ({held} granted)");
    assert_eq!(
        u64::from(total),
        held,
        "every committed batch counted, nothing more"
    );

    let (output, resumed) = compensate(&env, &args(source, &NEW_COUPON))?;
    ok(&output)?;
    assert_eq!(resumed["already_compensated"], held, "{resumed}");
    assert_eq!(resumed["issued_now"], 2000 - held);
    assert_eq!(granted(&env, coupon).await?, (2000, 2000));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_changes_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let source = seed(&env, 10, 0).await?;
    let (output, _) = compensate(&env, &args(source, &NEW_COUPON))?;
    ok(&output)?;

    let refusals: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "compensate",
                "--source-coupon",
                &source.to_string(),
                "--from",
                "2025-12-25T11:00:00Z",
                "--until",
                "2025-12-25T10:00:00Z",
                "--coupon",
                "1",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            "must be after --from",
        ),
        (args(source, &["--name", "x"]), "--discount"),
        (
            args(source, &["--coupon", "7", "--name", "x"]),
            "cannot be used with",
        ),
        (
            vec![
                "compensate",
                "--source-coupon",
                "1",
                "--from",
                "yesterday",
                "--until",
                "now",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            "RFC 3339",
        ),
        (
            args(
                source,
                &["--name", "   ", "--discount", "1", "--expiry-days", "1"],
            ),
            "name",
        ),
        (
            args(
                source,
                &["--name", "x", "--discount", "0", "--expiry-days", "1"],
            ),
            "discount",
        ),
        (
            args(CouponId::new(999_999)?, &NEW_COUPON),
            "source coupon 999999 does not exist",
        ),
        (
            args(source, &["--coupon", &source.to_string()]),
            "cannot be the source coupon",
        ),
        (
            args(source, &["--coupon", "999999"]),
            "coupon 999999 does not exist",
        ),
        (
            args(
                source,
                &[
                    "--name",
                    "Another",
                    "--discount",
                    "3000",
                    "--expiry-days",
                    "14",
                ],
            ),
            "already compensated for this window",
        ),
        (
            args(source, &[&["--batch-size", "0"][..], &NEW_COUPON].concat()),
            "batch-size",
        ),
    ];
    for (args, expected) in refusals {
        let (output, _) = compensate(&env, &args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{args:?}: wanted {expected:?} in\n{stderr}"
        );
    }
    let coupons = CouponStore::new(Database::new(&env.settings.mysql)?)
        .list()
        .await?;
    assert_eq!(coupons.len(), 2, "no coupon created by a refused run");
    assert_eq!(granted(&env, coupons[1].id).await?, (10, 10));
    Ok(())
}
