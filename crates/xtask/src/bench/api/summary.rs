//! The benchmark's printed summary (the same table `scripts/bench-api.sh` printed, which
//! `docs/benchmarks.md` quotes), its figures against their ceilings, and the markdown rows
//! for the results table.

use super::Args;
use super::http::{HttpPhase, ms};
use super::lua::LuaPhase;
use super::memory::Memory;
use crate::bench::cpu::Usage;
use crate::bench::run_info::RunInfo;
use crate::report::{Figure, markdown_table, to_f64};

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    /// One per concurrency, in order, with the new users Redis recorded during it.
    pub accepted: Vec<(HttpPhase, u64)>,
    pub sold_out: HttpPhase,
    pub floor: Option<HttpPhase>,
    pub lua_accept: LuaPhase,
    pub lua_sold_out: LuaPhase,
    /// Stock left on the accepted-path coupon after the accepted phases.
    pub stock_left: u64,
    /// Percent of one core other processes used before the start.
    pub background: f64,
    /// The accepted path with traces exported, between two runs without.
    pub tracing: Option<TracingCost>,
    /// The accepted path with the abuse limits on, between two runs with them off.
    pub limits: Option<LimitsCost>,
    /// The accepted path waiting for one replica's acknowledgement, between two runs without.
    pub replicas: Option<ReplicaCost>,
    /// issuer-api's resident set after the phases, and around floods of idle connections.
    pub memory: Option<Memory>,
    /// wrk's and the servers' versions, for the header.
    pub versions: String,
    pub redis_pool: usize,
}

/// The accepted path at the best concurrency on a fresh issuer-api three times: without a
/// setting, with it, without it again.
#[derive(Debug)]
pub struct Bracketed {
    pub before: HttpPhase,
    pub with: HttpPhase,
    pub after: HttpPhase,
}

impl Bracketed {
    /// The mean rate of the runs without the setting.
    fn without_rps(&self) -> f64 {
        (to_f64(self.before.rps) + to_f64(self.after.rps)) / 2.0
    }

    /// The rate with the setting over the mean of those without it around it.
    fn kept(&self) -> f64 {
        let without = self.without_rps();
        if without > 0.0 {
            to_f64(self.with.rps) / without
        } else {
            0.0
        }
    }
}

/// Traces exported at `ratio` to a real OTLP receiver, bracketed by tracing off.
#[derive(Debug)]
pub struct TracingCost {
    pub ratio: f64,
    pub runs: Bracketed,
    /// Spans the receiver got from the traced run.
    pub spans: u64,
}

/// The abuse limits on (checked and counted in the reserve script), bracketed by limits off.
#[derive(Debug)]
pub struct LimitsCost {
    pub runs: Bracketed,
}

/// `redis.min_replica_acks = 1` (WAIT after each reservation) on a private master with one
/// replica, bracketed by the same pair without it.
#[derive(Debug)]
pub struct ReplicaCost {
    pub runs: Bracketed,
}

impl Results {
    fn best(&self) -> Option<&HttpPhase> {
        best(&self.accepted)
    }
}

/// The accepted phase with the most answers per second (the first of equals).
pub fn best(accepted: &[(HttpPhase, u64)]) -> Option<&HttpPhase> {
    accepted
        .iter()
        .map(|(phase, _)| phase)
        .fold(None, |best: Option<&HttpPhase>, phase| match best {
            Some(best) if best.rps >= phase.rps => Some(best),
            _ => Some(phase),
        })
}

/// Prints the summary, then the figures as rows for `docs/benchmarks.md`.
#[allow(clippy::print_stdout)] // the benchmark's report is its output
pub fn print(args: &Args, results: &Results, info: &RunInfo) {
    println!("{}", text(args, results, info));
    println!("\nRows for docs/benchmarks.md's results table:\n");
    print!("{}", markdown_table(&figures(results), &info.provenance()));
}

