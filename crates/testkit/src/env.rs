//! One test's private slice of the stack, removed again when the test ends.

use anyhow::Context;
use couponrush_config::{ConfigArgs, RedisMode, Secret, Settings};

use crate::database_template::TestDatabase;
use crate::{RedisKeys, TEST_DATABASE_PREFIX, TEST_KEY_PREFIX};

/// One test's private slice of the stack. Dropping it drops its database and deletes its
/// Redis keys, where they were made even if the test pointed `settings` elsewhere since, and
/// also when the test failed or panicked. The broker's topics stay: tansu keeps them in memory
/// only, and deleting a topic under one of the test's clients that is still shutting down
/// risks librdkafka's crash on a forgotten topic (see `gate.rs`).
#[derive(Debug)]
pub struct TestEnv {
    pub settings: Settings,
    pub id: String,
    // Each removes what it owns when dropped.
    _database: TestDatabase,
    _keys: RedisKeys,
}

impl TestEnv {
    /// Base settings from the process environment (so CI can point at other hosts), then
    /// made private to this test: a migrated database (a clone of the template), a key prefix,
    /// a topic with `partitions` partitions and a consumer group.
    pub async fn new(partitions: i32) -> anyhow::Result<Self> {
        let mut settings = ConfigArgs::default().load().context("test configuration")?;
        // The tail of a UUIDv7 is random (its head is the clock, shared by parallel tests).
        let id = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
        settings.mysql.database = format!("{TEST_DATABASE_PREFIX}{id}");
        settings.redis.key_prefix = format!("{TEST_KEY_PREFIX}{id}:");
        settings.kafka.topic = format!("coupon-issue-{id}");
        settings.kafka.dlq_topic = format!("coupon-issue-{id}.dlq");
        settings.kafka.consumer_group = format!("coupon-issue-group-{id}");
        settings.http.bind = "127.0.0.1:0".to_owned();
        settings.consumer.ops_bind = "127.0.0.1:0".to_owned();
        settings.http.workers = 2;
        settings.admin.token = Secret::new(format!("admin-token-{id}"));
        settings.kafka.session_timeout_ms = 6000;
        // Tests send a whole crowd, and a user's many retries, from 127.0.0.1: the abuse
        // limits would refuse them. The tests of those limits turn them on.
        settings.rate_limit.enabled = false;

        let keys = RedisKeys::new(&settings.redis)?;
        let database = TestDatabase::create(&settings.mysql).await?;
        let env = Self {
            settings,
            id,
            _database: database,
            _keys: keys,
        };
        env.create_topic(partitions).await?;
        Ok(env)
    }

    /// The environment variables that point a binary at this test's slice of the stack.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let mut vars = vec![
            ("COUPON__MYSQL__HOST", s.mysql.host.clone()),
            ("COUPON__MYSQL__PORT", s.mysql.port.to_string()),
            ("COUPON__MYSQL__USER", s.mysql.user.clone()),
            (
                "COUPON__MYSQL__PASSWORD",
                s.mysql.password.expose().to_owned(),
            ),
            ("COUPON__MYSQL__DATABASE", s.mysql.database.clone()),
            ("COUPON__REDIS__URL", s.redis.url.expose().to_owned()),
            (
                "COUPON__REDIS__MODE",
                match s.redis.mode {
                    RedisMode::Standalone => "standalone",
                    RedisMode::Cluster => "cluster",
                }
                .to_owned(),
            ),
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
            (
                "COUPON__RATE_LIMIT__ENABLED",
                s.rate_limit.enabled.to_string(),
            ),
        ];
        if s.redis.mode == RedisMode::Cluster {
            vars.push((
                "COUPON__REDIS__CLUSTER_NODES",
                s.redis.cluster_nodes.expose().to_owned(),
            ));
        }
        vars
    }
}
