//! Test support against the real services (`scripts/stack.sh up`): every test gets its own
//! MySQL database, Redis key prefix, Kafka topic and consumer group, so tests run in parallel
//! and re-runs start clean. No mocks: if a service is down, the test fails saying which.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::{ConfigArgs, Secret, Settings};
use couponrush_storage::Database;

mod fault_proxy;
mod gate;
mod private_server;
mod topics;
pub use fault_proxy::{FaultProxy, Mode as FaultMode};
pub use gate::GatedBroker;
pub use private_server::PrivateServer;
pub use topics::{Preload, Preloaded, TopicCount, count_topic};

/// Name prefix of test databases; `scripts/test.sh` drops leftovers of interrupted runs.
pub const TEST_DATABASE_PREFIX: &str = "crt_";

/// One test's private slice of the stack.
#[derive(Debug)]
pub struct TestEnv {
    pub settings: Settings,
    pub id: String,
}

impl TestEnv {
    /// Base settings from the process environment (so CI can point at other hosts), then
    /// made private to this test: a migrated database, a key prefix, a topic with
    /// `partitions` partitions and a consumer group.
    pub async fn new(partitions: i32) -> anyhow::Result<Self> {
        let mut settings = ConfigArgs::default().load().context("test configuration")?;
        // The tail of a UUIDv7 is random (its head is the clock, shared by parallel tests).
        let id = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
        settings.mysql.database = format!("{TEST_DATABASE_PREFIX}{id}");
        settings.redis.key_prefix = format!("test:{id}:");
        settings.kafka.topic = format!("coupon-issue-{id}");
        settings.kafka.dlq_topic = format!("coupon-issue-{id}.dlq");
        settings.kafka.consumer_group = format!("coupon-issue-group-{id}");
        settings.http.bind = "127.0.0.1:0".to_owned();
        settings.consumer.ops_bind = "127.0.0.1:0".to_owned();
        settings.http.workers = 2;
        settings.admin.token = Secret::new(format!("admin-token-{id}"));
        settings.kafka.session_timeout_ms = 6000;

        Database::create_database_if_missing(&settings.mysql)
            .await
            .with_context(|| {
                format!(
                    "MySQL at {} (is scripts/stack.sh up?)",
                    settings.mysql.address()
                )
            })?;
        Database::new(&settings.mysql)?.migrate().await?;
        let env = Self { settings, id };
        env.create_topic(partitions).await?;
        Ok(env)
    }

    /// Removes the database and Redis keys (the broker keeps topics in memory only).
    pub async fn cleanup(self) -> anyhow::Result<()> {
        Database::drop_database(&self.settings.mysql).await?;
        ReservationStore::new(&self.settings.redis)?
            .delete_all()
            .await?;
        Ok(())
    }
}

