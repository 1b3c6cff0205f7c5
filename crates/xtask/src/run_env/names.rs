//! The names that make a run private (its database, topics, consumer group, Redis key
//! prefixes), the run id in every one of them, and the other per-run secrets and checks.

use std::io::Read;

use anyhow::Context;

/// The names that make a run private.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// `YYYYmmdd-HHMMSS-<pid>`: in every name, so a person can tell runs apart.
    pub run_id: String,
    pub database: String,
    /// The run's topic (`None`: the run uses none, and `scripts/stack.sh` keeps its default).
    pub topic: Option<String>,
    /// Its dead-letter topic (`None`: none is created).
    pub dlq_topic: Option<String>,
    pub consumer_group: String,
    /// What the binaries' keys start with.
    pub key_prefix: String,
    /// Prefixes of keys the harness itself writes (e.g. the Lua ceiling's), removed with the
    /// run's keys; see [`Isolation::scratch_prefix`].
    pub scratch_prefixes: Vec<String>,
    /// Partitions of `topic` (the dead-letter topic has one).
    pub partitions: i32,
}

impl Isolation {
    /// Names unique to this run of `task` (`demo`, `openapi`, `bench`...): topic
    /// `coupon-issue-<task>-<run>` and its `.dlq`, group `coupon-issue-<task>-group-<run>`, key
    /// prefix `couponrush-<task>:<run>:`. The database is the caller's choice: a fixed name the
    /// task recreates each run (one run at a time, see [`crate::lock`]) never piles up.
    pub fn unique(task: &str, database: String, partitions: i32) -> Self {
        let run_id = run_id();
        let topic = format!("{}{run_id}", Self::topic_stem(task));
        Self {
            dlq_topic: Some(format!("{topic}.dlq")),
            consumer_group: format!("coupon-issue-{task}-group-{run_id}"),
            key_prefix: format!("couponrush-{task}:{run_id}:"),
            scratch_prefixes: Vec::new(),
            database,
            topic: Some(topic),
            partitions,
            run_id,
        }
    }

    /// No dead-letter topic: the run starts no consumer.
    pub fn without_dlq(mut self) -> Self {
        self.dlq_topic = None;
        self
    }

    /// No topic at all: the run uses no broker.
    pub fn without_topics(mut self) -> Self {
        self.topic = None;
        self.dlq_topic = None;
        self
    }

    /// A fixed key prefix instead of the per-run one (the run empties it at the start).
    pub fn with_key_prefix(mut self, prefix: String) -> Self {
        self.key_prefix = prefix;
        self
    }

    /// A prefix under the run's own for keys the harness writes itself, removed with the
    /// run's keys (the binaries' key pattern does not reach it).
    pub fn scratch_prefix(&mut self, name: &str) -> String {
        let prefix = format!("{}{name}:", self.key_prefix);
        self.scratch_prefixes.push(prefix.clone());
        prefix
    }

    /// What every topic of `task`'s runs starts with (finding leftovers of interrupted runs).
    pub fn topic_stem(task: &str) -> String {
        format!("coupon-issue-{task}-")
    }
}

/// `YYYYmmdd-HHMMSS-<pid>` (UTC): one run of one task.
pub fn run_id() -> String {
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

/// A database a task drops each run (`knob`: the variable that names it): `[A-Za-z0-9_]+` and
/// containing `word`, so it cannot be a database someone keeps.
pub fn check_database_name(name: &str, word: &str, knob: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.contains(word),
        "{knob} must match [A-Za-z0-9_]+ and contain \"{word}\" (it is dropped each run), got {name:?}"
    );
    Ok(())
}

/// 24 random bytes as hex: a run's admin token, never reused.
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("read /dev/urandom for the admin token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_run_s_own() {
        let mut names = Isolation::unique("bench", "couponrush_bench".to_owned(), 3);
        assert!(names.key_prefix.starts_with("couponrush-bench:"));
        assert_eq!(
            names.dlq_topic,
            names.topic.as_ref().map(|t| format!("{t}.dlq"))
        );
        let lua = names.scratch_prefix("lua");
        assert_eq!(lua, format!("{}lua:", names.key_prefix));
        assert_eq!(names.without_topics().topic, None);
        assert!(check_database_name("couponrush_bench", "bench", "BENCH_DATABASE").is_ok());
        assert!(check_database_name("couponrush", "bench", "BENCH_DATABASE").is_err());
        assert!(check_database_name("bench;drop", "bench", "BENCH_DATABASE").is_err());
    }
}
