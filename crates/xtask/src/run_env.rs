//! One isolated run against the stack (demo, benchmarks, checks): its own database, topic,
//! consumer group and Redis key prefix, so it never sees an earlier run's data nor touches the
//! tests' or a developer's. Names are made here, the services come from `scripts/stack.sh`
//! (through [`Stack`]), and everything else uses the project's own code: the storage crate
//! creates and migrates the database, the messaging crate creates and deletes topics, the cache
//! crate deletes the run's keys.
//!
//! ```text
//! let names = Isolation::unique("demo", "couponrush_demo".into(), 3);
//! let env = RunEnv::up(&state_dir, names).await?;   // stack.sh up + this run's names
//! env.recreate_database().await?;                    // drop, create, migrate
//! env.create_topics().await?;
//! ... start binaries with env.vars() ...
//! env.cleanup(Cleanup { keys: true, topics: true, database: false, stack: true }).await;
//! ```

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use couponrush_config::Settings;
use couponrush_storage::Database;

use crate::stack::Stack;

/// How long a topic administration call may take.
const KAFKA_ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The names that make a run private.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// `YYYYmmdd-HHMMSS-<pid>`: in every name, so a person can tell runs apart.
    pub run_id: String,
    pub database: String,
    pub topic: String,
    pub dlq_topic: String,
    pub consumer_group: String,
    pub key_prefix: String,
    /// Partitions of `topic` (the dead-letter topic has one).
    pub partitions: i32,
}

impl Isolation {
    /// Names unique to this run of `task` (`demo`, `openapi`, ...): topic
    /// `coupon-issue-<task>-<run>`, group `coupon-issue-<task>-group-<run>`, key prefix
    /// `couponrush-<task>:<run>:`. The database is the caller's choice: a fixed name the task
    /// recreates each run (one run at a time, see [`crate::lock`]) never piles up.
    pub fn unique(task: &str, database: String, partitions: i32) -> Self {
        let run_id = run_id();
        let topic = format!("{}{run_id}", Self::topic_stem(task));
        Self {
            dlq_topic: format!("{topic}.dlq"),
            consumer_group: format!("coupon-issue-{task}-group-{run_id}"),
            key_prefix: format!("couponrush-{task}:{run_id}:"),
            database,
            topic,
            partitions,
            run_id,
        }
    }

    /// What every topic of `task`'s runs starts with (finding leftovers of interrupted runs).
    pub fn topic_stem(task: &str) -> String {
        format!("coupon-issue-{task}-")
    }
}

/// `YYYYmmdd-HHMMSS-<pid>` (UTC).
fn run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        std::process::id()
    )
}

/// What [`RunEnv::cleanup`] removes besides stopping the stack services the run started.
#[derive(Debug, Clone, Copy)]
pub struct Cleanup {
    /// Every Redis key under the run's prefix.
    pub keys: bool,
    /// The run's topic and dead-letter topic.
    pub topics: bool,
    /// The run's database.
    pub database: bool,
    /// The stack services this run started (`false`: leave them running for the next run).
    pub stack: bool,
}

/// The stack with this run's names applied: [`RunEnv::vars`] for the binaries it starts,
/// [`RunEnv::settings`] for the code it runs in-process.
#[derive(Debug)]
pub struct RunEnv {
    stack: Stack,
    names: Isolation,
    settings: Settings,
}

impl RunEnv {
    /// `scripts/stack.sh up` with its state in `state_dir` (so [`RunEnv::cleanup`] stops only
    /// what this run started) and this run's database and topics, then the run's group and key
    /// prefix on top. Any `COUPON__*` variable of the caller reaches the binaries as well (a
    /// person trying a setting), unless the run sets it.
    pub async fn up(state_dir: &Path, names: Isolation) -> anyhow::Result<Self> {
        let stack_settings = [
            ("STACK_MYSQL_DATABASE", names.database.clone()),
            ("STACK_TOPIC", names.topic.clone()),
            ("STACK_PARTITIONS", names.partitions.to_string()),
            ("STACK_DLQ_TOPIC", names.dlq_topic.clone()),
        ];
        let mut stack = Stack::up(state_dir, &stack_settings).await?;
        stack.set("COUPON__KAFKA__CONSUMER_GROUP", &names.consumer_group);
        stack.set("COUPON__KAFKA__DLQ_TOPIC", &names.dlq_topic);
        stack.set("COUPON__REDIS__KEY_PREFIX", &names.key_prefix);
        // Plain text in the log files a person reads.
        stack.set("COUPON__LOG__FORMAT", "text");
        let settings = match stack.settings() {
            Ok(settings) => settings,
            Err(error) => {
                // Nothing of the run exists yet, but stack.sh may have started services.
                if let Err(down) = stack.down().await {
                    eprintln!("[xtask] stopping the stack services this run started: {down:#}");
                }
                return Err(error);
            }
        };
        Ok(Self {
            stack,
            names,
            settings,
        })
    }

    pub fn names(&self) -> &Isolation {
        &self.names
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
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

    /// Drops the run's database if it exists, creates it and applies the migrations: every run
    /// starts from an empty schema.
    pub async fn recreate_database(&self) -> anyhow::Result<()> {
        let mysql = &self.settings.mysql;
        eprintln!(
            "[xtask] mysql: dropping and recreating database {}",
            mysql.database
        );
        couponrush_testkit::drop_database(mysql).await?;
        Database::create_database_if_missing(mysql)
            .await
            .with_context(|| format!("create database {}", mysql.database))?;
        Database::new(mysql)?
            .migrate()
            .await
            .with_context(|| format!("migrate database {}", mysql.database))?;
        Ok(())
    }

    /// Creates the run's topic (with [`Isolation::partitions`]) and dead-letter topic unless
    /// they exist, and waits until the broker serves the topic's metadata.
    pub async fn create_topics(&self) -> anyhow::Result<()> {
        let kafka = &self.settings.kafka;
        couponrush_messaging::ensure_topic(kafka, &kafka.dlq_topic, 1, KAFKA_ADMIN_TIMEOUT)
            .await
            .context("create the dead-letter topic")?;
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

    /// Removes what `what` says, then stops the stack services this run started. Never fails:
    /// each step that does is reported and the next one still runs (it runs on every exit
    /// path, after the task's own outcome is decided).
    pub async fn cleanup(self, what: Cleanup) {
        if what.keys {
            match self.delete_keys().await {
                Ok(n) => eprintln!(
                    "[xtask] redis: deleted {n} key(s) under prefix {}",
                    self.names.key_prefix
                ),
                Err(error) => {
                    eprintln!("[xtask] redis: could not delete the run's keys: {error:#}")
                }
            }
        }
        if what.topics {
            let topics = [self.names.topic.as_str(), self.names.dlq_topic.as_str()];
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
            && let Err(error) = self.stack.down().await
        {
            eprintln!("[xtask] stopping the stack services this run started: {error:#}");
        }
    }
}
