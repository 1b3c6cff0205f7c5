//! A measured figure and the ceiling it is compared with, measured in the same run: what every
//! benchmark prints, and what `docs/benchmarks.md`'s results table is made of.
//!
//! A benchmark collects its [`Figure`]s, then prints them with [`markdown_table`] and a
//! [`RunInfo`] (`bench::run_info::RunInfo::provenance`: date, commit, [`command_line`]):
//!
//! ```text
//! | figure | value | ceiling | ratio | date | commit | command |
//! |---|---|---|---|---|---|---|
//! | accepted issuances/s, 128 conns | 14,734 /s | 43,211 /s (Lua reserve, accept) | 0.341 | 2026-11-30 | 1a2b3c4 | `cargo xtask bench api` |
//! ```

use std::fmt;

use serde::Serialize;

/// One result: `value` of `figure` against `ceiling` (the same quantity for the thing it runs
/// on, measured in the same run), so the ratio is comparable across machines.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub figure: String,
    pub value: f64,
    pub unit: String,
    pub ceiling: Option<f64>,
    pub ceiling_of: Option<String>,
}

impl Figure {
    /// A figure with no ceiling (a latency, a cost per answer, a ceiling itself).
    pub fn new(figure: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Self {
            figure: figure.into(),
            value,
            unit: unit.into(),
            ceiling: None,
            ceiling_of: None,
        }
    }

    /// The same figure compared with `ceiling`, measured in the same run by `of`.
    pub fn against(mut self, ceiling: f64, of: impl Into<String>) -> Self {
        self.ceiling = Some(ceiling);
        self.ceiling_of = Some(of.into());
        self
    }

    /// `value / ceiling`, when there is a ceiling.
    pub fn ratio(&self) -> Option<f64> {
        self.ceiling
            .filter(|ceiling| *ceiling > 0.0)
            .map(|ceiling| self.value / ceiling)
    }

    /// `| figure | value | ceiling | ratio | date | commit | command |`, one markdown row.
    pub fn markdown_row(&self, run: &RunInfo) -> String {
        let ceiling = match (self.ceiling, &self.ceiling_of) {
            (Some(ceiling), Some(of)) => format!("{} {} ({of})", number(ceiling), self.unit),
            (Some(ceiling), None) => format!("{} {}", number(ceiling), self.unit),
            _ => "–".to_owned(),
        };
        let ratio = self
            .ratio()
            .map_or_else(|| "–".to_owned(), |ratio| format!("{ratio:.3}"));
        format!(
            "| {} | {} {} | {ceiling} | {ratio} | {} | {} | `{}` |",
            cell(&self.figure),
            number(self.value),
            self.unit,
            run.date,
            run.commit,
            cell(&run.command)
        )
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:.2} {}", self.figure, self.value, self.unit)?;
        if let (Some(ceiling), Some(ratio)) = (self.ceiling, self.ratio()) {
            let of = self.ceiling_of.as_deref().unwrap_or("ceiling");
            write!(f, " / {of} {ceiling:.2} = ratio {ratio:.2}")?;
        }
        Ok(())
    }
}

/// When, at which commit and with which command a benchmark ran: the last three columns of
/// the results table.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// Short `HEAD` of the working tree (`unknown` outside git).
    pub commit: String,
    /// The command as typed: the task's own `<env_prefix>*` variables that are set, then
    /// `cargo xtask` and this process's arguments, shell-quoted where needed.
    pub command: String,
}

/// The command as typed: the task's own `<env_prefix>*` variables that are set (`BENCH_`:
/// they are part of what reproduces the run), then `cargo xtask` and this process's
/// arguments, shell-quoted where needed.
pub fn command_line(env_prefix: &str) -> String {
    let mut knobs: Vec<String> = std::env::vars()
        .filter(|(key, _)| key.starts_with(env_prefix))
        .map(|(key, value)| format!("{key}={}", shell_quote(&value)))
        .collect();
    knobs.sort();
    let words = knobs
        .into_iter()
        .chain(["cargo".to_owned(), "xtask".to_owned()])
        .chain(std::env::args().skip(1).map(|arg| shell_quote(&arg)));
    words.collect::<Vec<_>>().join(" ")
}

/// A u64 as f64 without `as` (the workspace warns on it), from its two halves; exact for the
/// tick counts of a benchmark (far below 2^53).
pub fn to_f64(value: u64) -> f64 {
    let high = u32::try_from(value >> 32).unwrap_or(u32::MAX);
    let low = u32::try_from(value & 0xffff_ffff).unwrap_or(u32::MAX);
    f64::from(high) * 4_294_967_296.0 + f64::from(low)
}

/// The header and one row per figure, ready to paste into `docs/benchmarks.md`.
pub fn markdown_table(figures: &[Figure], run: &RunInfo) -> String {
    let mut table = String::from(
        "| figure | value | ceiling | ratio | date | commit | command |\n|---|---|---|---|---|---|---|\n",
    );
    for figure in figures {
        table.push_str(&figure.markdown_row(run));
        table.push('\n');
    }
    table
}

/// 14734.2 -> "14,734"; 17.02 -> "17.02": thousands separated, decimals only below 100.
fn number(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.2}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// A table cell: a `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `value` as one shell word: unchanged when it is plain, else in single quotes.
fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_value_ceiling_ratio_and_run() {
        let run = RunInfo {
            date: "2026-11-30".to_owned(),
            commit: "1a2b3c4".to_owned(),
            command: "BENCH_CONCURRENCIES='32 64' cargo xtask bench api".to_owned(),
        };
        let accepted = Figure::new("accepted issuances/s, 128 conns", 14_734.2, "/s")
            .against(43_211.0, "Lua reserve, accept");
        assert_eq!(
            accepted.markdown_row(&run),
            "| accepted issuances/s, 128 conns | 14,734 /s | 43,211 /s (Lua reserve, accept) \
             | 0.341 | 2026-11-30 | 1a2b3c4 | `BENCH_CONCURRENCIES='32 64' cargo xtask bench api` |"
        );
        let p99 = Figure::new("accepted p99, 128 conns", 14.21, "ms");
        assert!(
            p99.markdown_row(&run)
                .starts_with("| accepted p99, 128 conns | 14.21 ms | – | – |")
        );
        assert_eq!(markdown_table(&[p99], &run).lines().count(), 3);
    }

    #[test]
    fn numbers_and_words() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(0.4404), "0.44");
        assert_eq!(shell_quote("32 64"), "'32 64'");
        assert_eq!(shell_quote("--duration=10"), "--duration=10");
        assert_eq!(cell("a|b"), "a\\|b");
    }
}
