//! One isolated run against the stack (demo, benchmarks, checks): its own database, topics,
//! consumer group and Redis key prefixes, so it never sees an earlier run's data nor touches the
//! tests' or a developer's. Names are made in [`names`], the services come from
//! `scripts/stack.sh` (through [`Stack`]), and everything else uses the project's own code: the
//! storage crate creates and migrates the database, the messaging crate creates and deletes
//! topics, testkit deletes the run's keys and drops its database.
//!
//! ```text
//! let names = Isolation::unique("demo", "couponrush_demo".into(), 3);
//! let env = RunEnv::up(&state_dir, names).await?;   // stack.sh up + this run's names
//! env.recreate_database().await?;                    // drop, create, migrate
//! env.create_topics().await?;
//! ... start binaries with env.vars_with(...) ...
//! env.cleanup(Cleanup { keys: true, topics: true, database: false, stack: true }).await;
//! ```

mod names;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use couponrush_config::{RedisSettings, Settings};
use couponrush_storage::Database;
pub use names::{Isolation, check_database_name, random_token};

use crate::binaries::workspace_root;
use crate::signals;
use crate::stack::Stack;

/// How long a topic administration call may take.
const KAFKA_ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`RunEnv::cleanup`] removes besides stopping the stack services the run started.
#[derive(Debug, Clone, Copy)]
pub struct Cleanup {
    /// Every Redis key under the run's prefix and its scratch prefixes.
    pub keys: bool,
    /// The run's topics (those of its names and those [`RunEnv::create_topic`] made).
    pub topics: bool,
    /// The run's database.
    pub database: bool,
    /// The stack services this run started (`false`: leave them running for the next run).
    pub stack: bool,
}

impl Cleanup {
    /// Everything the run made, or (`keep`) nothing of it; the stack services this run
    /// started are stopped either way.
    pub fn all_unless(keep: bool) -> Self {
        Self {
            keys: !keep,
            topics: !keep,
            database: !keep,
            stack: true,
        }
    }
}

/// The stack with this run's names applied: [`RunEnv::vars_with`] for the binaries it starts,
/// [`RunEnv::settings`] for the code it runs in-process.
#[derive(Debug)]
pub struct RunEnv {
    stack: Stack,
    /// The shared state directory's services (never stopped by a run).
    shared: bool,
    names: Isolation,
    settings: Settings,
    /// Topics made with [`RunEnv::create_topic`], deleted with the run's.
    extra_topics: Mutex<Vec<String>>,
}

impl RunEnv {
    /// `scripts/stack.sh up` with its state in `state_dir` (so [`RunEnv::cleanup`] stops only
    /// what this run started) and this run's database and topics, then the run's group and key
    /// prefix on top. Any `COUPON__*` variable of the caller reaches the binaries as well (a
    /// person trying a setting: `stack.sh up` passes it through), unless the run sets it.
    pub async fn up(state_dir: &Path, names: Isolation) -> anyhow::Result<Self> {
        Self::start(state_dir, names, false).await
    }

    /// [`RunEnv::up`] on the shared state directory (`.stack`, what a developer's
    /// `scripts/stack.sh up` uses): its services are left running for everyone.
    pub async fn up_shared(names: Isolation) -> anyhow::Result<Self> {
        Self::start(&workspace_root().join(".stack"), names, true).await
    }

    async fn start(state_dir: &Path, names: Isolation, shared: bool) -> anyhow::Result<Self> {
        let mut stack_settings = vec![("STACK_MYSQL_DATABASE", names.database.clone())];
        if let Some(topic) = &names.topic {
            stack_settings.extend([
                ("STACK_TOPIC", topic.clone()),
                ("STACK_PARTITIONS", names.partitions.to_string()),
                (
                    "STACK_DLQ_TOPIC",
                    names.dlq_topic.clone().unwrap_or_default(),
                ),
            ]);
        }
        let mut stack = Stack::up(state_dir, &stack_settings).await?;
        stack.set("COUPON__KAFKA__CONSUMER_GROUP", &names.consumer_group);
        if let Some(dlq) = &names.dlq_topic {
            stack.set("COUPON__KAFKA__DLQ_TOPIC", dlq);
        }
        stack.set("COUPON__REDIS__KEY_PREFIX", &names.key_prefix);
        // Plain text in the log files a person reads.
        stack.set("COUPON__LOG__FORMAT", "text");
        // A run's load comes from this one machine, a crowd of users from one address: the
        // per-client abuse limit would refuse it. `bench api` turns the limits on where it
        // measures their cost.
        stack.set("COUPON__RATE_LIMIT__ENABLED", "false");
        let settings = match stack.settings() {
            Ok(settings) => settings,
            Err(error) => {
                // Nothing of the run exists yet, but stack.sh may have started services.
                if !shared && let Err(down) = stack.down().await {
                    eprintln!("[xtask] stopping the stack services this run started: {down:#}");
                }
                return Err(error);
            }
        };
        Ok(Self {
            stack,
            shared,
            names,
            settings,
            extra_topics: Mutex::default(),
        })
    }

