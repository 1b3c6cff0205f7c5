//! `bench scale`'s printed summary: a row per case with its speed-up over one consumer, then
//! the rows for docs/benchmarks.md's results table.

use super::{Args, Measured};
use crate::bench::ceiling::rate;
use crate::bench::rss::mib;
use crate::bench::session::Session;
use crate::report::{Figure, markdown_table, to_f64};

/// The summary table, then rows for docs/benchmarks.md; whether every case's checks held.
#[allow(clippy::print_stdout)] // the benchmark's report is its output
pub(super) fn print(args: &Args, session: &Session, background: f64, results: &[Measured]) -> bool {
    println!();
    println!("{}", session.info.header(args.run.build, &session.versions));
    println!(
        " scale      {} messages per case on {} partitions; other processes used {background:.0}% of one core before the start",
        args.messages, args.partitions
    );
    println!();
    println!(
        " consumers coupons batch preload s   drain s   rows/s  from 1st row/s  x 1 consumer  rows/tx  RSS MiB  CPU (% of one core)"
    );
    let mut figures = Vec::new();
    let mut ok = true;
    for m in results {
        let rows_per_s = rate(m.rows, m.total_s);
        // The same coupons and batch size with one consumer, when measured.
        let one = results.iter().find(|o| {
            o.case.consumers == 1
                && o.case.coupons == m.case.coupons
                && o.case.batch_size == m.case.batch_size
        });
        let speedup = one.map(|one| rows_per_s / rate(one.rows, one.total_s).max(1.0));
        println!(
            " {:>9} {:>7} {:>5} {:>9.3} {:>9.3} {:>8.0} {:>15.0} {:>13} {:>8.0} {:>8} {}",
            m.case.consumers,
            m.case.coupons,
            m.case.batch_size,
            m.preload_s,
            m.total_s,
            rows_per_s,
            rate(m.rows, m.after_first_s),
            speedup.map_or_else(|| "-".to_owned(), |s| format!("{s:.2}")),
            to_f64(m.rows) / to_f64(u64::try_from(m.transactions.max(1)).unwrap_or(1)),
            mib(m.consumer_peak_kib),
            m.cpu
        );
        for problem in &m.problems {
            println!("   PROBLEM: {problem}");
            ok = false;
        }
        let mut figure = Figure::new(
            format!(
                "consumers draining {} msgs over {} partitions: {} consumer(s), {} coupon(s), batch {}",
                m.rows, args.partitions, m.case.consumers, m.case.coupons, m.case.batch_size
            ),
            rows_per_s,
            "rows/s",
        );
        if let (Some(one), false) = (one, m.case.consumers == 1) {
            figure = figure.against(rate(one.rows, one.total_s), "the same with 1 consumer");
        }
        figures.push(figure);
    }
    // The consumer's memory is that of its batch: the largest batch size's cases, highest peak.
    if let Some(biggest) = results.iter().map(|m| m.case.batch_size).max() {
        let peak = results
            .iter()
            .filter(|m| m.case.batch_size == biggest)
            .map(|m| m.consumer_peak_kib)
            .max()
            .unwrap_or(0);
        figures.push(Figure::new(
            format!("coupon-consumer peak RSS draining with {biggest}-message batches"),
            to_f64(peak) / 1024.0,
            "MiB",
        ));
    }
    println!();
    println!("Rows for docs/benchmarks.md's results table:\n");
    print!("{}", markdown_table(&figures, &session.info.provenance()));
    ok
}
