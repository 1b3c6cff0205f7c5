//! The batch benchmark's summary: the table the shell version printed, each job against its
//! same-run ceiling, and the rows for `docs/benchmarks.md`'s results table.

use super::Bench;
use super::jobs::{Ran, Timed};
use super::seed::Seeded;
use crate::bench::ceiling::rate;
use crate::report::{Figure, markdown_table};

/// The targets, in seconds.
const COMPENSATE_TARGET_S: f64 = 3.0;
const RECONCILE_TARGET_S: f64 = 5.0;

fn target(timed: &Timed, limit_s: f64) -> String {
    match timed.exit {
        Some(0) if timed.seconds < limit_s => format!("< {limit_s} s: met"),
        Some(0) => format!("< {limit_s} s: NOT met"),
        other => format!("n/a (exit {other:?})"),
    }
}

fn row(command: &str, users: u64, timed: &Timed, per_s: Option<f64>, target: &str) -> String {
    format!(
        " {command:<26} {users:>7} {:>5} {:>8.3} {:>10} {:>7} {:>7.0}  {target}",
        timed.exit.map_or("sig".to_owned(), |c| c.to_string()),
        timed.seconds,
        per_s
            .filter(|_| timed.ok())
            .map_or("-".to_owned(), |r| format!("{r:.0}")),
        timed.own_ms.map_or("-".to_owned(), |ms| format!("{ms:.0}")),
        timed.machine,
    )
}

// The task's report is its output.
#[allow(clippy::print_stdout)]
pub fn print(bench: &Bench, seeded: &Seeded, ran: &Ran, problems: &[String]) {
    let (args, info) = (&bench.args, &bench.run.info);
    let reconciled = args.reconcile_participants;
    println!(
        "\n=========================== couponrush compensation-batch benchmark ==========================="
    );
    print!("{}", info.header(args.run.build, &bench.run.versions));
    println!(
        " data       source coupon {}: {} participants, {} holders, {} eligible (seeded in {:.3} s)",
        seeded.source,
        args.participants,
        args.holders,
        args.eligible(),
        seeded.compensate_seed.as_secs_f64()
    );
    println!(
        "            reconcile coupon {}: {reconciled} participants (MySQL {:.3} s, Redis {:.3} s)",
        seeded.reconcile,
        seeded.reconcile_mysql_seed.as_secs_f64(),
        seeded.reconcile_redis_seed.as_secs_f64()
    );
    println!(
        " seconds    wall clock of the process (start-up checks included); \"own ms\": the elapsed_ms the"
    );
    println!(
        "            command printed; \"machine\": the machine's busy CPU meanwhile (% of one core)\n"
    );
    println!(
        " command                      users   exit  seconds    users/s  own ms machine  target"
    );
    let comp_rate = rate(ran.granted, ran.compensate.seconds);
    let rec_rate = rate(reconciled, ran.reconcile.seconds);
    println!(
        "{}",
        row(
            "compensate --dry-run",
            args.eligible(),
            &ran.dry_run,
            None,
            ""
        )
    );
    println!(
        "{}",
        row(
            "compensate",
            ran.granted,
            &ran.compensate,
            Some(comp_rate),
            &target(&ran.compensate, COMPENSATE_TARGET_S)
        )
    );
    println!(
        "{}",
        row("compensate (re-run)", ran.rerun_added, &ran.rerun, None, "")
    );
    println!(
        "{}",
        row(
            "reconcile",
            reconciled,
            &ran.reconcile,
            Some(rec_rate),
            &target(&ran.reconcile, RECONCILE_TARGET_S)
        )
    );
    println!(
        "\n ceilings (the storage and cache crates' own calls, in-process on one connection, release build)"
    );
    println!(
        "  grant: CompensationStore::grant of the {} eligible users, {} per transaction: {:.0} rows/s ({:.3} s)",
        args.eligible(),
        args.batch_size,
        ran.grant_ceiling.rate(),
        ran.grant_ceiling.seconds
    );
    println!(
        "  reads: IssuanceStore::holders + ReservationStore::participants of {reconciled}: {:.0} participants/s ({:.3} s)",
        ran.reads_ceiling.rate(),
        ran.reads_ceiling.seconds
    );
    let figures = vec![
        Figure {
            figure: format!("compensate {} users (process wall clock)", args.eligible()),
            value: comp_rate,
            unit: "grants/s".to_owned(),
            ceiling: Some(ran.grant_ceiling.rate()),
            ceiling_of: Some("CompensationStore::grant ceiling, rows/s".to_owned()),
        },
        Figure {
            figure: format!("reconcile {reconciled} participants (process wall clock)"),
            value: rec_rate,
            unit: "participants/s".to_owned(),
            ceiling: Some(ran.reads_ceiling.rate()),
            ceiling_of: Some("its two reads alone, participants/s".to_owned()),
        },
        Figure {
            figure: format!("compensate {} users", args.eligible()),
            value: ran.compensate.seconds,
            unit: "s".to_owned(),
            ceiling: None,
            ceiling_of: None,
        },
        Figure {
            figure: format!("reconcile {reconciled} participants"),
            value: ran.reconcile.seconds,
            unit: "s".to_owned(),
            ceiling: None,
            ceiling_of: None,
        },
    ];
    println!("\n figures (value / same-run ceiling = ratio)");
    for figure in &figures {
        println!(" {figure}");
    }
    println!();
    if problems.is_empty() {
        println!(
            " checks     all OK (compensation coupon {} holds exactly the {} eligible users; re-run granted none; reconcile CONSISTENT)",
            ran.compensation_coupon
                .map_or("?".to_owned(), |c| c.to_string()),
            args.eligible()
        );
    } else {
        println!(" checks     {} FAILED:", problems.len());
        for problem in problems {
            println!("            {problem}");
        }
    }
    println!("\n results table rows (docs/benchmarks.md)\n");
    print!("{}", markdown_table(&figures, &info.provenance()));
    println!(
        "==============================================================================================="
    );
}
