//! The HTTP phases: wrk (`scripts/load/bench-issue.lua`, closed loop) against issuer-api, and
//! the two coupons they run on, created through the admin API like an operator would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use couponrush_domain::CouponId;

use super::log;
use crate::bench::cpu::{Usage, Watch};
use crate::binaries::workspace_root;
use crate::report::to_f64;

/// What wrk's `done()` in bench-issue.lua prints on its `BENCH ...` line.
#[derive(Debug, Clone, Default)]
pub struct WrkRun {
    pub requests: u64,
    pub duration_us: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub s200: u64,
    pub s202: u64,
    pub s409: u64,
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl WrkRun {
    /// Parses `BENCH requests=N duration_us=N ...` out of wrk's output.
    fn parse(output: &str) -> anyhow::Result<Self> {
        let line = output
            .lines()
            .find_map(|line| line.strip_prefix("BENCH "))
            .context("wrk printed no BENCH line")?;
        let values: HashMap<&str, u64> = line
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(key, value)| Some((key, value.parse().ok()?)))
            .collect();
        let get = |key: &str| {
            values
                .get(key)
                .copied()
                .with_context(|| format!("no {key}= on wrk's BENCH line: {line}"))
        };
        Ok(Self {
            requests: get("requests")?,
            duration_us: get("duration_us")?,
            p50_us: get("p50_us")?,
            p95_us: get("p95_us")?,
            p99_us: get("p99_us")?,
            max_us: get("max_us")?,
            s200: get("s200")?,
            s202: get("s202")?,
            s409: get("s409")?,
            connect: get("connect")?,
            read: get("read")?,
            write: get("write")?,
            timeout: get("timeout")?,
        })
    }

    /// Answers that were not the expected `ok` ones, plus socket errors and timeouts.
    pub fn errors(&self, ok: u64) -> u64 {
        self.requests.saturating_sub(ok) + self.connect + self.read + self.write + self.timeout
    }

    /// `count` answers per second over the measured duration, rounded.
    pub fn per_second(&self, count: u64) -> u64 {
        if self.duration_us == 0 {
            return 0;
        }
        (count * 1_000_000 + self.duration_us / 2) / self.duration_us
    }
}

/// One measured HTTP phase.
#[derive(Debug, Clone)]
pub struct HttpPhase {
    pub conns: u32,
    pub wrk: WrkRun,
    pub cpu: Usage,
    /// The answers this phase is about (202s, 409s or 200s) and their rate.
    pub answers: u64,
    pub rps: u64,
}

/// How wrk is run: the same for every phase.
#[derive(Debug)]
pub struct Wrk {
    pub program: PathBuf,
    pub threads: u32,
    pub base_url: String,
    pub log_dir: PathBuf,
}

impl Wrk {
    /// One wrk run of `secs` seconds with `conns` connections on `coupon` ("health": GET
    /// /health/live), every user id starting with `users`; CPU recorded for `watch`.
    pub async fn run(
        &self,
        watch: &Watch,
        phase: &str,
        coupon: &str,
        users: &str,
        conns: u32,
        secs: u64,
    ) -> anyhow::Result<(WrkRun, Usage)> {
        let script = workspace_root().join("scripts/load/bench-issue.lua");
        let args: Vec<String> = vec![
            "-t".into(),
            self.threads.to_string(),
            "-c".into(),
            conns.to_string(),
            "-d".into(),
            format!("{secs}s"),
            "--timeout".into(),
            "10s".into(),
            "--latency".into(),
            "-s".into(),
            script.display().to_string(),
            self.base_url.clone(),
            "--".into(),
            coupon.into(),
            users.into(),
            "1".into(),
        ];
        let name = format!("wrk-{phase}");
        let (output, usage) = watch
            .measure(&name, &self.program, &args, &self.log_dir)
            .await?;
        let run = WrkRun::parse(&output).with_context(|| {
            format!("phase {phase} (see {})", self.log_dir.join(&name).display())
        })?;
        Ok((run, usage))
    }