fn text(args: &Args, r: &Results, info: &RunInfo) -> String {
    let mut out = Vec::new();
    out.push(String::new());
    out.push("======================================= couponrush issuer-api benchmark =======================================".to_owned());
    out.push(
        info.header(args.run.build, &r.versions)
            .trim_end()
            .to_owned(),
    );
    out.push(format!(
        " issuer-api http.workers={}, log json, RUST_LOG=warn, redis pool {}; no consumer running",
        args.workers, r.redis_pool
    ));
    out.push(format!(
        " phases     {}s warm-up (not measured) + {}s each, closed loop, every request a new user",
        args.warmup, args.duration
    ));
    out.push(format!(
        " background other processes used {:.0}% of one core just before the start (nothing of ours running)",
        r.background
    ));
    out.push(String::new());
    out.push(
        " phase                    conns  answers/s   p50 ms   p95 ms   p99 ms   max ms  errors"
            .to_owned(),
    );
    for (phase, _) in &r.accepted {
        out.push(http_row("accepted (202)", phase));
    }
    if let Some(tracing) = &r.tracing {
        out.push(http_row("untraced (202)", &tracing.runs.before));
        out.push(http_row(
            &format!("traced {} (202)", tracing.ratio),
            &tracing.runs.with,
        ));
        out.push(http_row("untraced again (202)", &tracing.runs.after));
    }
    if let Some(limits) = &r.limits {
        out.push(http_row("limits off (202)", &limits.runs.before));
        out.push(http_row("limits on (202)", &limits.runs.with));
        out.push(http_row("limits off again (202)", &limits.runs.after));
    }
    if let Some(replicas) = &r.replicas {
        out.push(http_row("no replica ack (202)", &replicas.runs.before));
        out.push(http_row("1 replica ack (202)", &replicas.runs.with));
        out.push(http_row("no replica ack again", &replicas.runs.after));
    }
    out.push(http_row("sold out (409)", &r.sold_out));
    if let Some(floor) = &r.floor {
        out.push(http_row("HTTP floor (health 200)", floor));
    }
    for (label, lua) in [
        ("Lua reserve, accept", &r.lua_accept),
        ("Lua reserve, sold out", &r.lua_sold_out),
    ] {
        out.push(format!(
            " {label:<24} {:>5} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7}",
            args.lua_clients, lua.rps, lua.p50, "-", lua.p99, "-", "-"
        ));
    }
    if let Some(memory) = &r.memory {
        out.extend(memory.rows(most_conns(r)));
    }
    out.push(String::new());
    out.push(format!(
        " CPU: % of one core over the phase (machine = {} %), in brackets us of CPU per answer;",
        crate::bench::cpu::Machine::get().cores * 100
    ));
    out.push(
        " gen = the load generator (wrk, or redis-benchmark); redis, broker, mysql = the server processes,"
            .to_owned(),
    );
    out.push(
        " shared with whoever else uses them (the issue path never touches MySQL); other = any other process"
            .to_owned(),
    );
    for (phase, _) in &r.accepted {
        out.push(cpu_row(
            &format!("accepted c{}", phase.conns),
            &phase.cpu,
            phase.answers,
        ));
    }
    let sold_out = &r.sold_out;
    out.push(cpu_row(
        &format!("sold out c{}", sold_out.conns),
        &sold_out.cpu,
        sold_out.answers,
    ));
    if let Some(floor) = &r.floor {
        out.push(cpu_row(
            &format!("HTTP floor c{}", floor.conns),
            &floor.cpu,
            floor.answers,
        ));
    }
    out.push(cpu_row(
        "Lua reserve, accept",
        &r.lua_accept.cpu,
        args.lua_requests,
    ));
    out.push(cpu_row(
        "Lua reserve, sold out",
        &r.lua_sold_out.cpu,
        args.lua_requests,
    ));
    out.push(String::new());
    let recorded: String = r
        .accepted
        .iter()
        .map(|(phase, users)| format!("{users}/{} ", phase.wrk.s202))
        .collect();
    out.push(format!(
        " checks     accepted phases: Redis recorded {recorded}new users / 202s seen by wrk"
    ));
    out.push(format!(
        "            (Redis may hold up to one in-flight request per connection more); stock left {} of {}",
        r.stock_left, args.stock
    ));
    out.push(format!(
        "            Lua accept: {} evals -> {} users recorded (the rest drew an id twice), stock {}",
        args.lua_requests, r.lua_accept.users, r.lua_accept.stock
    ));
    if let Some(best) = r.best() {
        out.push(format!(
            " best       accepted {}/s at {} connections, p99 {} ms",
            best.rps,
            best.conns,
            ms(best.wrk.p99_us)
        ));
        out.push(format!(
            " ratio      accepted / Lua ceiling = {} / {} = {}",
            best.rps,
            r.lua_accept.rps,
            ratio3(best.rps, r.lua_accept.rps)
        ));
    }
    out.push(format!(
        "            sold out / Lua sold-out ceiling = {} / {} = {}",
        sold_out.rps,
        r.lua_sold_out.rps,
        ratio3(sold_out.rps, r.lua_sold_out.rps)
    ));
    if let Some(tracing) = &r.tracing {
        out.push(format!(
            " tracing    traced at ratio {} / mean of the untraced runs around it = {} / {} = {:.3} ({} spans exported)",
            tracing.ratio,
            tracing.runs.with.rps,
            (tracing.runs.before.rps + tracing.runs.after.rps) / 2,
            tracing.runs.kept(),
            tracing.spans
        ));
    }
    if let Some(limits) = &r.limits {
        out.push(format!(
            " limits     limits on / mean of the runs with limits off around it = {} / {} = {:.3}",
            limits.runs.with.rps,
            (limits.runs.before.rps + limits.runs.after.rps) / 2,
            limits.runs.kept(),
        ));
    }
    if let Some(replicas) = &r.replicas {
        out.push(format!(
            " replicas   1 replica ack / mean of the runs without around it = {} / {} = {:.3}; p99 {} ms against {} and {} ms",
            replicas.runs.with.rps,
            (replicas.runs.before.rps + replicas.runs.after.rps) / 2,
            replicas.runs.kept(),
            ms(replicas.runs.with.wrk.p99_us),
            ms(replicas.runs.before.wrk.p99_us),
            ms(replicas.runs.after.wrk.p99_us),
        ));
    }
    let targets = targets(r);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    out.push(format!(
        " targets    >= 10000 accepted/s with p99 < 20 ms ........ {}",
        verdict(targets[0])
    ));
    out.push(format!(
        "            >= 20000 sold-out answers/s ................. {}",
        verdict(targets[1])
    ));
    out.push(format!(
        "            accepted >= 0.4 x Lua ceiling ............... {}",
        verdict(targets[2])
    ));
    if let Some(tracing) = &r.tracing {
        out.push(format!(
            "            traced keeps >= 0.90 x untraced ............. {}",
            verdict(tracing.runs.kept() >= 0.9)
        ));
    }
    if let Some(limits) = &r.limits {
        out.push(format!(
            "            limits on keep >= 0.90 x limits off ......... {}",
            verdict(limits.runs.kept() >= 0.9)
        ));
    }
    out.push("===============================================================================================================".to_owned());
    out.join("\n")
}

