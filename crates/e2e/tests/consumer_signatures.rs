//! With `message_signing` on, the consumer issues only what issuer-api signed: messages written
//! straight to the topic unsigned, with a wrong MAC, under a key id it does not hold, or with a
//! payload changed after signing are dead-lettered with their reason and issue nothing; a
//! message signed with the previous key (a rotation in progress) is issued, as is the API's
//! own; and a replayed dead letter keeps its signature and still verifies.

use std::time::Duration;

use couponrush_config::MessageSigningSettings;
use couponrush_domain::{CouponId, IssueRequested};
use couponrush_e2e::{Running, batch, consumer_metric};
use couponrush_messaging::{MessageSigner, SIGNATURE_HEADER};
use couponrush_storage::{Database, IssuanceStore};
use couponrush_testkit::{TestEnv, eventually, issue_request};

const CURRENT: &str = "e2e-current-key-0123456789abcdef0123456789";
const PREVIOUS: &str = "e2e-previous-key-fedcba9876543210fedcba98";

/// A test slice whose API signs with `k2` and whose consumer also accepts `k1`.
async fn signed_env() -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::new(1).await?;
    env.settings.message_signing =
        MessageSigningSettings::new("k2", CURRENT, Some(("k1", PREVIOUS)));
    env.settings.validate()?;
    Ok(env)
}

/// Writes `request` straight to the topic, keyed by its user as the API does, with
/// `signature` (if any) as its signature header.
async fn produce(
    env: &TestEnv,
    request: &IssueRequested,
    signature: Option<&str>,
) -> anyhow::Result<()> {
    produce_keyed(env, request.user_id.as_str(), request, signature).await
}

/// [`produce`] under another message key.
async fn produce_keyed(
    env: &TestEnv,
    key: &str,
    request: &IssueRequested,
    signature: Option<&str>,
) -> anyhow::Result<()> {
    let mut headers = vec![("schema-version", "1")];
    headers.extend(signature.map(|s| (SIGNATURE_HEADER, s)));
    env.produce_with_headers(key, &request.encode(), &headers)
        .await
}

/// The signature `signer` gives `request` on this test's topic.
fn signature(env: &TestEnv, signer: &MessageSigner, request: &IssueRequested) -> String {
    signer
        .signature(
            &env.settings.kafka.topic,
            Some(request.user_id.as_str().as_bytes()),
            &request.encode(),
        )
        .unwrap_or_default()
}