    /// The run's binaries and its own Kafka calls (topics) use the broker at `bootstrap`
    /// instead of the stack's: a private broker the run can fault without touching anyone's.
    pub fn use_broker(&mut self, bootstrap: &str) -> anyhow::Result<()> {
        self.stack
            .set("COUPON__KAFKA__BOOTSTRAP_SERVERS", bootstrap);
        self.settings = self.stack.settings()?;
        Ok(())
    }

    pub fn names(&self) -> &Isolation {
        &self.names
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The run's Redis settings with another key prefix (a scratch prefix of the run).
    pub fn redis_under(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            key_prefix: prefix.to_owned(),
            ..self.settings.redis.clone()
        }
    }

    /// The `COUPON__*` variables of a binary of this run.
    pub fn vars(&self) -> Vec<(String, String)> {
        self.stack.vars().to_vec()
    }

    /// [`RunEnv::vars`] plus `extra` (which wins), and `NO_COLOR`: what a started binary gets.
    pub fn vars_with(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = self
            .vars()
            .into_iter()
            .filter(|(key, _)| !extra.iter().any(|(k, _)| k == key))
            .collect();
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        vars.push(("NO_COLOR".to_owned(), "1".to_owned()));
        vars
    }

    /// Drops the run's database if it exists and creates it empty (the binaries under test
    /// migrate it themselves).
    pub async fn empty_database(&self) -> anyhow::Result<()> {
        let mysql = &self.settings.mysql;
        eprintln!(
            "[xtask] mysql: dropping and recreating database {}",
            mysql.database
        );
        couponrush_testkit::drop_database(mysql).await?;
        Database::create_database_if_missing(mysql)
            .await
            .with_context(|| format!("create database {}", mysql.database))
    }

    /// [`RunEnv::empty_database`], then the migrations: every run starts from an empty schema.
    pub async fn recreate_database(&self) -> anyhow::Result<Database> {
        self.empty_database().await?;
        let mysql = &self.settings.mysql;
        let db = Database::new(mysql)?;
        db.migrate()
            .await
            .with_context(|| format!("migrate database {}", mysql.database))?;
        Ok(db)
    }

    /// Creates the run's topic (with [`Isolation::partitions`]) and dead-letter topic unless
    /// they exist, and waits until the broker serves the topic's metadata.
    pub async fn create_topics(&self) -> anyhow::Result<()> {
        let kafka = &self.settings.kafka;
        if let Some(dlq) = &self.names.dlq_topic {
            couponrush_messaging::ensure_topic(kafka, dlq, 1, KAFKA_ADMIN_TIMEOUT)
                .await
                .context("create the dead-letter topic")?;
        }
        couponrush_messaging::ensure_topic(
            kafka,
            &kafka.topic,
            self.names.partitions,
            KAFKA_ADMIN_TIMEOUT,
        )
        .await
        .with_context(|| {
            format!(
                "create topic {} at {}",
                kafka.topic, kafka.bootstrap_servers
            )
        })?;
        couponrush_testkit::eventually(KAFKA_ADMIN_TIMEOUT, "the run's topic", async || {
            couponrush_messaging::probe_topic(kafka, &kafka.topic, Duration::from_secs(2))
                .await
                .ok()
        })
        .await?;
        Ok(())
    }