/// The three targets: any accepted phase with >= 10,000/s at p99 < 20 ms; >= 20,000
/// sold-out answers/s; best accepted >= 0.4 x the Lua ceiling (as printed, 3 decimals).
fn targets(r: &Results) -> [bool; 3] {
    let accepted = r
        .accepted
        .iter()
        .any(|(phase, _)| phase.rps >= 10_000 && phase.wrk.p99_us < 20_000);
    let ratio = r.best().map_or(0, |best| {
        ratio3(best.rps, r.lua_accept.rps)
            .replace('.', "")
            .parse::<u64>()
            .unwrap_or(0)
    });
    [accepted, r.sold_out.rps >= 20_000, ratio >= 400]
}

/// `a / b` with three decimals (0.000 when there is no ceiling).
fn ratio3(a: u64, b: u64) -> String {
    if b == 0 {
        return "0.000".to_owned();
    }
    let thousandths = (a * 1000 + b / 2) / b;
    format!("{}.{:03}", thousandths / 1000, thousandths % 1000)
}

fn http_row(label: &str, phase: &HttpPhase) -> String {
    let wrk = &phase.wrk;
    format!(
        " {label:<24} {:>5} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7}",
        phase.conns,
        phase.rps,
        ms(wrk.p50_us),
        ms(wrk.p95_us),
        ms(wrk.p99_us),
        ms(wrk.max_us),
        wrk.errors(phase.answers)
    )
}

/// `gen 20% (13 us) api 42% (27 us) ... other 1% machine 112%`.
fn cpu_row(label: &str, cpu: &Usage, answers: u64) -> String {
    let mut out = String::new();
    for (name, ticks) in &cpu.processes {
        out.push_str(&format!(
            " {name} {:.0}% ({:.0} us)",
            cpu.percent(*ticks),
            cpu.micros_per(*ticks, answers)
        ));
    }
    out.push_str(&format!(" other {:.0}%", cpu.percent(cpu.other)));
    out.push_str(&format!(" machine {:.0}%", cpu.percent(cpu.busy)));
    format!(" {label:<24}{out}")
}

