//! issuer-api's memory: its resident set (`VmRSS`) and peak (`VmHWM`) read from `/proc`, and
//! floods of idle connections: many clients connect, send nothing, hold on, then leave, and
//! the resident set is read before, at its highest while they hold, and once they are gone.
//! A server that keeps what a flood made it allocate is one flood per day from an OOM kill.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How often the resident set is read while a flood holds its connections.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Connections being opened at once (each a connect, which the kernel may queue).
const OPENING_AT_ONCE: usize = 256;
/// How long a closed flood is given for the server to notice and free what it held.
const SETTLE: Duration = Duration::from_secs(3);

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

/// One flood and the server's resident set around it.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Connections the server's kernel accepted (of those asked for).
    pub opened: usize,
    pub before_kib: u64,
    /// The highest resident set read while the connections were held.
    pub during_kib: u64,
    /// Once they were closed and [`SETTLE`] passed.
    pub after_kib: u64,
}

/// Opens `connections` idle TCP connections to `addr` (at most [`OPENING_AT_ONCE`] connecting
/// at a time), holds them for `hold`, closes them, and reads `pid`'s resident set throughout.
/// `hold` should stay under the server's timeout for a first request, or the server closes
/// them first (which is the point of that timeout, but not what is measured here).
pub async fn flood(
    addr: SocketAddr,
    pid: u32,
    connections: usize,
    hold: Duration,
) -> anyhow::Result<Flood> {
    let before_kib = rss(pid)?.now_kib;
    let mut during_kib = before_kib;
    let mut held = Vec::with_capacity(connections);
    let mut opening = JoinSet::new();
    let mut asked = 0;
    while asked < connections || !opening.is_empty() {
        while asked < connections && opening.len() < OPENING_AT_ONCE {
            opening.spawn(async move {
                tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
            });
            asked += 1;
        }
        if let Some(Ok(Ok(Ok(stream)))) = opening.join_next().await {
            held.push(stream);
        }
        if held.len() % 1000 == 0 {
            during_kib = during_kib.max(rss(pid)?.now_kib);
        }
    }
    let opened = held.len();
    let until = tokio::time::Instant::now() + hold;
    while tokio::time::Instant::now() < until {
        during_kib = during_kib.max(rss(pid)?.now_kib);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    drop(held);
    tokio::time::sleep(SETTLE).await;
    Ok(Flood {
        opened,
        before_kib,
        during_kib,
        after_kib: rss(pid)?.now_kib,
    })
}

/// KiB as MiB, one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", crate::report::to_f64(kib) / 1024.0)
}
