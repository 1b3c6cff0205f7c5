//! CPU accounting from `/proc`, per phase of a benchmark: the machine's busy ticks, each watched
//! process's (issuer-api, a consumer, redis-server, the broker, mariadbd...), the load
//! generator's, and "other" (whatever else ran: a compiler, another benchmark), so a figure
//! comes with who was busy while it was measured and a disturbed run shows itself. Percentages
//! are of one core (the machine has `cores` x 100 %); costs per answer in microseconds come
//! from the same ticks. One module for every benchmark, so their CPU columns mean the same.
//!
//! The generator ([`Watch::with_generator`]) is this process plus the children it has reaped
//! (`cutime + cstime`): a load generator or ceiling client run to its end counts exactly even
//! though it is gone when the phase ends, and the harness's own polling counts too. Nothing
//! else may be spawned and reaped during a phase.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::process::Service;
use crate::report::to_f64;

/// Name of the load generator's entry in a [`Usage`].
pub const GENERATOR: &str = "gen";

/// The machine: `cores`, and clock ticks per second of `/proc` times (`getconf CLK_TCK`).
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub cores: u64,
    pub ticks_per_second: u64,
}

impl Machine {
    /// This machine, read once (`getconf` is a process start; phases ask often).
    pub fn get() -> Self {
        static MACHINE: OnceLock<Machine> = OnceLock::new();
        *MACHINE.get_or_init(|| {
            let cores = std::thread::available_parallelism()
                .map(|n| u64::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1);
            let ticks_per_second = std::process::Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .ok()
                .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
                // USER_HZ: 100 on every Linux architecture the project runs on.
                .unwrap_or(100);
            Self {
                cores,
                ticks_per_second,
            }
        })
    }

    /// `ticks` out of `total` (ticks of all cores) as percent of one core.
    fn percent(&self, ticks: u64, total: u64) -> f64 {
        ratio(ticks * 100 * self.cores, total.max(1))
    }
}

/// Percent of one core the machine is busy over `window` (nothing of ours running: how quiet
/// it is before a benchmark starts).
pub async fn machine_busy(window: Duration) -> anyhow::Result<f64> {
    let watch = Watch::default();
    let before = watch.snapshot()?;
    tokio::time::sleep(window).await;
    Ok(watch.usage(&before, &watch.snapshot()?).machine_percent())
}

/// Waits up to `wait` for the machine to be at most `limit` % (of one core) busy, saying so
/// (`knob`: the variable that sets `wait`); the last load measured, which the summary prints
/// either way.
pub async fn wait_until_quiet(wait: Duration, limit: f64, knob: &str) -> anyhow::Result<f64> {
    let deadline = Instant::now() + wait;
    let mut busy = machine_busy(Duration::from_secs(2)).await?;
    while busy.round() > limit && Instant::now() < deadline {
        eprintln!(
            "[xtask] machine busy: other processes use {busy:.0}% of one core; waiting ({knob}={})",
            wait.as_secs()
        );
        busy = machine_busy(Duration::from_secs(2)).await?;
    }
    if busy.round() > limit {
        eprintln!(
            "[xtask] warning: other processes use {busy:.0}% of one core before the start; results will be low (see 'other')"
        );
    }
    Ok(busy)
}

/// The processes whose CPU each phase records, by name (`api`, `redis`, ...).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    processes: Vec<(String, u32)>,
}

impl Watch {
    /// Watches `processes`: pairs of a name and a pid.
    pub fn new(processes: Vec<(String, u32)>) -> Self {
        Self { processes }
    }

    /// Stops watching `name` (a process that was stopped).
    pub fn remove(&mut self, name: &str) {
        self.processes.retain(|(watched, _)| watched != name);
    }

    /// The same watch plus one more process, listed first.
    pub fn with(&self, name: &str, pid: u32) -> Self {
        let mut processes = vec![(name.to_owned(), pid)];
        processes.extend(self.processes.iter().cloned());
        Self { processes }
    }

    /// The same watch plus [`GENERATOR`] (this process and the children it reaps), first.
    pub fn with_generator(&self) -> Self {
        self.with(GENERATOR, std::process::id())
    }

    /// The ticks now: the machine's and each watched process's.
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            machine: machine_ticks()?,
            processes: self
                .processes
                .iter()
                .map(|(name, pid)| (name.clone(), process_ticks(*pid)))
                .collect(),
        })
    }

    /// What was used between two snapshots of this watch.
    pub fn usage(&self, before: &Snapshot, after: &Snapshot) -> Usage {
        Usage::between(Machine::get(), before, after)
    }

    /// Runs a load generator (`program args`) to its end, its output to `log_dir/<name>.log`;
    /// returns that output and the CPU the generator, every watched process and the rest of
    /// the machine used meanwhile.
    pub async fn measure<S: AsRef<OsStr>>(
        &self,
        name: &str,
        program: &Path,
        args: &[S],
        log_dir: &Path,
    ) -> anyhow::Result<(String, Usage)> {
        let watch = self.with_generator();
        let before = watch.snapshot()?;
        let generator = Service::spawn(name, program, args, &[], log_dir)?;
        let (name, log) = (generator.name().to_owned(), generator.log().to_owned());
        let status = generator.wait().await?;
        let after = watch.snapshot()?;
        anyhow::ensure!(
            status.success(),
            "{name} failed ({status}; see {})",
            log.display()
        );
        let output =
            std::fs::read_to_string(&log).with_context(|| format!("read {}", log.display()))?;
        Ok((output, watch.usage(&before, &after)))
    }
}