/// The figures of the run, each against the ceiling it is judged by.
pub fn figures(r: &Results) -> Vec<Figure> {
    let f = to_f64;
    let lua_accept = f(r.lua_accept.rps);
    let lua_sold_out = f(r.lua_sold_out.rps);
    let best_conns = r.best().map(|best| best.conns);
    let mut figures = Vec::new();
    for (phase, _) in &r.accepted {
        let best = if Some(phase.conns) == best_conns {
            " (best)"
        } else {
            ""
        };
        let ceiling = (lua_accept, "Lua reserve, accept");
        figures.extend(rate_and_p99("accepted issuances", best, phase, ceiling));
    }
    let sold_out = &r.sold_out;
    let ceiling = (lua_sold_out, "Lua reserve, sold out");
    figures.extend(rate_and_p99("sold-out answers", "", sold_out, ceiling));
    if let Some(floor) = &r.floor {
        figures.push(Figure::new(
            format!("HTTP floor (GET /health/live), {} conns", floor.conns),
            f(floor.rps),
            "/s",
        ));
    }
    for (what, phase) in [("accepted", r.best()), ("sold-out", Some(sold_out))] {
        if let Some(phase) = phase
            && let Some(ticks) = phase.cpu.ticks("api")
        {
            figures.push(Figure::new(
                format!("issuer-api CPU per {what} answer, {} conns", phase.conns),
                phase.cpu.micros_per(ticks, phase.answers),
                "µs",
            ));
        }
    }
    if let Some(tracing) = &r.tracing {
        figures.push(
            Figure::new(
                format!(
                    "issuer-api accepted/s traced at ratio {}, {} conns",
                    tracing.ratio, tracing.runs.with.conns
                ),
                f(tracing.runs.with.rps),
                "/s",
            )
            .against(
                tracing.runs.without_rps(),
                "the same, tracing off (mean of the runs before and after)",
            ),
        );
    }
    if let Some(limits) = &r.limits {
        figures.push(
            Figure::new(
                format!(
                    "issuer-api accepted/s with abuse limits on, {} conns",
                    limits.runs.with.conns
                ),
                f(limits.runs.with.rps),
                "/s",
            )
            .against(
                limits.runs.without_rps(),
                "the same, limits off (mean of the runs before and after)",
            ),
        );
    }
    if let Some(replicas) = &r.replicas {
        let runs = &replicas.runs;
        let p99 = |phase: &HttpPhase| to_f64(phase.wrk.p99_us) / 1000.0;
        figures.push(
            Figure::new(
                format!(
                    "issuer-api accepted/s waiting for 1 replica ack (WAIT), {} conns",
                    runs.with.conns
                ),
                f(runs.with.rps),
                "/s",
            )
            .against(
                runs.without_rps(),
                "the same Redis pair, no ack asked (mean of the runs before and after)",
            ),
        );
        figures.push(
            Figure::new(
                format!(
                    "issuer-api accepted p99 waiting for 1 replica ack, {} conns",
                    runs.with.conns
                ),
                p99(&runs.with),
                "ms",
            )
            .against(
                f64::midpoint(p99(&runs.before), p99(&runs.after)),
                "the same, no ack asked (mean of the runs before and after)",
            ),
        );
    }
    if let Some(memory) = &r.memory {
        figures.extend(memory.figures(most_conns(r)));
    }
    figures.push(Figure::new(
        "Lua reserve ceiling, accept (redis-benchmark EVALSHA)",
        lua_accept,
        "/s",
    ));
    figures.push(Figure::new(
        "Lua reserve ceiling, sold out (redis-benchmark EVALSHA)",
        lua_sold_out,
        "/s",
    ));
    figures
}

/// An HTTP phase's rate of `kind` against its Lua ceiling, then its p99.
fn rate_and_p99(kind: &str, note: &str, phase: &HttpPhase, ceiling: (f64, &str)) -> [Figure; 2] {
    let conns = phase.conns;
    [
        Figure::new(
            format!("issuer-api {kind}/s, {conns} conns{note}"),
            to_f64(phase.rps),
            "/s",
        )
        .against(ceiling.0, ceiling.1),
        Figure::new(
            format!("issuer-api {kind} p99, {conns} conns"),
            to_f64(phase.wrk.p99_us) / 1000.0,
            "ms",
        ),
    ]
}

/// The highest concurrency of the accepted phases (issuer-api's peak resident set is theirs).
fn most_conns(r: &Results) -> u32 {
    r.accepted
        .iter()
        .map(|(phase, _)| phase.conns)
        .max()
        .unwrap_or(0)
}