async fn holders(env: &TestEnv, coupon: CouponId) -> anyhow::Result<Vec<String>> {
    let store = IssuanceStore::new(Database::new(&env.settings.mysql)?);
    let Some(holders) = store.holders(coupon).await? else {
        anyhow::bail!("coupon {coupon} not in MySQL");
    };
    let mut users: Vec<String> = holders.holders.into_keys().collect();
    users.sort();
    Ok(users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_messages_signed_with_a_key_the_consumer_holds_are_issued() -> anyhow::Result<()> {
    let env = signed_env().await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let current = MessageSigner::new(&env.settings.message_signing);

    // No signature at all: what any client with write access to the topic could send.
    produce(&env, &issue_request(coupon, "unsigned")?, None).await?;
    // A signature header whose MAC is not the key's.
    let zeros = format!("k2:{}", "00".repeat(32));
    produce(&env, &issue_request(coupon, "wrong-mac")?, Some(&zeros)).await?;
    // Properly formed, under a key id the consumer does not hold.
    let stranger = MessageSigner::new(&MessageSigningSettings::new(
        "k9",
        "a-key-nobody-shares-0123456789abcdef",
        None,
    ));
    let forged = issue_request(coupon, "unknown-key")?;
    produce(&env, &forged, Some(&signature(&env, &stranger, &forged))).await?;
    // Signed with the real key, then the payload changed (another user) on the way; key and
    // signature header as the API sent them.
    let genuine = issue_request(coupon, "genuine")?;
    let tampered = IssueRequested {
        user_id: couponrush_domain::UserId::parse("tampered")?,
        ..genuine.clone()
    };
    let genuine_signature = signature(&env, &current, &genuine);
    produce_keyed(&env, "genuine", &tampered, Some(&genuine_signature)).await?;
    // Signed by an API still on the previous key: accepted during the rotation.
    let old_api = MessageSigner::new(&MessageSigningSettings::new("k1", PREVIOUS, None));
    let rotated = issue_request(coupon, "rotated")?;
    produce(&env, &rotated, Some(&signature(&env, &old_api, &rotated))).await?;
    // And the ordinary path: the API signs with the current key.
    assert_eq!(running.issue(coupon, "via-api").await?.0, 202);

    eventually(
        Duration::from_secs(30),
        "the signed requests issued",
        async || (holders(&env, coupon).await.ok()?.len() == 2).then_some(()),
    )
    .await?;
    let letters = env
        .read_topic(&env.settings.kafka.dlq_topic, 4, Duration::from_secs(30))
        .await?;
    let mut reasons: Vec<(String, &str)> = letters
        .iter()
        .map(|l| {
            let user = String::from_utf8_lossy(l.key.as_deref().unwrap_or_default()).into_owned();
            (
                user,
                l.headers.get("dlq-reason").map_or("?", String::as_str),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("genuine".to_owned(), "BAD_SIGNATURE"),
            ("unknown-key".to_owned(), "UNKNOWN_KEY_ID"),
            ("unsigned".to_owned(), "UNSIGNED"),
            ("wrong-mac".to_owned(), "BAD_SIGNATURE"),
        ]
    );
    for letter in &letters {
        let error = letter.headers.get("dlq-error").cloned().unwrap_or_default();
        assert!(
            !error.contains(CURRENT) && !error.contains(PREVIOUS),
            "{error}"
        );
    }
    let consumer = running
        .consumer
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no consumer"))?;
    for (reason, count) in [
        ("UNSIGNED", 1.0),
        ("BAD_SIGNATURE", 2.0),
        ("UNKNOWN_KEY_ID", 1.0),
    ] {
        let series = format!("coupon_consumer_dead_letters_total{{reason=\"{reason}\"}}");
        assert_eq!(
            consumer_metric(&running.client, consumer, &series).await,
            Some(count),
            "{series}"
        );
    }
    // Nothing of the refused messages reached MySQL, even after the batch behind them.
    assert_eq!(holders(&env, coupon).await?, ["rotated", "via-api"]);

    // Replaying the refused letters re-sends them unchanged: refused again, still not issued.
    let replay = batch(&env, &["replay-dlq", "--output", "json"])
        .await?
        .summary;
    assert_eq!(replay["replayed"], 4, "{replay}");
    let again = env
        .read_topic(&env.settings.kafka.dlq_topic, 8, Duration::from_secs(30))
        .await?;
    assert_eq!(again.len(), 8);
    assert_eq!(holders(&env, coupon).await?, ["rotated", "via-api"]);
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_signed_message_keeps_its_signature_and_is_issued() -> anyhow::Result<()> {
    let env = signed_env().await?;
    let running = Running::start(&env).await?;
    let first = running.create_coupon(5).await?;
    // Signed by the API's key, for a coupon MySQL does not have yet: dead-lettered as
    // unknown-coupon, signature header and all.
    let next = CouponId::new(first.get() + 1)?;
    let early = issue_request(next, "early")?;
    let current = MessageSigner::new(&env.settings.message_signing);
    let signed = signature(&env, &current, &early);
    produce(&env, &early, Some(&signed)).await?;
    let letters = env
        .read_topic(&env.settings.kafka.dlq_topic, 1, Duration::from_secs(30))
        .await?;
    let header = |name: &str| letters[0].headers.get(name).map(String::as_str);
    assert_eq!(header("dlq-reason"), Some("unknown-coupon"));
    assert_eq!(header(SIGNATURE_HEADER), Some(signed.as_str()));

    assert_eq!(running.create_coupon(5).await?, next);
    let replay = batch(
        &env,
        &[
            "replay-dlq",
            "--reason",
            "unknown-coupon",
            "--output",
            "json",
        ],
    )
    .await?
    .summary;
    assert_eq!(replay["replayed"], 1, "{replay}");
    eventually(
        Duration::from_secs(30),
        "the replayed request issued",
        async || (holders(&env, next).await.ok()? == ["early"]).then_some(()),
    )
    .await?;
    running.stop().await?;
    Ok(())
}
