//! A benchmark's own slice of the stack and of the disk: a run directory taken by one run at a
//! time, a database and a Redis key prefix it may wipe, topics it creates; all removed at the
//! end unless kept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::{KafkaSettings, MysqlSettings, RedisSettings};
use couponrush_storage::Database;

/// What every benchmark run takes besides its own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Keep what the run created on the stack (database, Redis keys, topics).
    #[arg(long, env = "BENCH_KEEP", value_parser = clap::builder::BoolishValueParser::new(), default_value = "0")]
    pub keep: bool,
    /// Build the release binaries first (0: use those in the target directory as they are).
    #[arg(long, env = "BENCH_BUILD", value_parser = clap::builder::BoolishValueParser::new(), default_value = "1")]
    pub build: bool,
    /// Logs (logs/ is replaced each run) and any stack state of the run; default
    /// `.stack/bench-<name>`.
    #[arg(long, env = "BENCH_DIR")]
    pub dir: Option<PathBuf>,
}

impl RunArgs {
    /// The run directory (`--dir`, or `.stack/<name>` in the workspace), taken by this run.
    pub fn take_dir(&self, name: &str) -> anyhow::Result<RunDir> {
        let default = || crate::binaries::workspace_root().join(".stack").join(name);
        RunDir::take(&self.dir.clone().unwrap_or_else(default))
    }
}

/// `dir` with its `logs/` emptied, held by this run (a lock file with our pid) until dropped.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    lock: PathBuf,
}

impl RunDir {
    pub fn take(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let lock = dir.join(".lock");
        for _ in 0..2 {
            match std::fs::File::create_new(&lock) {
                Ok(mut file) => {
                    write!(file, "{}", std::process::id())?;
                    let logs = dir.join("logs");
                    if logs.exists() {
                        std::fs::remove_dir_all(&logs)
                            .with_context(|| format!("empty {}", logs.display()))?;
                    }
                    std::fs::create_dir_all(&logs)?;
                    return Ok(Self {
                        dir: dir.to_owned(),
                        lock,
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    anyhow::ensure!(
                        !alive,
                        "another run (pid {}) holds {}",
                        holder.trim(),
                        lock.display()
                    );
                    // Left by a run that died: take it over.
                    std::fs::remove_file(&lock)?;
                }
                Err(error) => return Err(error).context(format!("create {}", lock.display())),
            }
        }
        anyhow::bail!("could not take {}", lock.display())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Runs `body` (stopped by Ctrl-C), then removes what it created whatever happened, unless
/// `keep`; says where the logs are when it failed.
pub async fn cleaning_up(
    run_dir: &RunDir,
    keep: bool,
    body: impl AsyncFnOnce(&mut Leftovers) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let mut leftovers = Leftovers::default();
    let outcome = tokio::select! {
        outcome = body(&mut leftovers) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    leftovers.clean(keep).await;
    if outcome.is_err() {
        eprintln!("[xtask] logs are in {}", run_dir.logs().display());
    }
    outcome
}

/// A benchmark database's name (BENCH_DATABASE): `[A-Za-z0-9_]+` and containing "bench",
/// since it is dropped each run.
pub fn check_database_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.contains("bench"),
        "BENCH_DATABASE must match [A-Za-z0-9_]+ and contain \"bench\" (it is dropped each run), got {name:?}"
    );
    Ok(())
}

/// What a run created on the stack, to remove at the end.
#[derive(Debug, Default)]
pub struct Leftovers {
    database: Option<MysqlSettings>,
    redis: Option<RedisSettings>,
    kafka: Option<KafkaSettings>,
    topics: Vec<String>,
}

impl Leftovers {
    /// Drops and recreates `mysql.database` (it must say "bench": it is wiped), migrated.
    pub async fn fresh_database(&mut self, mysql: &MysqlSettings) -> anyhow::Result<Database> {
        check_database_name(&mysql.database)?;
        couponrush_testkit::drop_database(mysql).await?;
        self.database = Some(mysql.clone());
        Database::create_database_if_missing(mysql).await?;
        let db = Database::new(mysql)?;
        db.migrate()
            .await
            .context("migrate the benchmark database")?;
        eprintln!("[xtask] mysql: fresh database {}", mysql.database);
        Ok(db)
    }

    /// A store on `redis.key_prefix` (it must say "bench": its keys are deleted), emptied.
    pub async fn fresh_key_prefix(
        &mut self,
        redis: &RedisSettings,
    ) -> anyhow::Result<ReservationStore> {
        anyhow::ensure!(
            redis.key_prefix.contains("bench"),
            "the benchmark key prefix {:?} must contain \"bench\" (its keys are deleted)",
            redis.key_prefix
        );
        let store = ReservationStore::new(redis)?;
        couponrush_testkit::delete_keys(redis).await?;
        self.redis = Some(redis.clone());
        Ok(store)
    }

    /// Creates `topic` with `partitions` (and remembers it for deletion).
    pub async fn topic(
        &mut self,
        kafka: &KafkaSettings,
        topic: &str,
        partitions: i32,
    ) -> anyhow::Result<()> {
        self.kafka = Some(kafka.clone());
        self.topics.push(topic.to_owned());
        couponrush_messaging::ensure_topic(kafka, topic, partitions, Duration::from_secs(10))
            .await
            .with_context(|| format!("create topic {topic}"))
    }

    /// Removes everything recorded; `keep` only says what is left. Failures are reported, not
    /// returned: a clean-up problem must not hide the run's own result.
    pub async fn clean(self, keep: bool) {
        if keep {
            eprintln!(
                "[xtask] kept: database {:?}, keys under {:?}, topics {:?}",
                self.database.map(|d| d.database),
                self.redis.map(|r| r.key_prefix),
                self.topics
            );
            return;
        }
        if let Some(redis) = &self.redis {
            match delete_keys(redis).await {
                Ok(n) => eprintln!(
                    "[xtask] redis: deleted {n} key(s) under {}",
                    redis.key_prefix
                ),
                Err(error) => eprintln!("[xtask] redis: clean-up failed: {error:#}"),
            }
        }
        if let Some(kafka) = &self.kafka {
            let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            match couponrush_messaging::delete_topics(kafka, &topics, Duration::from_secs(10)).await
            {
                Ok(()) => eprintln!("[xtask] kafka: deleted topics {}", topics.join(" ")),
                Err(error) => {
                    eprintln!("[xtask] kafka: could not delete topics {topics:?}: {error}")
                }
            }
        }
        if let Some(mysql) = &self.database {
            match couponrush_testkit::drop_database(mysql).await {
                Ok(()) => eprintln!("[xtask] mysql: dropped database {}", mysql.database),
                Err(error) => {
                    eprintln!("[xtask] mysql: could not drop {}: {error}", mysql.database)
                }
            }
        }
    }
}

async fn delete_keys(redis: &RedisSettings) -> anyhow::Result<u64> {
    couponrush_testkit::delete_keys(redis).await
}
