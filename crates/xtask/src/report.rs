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
