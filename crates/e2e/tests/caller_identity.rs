//! Who may call (issue 14, identity): the API started in each `auth.mode` and asked over HTTP
//! as clients would, with tokens signed by keys the test generates as an identity provider
//! would (`openssl genpkey`).
//!
//! - jwt: a valid token issues; expired, not-yet-valid, wrong issuer, wrong audience, wrong
//!   key, `alg: none`, an HMAC token made with the public key, a tampered payload, a missing
//!   claim each get 401 naming the reason (and are counted by reason).
//! - The keys file is re-read when it changes: a new key works without a restart; a broken
//!   file is refused and the keys in use stay.
//! - gateway-header: a request from outside `auth.trusted_proxies` gets 403.
//! - The status endpoint answers only the caller's own user, or the admin/support token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use couponrush_config::{AuthMode, JwtAlgorithm, Secret};
use couponrush_domain::CouponId;
use couponrush_e2e::Running;
use couponrush_testkit::{TestEnv, eventually};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.couponrush.test";
const AUDIENCE: &str = "couponrush-api";
const SUPPORT_TOKEN: &str = "support-token-0123456789";

/// A scratch directory of this test's keys, removed on drop.
struct KeyDir(PathBuf);

impl KeyDir {
    fn new(name: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "couponrush-auth-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// A new private key (`rsa` or `ec`), as PEM.
    fn private_key(&self, kind: &str, name: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.path(&format!("{name}.pem"));
        let options: &[&str] = match kind {
            "rsa" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            _ => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        };
        let out = Command::new("openssl")
            .arg("genpkey")
            .args(options)
            .arg("-out")
            .arg(&path)
            .output()?;
        anyhow::ensure!(out.status.success(), "openssl genpkey: {out:?}");
        Ok(std::fs::read(&path)?)
    }

    /// The public half of a private key file written by [`Self::private_key`], as PEM.
    fn public_key(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let out = Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(self.path(&format!("{name}.pem")))
            .output()?;
        anyhow::ensure!(out.status.success(), "openssl pkey: {out:?}");
        Ok(out.stdout)
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Claims a valid token for `user` carries.
fn claims(user: &str) -> Value {
    json!({ "sub": user, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now() })
}

fn sign(
    alg: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
    claims: &Value,
) -> anyhow::Result<String> {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    Ok(jsonwebtoken::encode(&header, claims, key)?)
}

/// A JWKS document of the public halves of `keys` (`(kid, private key)`).
fn jwks(keys: &[(&str, &EncodingKey)]) -> anyhow::Result<String> {
    let mut set = JwkSet { keys: Vec::new() };
    for (kid, key) in keys {
        let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256)?;
        jwk.common.key_id = Some((*kid).to_owned());
        set.keys.push(jwk);
    }
    Ok(serde_json::to_string(&set)?)
}

fn jwt_env(env: &mut TestEnv, alg: JwtAlgorithm, keys_file: Option<&Path>) {
    let auth = &mut env.settings.auth;
    auth.mode = AuthMode::Jwt;
    auth.jwt_algorithm = alg;
    auth.jwt_keys_file = keys_file
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    auth.jwt_issuer = ISSUER.to_owned();
    auth.jwt_audience = AUDIENCE.to_owned();
    auth.jwt_leeway_s = 5;
    auth.jwt_reload_interval_ms = 200;
    auth.support_token = Secret::new(SUPPORT_TOKEN);
}

/// One issue request with `bearer` (and the user header, if any): status and body.
async fn issue_as(
    running: &Running,
    coupon: CouponId,
    bearer: Option<&str>,
    user_header: Option<&str>,
) -> anyhow::Result<(u16, Value, Option<String>)> {
    let mut request = running
        .client
        .post(format!("{}/coupons/{coupon}/issue", running.base));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(user) = user_header {
        request = request.header("userId", user);
    }
    let response = request.send().await?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((
        response.status().as_u16(),
        response.json().await?,
        challenge,
    ))
}

async fn status_as(
    running: &Running,
    coupon: CouponId,
    user: &str,
    bearer: Option<&str>,
    user_header: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = running.client.get(format!(
        "{}/coupons/{coupon}/issuances/{user}",
        running.base
    ));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(user) = user_header {
        request = request.header("userId", user);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

fn replace_payload(token: &str, claims: &Value) -> anyhow::Result<String> {
    let parts: Vec<&str> = token.split('.').collect();
    anyhow::ensure!(parts.len() == 3, "not a JWT");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
    Ok(format!("{}.{payload}.{}", parts[0], parts[2]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_mode_issues_only_for_valid_tokens() -> anyhow::Result<()> {
    let keys = KeyDir::new("rs256")?;
    let idp = EncodingKey::from_rsa_pem(&keys.private_key("rsa", "idp")?)?;
    let intruder = EncodingKey::from_rsa_pem(&keys.private_key("rsa", "intruder")?)?;
    let jwks_file = keys.path("jwks.json");
    std::fs::write(&jwks_file, jwks(&[("idp-1", &idp)])?)?;
    let mut env = TestEnv::new(1).await?;
    jwt_env(&mut env, JwtAlgorithm::RS256, Some(&jwks_file));
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(100).await?;

    let valid = sign(Algorithm::RS256, Some("idp-1"), &idp, &claims("alice"))?;
    let (status, body, _) = issue_as(&running, coupon, Some(&valid), None).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("QUEUED")),
        "{body}"
    );

    // No token: a plain challenge.
    let (status, body, challenge) = issue_as(&running, coupon, None, Some("bob")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "{body}"
    );
    assert_eq!(challenge.as_deref(), Some("Bearer"));

    let public_pem = keys.public_key("idp")?;
    let mut refused = vec![
        (
            "expired",
            sign(
                Algorithm::RS256,
                Some("idp-1"),
                &idp,
                &json!({"sub": "bob", "iss": ISSUER, "aud": AUDIENCE, "exp": now() - 60}),
            )?,
            "expired",
        ),
        (
            "not valid yet",
            sign(
                Algorithm::RS256,
                Some("idp-1"),
                &idp,
                &json!({"sub": "bob", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() + 300}),
            )?,
            "not_yet_valid",
        ),
        (
            "wrong audience",
            sign(
                Algorithm::RS256,
                Some("idp-1"),
                &idp,
                &json!({"sub": "bob", "iss": ISSUER, "aud": "another-api", "exp": now() + 600}),
            )?,
            "audience",
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::RS256,
                Some("idp-1"),
                &idp,
                &json!({"sub": "bob", "iss": "https://evil.test", "aud": AUDIENCE, "exp": now() + 600}),
            )?,
            "issuer",
        ),
        (
            "missing user claim",
            sign(
                Algorithm::RS256,
                Some("idp-1"),
                &idp,
                &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}),
            )?,
            "missing_claim",
        ),
        (
            "no expiry",
            sign(
                Algorithm::RS256,
                Some("idp-1"),
                &idp,
                &json!({"sub": "bob", "iss": ISSUER, "aud": AUDIENCE}),
            )?,
            "missing_claim",
        ),
        (
            "wrong key under the right kid",
            sign(Algorithm::RS256, Some("idp-1"), &intruder, &claims("bob"))?,
            "signature",
        ),
        (
            "unknown kid",
            sign(
                Algorithm::RS256,
                Some("intruder-1"),
                &intruder,
                &claims("bob"),
            )?,
            "unknown_key",
        ),
        (
            "HS256 signed with the public key",
            sign(
                Algorithm::HS256,
                Some("idp-1"),
                &EncodingKey::from_secret(&public_pem)?,
                &claims("bob"),
            )?,
            "algorithm",
        ),
        (
            "tampered payload",
            replace_payload(&valid, &claims("mallory"))?,
            "signature",
        ),
        (
            "user claim not a user id",
            sign(
                Algorithm::RS256,
                Some("idp-1"),
                &idp,
                &claims("not a user!"),
            )?,
            "bad_user_id",
        ),
        ("not a JWT", "abc.def".to_owned(), "malformed"),
    ];
    // `alg: none`, unsigned, as an attacker would write it.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("bob"))?);
    refused.push((
        "alg none",
        format!("{none_header}.{none_claims}."),
        "algorithm",
    ));

    for (case, token, reason) in &refused {
        let (status, body, challenge) = issue_as(&running, coupon, Some(token), None).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("UNAUTHENTICATED")),
            "{case}: {body}"
        );
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{case}: {challenge}"
        );
        let counted = running
            .metric(&format!(
                "couponrush_api_auth_rejections_total{{reason=\"{reason}\"}}"
            ))
            .await?;
        assert!(counted >= 1.0, "{case}: reason {reason} not counted");
    }
    // Nothing refused took stock: only alice is queued.
    let stats = running
        .admin(
            reqwest::Method::GET,
            &format!("/admin/coupons/{coupon}/stats"),
            None,
        )
        .await?;
    assert_eq!(stats.1["redis"]["accepted"], 1, "{}", stats.1);

    // A user header naming someone else than the token is refused, not silently overridden.
    let bob = sign(Algorithm::RS256, Some("idp-1"), &idp, &claims("bob"))?;
    let (status, body, _) = issue_as(&running, coupon, Some(&bob), Some("carol")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("USER_MISMATCH")),
        "{body}"
    );
    let (status, body, _) = issue_as(&running, coupon, Some(&bob), Some("bob")).await?;
    assert_eq!(status, 202, "{body}");

    // The status endpoint: own user only, with the token; support reads any, cannot issue.
    let (status, body) = status_as(&running, coupon, "alice", Some(&valid), None).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = status_as(&running, coupon, "alice", Some(&bob), None).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOT_YOUR_REQUEST")),
        "{body}"
    );
    let (status, body) = status_as(&running, coupon, "alice", None, Some("alice")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "{body}"
    );
    let (status, body) = status_as(&running, coupon, "alice", Some(SUPPORT_TOKEN), None).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = issue_as(&running, coupon, Some(SUPPORT_TOKEN), Some("dave")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("SUPPORT_READ_ONLY")),
        "{body}"
    );
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_keys_reload_when_the_file_changes() -> anyhow::Result<()> {
    let keys = KeyDir::new("reload")?;
    let old = EncodingKey::from_rsa_pem(&keys.private_key("rsa", "old")?)?;
    let new = EncodingKey::from_rsa_pem(&keys.private_key("rsa", "new")?)?;
    let jwks_file = keys.path("jwks.json");
    std::fs::write(&jwks_file, jwks(&[("old", &old)])?)?;
    let mut env = TestEnv::new(1).await?;
    jwt_env(&mut env, JwtAlgorithm::RS256, Some(&jwks_file));
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let with_old = sign(Algorithm::RS256, Some("old"), &old, &claims("alice"))?;
    let with_new = sign(Algorithm::RS256, Some("new"), &new, &claims("alice"))?;
    let reads = async |token: &str| -> anyhow::Result<u16> {
        Ok(status_as(&running, coupon, "alice", Some(token), None)
            .await?
            .0)
    };
    assert_eq!(reads(&with_old).await?, 200);
    assert_eq!(reads(&with_new).await?, 401);

    // The identity provider rotates: both keys published, then the old one dropped.
    std::fs::write(&jwks_file, jwks(&[("old", &old), ("new", &new)])?)?;
    eventually(
        Duration::from_secs(10),
        "the new key accepted",
        async || (reads(&with_new).await.ok()? == 200).then_some(()),
    )
    .await?;
    assert_eq!(reads(&with_old).await?, 200);
    std::fs::write(&jwks_file, jwks(&[("new", &new)])?)?;
    eventually(Duration::from_secs(10), "the old key refused", async || {
        (reads(&with_old).await.ok()? == 401).then_some(())
    })
    .await?;

    // A broken file (a half-written copy) is refused: the keys in use stay.
    let errors_before = running
        .metric("couponrush_api_auth_key_reloads_total{outcome=\"error\"}")
        .await?;
    std::fs::write(&jwks_file, "{\"keys\": [")?;
    eventually(
        Duration::from_secs(10),
        "the broken file counted",
        async || {
            let errors = running
                .metric("couponrush_api_auth_key_reloads_total{outcome=\"error\"}")
                .await
                .ok()?;
            (errors > errors_before).then_some(())
        },
    )
    .await?;
    assert_eq!(reads(&with_new).await?, 200);
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_pem_and_hs256_secret_verify_only_their_algorithm() -> anyhow::Result<()> {
    let keys = KeyDir::new("es256")?;
    let ec_private = keys.private_key("ec", "idp")?;
    let ec = EncodingKey::from_ec_pem(&ec_private)?;
    let pem_file = keys.path("idp.pub.pem");
    std::fs::write(&pem_file, keys.public_key("idp")?)?;
    let mut env = TestEnv::new(1).await?;
    jwt_env(&mut env, JwtAlgorithm::ES256, Some(&pem_file));
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let valid = sign(Algorithm::ES256, None, &ec, &claims("alice"))?;
    assert_eq!(
        status_as(&running, coupon, "alice", Some(&valid), None)
            .await?
            .0,
        200
    );
    let hs = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef")?,
        &claims("alice"),
    )?;
    assert_eq!(
        status_as(&running, coupon, "alice", Some(&hs), None)
            .await?
            .0,
        401
    );
    running.stop().await?;

    let secret = "hs256-shared-secret-0123456789abcdef";
    let mut env = TestEnv::new(1).await?;
    jwt_env(&mut env, JwtAlgorithm::HS256, None);
    env.settings.auth.jwt_secret = Secret::new(secret);
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let valid = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(secret.as_bytes())?,
        &claims("alice"),
    )?;
    assert_eq!(
        status_as(&running, coupon, "alice", Some(&valid), None)
            .await?
            .0,
        200
    );
    let wrong_secret = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another-secret-0123456789abcdef!!")?,
        &claims("alice"),
    )?;
    assert_eq!(
        status_as(&running, coupon, "alice", Some(&wrong_secret), None)
            .await?
            .0,
        401
    );
    let es = sign(Algorithm::ES256, None, &ec, &claims("alice"))?;
    assert_eq!(
        status_as(&running, coupon, "alice", Some(&es), None)
            .await?
            .0,
        401
    );
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_header_mode_serves_only_the_trusted_proxies() -> anyhow::Result<()> {
    let mut env = TestEnv::new(1).await?;
    env.settings.auth.mode = AuthMode::GatewayHeader;
    // The test's requests come from 127.0.0.1: not the gateway's network.
    env.settings.auth.trusted_proxies = vec!["10.0.0.0/8".to_owned(), "fd00::/8".to_owned()];
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let (status, body, _) = issue_as(&running, coupon, None, Some("alice")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("UNTRUSTED_PEER")),
        "{body}"
    );
    let (status, body) = status_as(&running, coupon, "alice", None, Some("alice")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("UNTRUSTED_PEER")),
        "{body}"
    );
    assert!(
        running
            .metric("couponrush_api_auth_rejections_total{reason=\"untrusted_peer\"}")
            .await?
            >= 2.0
    );
    // The admin token acts for a user from anywhere (the smoke test does).
    let (status, body, _) =
        issue_as(&running, coupon, Some(&running.token), Some("smoke-1")).await?;
    assert_eq!(status, 202, "{body}");
    running.stop().await?;

    let mut env = TestEnv::new(1).await?;
    env.settings.auth.mode = AuthMode::GatewayHeader;
    env.settings.auth.trusted_proxies = vec!["127.0.0.1".to_owned()];
    env.settings.auth.support_token = Secret::new(SUPPORT_TOKEN);
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let (status, body, _) = issue_as(&running, coupon, None, Some("alice")).await?;
    assert_eq!(status, 202, "{body}");
    let (status, body) = status_as(&running, coupon, "alice", None, Some("alice")).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("PENDING")),
        "{body}"
    );
    let (status, body) = status_as(&running, coupon, "alice", None, Some("bob")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOT_YOUR_REQUEST")),
        "{body}"
    );
    let (status, body) = status_as(&running, coupon, "alice", None, None).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("MISSING_USER_ID")),
        "{body}"
    );
    for operator in [SUPPORT_TOKEN, running.token.as_str()] {
        let (status, body) = status_as(&running, coupon, "alice", Some(operator), None).await?;
        assert_eq!(status, 200, "{body}");
    }
    running.stop().await
}
