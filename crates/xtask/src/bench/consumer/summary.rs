//! The consumer benchmark's summary: the tables the shell version printed, then every figure
//! against its same-run ceiling, and the rows for `docs/benchmarks.md`'s results table.

use super::round::Round;
use super::{Bench, Poll, Results};
use crate::bench::ceiling::{Kind, Measured};
use crate::report::{Figure, markdown_table};

/// The issue's targets.
const TARGET_RATE: f64 = 20_000.0;
const TARGET_BACKLOG_S: f64 = 3.0;
const TARGET_RATIO: f64 = 0.4;

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn ceiling(results: &Results, kind: Kind) -> Option<&Measured> {
    results
        .ceilings
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, m, _)| m)
}

fn figure(name: String, value: f64, unit: &str, against: Option<(&Measured, &str)>) -> Figure {
    Figure {
        figure: name,
        value,
        unit: unit.to_owned(),
        ceiling: against.map(|(m, _)| m.rate()),
        ceiling_of: against.map(|(_, of)| of.to_owned()),
    }
}

/// Prints the summary; whether every check held.
// The task's report is its output.
#[allow(clippy::print_stdout)]
pub fn print(bench: &Bench, results: &Results) -> bool {
    let args = &bench.args;
    let info = &bench.run.info;
    println!(
        "\n===================================== couponrush coupon-consumer benchmark ====================================="
    );
    print!("{}", info.header(args.run.build, &bench.run.versions));
    println!(
        " consumer   ONE process, RUST_LOG=warn, log json, topic of {} partitions, outbox {}, {}",
        args.partitions,
        if args.outbox { "on" } else { "off" },
        bench.consumer
    );
    println!(
        " background the machine was {:.0}% busy (of one core) just before the start",
        results.background
    );
    println!(
        " polling    every {} ms: {}",
        args.poll_ms,
        match args.poll {
            Poll::Count => "COUNT(*) of coupon_user",
            Poll::Stock => "total - available_quantity (PK read; COUNT(*) checked at the end)",
        }
    );
    println!(
        "\n A = {} preloaded, consumer process started at t=0 (includes start-up probes and the group join)",
        args.backlog
    );
    println!(
        " B = {} preloaded while the joined consumer was frozen (SIGSTOP), t=0 at SIGCONT",
        args.more
    );
    println!(
        " txns, rows/txn, ms/txn: the consumer's transactions, from coupon_user.issued_at (one value per batch);"
    );
    println!(
        " persist ms / %: mean time per batch in persist() and its share of the phase, from the consumer's"
    );
    println!(" own coupon_consumer_transaction_duration_seconds\n");
    println!(
        " batch  phase  msgs    preload s  total s  first row s  after first s  issued/s (total)  issued/s (after first)  txns  rows/txn  ms/txn  persist ms  persist %"
    );
    for round in &results.rounds {
        for (label, p) in [("A", &round.a), ("B", &round.b)] {
            let (pms, ppct) = p
                .persist
                .map_or(("-".to_owned(), "-".to_owned()), |(ms, pct)| {
                    (format!("{ms:.1}"), format!("{pct:.0}"))
                });
            println!(
                " {:>5}  {:<5}  {:<6}  {:>9.3}  {:>7.3}  {:>11.3}  {:>13.3}  {:>16.0}  {:>22.0}  {:>4}  {:>8.0}  {:>6.1}  {:>10}  {:>9}",
                round.batch_size,
                label,
                p.messages,
                p.preload.elapsed.as_secs_f64(),
                p.drained.total_s,
                p.drained.first_s,
                p.drained.after_first_s,
                p.drained.rate_total(),
                p.drained.rate_after_first(),
                p.batches.transactions,
                p.batches.rows_per_transaction,
                p.batches.ms_per_transaction,
                pms,
                ppct
            );
        }
    }
    if !results.ceilings.is_empty() {
        println!(
            "\n ceiling (one connection, {} rows per transaction, the storage crate's own code)   rows/s    s  ms/txn",
            args.ceiling_per_stmt
        );
        for (kind, m, _) in &results.ceilings {
            let what = match kind {
                Kind::IssuePlain => {
                    "plain: issue_without_log (lock, INSERT IGNORE, UPDATE stock, COMMIT)"
                }
                _ => "full: persist_batch (+ participation log; the consumer's transaction)",
            };
            println!(
                " {what:<78} {:>8.0} {:>5.3} {:>6.1}",
                m.rate(),
                m.seconds,
                m.ms_per_transaction()
            );
        }
    }
    println!(
        "\n CPU: % of one core over the phase (machine = {:.0} %); gen = the harness (poller) or the ceiling client",
        crate::bench::cpu::Machine::get().cores * 100
    );
    for round in &results.rounds {
        println!(
            " {:<16} {}",
            format!("batch {} A", round.batch_size),
            round.a.cpu
        );
        println!(
            " {:<16} {}",
            format!("batch {} B", round.batch_size),
            round.b.cpu
        );
        println!(" {:<16} {}", "  threads in B", round.threads);
    }
    for (kind, _, usage) in &results.ceilings {
        let mode = if *kind == Kind::IssuePlain {
            "plain"
        } else {
            "full"
        };
        println!(" {:<16} {usage}", format!("ceiling {mode}"));
    }
    println!("\n checks");
    let mut ok = true;
    for round in &results.rounds {
        let c = &round.checks;
        ok &= c.problems.is_empty();
        println!(
            " batch {:<5} rows {}, distinct users {}, available {} of {}, redis issued {} / users {}, DLQ {}, consumer ERROR lines {}, rejoin in B: {} -> {}",
            round.batch_size,
            c.rows,
            c.distinct,
            c.available,
            c.total,
            c.redis_issued,
            c.redis_users,
            c.dlq,
            c.error_lines,
            if round.rejoined { "yes" } else { "no" },
            if c.problems.is_empty() {
                "OK".to_owned()
            } else {
                format!("FAILED: {}", c.problems.join("; "))
            }
        );
        println!(
            "             topic read back: {} messages (ListOffsets high watermarks claimed {}), frozen {:.2} s in B",
            round.topic.messages, round.topic.high_watermarks, round.frozen_s
        );
    }
    let figures = figures(bench, results);
    if let Some(best) = best(results) {
        println!(
            "\n best       batch size {}: B drained at {:.0} issuances/s; A's {} in {:.3} s from the process start, {:.3} s from the first row",
            best.batch_size,
            best.b.drained.rate_total(),
            args.backlog,
            best.a.drained.total_s,
            best.a.drained.after_first_s
        );
        let rate = best.b.drained.rate_total();
        if let (Some(plain), Some(full)) = (
            ceiling(results, Kind::IssuePlain),
            ceiling(results, Kind::IssueFull),
        ) {
            println!(
                " ratio      consumer / ceiling = {rate:.0} / {:.0} = {:.2} (against the consumer's whole transaction: {rate:.0} / {:.0} = {:.2})",
                plain.rate(),
                rate / plain.rate(),
                full.rate(),
                rate / full.rate()
            );
        }
        println!(
            " targets    one consumer >= 20000 issuances/s ................... {}",
            verdict(rate >= TARGET_RATE)
        );
        println!(
            "            {} backlog drained in < 3 s (from process start) . {} (from the first row: {})",
            args.backlog,
            verdict(best.a.drained.total_s < TARGET_BACKLOG_S),
            verdict(best.a.drained.after_first_s < TARGET_BACKLOG_S)
        );
        if let Some(plain) = ceiling(results, Kind::IssuePlain) {
            println!(
                "            throughput >= 0.4 x raw insert ceiling .............. {}",
                verdict(rate / plain.rate() >= TARGET_RATIO)
            );
        }
    }
    println!("\n figures (value / same-run ceiling = ratio)");
    for figure in &figures {
        println!(" {figure}");
    }
    println!("\n results table rows (docs/benchmarks.md)\n");
    print!("{}", markdown_table(&figures, &info.provenance()));
    println!(
        "================================================================================================================"
    );
    ok
}