    /// A phase: an optional warm-up (same coupon, its own users), then the measured run.
    pub async fn phase(&self, watch: &Watch, spec: PhaseSpec<'_>) -> anyhow::Result<HttpPhase> {
        self.warm_up(watch, spec).await?;
        self.measure(watch, spec).await
    }

    /// The phase's unmeasured warm-up, if it has one.
    pub async fn warm_up(&self, watch: &Watch, spec: PhaseSpec<'_>) -> anyhow::Result<()> {
        if spec.warmup > 0 {
            log(&format!("{}: warm-up {}s", spec.name, spec.warmup));
            let name = format!("warmup-{}", spec.name);
            let users = spec.warmup_users;
            self.run(watch, &name, spec.coupon, users, spec.conns, spec.warmup)
                .await?;
        }
        Ok(())
    }

    /// The phase's measured run.
    pub async fn measure(&self, watch: &Watch, spec: PhaseSpec<'_>) -> anyhow::Result<HttpPhase> {
        let PhaseSpec {
            name,
            coupon,
            users,
            conns,
            secs,
            count,
            ..
        } = spec;
        log(&format!("{name}: {secs}s, {conns} connections"));
        let (wrk, cpu) = self.run(watch, name, coupon, users, conns, secs).await?;
        let answers = count(&wrk);
        Ok(HttpPhase {
            conns,
            rps: wrk.per_second(answers),
            answers,
            wrk,
            cpu,
        })
    }
}

/// One HTTP phase to run.
#[derive(Debug, Clone, Copy)]
pub struct PhaseSpec<'a> {
    pub name: &'a str,
    /// A coupon id, or "health" for GET /health/live.
    pub coupon: &'a str,
    /// User id prefixes of the warm-up and of the measured run (each run has its own users).
    pub warmup_users: &'a str,
    pub users: &'a str,
    pub conns: u32,
    /// Seconds of warm-up (0: none) and of measurement.
    pub warmup: u64,
    pub secs: u64,
    /// The answers the phase is about (202s, 409s or 200s).
    pub count: fn(&WrkRun) -> u64,
}

/// Milliseconds with two decimals, from microseconds.
pub fn ms(micros: u64) -> String {
    format!("{:.2}", to_f64(micros) / 1000.0)
}

/// wrk's version (`wrk -v` prints it, on stdout or stderr, and exits 1); "?" if unknown.
pub async fn wrk_version(wrk: &Path) -> String {
    let Ok(out) = tokio::process::Command::new(wrk).arg("-v").output().await else {
        return "?".to_owned();
    };
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .split_whitespace()
        .nth(1)
        .map_or_else(|| "?".to_owned(), str::to_owned)
}

/// `POST /coupons/{coupon}/issue` as `user`; its status code.
pub async fn issue(
    client: &reqwest::Client,
    base_url: &str,
    coupon: CouponId,
    user: &str,
) -> anyhow::Result<u16> {
    let response = client
        .post(format!("{base_url}/coupons/{coupon}/issue"))
        .header("userId", user)
        .send()
        .await
        .with_context(|| format!("POST /coupons/{coupon}/issue"))?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bench_line() -> anyhow::Result<()> {
        let out = "Running 1s test\nBENCH requests=1000 duration_us=2000000 p50_us=7000 \
                   p95_us=9000 p99_us=9830 max_us=13750 mean_us=7100 s200=0 s202=998 s409=0 \
                   other=2 connect=0 read=1 write=0 timeout=0 non2xx=2 counted=1\n";
        let run = WrkRun::parse(out)?;
        assert_eq!(run.per_second(run.s202), 499);
        assert_eq!(run.errors(run.s202), 3);
        assert_eq!(ms(run.p99_us), "9.83");
        assert!(WrkRun::parse("no line").is_err());
        Ok(())
    }
}
