//! issuer-api's memory: its resident set (`VmRSS`) and peak (`VmHWM`) read from `/proc`, and
//! floods of idle connections: many clients connect, send nothing, hold on, then leave, and
//! the resident set is read before, at its highest while they hold, and once they are gone.
//! A server that keeps what a flood made it allocate is one flood per day from an OOM kill.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::log;
use crate::bench::rss::{Rss, mib, rss};
use crate::report::{Figure, to_f64};

/// How often the resident set is read while a flood holds its connections.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Connections being opened at once (each a connect, which the kernel may queue).
const OPENING_AT_ONCE: usize = 256;
/// How long a closed flood is given for the server to notice and free what it held.
const SETTLE: Duration = Duration::from_secs(3);

/// How long a flood holds its idle connections: under actix's timeout for a first request
/// (5 s), which would close them first.
const FLOOD_HOLD: Duration = Duration::from_secs(2);

/// issuer-api's (`pid`) peak resident set over the phases so far, then `floods` floods of
/// `connections` idle connections to `addr`; `None` when the pid is unknown.
pub async fn measure(
    pid: Option<u32>,
    addr: SocketAddr,
    connections: usize,
    floods: u32,
) -> anyhow::Result<Option<Memory>> {
    let Some(pid) = pid else {
        log("issuer-api's pid is unknown: no memory figures");
        return Ok(None);
    };
    let after_load = rss(pid)?;
    let mut rounds = Vec::new();
    for round in 1..=floods {
        let flood = flood(addr, pid, connections, FLOOD_HOLD).await?;
        log(&format!(
            "flood {round}: {} idle connections; issuer-api RSS {} MiB before, {} MiB at most, {} MiB after",
            flood.opened,
            mib(flood.before_kib),
            mib(flood.during_kib),
            mib(flood.after_kib)
        ));
        rounds.push(flood);
    }
    Ok(Some(Memory {
        after_load,
        floods: rounds,
    }))
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

/// issuer-api's memory: after the accepted and sold-out phases (its peak is that of the
/// highest concurrency), then each flood of idle connections.
#[derive(Debug)]
pub struct Memory {
    pub after_load: Rss,
    pub floods: Vec<Flood>,
}

impl Memory {
    /// The summary's memory lines; `most_conns`: the highest concurrency of the phases.
    pub fn rows(&self, most_conns: u32) -> Vec<String> {
        let mut rows = vec![
            String::new(),
            format!(
                " memory     issuer-api resident set: {} MiB at most over the phases (up to {} conns), {} MiB after them",
                mib(self.after_load.peak_kib),
                most_conns,
                mib(self.after_load.now_kib)
            ),
        ];
        for (round, flood) in self.floods.iter().enumerate() {
            rows.push(format!(
                "            flood {}: {} idle connections held 2 s: {} MiB before, {} MiB at most, {} MiB after they left",
                round + 1,
                flood.opened,
                mib(flood.before_kib),
                mib(flood.during_kib),
                mib(flood.after_kib)
            ));
        }
        rows
    }

    /// The memory figures for the results table.
    pub fn figures(&self, most_conns: u32) -> Vec<Figure> {
        let f = |kib: u64| to_f64(kib) / 1024.0;
        let mut figures = vec![Figure::new(
            format!(
                "issuer-api peak RSS over the accepted phases, up to {} conns",
                most_conns
            ),
            f(self.after_load.peak_kib),
            "MiB",
        )];
        if let (Some(first), Some(last)) = (self.floods.first(), self.floods.last()) {
            figures.push(Figure::new(
                format!(
                    "issuer-api highest RSS during a flood of {} idle connections",
                    first.opened
                ),
                f(self
                    .floods
                    .iter()
                    .map(|flood| flood.during_kib)
                    .max()
                    .unwrap_or(0)),
                "MiB",
            ));
            figures.push(
                Figure::new(
                    format!(
                        "issuer-api RSS after {} floods (before the first: the ceiling column)",
                        self.floods.len()
                    ),
                    f(last.after_kib),
                    "MiB",
                )
                .against(f(first.before_kib), "before the first flood"),
            );
        }
        figures
    }
}
