//! CPU accounting from `/proc`, per phase of a benchmark: the machine's busy ticks, each watched
//! process's (issuer-api, redis-server, the broker, mariadbd...), the load generator's, and
//! "other" (whatever else ran: a compiler, another benchmark). Percentages are of one core (the
//! machine has `cores` x 100 %); the costs per answer in microseconds come from the same ticks.
//!
//! The load generator is a child of this process: its CPU is read from this process's
//! `cutime + cstime` (the CPU of reaped children), so it is exact even though the generator is
//! gone by the time the phase ends. Nothing else may be spawned and reaped during a phase.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::process::Service;

/// Name of the load generator's entry in a [`Usage`].
pub const GENERATOR: &str = "gen";

/// The machine: `cores`, and clock ticks per second (`getconf CLK_TCK`).
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub cores: u64,
    pub ticks_per_second: u64,
}

impl Machine {
    pub async fn detect() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism()
            .map(|n| u64::try_from(n.get()).unwrap_or(1))
            .unwrap_or(1);
        let out = tokio::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .await
            .context("run getconf CLK_TCK")?;
        let ticks_per_second = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("getconf CLK_TCK printed no number")?;
        Ok(Self {
            cores,
            ticks_per_second,
        })
    }

    /// Percent of one core that other processes use over 2 s, while nothing of ours runs.
    pub async fn background_percent(&self) -> anyhow::Result<f64> {
        let before = machine_ticks()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = machine_ticks()?;
        Ok(self.percent(
            after.busy.saturating_sub(before.busy),
            after.total.saturating_sub(before.total),
        ))
    }

    /// `ticks` out of `total` (ticks of all cores) as percent of one core.
    fn percent(&self, ticks: u64, total: u64) -> f64 {
        ratio(ticks * 100 * self.cores, total.max(1))
    }
}

/// The processes whose CPU each phase records, by name (`api`, `redis`, ...).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    processes: Vec<(String, u32)>,
}

impl Watch {
    pub fn add(&mut self, name: &str, pid: u32) {
        self.processes.push((name.to_owned(), pid));
    }

    /// Stops watching `name` (a process that was stopped).
    pub fn remove(&mut self, name: &str) {
        self.processes.retain(|(watched, _)| watched != name);
    }

    /// The ticks now: the machine's, each watched process's, and this process's reaped children.
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            machine: machine_ticks()?,
            processes: self
                .processes
                .iter()
                .map(|(name, pid)| (name.clone(), process_ticks(*pid)))
                .collect(),
            children: children_ticks()?,
        })
    }
}

impl Watch {
    /// Runs a load generator (`program args`) to its end, its output to `log_dir/<name>.log`;
    /// returns that output and the CPU every watched process, the generator and the rest of
    /// the machine used meanwhile.
    pub async fn measure<S: AsRef<OsStr>>(
        &self,
        machine: Machine,
        name: &str,
        program: &Path,
        args: &[S],
        log_dir: &Path,
    ) -> anyhow::Result<(String, Usage)> {
        let before = self.snapshot()?;
        let generator = Service::spawn(name, program, args, &[], log_dir)?;
        let (name, log) = (generator.name().to_owned(), generator.log().to_owned());
        let status = generator.wait().await?;
        let after = self.snapshot()?;
        anyhow::ensure!(
            status.success(),
            "{name} failed ({status}; see {})",
            log.display()
        );
        let output =
            std::fs::read_to_string(&log).with_context(|| format!("read {}", log.display()))?;
        Ok((output, Usage::between(machine, &before, &after)))
    }
}

/// Clock ticks at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    machine: MachineTicks,
    processes: Vec<(String, u64)>,
    children: u64,
}

/// CPU used over a phase: ticks per process (the generator first), "other", the machine.
#[derive(Debug, Clone)]
pub struct Usage {
    machine: Machine,
    /// (name, ticks): the generator, then each watched process.
    pub processes: Vec<(String, u64)>,
    pub other: u64,
    pub busy: u64,
    total: u64,
}

impl Usage {
    /// What was used between `before` and `after` (snapshots of the same [`Watch`]).
    pub fn between(machine: Machine, before: &Snapshot, after: &Snapshot) -> Self {
        let mut processes = vec![(
            GENERATOR.to_owned(),
            after.children.saturating_sub(before.children),
        )];
        processes.extend(after.processes.iter().map(|(name, ticks)| {
            let start = before
                .processes
                .iter()
                .find(|(old, _)| old == name)
                .map_or(*ticks, |(_, old)| *old);
            (name.clone(), ticks.saturating_sub(start))
        }));
        let busy = after.machine.busy.saturating_sub(before.machine.busy);
        let ours: u64 = processes.iter().map(|(_, ticks)| ticks).sum();
        Self {
            machine,
            processes,
            other: busy.saturating_sub(ours),
            busy,
            total: after.machine.total.saturating_sub(before.machine.total),
        }
    }

