//! How a job reports: a human summary, or one JSON document on stdout for machines.

use std::fmt::Display;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A summary for people.
    #[default]
    Text,
    /// One JSON document on stdout (logs stay on stderr).
    Json,
}

#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputArgs {
    /// Summary format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl OutputArgs {
    /// Prints the summary to stdout: the job's one result, separate from the logs on stderr.
    /// Returns it as JSON for callers in the same process.
    pub fn emit<T: Serialize + Display>(&self, summary: &T) -> anyhow::Result<serde_json::Value> {
        let json = serde_json::to_value(summary)?;
        let text = match self.output {
            OutputFormat::Text => summary.to_string(),
            OutputFormat::Json => serde_json::to_string_pretty(&json)?,
        };
        #[allow(clippy::print_stdout)]
        {
            println!("{text}");
        }
        Ok(json)
    }
}