/// Polls `check` every 50 ms until it yields a value or `deadline` passes.
pub async fn eventually<T>(
    deadline: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() > deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new issue request of `user` for `coupon`, as issuer-api would publish it now.
pub fn issue_request(
    coupon: couponrush_domain::CouponId,
    user: &str,
) -> anyhow::Result<couponrush_domain::IssueRequested> {
    Ok(couponrush_domain::IssueRequested::new(
        couponrush_domain::RequestId::generate(),
        coupon,
        couponrush_domain::UserId::parse(user)?,
        time::OffsetDateTime::now_utc(),
    ))
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Runs a binary with extra environment (and `COUPON__*` cleared first, so only what the test
/// sets applies), bounded by `timeout`. Returns its output.
pub fn run_binary(
    binary: &Path,
    args: &[&str],
    env: &[(&str, String)],
    timeout: Duration,
) -> anyhow::Result<Output> {
    let mut command = Command::new(binary);
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with(couponrush_config::ENV_PREFIX) {
            command.env_remove(key);
        }
    }
    command
        .env("COUPON__LOG__FORMAT", "text")
        .env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", binary.display()))?;
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if start.elapsed() > timeout {
            child.kill().ok();
            let output = child.wait_with_output()?;
            anyhow::bail!(
                "{} still running after {timeout:?}; stderr:\n{}",
                binary.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl TestEnv {
    /// The environment variables that point a binary at this test's slice of the stack.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        vec![
            ("COUPON__MYSQL__HOST", s.mysql.host.clone()),
            ("COUPON__MYSQL__PORT", s.mysql.port.to_string()),
            ("COUPON__MYSQL__USER", s.mysql.user.clone()),
            (
                "COUPON__MYSQL__PASSWORD",
                s.mysql.password.expose().to_owned(),
            ),
            ("COUPON__MYSQL__DATABASE", s.mysql.database.clone()),
            ("COUPON__REDIS__URL", s.redis.url.expose().to_owned()),
            ("COUPON__REDIS__KEY_PREFIX", s.redis.key_prefix.clone()),
            (
                "COUPON__KAFKA__BOOTSTRAP_SERVERS",
                s.kafka.bootstrap_servers.clone(),
            ),
            ("COUPON__KAFKA__TOPIC", s.kafka.topic.clone()),
            ("COUPON__KAFKA__DLQ_TOPIC", s.kafka.dlq_topic.clone()),
            (
                "COUPON__KAFKA__CONSUMER_GROUP",
                s.kafka.consumer_group.clone(),
            ),
            ("COUPON__HTTP__BIND", "127.0.0.1:0".to_owned()),
            ("COUPON__CONSUMER__OPS_BIND", "127.0.0.1:0".to_owned()),
            ("COUPON__STARTUP__PROBE_TIMEOUT_MS", "2000".to_owned()),
        ]
    }
}

/// A start-up that must be refused: what to change, and what the error must say.
#[derive(Debug)]
pub struct Refusal {
    pub name: &'static str,
    pub overrides: Vec<(&'static str, String)>,
    pub must_mention: Vec<String>,
}

impl Refusal {
    /// A dependency pointed at a loopback port where nothing listens: the incident's consumer.
    pub fn unreachable(dependency: &'static str) -> anyhow::Result<Self> {
        let port = closed_port()?;
        let address = format!("127.0.0.1:{port}");
        let overrides = match dependency {
            "Kafka" => vec![("COUPON__KAFKA__BOOTSTRAP_SERVERS", address.clone())],
            "Redis" => vec![("COUPON__REDIS__URL", format!("redis://{address}"))],
            "MySQL" => vec![
                ("COUPON__MYSQL__HOST", "127.0.0.1".to_owned()),
                ("COUPON__MYSQL__PORT", port.to_string()),
            ],
            other => anyhow::bail!("unknown dependency {other}"),
        };
        Ok(Self {
            name: dependency,
            overrides,
            must_mention: vec![format!("start-up check failed for {dependency}"), address],
        })
    }

    /// The production profile with the development defaults' loopback hosts.
    pub fn production_with_loopback() -> Self {
        let loopback = |key: &'static str, value: &str| (key, value.to_owned());
        Self {
            name: "production with loopback hosts",
            overrides: vec![
                loopback("COUPON__PROFILE", "production"),
                loopback("COUPON__ADMIN__TOKEN", "a-long-enough-admin-token"),
                loopback("COUPON__KAFKA__BOOTSTRAP_SERVERS", "localhost:9092"),
                loopback("COUPON__REDIS__URL", "redis://127.0.0.1:6379"),
                loopback("COUPON__MYSQL__HOST", "::1"),
            ],
            must_mention: [
                "kafka.bootstrap_servers (COUPON__KAFKA__BOOTSTRAP_SERVERS)",
                "redis.url (COUPON__REDIS__URL)",
                "mysql.host (COUPON__MYSQL__HOST)",
                "loopback address, refused in the production profile",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    /// Runs `binary` with `base` env plus this case's overrides; asserts it exits non-zero
    /// within a bound, and that stderr says what it must.
    pub fn assert_refused(
        &self,
        binary: &Path,
        args: &[&str],
        base: &[(&'static str, String)],
    ) -> anyhow::Result<()> {
        let mut env: Vec<(&str, String)> = base
            .iter()
            .filter(|(k, _)| !self.overrides.iter().any(|(o, _)| o == k))
            .cloned()
            .collect();
        env.extend(self.overrides.iter().cloned());
        let output = run_binary(binary, args, &env, Duration::from_secs(30))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(
            !output.status.success(),
            "{}: {} started although it must refuse; stderr:\n{stderr}",
            self.name,
            binary.display()
        );
        for needle in &self.must_mention {
            anyhow::ensure!(
                stderr.contains(needle.as_str()),
                "{}: stderr does not mention {needle:?}:\n{stderr}",
                self.name
            );
        }
        Ok(())
    }
}

impl TestEnv {
    /// Moves this test onto the broker at `address` and creates its topic there.
    pub async fn use_broker(&mut self, address: String, partitions: i32) -> anyhow::Result<()> {
        self.settings.kafka.bootstrap_servers = address;
        self.create_topic(partitions).await
    }

    /// Creates this test's topic (again, after a memory broker restarted) and waits until the
    /// broker serves its metadata.
    pub async fn create_topic(&self, partitions: i32) -> anyhow::Result<()> {
        let visible = self.ensure_topic(partitions).await?;
        anyhow::ensure!(
            usize::try_from(partitions) == Ok(visible),
            "topic {} has {visible} partitions, not {partitions}",
            self.settings.kafka.topic
        );
        Ok(())
    }

    /// Creates this test's topic unless it exists, and waits until the broker serves it;
    /// returns its partition count. A broker that came back empty may already have
    /// auto-created it (with its default partition count) for a client that kept asking.
    pub async fn ensure_topic(&self, partitions: i32) -> anyhow::Result<usize> {
        let kafka = &self.settings.kafka;
        couponrush_messaging::ensure_topic(kafka, &kafka.dlq_topic, 1, Duration::from_secs(10))
            .await
            .context("dead-letter topic")?;
        couponrush_messaging::ensure_topic(
            kafka,
            &kafka.topic,
            partitions,
            Duration::from_secs(10),
        )
        .await
        .with_context(|| {
            format!(
                "Kafka at {} (is scripts/stack.sh up?)",
                kafka.bootstrap_servers
            )
        })?;
        eventually(
            Duration::from_secs(10),
            "the new topic to be visible",
            async || {
                couponrush_messaging::probe_topic(kafka, &kafka.topic, Duration::from_secs(2))
                    .await
                    .ok()
            },
        )
        .await
    }
}

/// A message read back from a topic (dead letters, in tests).
#[derive(Debug, Clone)]
pub struct ReadMessage {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: std::collections::HashMap<String, String>,
}

impl TestEnv {
    /// Produces raw bytes onto this test's topic (as a buggy or foreign producer would) and
    /// waits for the acknowledgement.
    pub async fn produce_raw(&self, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.produce_many(&[(key.to_owned(), payload.to_vec())])
            .await
    }

    /// Produces one message with headers, of any size the broker takes (the producer's own
    /// `message.max.bytes` is raised to fit it), and waits for the acknowledgement.
    pub async fn produce_with_headers(
        &self,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let room = payload.len() + 64 * 1024;
        let producer: FutureProducer = couponrush_messaging::client_config(&self.settings.kafka)
            .set("message.max.bytes", room.to_string())
            .create()?;
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        producer
            .send(
                FutureRecord::to(&self.settings.kafka.topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        Ok(())
    }

    /// Produces many keyed messages with one producer and waits for every acknowledgement.
    pub async fn produce_many(&self, messages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = couponrush_messaging::client_config(&self.settings.kafka)
            .set("linger.ms", "5")
            .create()?;
        let sends = messages.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(&self.settings.kafka.topic)
                    .key(key.as_str())
                    .payload(payload.as_slice()),
                Duration::from_secs(10),
            )
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        }
        Ok(())
    }

    /// Reads `count` messages from the start of `topic`, within `deadline`.
    pub async fn read_topic(
        &self,
        topic: &str,
        count: usize,
        deadline: Duration,
    ) -> anyhow::Result<Vec<ReadMessage>> {
        use rdkafka::Message;
        use rdkafka::consumer::{Consumer, StreamConsumer};
        use rdkafka::message::Headers;
        let mut config = couponrush_messaging::consumer_config(&self.settings.kafka);
        config.set(
            "group.id",
            format!("reader-{}-{}", self.id, uuid::Uuid::now_v7().simple()),
        );
        let consumer: StreamConsumer = config.create()?;
        consumer.subscribe(&[topic])?;
        let mut read = Vec::new();
        let work = async {
            while read.len() < count {
                let message = consumer.recv().await?;
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value =
                                    h.value.map(String::from_utf8_lossy).unwrap_or_default();
                                (h.key.to_owned(), value.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                read.push(ReadMessage {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
            Ok::<_, anyhow::Error>(())
        };
        tokio::time::timeout(deadline, work).await.map_err(|_| {
            anyhow::anyhow!("read {} of {count} messages from {topic}", read.len())
        })??;
        Ok(read)
    }
}
