//! CPU each process uses over a phase, read from `/proc` (Linux): so a figure comes with who
//! was busy while it was measured, and a disturbed run shows itself in "other".
//! Percentages are of one core; the machine has `nproc` × 100 %.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Clock ticks per second of `/proc` times (USER_HZ): 100 on every Linux architecture the
/// project runs on; the percentages below are ratios of ticks, so only `per_thread` needs it.
const TICKS_PER_SECOND: f64 = 100.0;

/// The processes a phase watches, by name (`consumer`, `mysql`, `broker`, ...).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    processes: Vec<(String, u32)>,
}

/// Ticks of the machine and of each watched process at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    busy: u64,
    total: u64,
    processes: Vec<u64>,
}

/// CPU over a phase, in % of one core.
#[derive(Debug, Clone)]
pub struct Usage {
    pub processes: Vec<(String, f64)>,
    /// Busy time of the machine no watched process accounts for.
    pub other: f64,
    pub machine: f64,
}

impl Watch {
    /// Watches `processes`: pairs of a name and a pid.
    pub fn new(processes: Vec<(String, u32)>) -> Self {
        Self { processes }
    }

    /// The same watch plus one more process, listed first.
    pub fn with(&self, name: &str, pid: u32) -> Self {
        let mut processes = vec![(name.to_owned(), pid)];
        processes.extend(self.processes.iter().cloned());
        Self { processes }
    }

    pub fn sample(&self) -> Sample {
        let (busy, total) = machine_ticks();
        Sample {
            busy,
            total,
            processes: self
                .processes
                .iter()
                .map(|(_, pid)| process_ticks(*pid))
                .collect(),
        }
    }

    pub fn usage(&self, before: &Sample, after: &Sample) -> Usage {
        let total = after.total.saturating_sub(before.total).max(1);
        let cores = cores();
        let pct = |ticks: u64| lossy(ticks) * 100.0 * cores / lossy(total);
        let deltas: Vec<u64> = after
            .processes
            .iter()
            .zip(&before.processes)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let busy = after.busy.saturating_sub(before.busy);
        let other = busy.saturating_sub(deltas.iter().sum());
        Usage {
            processes: self
                .processes
                .iter()
                .zip(&deltas)
                .map(|((name, _), ticks)| (name.clone(), pct(*ticks)))
                .collect(),
            other: pct(other),
            machine: pct(busy),
        }
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, pct) in &self.processes {
            write!(f, "{name}={pct:.0} ")?;
        }
        write!(f, "other={:.0} machine={:.0}", self.other, self.machine)
    }
}

/// This machine's logical cores.
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| lossy(u64::try_from(n.get()).unwrap_or(1)))
}

/// A tick count over a phase as a float (a phase's ticks fit in u32 many times over).
fn lossy(n: u64) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// `(busy, total)` ticks of all CPUs since boot.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, busy + at(3) + at(4))
}

/// The fields of a `/proc/.../stat` line after `(comm) `, starting with field 3 (state); and
/// the comm.
fn stat_fields(path: &str) -> Option<(String, Vec<u64>)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.replace(' ', "_");
    let fields = stat
        .get(close + 2..)?
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Some((comm, fields))
}

/// User + system ticks of `pid` (all its threads); for this process also those of the
/// children it has waited for (a helper process run to its end). 0 once it is gone.
fn process_ticks(pid: u32) -> u64 {
    let Some((_, f)) = stat_fields(&format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // Fields 14-17: utime, stime, cutime, cstime (indices from field 3).
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
    let mut names: Vec<&String> = after.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let used = after[name].saturating_sub(before.get(name).copied().unwrap_or(0));
            (used > 0).then(|| {
                format!(
                    "{name}={:.0}%",
                    lossy(used) * 100.0 / TICKS_PER_SECOND / seconds
                )
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Busy CPU of the whole machine over `window`, in % of one core (how quiet it is).
pub async fn machine_busy(window: Duration) -> f64 {
    let watch = Watch::default();
    let before = watch.sample();
    tokio::time::sleep(window).await;
    watch.usage(&before, &watch.sample()).machine
}

/// The pid of the process listening on TCP `port` on this machine, from `/proc/net/tcp{,6}`
/// and the processes' socket descriptors; `None` when none is (or it is another host's).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let wanted = format!("{port:04X}");
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let local_port = f.get(1)?.rsplit(':').next()?;
                // st 0A = LISTEN
                (local_port == wanted && f.get(3) == Some(&"0A"))
                    .then(|| f.get(9).map(|i| (*i).to_owned()))?
            })
        })?;
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str())
                })
                .then_some(pid)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_seen_with_its_threads() {
        let me = std::process::id();
        // Burn a little CPU so the counters move.
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(process_ticks(me) > 0);
        assert!(!thread_ticks(me).is_empty());
        let (busy, total) = machine_ticks();
        assert!(busy > 0 && total >= busy);
        let watch = Watch::new(vec![("me".to_owned(), me)]);
        let usage = watch.usage(&watch.sample(), &watch.sample());
        assert_eq!(usage.processes.len(), 1);
    }
}