    /// Creates one more topic of the run (e.g. one per round), deleted with the run's.
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        if let Ok(mut topics) = self.extra_topics.lock() {
            topics.push(topic.to_owned());
        }
        couponrush_messaging::ensure_topic(
            &self.settings.kafka,
            topic,
            partitions,
            KAFKA_ADMIN_TIMEOUT,
        )
        .await
        .with_context(|| format!("create topic {topic}"))
    }

    /// Deletes every Redis key under the run's prefix; how many.
    pub async fn delete_keys(&self) -> anyhow::Result<u64> {
        couponrush_testkit::delete_keys(&self.settings.redis).await
    }

    /// Deletes `topics` from the broker (a topic already gone counts as deleted).
    pub async fn delete_topics(&self, topics: &[&str]) -> anyhow::Result<()> {
        couponrush_messaging::delete_topics(&self.settings.kafka, topics, KAFKA_ADMIN_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Deletes the topics of earlier runs of `task` that an interrupted run left (never this
    /// run's: call it before creating them, under the task's lock).
    pub async fn delete_leftover_topics(&self, task: &str) -> anyhow::Result<()> {
        let stem = Isolation::topic_stem(task);
        let all = couponrush_messaging::list_topics(&self.settings.kafka, KAFKA_ADMIN_TIMEOUT)
            .await
            .context("list the broker's topics")?;
        let leftovers: Vec<&str> = all
            .iter()
            .map(String::as_str)
            .filter(|topic| topic.starts_with(&stem) && !topic.contains(&self.names.run_id))
            .collect();
        if !leftovers.is_empty() {
            eprintln!("[xtask] kafka: deleting leftover topics {leftovers:?}");
            self.delete_topics(&leftovers).await?;
        }
        Ok(())
    }

    /// Every topic of the run: its names' and those made since.
    fn all_topics(&self) -> Vec<String> {
        let names = [&self.names.topic, &self.names.dlq_topic];
        let mut topics: Vec<String> = names.into_iter().flatten().cloned().collect();
        if let Ok(extra) = self.extra_topics.lock() {
            for topic in extra.iter() {
                if !topics.contains(topic) {
                    topics.push(topic.clone());
                }
            }
        }
        topics
    }

    /// Runs `work` on this run (stopped by SIGINT or SIGTERM: `Ok(Err(exit status))`), then
    /// [`RunEnv::cleanup`] whatever happened; says where the logs are when it failed (`tag`
    /// prefixes the lines it prints).
    pub async fn run_then_clean<T>(
        self,
        tag: &str,
        what: Cleanup,
        logs: &Path,
        work: impl AsyncFnOnce(&RunEnv) -> anyhow::Result<T>,
    ) -> anyhow::Result<Result<T, ExitCode>> {
        let outcome = signals::unless_interrupted(tag, Box::pin(work(&self))).await;
        self.cleanup(what).await;
        if outcome.is_err() {
            eprintln!("[{tag}] failed; logs are in {}", logs.display());
        }
        outcome
    }

    /// Removes what `what` says, then stops the stack services this run started. Never fails:
    /// each step that does is reported and the next one still runs (it runs on every exit
    /// path, after the task's own outcome is decided).
    pub async fn cleanup(self, what: Cleanup) {
        let prefixes = std::iter::once(&self.names.key_prefix).chain(&self.names.scratch_prefixes);
        for prefix in prefixes {
            if !what.keys {
                eprintln!("[xtask] redis: kept the keys under prefix {prefix}");
                continue;
            }
            match couponrush_testkit::delete_keys(&self.redis_under(prefix)).await {
                Ok(n) => eprintln!("[xtask] redis: deleted {n} key(s) under prefix {prefix}"),
                Err(error) => {
                    eprintln!("[xtask] redis: could not delete the keys under {prefix}: {error:#}")
                }
            }
        }
        let topics = self.all_topics();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        if !topics.is_empty() && !what.topics {
            eprintln!("[xtask] kafka: kept topics {topics:?}");
        } else if !topics.is_empty() {
            match self.delete_topics(&topics).await {
                Ok(()) => eprintln!("[xtask] kafka: deleted topics {topics:?}"),
                Err(error) => eprintln!(
                    "[xtask] kafka: could not delete {topics:?} (delete by hand if the broker keeps them): {error:#}"
                ),
            }
        }
        if what.database {
            match couponrush_testkit::drop_database(&self.settings.mysql).await {
                Ok(()) => eprintln!("[xtask] mysql: dropped database {}", self.names.database),
                Err(error) => eprintln!(
                    "[xtask] mysql: could not drop database {}: {error:#}",
                    self.names.database
                ),
            }
        }
        if what.stack
            && !self.shared
            && let Err(error) = self.stack.down().await
        {
            eprintln!("[xtask] stopping the stack services this run started: {error:#}");
        }
    }
}
