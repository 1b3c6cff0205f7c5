//! The run's own slice of the shared services: a database, a topic and a Redis key prefix no
//! other run uses, issuer-api's environment pointing at them, and their removal at the end.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use couponrush_config::{ENV_PREFIX, RedisSettings, Settings};
use couponrush_storage::Database;
use time::macros::format_description;

use super::Args;
use super::log;
use crate::stack::Stack;

/// Names unique to this run.
#[derive(Debug, Clone)]
pub struct Slice {
    pub run_id: String,
    pub database: String,
    pub topic: String,
    pub key_prefix: String,
    /// Scratch keys of the Lua ceiling, inside the run's prefix.
    pub lua_prefix: String,
    /// Every user id of the run starts with it (then phase, wrk thread, counter).
    pub user_tag: String,
    pub admin_token: String,
}

impl Slice {
    pub fn new(database: &str) -> anyhow::Result<Self> {
        let now = time::OffsetDateTime::now_utc();
        let pid = std::process::id();
        let stamp = now.format(format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))?;
        let run_id = format!("{stamp}-{pid}");
        let key_prefix = format!("couponrush-bench:{run_id}:");
        let mut token = [0u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut token))
            .context("read /dev/urandom for the admin token")?;
        Ok(Self {
            database: database.to_owned(),
            topic: format!("coupon-issue-bench-{run_id}"),
            lua_prefix: format!("{key_prefix}lua:"),
            key_prefix,
            user_tag: format!("b{pid}x{}", now.unix_timestamp()),
            admin_token: token.iter().map(|byte| format!("{byte:02x}")).collect(),
            run_id,
        })
    }

    /// `STACK_*` settings for `scripts/stack.sh up`: the run's database and topic, no DLQ.
    pub fn stack_settings(&self, partitions: u32) -> Vec<(&'static str, String)> {
        vec![
            ("STACK_MYSQL_DATABASE", self.database.clone()),
            ("STACK_TOPIC", self.topic.clone()),
            ("STACK_PARTITIONS", partitions.to_string()),
            ("STACK_DLQ_TOPIC", String::new()),
        ]
    }

    /// The settings the run's own clients use (those issuer-api gets, through the same loader).
    pub fn settings(&self, stack: &Stack) -> anyhow::Result<Settings> {
        let mut settings = stack.settings()?;
        settings.redis.key_prefix = self.key_prefix.clone();
        Ok(settings)
    }

    /// Redis settings for the Lua ceiling's scratch keys.
    pub fn lua_redis(&self, settings: &Settings) -> RedisSettings {
        RedisSettings {
            key_prefix: self.lua_prefix.clone(),
            ..settings.redis.clone()
        }
    }

    /// issuer-api's environment: this process's `COUPON__*` (so any can be tuned), then the
    /// stack's addresses, then the run's prefix, bind, workers, logging and admin token.
    pub fn api_env(&self, stack: &Stack, args: &Args) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .collect();
        env.extend(stack.vars().iter().cloned());
        for (key, value) in [
            ("COUPON__REDIS__KEY_PREFIX", self.key_prefix.clone()),
            ("COUPON__HTTP__BIND", args.http_bind.clone()),
            ("COUPON__HTTP__WORKERS", args.workers.to_string()),
            ("COUPON__LOG__FORMAT", "json".to_owned()),
            ("COUPON__ADMIN__TOKEN", self.admin_token.clone()),
            ("RUST_LOG", "warn".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ] {
            env.push((key.to_owned(), value));
        }
        env
    }

    /// Drops and recreates the run's database (a previous run's leftovers go).
    pub async fn fresh_database(&self, settings: &Settings) -> anyhow::Result<()> {
        log(&format!(
            "mysql: dropping and recreating database {}",
            self.database
        ));
        couponrush_testkit::drop_database(&settings.mysql).await?;
        Database::create_database_if_missing(&settings.mysql).await?;
        Ok(())
    }

    /// Deletes the run's Redis keys, topic and database. Runs on every exit path; each step
    /// is tried even if another failed, and failures are logged, not raised.
    pub async fn remove(&self, settings: &Settings) {
        for prefix in [&self.key_prefix, &self.lua_prefix] {
            let redis = RedisSettings {
                key_prefix: prefix.clone(),
                ..settings.redis.clone()
            };
            match couponrush_testkit::delete_keys(&redis).await {
                Ok(n) => log(&format!("redis: deleted {n} key(s) under prefix {prefix}")),
                Err(error) => log(&format!("redis: could not delete {prefix}*: {error:#}")),
            }
        }
        let topics = [self.topic.as_str()];
        match couponrush_messaging::delete_topics(&settings.kafka, &topics, Duration::from_secs(10))
            .await
        {
            Ok(()) => log(&format!("kafka: deleted topic {}", self.topic)),
            Err(error) => log(&format!(
                "kafka: could not delete topic {} (delete it by hand if the broker keeps it): {error}",
                self.topic
            )),
        }
        match couponrush_testkit::drop_database(&settings.mysql).await {
            Ok(()) => log(&format!("mysql: dropped database {}", self.database)),
            Err(error) => log(&format!(
                "mysql: could not drop database {}: {error}",
                self.database
            )),
        }
    }
}
