//! A process's resident set, read from `/proc/<pid>/status`: what the memory figures of the
//! benchmarks are made of.

use anyhow::Context;

use crate::report::to_f64;

/// A process's memory, KiB.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    /// Resident now.
    pub now_kib: u64,
    /// The highest it has been since the process started.
    pub peak_kib: u64,
}

/// Reads `pid`'s `VmRSS` and `VmHWM`.
pub fn rss(pid: u32) -> anyhow::Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path} has no {name}"))
    };
    Ok(Rss {
        now_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// KiB as MiB, one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", to_f64(kib) / 1024.0)
}