    /// `ticks` as percent of one core over the phase.
    pub fn percent(&self, ticks: u64) -> f64 {
        self.machine.percent(ticks, self.total)
    }

    /// Microseconds of CPU per answer for `ticks` spread over `answers`.
    pub fn micros_per(&self, ticks: u64, answers: u64) -> f64 {
        if answers == 0 {
            return 0.0;
        }
        ratio(
            ticks * 1_000_000,
            self.machine.ticks_per_second.max(1) * answers,
        )
    }

    /// Ticks of the process `name` (`gen` for the load generator).
    pub fn ticks(&self, name: &str) -> Option<u64> {
        self.processes
            .iter()
            .find(|(process, _)| process == name)
            .map(|(_, ticks)| *ticks)
    }

    /// `gen=12 api=85 redis=30 ... other=1 machine=150`: percent of one core each.
    pub fn line(&self) -> String {
        let mut line: Vec<String> = self
            .processes
            .iter()
            .map(|(name, ticks)| format!("{name}={:.0}", self.percent(*ticks)))
            .collect();
        line.push(format!("other={:.0}", self.percent(self.other)));
        line.push(format!("machine={:.0}", self.percent(self.busy)));
        line.join(" ")
    }
}

/// `a / b` as a float.
fn ratio(a: u64, b: u64) -> f64 {
    to_f64(a) / to_f64(b)
}

/// A u64 as f64 without `as` (the workspace warns on it), from its two halves; exact for the
/// tick counts of a benchmark (far below 2^53).
pub fn to_f64(value: u64) -> f64 {
    let high = u32::try_from(value >> 32).unwrap_or(u32::MAX);
    let low = u32::try_from(value & 0xffff_ffff).unwrap_or(u32::MAX);
    f64::from(high) * 4_294_967_296.0 + f64::from(low)
}

/// Busy and total ticks of all cores since boot.
#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    busy: u64,
    total: u64,
}

/// The first line of `/proc/stat`: `cpu user nice system idle iowait irq softirq steal ...`.
fn machine_ticks() -> anyhow::Result<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let &[user, nice, system, idle, iowait, irq, softirq, steal] = fields.as_slice() else {
        anyhow::bail!("/proc/stat: unexpected first line");
    };
    let busy = user + nice + system + irq + softirq + steal;
    Ok(MachineTicks {
        busy,
        total: busy + idle + iowait,
    })
}

/// Fields after `(comm) ` of `/proc/<pid>/stat`, so field 3 (state) is index 0.
fn stat_fields(path: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(
        rest.split_whitespace()
            .map(|field| field.parse().unwrap_or(0))
            .collect(),
    )
}

/// utime + stime of `pid` (all its threads); 0 once it is gone.
fn process_ticks(pid: u32) -> u64 {
    stat_fields(&format!("/proc/{pid}/stat"))
        .and_then(|f| Some(f.get(11)? + f.get(12)?))
        .unwrap_or(0)
}

/// cutime + cstime of this process: the CPU of the children it has reaped.
fn children_ticks() -> anyhow::Result<u64> {
    stat_fields("/proc/self/stat")
        .and_then(|f| Some(f.get(13)? + f.get(14)?))
        .context("read /proc/self/stat")
}

/// The pid of the process listening on TCP `port` (any address), from `/proc/net/tcp*` and
/// the socket links under `/proc/<pid>/fd`; `None` if nothing visible listens there.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let wanted = format!(":{port:04X}");
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            if let (Some(local), Some(&"0A"), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
                && local.ends_with(&wanted)
            {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|link| inodes.contains(link.to_string_lossy().as_ref()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_splits_the_machine() -> anyhow::Result<()> {
        let machine = Machine {
            cores: 2,
            ticks_per_second: 100,
        };
        let snapshot = |busy, total, api, children| Snapshot {
            machine: MachineTicks { busy, total },
            processes: vec![("api".to_owned(), api)],
            children,
        };
        let usage = Usage::between(
            machine,
            &snapshot(1000, 4000, 10, 5),
            &snapshot(1300, 4400, 110, 55),
        );
        // 400 ticks of 2 cores = 2 s of wall time: 100 ticks = 50 % of one core.
        assert_eq!(usage.line(), "gen=25 api=50 other=75 machine=150");
        assert_eq!(usage.ticks("api"), Some(100));
        // 100 ticks = 1 s of CPU over 1,000 answers = 1,000 us each.
        assert!((usage.micros_per(100, 1000) - 1000.0).abs() < 1e-9);
        assert!(pid_listening_on(0).is_none());
        Ok(())
    }
}
