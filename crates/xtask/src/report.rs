//! A measured figure and the ceiling it is compared with, measured in the same run: what every
//! benchmark prints, and what `docs/benchmarks.md`'s results table is made of.

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
    /// `value / ceiling`, when there is a ceiling.
    pub fn ratio(&self) -> Option<f64> {
        self.ceiling
            .filter(|ceiling| *ceiling > 0.0)
            .map(|ceiling| self.value / ceiling)
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

/// The run a figure comes from, as `docs/benchmarks.md`'s results table records it.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// UTC, RFC 3339.
    pub date: String,
    pub commit: String,
    /// The command that reproduces the figure.
    pub command: String,
}

/// `docs/benchmarks.md`'s results table for `figures`: header, then one row each,
/// `| figure | value | ceiling | ratio | date | commit | command |`.
pub fn markdown_table(figures: &[Figure], run: &Provenance) -> String {
    let mut table = String::from(
        "| figure | value | ceiling | ratio | date | commit | command |\n|---|---|---|---|---|---|---|\n",
    );
    for figure in figures {
        let ceiling = match (figure.ceiling, &figure.ceiling_of) {
            (Some(ceiling), Some(of)) => format!("{ceiling:.2} ({of})"),
            (Some(ceiling), None) => format!("{ceiling:.2}"),
            _ => "-".to_owned(),
        };
        let ratio = figure.ratio().map_or("-".to_owned(), |r| format!("{r:.2}"));
        table.push_str(&format!(
            "| {} | {:.2} {} | {ceiling} | {ratio} | {} | `{}` | `{}` |\n",
            figure.figure, figure.value, figure.unit, run.date, run.commit, run.command
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_row_carries_value_ceiling_ratio_and_provenance() {
        let run = Provenance {
            date: "2026-01-01T00:00:00Z".into(),
            commit: "abc".into(),
            command: "cargo xtask bench consumer".into(),
        };
        let figures = [
            Figure {
                figure: "drain".into(),
                value: 30.0,
                unit: "issued/s".into(),
                ceiling: Some(60.0),
                ceiling_of: Some("insert".into()),
            },
            Figure {
                figure: "backlog".into(),
                value: 4.5,
                unit: "s".into(),
                ceiling: None,
                ceiling_of: None,
            },
        ];
        let table = markdown_table(&figures, &run);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[2],
            "| drain | 30.00 issued/s | 60.00 (insert) | 0.50 | 2026-01-01T00:00:00Z | `abc` | `cargo xtask bench consumer` |"
        );
        assert!(
            rows[3].starts_with("| backlog | 4.50 s | - | - |"),
            "{}",
            rows[3]
        );
    }
}