/// Clock ticks at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    machine: MachineTicks,
    processes: Vec<(String, u64)>,
}

/// CPU used over a phase: ticks per watched process, "other", the machine.
#[derive(Debug, Clone)]
pub struct Usage {
    machine: Machine,
    /// (name, ticks), in the watch's order.
    pub processes: Vec<(String, u64)>,
    pub other: u64,
    pub busy: u64,
    total: u64,
}

impl Usage {
    /// What was used between `before` and `after` (snapshots of the same [`Watch`]).
    pub fn between(machine: Machine, before: &Snapshot, after: &Snapshot) -> Self {
        let processes: Vec<(String, u64)> = after
            .processes
            .iter()
            .map(|(name, ticks)| {
                let start = before
                    .processes
                    .iter()
                    .find(|(old, _)| old == name)
                    .map_or(*ticks, |(_, old)| *old);
                (name.clone(), ticks.saturating_sub(start))
            })
            .collect();
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

    /// The whole machine's busy time as percent of one core.
    pub fn machine_percent(&self) -> f64 {
        self.percent(self.busy)
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

    /// Ticks of the process `name` ([`GENERATOR`] for the load generator).
    pub fn ticks(&self, name: &str) -> Option<u64> {
        self.processes
            .iter()
            .find(|(process, _)| process == name)
            .map(|(_, ticks)| *ticks)
    }
}

/// `gen=12 api=85 redis=30 ... other=1 machine=150`: percent of one core each.
impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, ticks) in &self.processes {
            write!(f, "{name}={:.0} ", self.percent(*ticks))?;
        }
        write!(
            f,
            "other={:.0} machine={:.0}",
            self.percent(self.other),
            self.percent(self.busy)
        )
    }
}

/// `a / b` as a float.
fn ratio(a: u64, b: u64) -> f64 {
    to_f64(a) / to_f64(b)
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

/// The comm and the fields after `(comm) ` of a `/proc/.../stat` line, so field 3 (state) is
/// index 0. The comm may hold spaces and parentheses: the last `)` ends it.
fn stat_fields(path: &str) -> Option<(String, Vec<u64>)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once('(')?.1.replace(' ', "_");
    let fields = rest
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    Some((comm, fields))
}

/// utime + stime of `pid` (all its threads); for this process also cutime + cstime, the
/// children it has reaped (see [`Watch::with_generator`]). 0 once it is gone.
fn process_ticks(pid: u32) -> u64 {
    let Some((_, f)) = stat_fields(&format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let own = at(11) + at(12);
    if pid == std::process::id() {
        own + at(13) + at(14)
    } else {
        own
    }
}

/// Ticks per thread name of `pid` (tokio-runtime-w, rdk:broker1, ...), summed by name.
pub fn thread_ticks(pid: u32) -> HashMap<String, u64> {
    let mut ticks = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return ticks;
    };
    for task in tasks.flatten() {
        let path = format!("{}/stat", task.path().display());
        if let Some((name, f)) = stat_fields(&path) {
            let used = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
            *ticks.entry(name).or_default() += used;
        }
    }
    ticks
}

/// "name=N% ..." per thread name between two [`thread_ticks`], over `elapsed`.
pub fn per_thread(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
    elapsed: Duration,
) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let per_second = to_f64(Machine::get().ticks_per_second.max(1));
    let mut names: Vec<&String> = after.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let used = after[name].saturating_sub(before.get(name).copied().unwrap_or(0));
            (used > 0)
                .then(|| format!("{name}={:.0}%", to_f64(used) * 100.0 / per_second / seconds))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The pid of the process listening on TCP `port` (any address), from `/proc/net/tcp*` and
/// the socket links under `/proc/<pid>/fd`; `None` if nothing visible listens there (or it
/// is another host's).
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
    fn usage_splits_the_machine() {
        let machine = Machine {
            cores: 2,
            ticks_per_second: 100,
        };
        let snapshot = |busy, total, generator, api| Snapshot {
            machine: MachineTicks { busy, total },
            processes: vec![("gen".to_owned(), generator), ("api".to_owned(), api)],
        };
        let usage = Usage::between(
            machine,
            &snapshot(1000, 4000, 5, 10),
            &snapshot(1300, 4400, 55, 110),
        );
        // 400 ticks of 2 cores = 2 s of wall time: 100 ticks = 50 % of one core.
        assert_eq!(usage.to_string(), "gen=25 api=50 other=75 machine=150");
        assert_eq!(usage.ticks("api"), Some(100));
        // 100 ticks = 1 s of CPU over 1,000 answers = 1,000 us each.
        assert!((usage.micros_per(100, 1000) - 1000.0).abs() < 1e-9);
        assert!(pid_listening_on(0).is_none());
    }

    #[test]
    fn this_process_is_seen_with_its_threads() -> anyhow::Result<()> {
        let me = std::process::id();
        // Burn CPU until the counters move (a busy machine may give this test little of it).
        let spin = Instant::now();
        while process_ticks(me) == 0 && spin.elapsed() < Duration::from_secs(10) {}
        assert!(process_ticks(me) > 0);
        assert!(!thread_ticks(me).is_empty());
        let ticks = machine_ticks()?;
        assert!(ticks.busy > 0 && ticks.total >= ticks.busy);
        let watch = Watch::default().with_generator();
        let usage = watch.usage(&watch.snapshot()?, &watch.snapshot()?);
        assert_eq!(usage.processes.len(), 1);
        Ok(())
    }
}