/// The round whose B drained fastest.
fn best(results: &Results) -> Option<&Round> {
    results.rounds.iter().max_by(|a, b| {
        a.b.drained
            .rate_total()
            .total_cmp(&b.b.drained.rate_total())
    })
}

fn figures(bench: &Bench, results: &Results) -> Vec<Figure> {
    let plain = ceiling(results, Kind::IssuePlain).map(|m| (m, "plain insert ceiling, rows/s"));
    let full = ceiling(results, Kind::IssueFull).map(|m| (m, "persist_batch ceiling, rows/s"));
    let mut figures = Vec::new();
    for round in &results.rounds {
        let b = round.batch_size;
        let rate = round.b.drained.rate_total();
        figures.push(figure(
            format!("consumer B drain, batch {b}"),
            rate,
            "issued/s",
            plain,
        ));
        figures.push(figure(
            format!("consumer B drain, batch {b} (vs its own SQL)"),
            rate,
            "issued/s",
            full,
        ));
        figures.push(figure(
            format!("consumer A after first row, batch {b}"),
            round.a.drained.rate_after_first(),
            "issued/s",
            full,
        ));
        figures.push(figure(
            format!(
                "consumer A {} backlog from process start, batch {b}",
                bench.args.backlog
            ),
            round.a.drained.total_s,
            "s",
            None,
        ));
    }
    figures
}
