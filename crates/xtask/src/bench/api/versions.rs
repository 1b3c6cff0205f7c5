//! What a result was measured with: the machine, the code and the versions of every tool and
//! server, for the summary's header.

use std::path::Path;

use couponrush_config::Settings;
use couponrush_storage::Database;
use time::macros::format_description;

use crate::binaries::workspace_root;

/// The header lines of the summary.
#[derive(Debug, Clone)]
pub struct Versions {
    pub date: String,
    pub cores: u64,
    pub cpu_model: String,
    pub mem_gib: String,
    pub kernel: String,
    pub commit: String,
    /// Uncommitted changes in what is built (crates/, Cargo.*, migrations/).
    pub dirty: usize,
    pub rustc: String,
    pub wrk: String,
    pub redis: String,
    pub mysql: String,
    pub broker: String,
}

impl Versions {
    /// Reads them now; anything that cannot be read is "?". `broker_pid`: the broker's process.
    pub async fn collect(
        settings: &Settings,
        cores: u64,
        wrk: &Path,
        broker_pid: Option<u32>,
    ) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: u64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let root = workspace_root();
        let root = root.to_string_lossy();
        let dirty = output(
            "git",
            &[
                "-C",
                &root,
                "status",
                "--porcelain",
                "--",
                "crates",
                "Cargo.toml",
                "Cargo.lock",
                "migrations",
            ],
        )
        .await
        .map_or(0, |out| out.lines().count());
        Self {
            date: time::OffsetDateTime::now_utc()
                .format(format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
                ))
                .unwrap_or_default(),
            cores,
            cpu_model: cpuinfo
                .lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(": "))
                .map_or_else(|| "?".to_owned(), |(_, model)| model.to_owned()),
            mem_gib: format!("{}", (mem_kib + 524_288) / 1_048_576),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "?".to_owned(), |release| release.trim().to_owned()),
            commit: output("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"])
                .await
                .unwrap_or_else(|| "unknown".to_owned()),
            dirty,
            rustc: word(output("rustc", &["--version"]).await, 1),
            wrk: word(output(&wrk.to_string_lossy(), &["-v"]).await, 1),
            redis: redis_version(settings)
                .await
                .unwrap_or_else(|| "?".to_owned()),
            mysql: match Database::new(&settings.mysql) {
                Ok(db) => db.server_version().await.unwrap_or_else(|_| "?".to_owned()),
                Err(_) => "?".to_owned(),
            },
            broker: broker_version(broker_pid)
                .await
                .unwrap_or_else(|| "?".to_owned()),
        }
    }
}

/// The `n`th word of the first line of `text`.
fn word(text: Option<String>, n: usize) -> String {
    text.and_then(|text| {
        text.lines()
            .next()?
            .split_whitespace()
            .nth(n)
            .map(str::to_owned)
    })
    .unwrap_or_else(|| "?".to_owned())
}

/// stdout (or stderr, where wrk prints its version) of a command, trimmed.
async fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Some(String::from_utf8_lossy(&text).trim().to_owned())
}

/// `redis_version` from `INFO server`.
async fn redis_version(settings: &Settings) -> Option<String> {
    let client = redis::Client::open(settings.redis.url.expose()).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(|version| version.trim().to_owned())
}

/// `<broker> --version` of the broker's own executable, when it is tansu (a JVM broker's
/// executable is java, whose version would mislead).
async fn broker_version(pid: Option<u32>) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{}/exe", pid?)).ok()?;
    if !exe.file_name()?.to_string_lossy().contains("tansu") {
        return None;
    }
    let text = output(&exe.to_string_lossy(), &["--version"]).await?;
    text.lines().next().map(str::to_owned)
}
