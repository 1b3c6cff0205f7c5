//! Redis with an ACL user instead of the open `default` user (issue 14, backends): a private
//! redis-server whose `default` user is off lets in only `couponrush`, confined to the
//! environment's key prefix and kept from the dangerous commands (FLUSHALL, CONFIG, KEYS, ...).
//! The API and the consumer do everything an event needs through that user, named in the
//! URL (`redis://couponrush:PASSWORD@host:port`), and a wrong password stops start-up naming
//! Redis without printing the password.

use couponrush_config::Secret;
use couponrush_e2e::Running;
use couponrush_testkit::{PrivateServer, TestEnv};

const USER: &str = "couponrush";
const PASSWORD: &str = "acl-Password-7f3c9a";

/// A private Redis that admits only [`USER`], on `env`'s key prefix, and `env` pointed at it
/// with `password`.
async fn acl_redis(env: &mut TestEnv, password: &str) -> anyhow::Result<PrivateServer> {
    let keys = format!("~{}*", env.settings.redis.key_prefix);
    let redis =
        PrivateServer::redis_with_acl_user(USER, PASSWORD, &[&keys, "+@all", "-@dangerous"])
            .await?;
    env.settings.redis.url = Secret::new(format!("redis://{USER}:{password}@{}", redis.address()));
    Ok(redis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_confined_to_the_prefix_runs_a_whole_event() -> anyhow::Result<()> {
    let mut env = TestEnv::new(1).await?;
    let redis = acl_redis(&mut env, PASSWORD).await?;
    let running = Running::start(&env).await?;
    // Both in MySQL, marked ISSUED in Redis by the consumer through the same user, nobody told
    // anything untrue.
    running.two_issued_then_sold_out(&env).await?;
    // The confinement is real: the same user may not touch a key outside the prefix, nor run
    // a dangerous command. (So the event above stayed inside both.)
    for command in [&["SET", "outside-the-prefix", "1"][..], &["FLUSHALL"]] {
        let answer = redis_cli(&redis, command)?;
        assert!(answer.contains("NOPERM"), "{command:?}: {answer}");
    }
    Ok(())
}

/// `redis-cli` as [`USER`] against `redis`: its answer (stdout and stderr).
fn redis_cli(redis: &PrivateServer, command: &[&str]) -> anyhow::Result<String> {
    let address = redis.address();
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("no port in {address}"))?;
    let output = std::process::Command::new("redis-cli")
        .args(["-h", host, "-p", port, "--user", USER, "--pass", PASSWORD])
        .arg("--no-auth-warning")
        .args(command)
        .output()?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_stops_start_up_without_printing_it() -> anyhow::Result<()> {
    let mut env = TestEnv::new(1).await?;
    let wrong = "wrong-Password-4d1e";
    let _redis = acl_redis(&mut env, wrong).await?;
    let refused = match Running::api_only(&env).await {
        Ok(_) => anyhow::bail!("the API started with a wrong Redis password"),
        Err(error) => format!("{error:#}"),
    };
    assert!(refused.contains("Redis"), "{refused}");
    assert!(
        !refused.contains(wrong),
        "the password is printed: {refused}"
    );
    assert!(!refused.contains(PASSWORD), "{refused}");
    Ok(())
}
