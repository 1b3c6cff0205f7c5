//! What a benchmark run records about itself: when, which code, which machine and versions.

use std::path::Path;

use couponrush_config::Settings;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::cpu::{self as cpu, Watch};
use crate::binaries::workspace_root;
use crate::report;

/// When and where a run happened, for its summary and the results table.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// UTC, RFC 3339, whole seconds.
    pub date: String,
    /// Unique per run: names its topics, groups, key prefix and users.
    pub id: String,
    /// Short commit hash.
    pub commit: String,
    /// Files under crates/, Cargo.*, migrations/ that differ from the commit.
    pub uncommitted: usize,
    pub machine: String,
    pub rustc: String,
}

impl RunInfo {
    /// Now, for the run `id` (its [`crate::run_env::Isolation::run_id`]).
    pub async fn collect(id: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        let date = now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&Rfc3339)
            .unwrap_or_default();
        let root = workspace_root();
        let commit = output("git", &["rev-parse", "--short=12", "HEAD"], &root).await;
        let status = output(
            "git",
            &[
                "status",
                "--porcelain",
                "--",
                "crates",
                "Cargo.toml",
                "Cargo.lock",
                "migrations",
            ],
            &root,
        )
        .await;
        let rustc = output("rustc", &["--version"], &root).await;
        Self {
            date,
            id: id.to_owned(),
            commit: first_line(&commit).unwrap_or_else(|| "unknown".to_owned()),
            uncommitted: status.lines().count(),
            machine: machine(),
            rustc: rustc.split_whitespace().nth(1).unwrap_or("?").to_owned(),
        }
    }

    /// "commit X (as committed)" or "commit X + N uncommitted change(s)".
    pub fn code(&self) -> String {
        if self.uncommitted == 0 {
            format!(
                "commit {} (crates/ Cargo.* migrations/ as committed)",
                self.commit
            )
        } else {
            format!(
                "commit {} + {} uncommitted change(s) in crates/ Cargo.* migrations/",
                self.commit, self.uncommitted
            )
        }
    }

    /// The summary's first lines: date and run, machine, code (`built`: the binaries were
    /// rebuilt from this tree, not taken as they were), the services' `versions`.
    pub fn header(&self, built: bool, versions: &str) -> String {
        format!(
            " date       {}   run {}\n machine    {}\n code       {}, rustc {}, release build{}\n versions   {versions}\n",
            self.date,
            self.id,
            self.machine,
            self.code(),
            self.rustc,
            if built { "" } else { " (not rebuilt)" }
        )
    }

    /// The results table's columns for this run's figures: the day, the commit (`+dirty`
    /// with uncommitted changes) and the command that reproduces the run.
    pub fn provenance(&self) -> report::RunInfo {
        let dirty = if self.uncommitted == 0 { "" } else { "+dirty" };
        report::RunInfo {
            date: self.date.get(..10).unwrap_or(&self.date).to_owned(),
            commit: format!("{}{dirty}", self.commit),
            command: report::command_line("BENCH_"),
        }
    }
}

/// "2 cores (model), 24 GiB, Linux 6.x".
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("?", |(_, m)| m.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| (kib + 512 * 1024) / (1024 * 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} cores ({model}), {gib} GiB, Linux {}",
        cpu::Machine::get().cores,
        kernel.trim()
    )
}

/// The services `settings` point at that run on this machine (found by the pid listening on
/// their ports): a CPU watch of them (mysql, broker, redis) and their versions.
pub async fn services(settings: &Settings) -> (Watch, String) {
    let port_of = |address: &str| {
        address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
    };
    let named = [
        ("mysql", Some(settings.mysql.port)),
        ("broker", settings.kafka.brokers().next().and_then(port_of)),
        (
            "redis",
            settings.redis.address().as_deref().and_then(port_of),
        ),
    ];
    let mut watched = Vec::new();
    let mut versions = Vec::new();
    for (name, port) in named {
        let pid = port.and_then(cpu::pid_listening_on);
        versions.push(format!("{name} {}", version_of(pid).await));
        match pid {
            Some(pid) => watched.push((name.to_owned(), pid)),
            None => eprintln!("[xtask] no local pid for {name}: its CPU is counted in 'other'"),
        }
    }
    (Watch::new(watched), versions.join(", "))
}

/// The version the executable of process `pid` reports (`<exe> --version`): that of the
/// server actually answering (mariadbd, redis-server, tansu), whatever else is installed.
async fn version_of(pid: Option<u32>) -> String {
    let Some(exe) = pid.and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok()) else {
        return "?".to_owned();
    };
    let text = output(&exe.to_string_lossy(), &["--version"], &workspace_root()).await;
    // "mariadbd  Ver 10.11.19-MariaDB...", "Redis server v=7.0.15 ...", "tansu 0.6.0".
    text.split_whitespace()
        .map(|token| token.trim_start_matches("v="))
        .find(|token| token.starts_with(|c: char| c.is_ascii_digit()) && token.contains('.'))
        .map_or_else(|| "?".to_owned(), str::to_owned)
}

/// A command's stdout; empty if it failed.
async fn output(program: &str, args: &[&str], dir: &Path) -> String {
    let run = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await;
    match run {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    }
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .next()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}
